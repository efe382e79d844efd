"""Namespaces: our closed ontology namespace as rdflib terms (the prefix table is in iris)."""

from __future__ import annotations

from rdflib import URIRef
from rdflib.namespace import DefinedNamespace, Namespace

from escap_kg.iris import ONTOLOGY_IRI, RESOURCE_KINDS, VOCABULARY_PREFIXES, prefixes, shorten


class EKG(DefinedNamespace):
    """The escap-kg ontology; closed, so a misspelt term is an error."""

    _fail = True
    _NS = Namespace("https://w3id.org/escap-kg/ontology#")

    Activity: URIRef
    ActorGroup: URIRef
    Alignment: URIRef
    BackgroundPaper: URIRef
    Conference: URIRef
    Country: URIRef
    Document: URIRef
    ExpertGroupMeeting: URIRef
    Finding: URIRef
    MeetingRecommendations: URIRef
    MeetingReport: URIRef
    Participation: URIRef
    PlanOfAction: URIRef
    PlannedWork: URIRef
    Recommendation: URIRef
    Region: URIRef
    Seminar: URIRef
    SourceDocument: URIRef
    SourceParagraph: URIRef
    addressedTo: URIRef
    adoptedAt: URIRef
    availableFrom: URIRef
    confidence: URIRef
    focus: URIRef
    followUpOf: URIRef
    inCooperationWith: URIRef
    isAdHoc: URIRef
    keyAgendaItem: URIRef
    keyIssue: URIRef
    noted: URIRef
    objective: URIRef
    partner: URIRef
    plannedWork: URIRef
    preparatoryTo: URIRef
    presentedAsBackgroundDocumentAt: URIRef
    statement: URIRef


SHAPES = Namespace("https://w3id.org/escap-kg/shapes#")

__all__ = [
    "EKG",
    "ONTOLOGY_IRI",
    "RESOURCE_KINDS",
    "SHAPES",
    "VOCABULARY_PREFIXES",
    "URIRef",
    "prefixes",
    "shorten",
]
