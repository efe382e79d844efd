"""Words for terms: property and class names, datasets, dates, and our IRIs as server paths."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

from escap_kg.formats import PAGE_FORMATS, media_type
from escap_kg.iris import (
    ONTOLOGY_IRI,
    RESOURCE_KINDS,
    SLUG,
    VOCABULARY_PREFIXES,
    is_http_iri,
    shorten,
)
from escap_kg.links import LINKED_DATASETS
from escap_kg.namespaces import EKG as EKG_TERM

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
OWL = "http://www.w3.org/2002/07/owl#"
XSD = "http://www.w3.org/2001/XMLSchema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
SCHEMA = "https://schema.org/"
DCTERMS = "http://purl.org/dc/terms/"
PROV = "http://www.w3.org/ns/prov#"
ORG = "http://www.w3.org/ns/org#"
EKG = f"{ONTOLOGY_IRI}#"
RDF_TYPE = f"{RDF}type"

#: A file stem of an extra graph (``<base>graph/extra/<stem>``), as ``load`` names them.
EXTRA_GRAPH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
#: The start of an IRI a page may link to: the scheme exactly so (lowercase, nothing before it),
#: then a host for http and https, an address for mailto.
LINKABLE = re.compile(r"(?:https?://[^/?#]|mailto:.)")

#: Suffixes that ask for one RDF syntax without an Accept header, and the media type each gives.
SUFFIX_TYPES: dict[str, str] = {
    **{fmt.file_extension: media_type(fmt) for fmt in PAGE_FORMATS.values()},
    "html": "text/html",
}

#: Datasets we link to, by namespace; the most specific namespace is looked up first.
DATASETS: tuple[tuple[str, str, str], ...] = tuple(
    (d.namespace, d.name, d.short)
    for d in sorted(LINKED_DATASETS, key=lambda d: len(d.namespace), reverse=True)
)

# Plain words for reused properties whose local name reads badly or means something else here.
PROPERTY_WORDS: dict[str, str] = {
    RDF_TYPE: "type",
    f"{RDF}subject": "subject",
    f"{RDF}predicate": "link type",
    f"{RDF}object": "linked resource",
    f"{RDFS}label": "label",
    f"{RDFS}comment": "note",
    f"{RDFS}seeAlso": "see also",
    f"{RDFS}subClassOf": "subclass of",
    f"{RDFS}subPropertyOf": "subproperty of",
    f"{RDFS}isDefinedBy": "defined by",
    f"{OWL}versionIRI": "version IRI",
    f"{OWL}versionInfo": "version",
    f"{OWL}disjointWith": "disjoint with",
    f"{SKOS}prefLabel": "preferred name",
    f"{SKOS}altLabel": "also known as",
    f"{SKOS}definition": "definition",
    f"{SKOS}notation": "code",
    f"{SKOS}inScheme": "in scheme",
    f"{SKOS}topConceptOf": "top concept of",
    f"{SKOS}hasTopConcept": "top concept",
    f"{SKOS}exactMatch": "same as",
    f"{SKOS}closeMatch": "close match",
    f"{SKOS}broadMatch": "broader match",
    f"{SKOS}relatedMatch": "related match",
    f"{SKOS}related": "related",
    f"{SKOS}broader": "broader",
    f"{SKOS}narrower": "narrower",
    f"{DCTERMS}spatial": "area",
    f"{DCTERMS}subject": "subject",
    f"{DCTERMS}isPartOf": "part of",
    f"{DCTERMS}hasPart": "has part",
    f"{DCTERMS}bibliographicCitation": "citation",
    f"{SCHEMA}superEvent": "part of",
    f"{SCHEMA}subjectOf": "described on",
    f"{SCHEMA}url": "web address",
    f"{SCHEMA}position": "number",
    f"{SCHEMA}name": "name",
    f"{PROV}qualifiedAssociation": "participation",
    f"{PROV}hadRole": "role",
    f"{PROV}wasAssociatedWith": "associated with",
    f"{ORG}subOrganizationOf": "part of organization",
    f"{ORG}transitiveSubOrganizationOf": "within organization",
}

# How a property reads from its object's side: "<subject> organizer <object>" is shown on the
# object's page as "organizer of: <subject>".
INVERSE_WORDS: dict[str, str] = {
    RDF_TYPE: "instances",
    f"{RDF}subject": "aligned by",
    f"{RDF}object": "target of",
    f"{RDFS}subClassOf": "superclass of",
    f"{RDFS}subPropertyOf": "superproperty of",
    f"{RDFS}isDefinedBy": "defines",
    f"{RDFS}domain": "domain of",
    f"{RDFS}range": "range of",
    f"{RDFS}seeAlso": "see also from",
    f"{SKOS}broader": "narrower",
    f"{SKOS}narrower": "broader",
    f"{SKOS}related": "related",
    f"{SKOS}inScheme": "contains",
    f"{SKOS}topConceptOf": "top concept",
    f"{SKOS}hasTopConcept": "top concept of",
    f"{DCTERMS}subject": "subject of",
    f"{DCTERMS}isPartOf": "has part",
    f"{DCTERMS}hasPart": "part of",
    f"{DCTERMS}spatial": "area of",
    f"{DCTERMS}creator": "creator of",
    f"{DCTERMS}source": "source of",
    f"{SCHEMA}organizer": "organizer of",
    f"{SCHEMA}location": "place of",
    f"{SCHEMA}superEvent": "includes",
    f"{SCHEMA}about": "described on",
    f"{SCHEMA}subjectOf": "about",
    f"{SCHEMA}areaServed": "served by",
    f"{PROV}wasAssociatedWith": "associated with",
    f"{PROV}qualifiedAssociation": "participation in",
    f"{PROV}agent": "participation",
    f"{PROV}hadRole": "role in",
    f"{PROV}wasGeneratedBy": "generated",
    f"{PROV}used": "used by",
    f"{PROV}wasDerivedFrom": "source of",
    f"{ORG}subOrganizationOf": "parent organization of",
    f"{ORG}transitiveSubOrganizationOf": "has within it",
    f"{ORG}originalOrganization": "original organization in",
    f"{ORG}resultingOrganization": "resulting organization of",
    str(EKG_TERM.preparatoryTo): "prepared by",
    str(EKG_TERM.followUpOf): "followed up by",
    str(EKG_TERM.adoptedAt): "adopted here",
    str(EKG_TERM.noted): "noted by",
    str(EKG_TERM.addressedTo): "addressee of",
    str(EKG_TERM.inCooperationWith): "named to cooperate in",
    str(EKG_TERM.partner): "partner of",
    str(EKG_TERM.plannedWork): "announced at",
    str(EKG_TERM.presentedAsBackgroundDocumentAt): "background document",
    str(EKG_TERM.focus): "focus of",
    str(EKG_TERM.keyAgendaItem): "key agenda item of",
    str(EKG_TERM.confidence): "confidence of",
    str(EKG_TERM.availableFrom): "page of",
}

MONTHS = tuple(calendar.month_name)


def local_name(iri: str) -> str:
    """The part of an IRI after its last ``#`` or ``/``."""
    for sep in ("#", "/"):
        if sep in iri:
            tail = iri.rsplit(sep, 1)[1]
            if tail:
                return tail
    return iri


def words(name: str) -> str:
    """``startDate`` -> ``start date``, ``wasAssociatedWith`` -> ``was associated with``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    return spaced.replace("_", " ").replace("-", " ").lower().strip()


def property_words(iri: str, labels: dict[str, str]) -> str:
    """The plain-words name of a property: its label in our ontology, or a readable local name."""
    if iri in labels:
        return labels[iri]
    if iri in PROPERTY_WORDS:
        return PROPERTY_WORDS[iri]
    return words(local_name(iri))


def inverse_words(iri: str, labels: dict[str, str]) -> str:
    """How a property reads from the side of its object (``organizer`` -> ``organizer of``)."""
    if iri in INVERSE_WORDS:
        return INVERSE_WORDS[iri]
    label = property_words(iri, labels)
    if label.endswith((" of", " to", " at", " with", " by", " from", " in", " for")):
        return f"{label} (inverse)"
    return f"{label} of"


def class_words(iri: str, labels: dict[str, str]) -> str:
    """The plain-words name of a class: its label, or a readable local name."""
    return labels.get(iri) or words(local_name(iri))


def dataset_of(iri: str) -> tuple[str, str] | None:
    """``(dataset name, short name of the identifier)`` for an IRI of a dataset we link to."""
    for namespace, name, short in DATASETS:
        if iri.startswith(namespace) and len(iri) > len(namespace):
            code = iri[len(namespace) :]
            if name == "SDG":
                return name, f"SDG {'target' if '.' in code else 'goal'} {code}"
            return name, f"{short} {code}"
    return None


def prefixed(iri: str, table: dict[str, str] | None = None) -> str:
    """``prefix:local`` when a known prefix fits, else the IRI."""
    return shorten(iri, table if table is not None else VOCABULARY_PREFIXES)


@dataclass(frozen=True)
class Paths:
    """Maps our IRIs onto this server's routes and back; the resource base is a setting."""

    base: str

    @property
    def id_base(self) -> str:
        """Prefix of resource IRIs."""
        return f"{self.base}id/"

    @property
    def graph_base(self) -> str:
        """Prefix of named-graph IRIs."""
        return f"{self.base}graph/"

    def resource_iri(self, kind: str, slug: str) -> str | None:
        """The IRI of ``/id/<kind>/<slug>``, or None when the path is not one we mint."""
        if kind not in RESOURCE_KINDS or not SLUG.match(slug):
            return None
        return checked_iri(f"{self.id_base}{kind}/{slug}")

    def graph_iri(self, name: str, extra: bool = False) -> str | None:
        """The IRI of ``/graph/<name>`` (or ``/graph/extra/<name>``), or None when malformed."""
        if extra:
            return (
                checked_iri(f"{self.graph_base}extra/{name}") if EXTRA_GRAPH.match(name) else None
            )
        return checked_iri(f"{self.graph_base}{name}") if SLUG.match(name) else None

    def path(self, iri: str) -> str | None:
        """The route on this server that serves an IRI, or None when it is not ours."""
        if iri == ONTOLOGY_IRI:
            return "/ontology"
        if iri.startswith(EKG) and len(iri) > len(EKG):
            return f"/ontology#{iri[len(EKG) :]}"
        if iri.startswith(self.id_base):
            parts = iri[len(self.id_base) :].split("/")
            if len(parts) == 2 and parts[0] in RESOURCE_KINDS and SLUG.match(parts[1]):
                return f"/id/{parts[0]}/{parts[1]}"
            return None
        if iri.startswith(self.graph_base):
            name = iri[len(self.graph_base) :]
            if SLUG.match(name):
                return f"/graph/{name}"
            if name.startswith("extra/") and EXTRA_GRAPH.match(name[6:]):
                return f"/graph/{name}"
        return None

    def href(self, iri: str) -> str | None:
        """Where a page links for an IRI: our route for it, else the IRI if it is safe to link."""
        return self.path(iri) or safe_href(iri)

    def kind(self, iri: str) -> str | None:
        """The resource kind (``activity``, ``theme``...) of one of our IRIs."""
        if iri.startswith(self.id_base):
            kind = iri[len(self.id_base) :].split("/", 1)[0]
            return kind if kind in RESOURCE_KINDS else None
        if iri.startswith(self.graph_base):
            return "graph"
        return None

    def slug_words(self, iri: str) -> str:
        """A readable name for one of our IRIs that has no label: its slug in words."""
        return words(local_name(iri))


def safe_href(iri: str | None) -> str | None:
    """``iri`` when a page may link to it (http, https or mailto), else None: shown as text.

    The scheme is read as written, with nothing stripped: ``javascript:``, ``data:``, ``file:``,
    ``urn:``, blank nodes, relative references, and a scheme in odd case or behind whitespace or
    control characters (``" JavaScript:"``, ``"java\\tscript:"``) are never links. Nor is a value
    with whitespace, control or formatting characters anywhere, which no IRI has.
    """
    if not iri or not iri.isprintable() or " " in iri:
        return None
    return iri if LINKABLE.match(iri) else None


def checked_iri(iri: str) -> str:
    """``iri`` itself, once it is known to be safe between ``<`` and ``>`` in SPARQL text."""
    if not is_http_iri(iri):
        raise ValueError(f"not a safe IRI: {iri!r}")
    return iri


def iri_ref(iri: str) -> str:
    """``<iri>`` for SPARQL text; refuses anything that could end the reference early."""
    return f"<{checked_iri(iri)}>"


def split_suffix(name: str) -> tuple[str, str | None]:
    """``("fifth-appc", "ttl")`` for ``fifth-appc.ttl``; the suffix is None when there is none."""
    stem, dot, suffix = name.rpartition(".")
    if dot and suffix in SUFFIX_TYPES and stem:
        return stem, suffix
    return name, None


# Dates -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The days a date value covers, at its precision: a year, a month or one day."""

    first: date
    last: date
    precision: str  # "year", "month" or "day"


def period(value: str, datatype: str) -> Period | None:
    """The days covered by an ``xsd:gYear``, ``xsd:gYearMonth``, ``xsd:date`` (or dateTime)."""
    kind = datatype.removeprefix(XSD)
    try:
        if kind == "gYear" and re.fullmatch(r"\d{4}", value):
            year = int(value)
            return Period(date(year, 1, 1), date(year, 12, 31), "year")
        if kind == "gYearMonth" and re.fullmatch(r"\d{4}-\d{2}", value):
            year, month = int(value[:4]), int(value[5:7])
            last = calendar.monthrange(year, month)[1]
            return Period(date(year, month, 1), date(year, month, last), "month")
        if kind in ("date", "dateTime") and re.match(r"\d{4}-\d{2}-\d{2}", value):
            day = date.fromisoformat(value[:10])
            return Period(day, day, "day")
    except ValueError:
        return None
    return None


def span(start: Period | None, end: Period | None) -> Period | None:
    """The days from a start to an end date, each at its own precision."""
    if start is None:
        return end
    if end is None or end.last < start.first:
        return start
    precision = start.precision if start.precision == end.precision else "mixed"
    return Period(start.first, end.last, precision)


def format_period(item: Period) -> str:
    """``2001``, ``October 2002``, ``11 December 2002``, ``11-17 December 2002``."""
    first, last = item.first, item.last
    if item.precision == "year":
        return str(first.year)
    if item.precision == "month":
        return f"{MONTHS[first.month]} {first.year}"
    if first == last:
        return f"{first.day} {MONTHS[first.month]} {first.year}"
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}\u2013{last.day} {MONTHS[first.month]} {first.year}"
    if first.year == last.year:
        return (
            f"{first.day} {MONTHS[first.month]} \u2013 {last.day} {MONTHS[last.month]} {last.year}"
        )
    return (
        f"{first.day} {MONTHS[first.month]} {first.year} \u2013 "
        f"{last.day} {MONTHS[last.month]} {last.year}"
    )


def format_date(value: str, datatype: str) -> str:
    """A date literal in words at its own precision; other values as they are."""
    item = period(value, datatype)
    return format_period(item) if item is not None else value


__all__ = [
    "DATASETS",
    "EKG",
    "SUFFIX_TYPES",
    "Paths",
    "Period",
    "class_words",
    "dataset_of",
    "format_date",
    "format_period",
    "inverse_words",
    "iri_ref",
    "local_name",
    "period",
    "prefixed",
    "property_words",
    "safe_href",
    "span",
    "split_suffix",
    "words",
]
