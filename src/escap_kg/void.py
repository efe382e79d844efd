"""Descriptions of the service (SPARQL Service Description) and the dataset (VoID and DCAT)."""

from __future__ import annotations

from collections import Counter

import pyoxigraph as ox
import rdflib
from rdflib.namespace import DCAT, DCTERMS, RDF, RDFS, SKOS, VOID, XSD
from rdflib_endpoint.sparql_router import SparqlRouter

from escap_kg import __version__
from escap_kg.export import EXPORT_FORMATS
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph

SD = rdflib.Namespace("http://www.w3.org/ns/sparql-service-description#")
FORMATS = rdflib.Namespace("http://www.w3.org/ns/formats/")
LICENSE = rdflib.URIRef("https://creativecommons.org/licenses/by/4.0/")
TITLE = "escap-kg: ESCAP activities on international migration and development"
DESCRIPTION = (
    "What the UN Economic and Social Commission for Asia and the Pacific did on international "
    "migration and development in 2001-2003: meetings and conferences, partners and their roles, "
    "themes, findings and recommendations, each statement traced to its source paragraph."
)

#: Datasets we link to: the namespace their IRIs start with, and a landing IRI for VoID.
LINK_TARGETS: dict[str, tuple[str, str]] = {
    "wikidata": ("http://www.wikidata.org/entity/", "https://www.wikidata.org/"),
    "unbis": ("http://metadata.un.org/thesaurus/", "http://metadata.un.org/thesaurus/"),
    "m49": (
        "http://metadata.un.org/sdg/codes/geoArea/",
        "https://unstats.un.org/unsd/methodology/m49/",
    ),
    "sdg": ("http://metadata.un.org/sdg/", "http://metadata.un.org/sdg/"),
}
LINK_PREDICATES = ("exactMatch", "closeMatch", "broadMatch", "narrowMatch", "relatedMatch")


def service_description(
    kg: KnowledgeGraph, settings: Settings, endpoint: str, base: str
) -> rdflib.Graph:
    """The SPARQL 1.1 Service Description of the endpoint at ``endpoint``.

    rdflib-endpoint's router builds the description (service, languages, default dataset with
    each named graph and its size); we then state what this endpoint does differently: a union
    default graph, no federated query, and every result format it writes.
    """
    service = rdflib.URIRef(endpoint)
    seed = rdflib.Graph()
    seed.add((service, SD.endpoint, service))
    router = SparqlRouter(
        graph=kg.dataset,
        service_description=seed,
        title="escap-kg SPARQL endpoint",
        description=DESCRIPTION,
        version=__version__,
        public_url=endpoint,
        enable_update=settings.update_token is not None,
    )
    graph = router.service_description
    graph.remove((service, SD.feature, SD.BasicFederatedQuery))
    graph.add((service, SD.feature, SD.UnionDefaultGraph))
    for fmt in (
        FORMATS.SPARQL_Results_JSON,
        FORMATS.SPARQL_Results_XML,
        FORMATS.SPARQL_Results_CSV,
        FORMATS.SPARQL_Results_TSV,
        FORMATS.Turtle,
        FORMATS.N_Triples,
        FORMATS.RDF_XML,
        FORMATS.JSON_LD,
    ):
        graph.add((service, SD.resultFormat, fmt))
    graph.remove((service, SD.inputFormat, None))
    graph.add((service, rdflib.URIRef("http://rdfs.org/ns/void#rootResource"), _dataset(settings)))
    graph.add((service, RDFS.seeAlso, rdflib.URIRef(f"{base}/.well-known/void")))
    graph.bind("sd", SD)
    graph.bind("formats", FORMATS)
    return graph


def _dataset(settings: Settings) -> rdflib.URIRef:
    return rdflib.URIRef(f"{settings.id_base}dataset/escap-kg")


def describe_dataset(kg: KnowledgeGraph, settings: Settings, base: str) -> rdflib.Graph:
    """A VoID and DCAT description: size, classes, links, licence, downloads and endpoint."""
    graph = rdflib.Graph()
    for prefix, ns in (("void", VOID), ("dcat", DCAT), ("dcterms", DCTERMS), ("skos", SKOS)):
        graph.bind(prefix, ns)
    dataset = _dataset(settings)
    add = graph.add
    add((dataset, RDF.type, VOID.Dataset))
    add((dataset, RDF.type, DCAT.Dataset))
    add((dataset, DCTERMS.title, rdflib.Literal(TITLE, lang="en")))
    add((dataset, DCTERMS.description, rdflib.Literal(DESCRIPTION, lang="en")))
    add((dataset, DCTERMS.license, LICENSE))
    add((dataset, DCTERMS.hasVersion, rdflib.Literal(__version__)))
    add((dataset, VOID.sparqlEndpoint, rdflib.URIRef(f"{base}/sparql")))
    add((dataset, VOID.uriSpace, rdflib.Literal(settings.id_base)))
    add((dataset, VOID.vocabulary, rdflib.URIRef("https://w3id.org/escap-kg/ontology#")))
    add((dataset, DCAT.keyword, rdflib.Literal("international migration", lang="en")))
    add((dataset, DCAT.keyword, rdflib.Literal("ESCAP", lang="en")))
    add((dataset, DCTERMS.temporal, _period(graph, dataset)))

    triples = kg.triples()
    add((dataset, VOID.triples, rdflib.Literal(len(triples), datatype=XSD.integer)))
    subjects = {t.subject.value for t in triples if isinstance(t.subject, ox.NamedNode)}
    add((dataset, VOID.distinctSubjects, rdflib.Literal(len(subjects), datatype=XSD.integer)))
    classes = Counter(
        t.object.value
        for t in triples
        if t.predicate.value == str(RDF.type) and isinstance(t.object, ox.NamedNode)
    )
    add((dataset, VOID.classes, rdflib.Literal(len(classes), datatype=XSD.integer)))
    for cls, count in sorted(classes.items()):
        part = rdflib.URIRef(f"{dataset}#class-{_slug(cls)}")
        add((dataset, VOID.classPartition, part))
        add((part, VOID["class"], rdflib.URIRef(cls)))
        add((part, VOID.entities, rdflib.Literal(count, datatype=XSD.integer)))

    for name, (namespace, landing) in LINK_TARGETS.items():
        counts: Counter[str] = Counter()
        for t in triples:
            obj = t.object
            if (
                isinstance(obj, ox.NamedNode)
                and obj.value.startswith(namespace)
                and t.predicate.value.startswith(str(SKOS))
                and t.predicate.value[len(str(SKOS)) :] in LINK_PREDICATES
                and not (name == "sdg" and obj.value.startswith(LINK_TARGETS["m49"][0]))
            ):
                counts[t.predicate.value] += 1
        if not counts:
            continue
        target = rdflib.URIRef(landing)
        add((target, RDF.type, VOID.Dataset))
        add((target, VOID.uriSpace, rdflib.Literal(namespace)))
        for predicate, count in sorted(counts.items()):
            local = predicate[len(str(SKOS)) :]
            linkset = rdflib.URIRef(f"{dataset}#links-{name}-{local}")
            add((dataset, VOID.subset, linkset))
            add((linkset, RDF.type, VOID.Linkset))
            add((linkset, VOID.subjectsTarget, dataset))
            add((linkset, VOID.objectsTarget, target))
            add((linkset, VOID.linkPredicate, rdflib.URIRef(predicate)))
            add((linkset, VOID.triples, rdflib.Literal(count, datatype=XSD.integer)))

    for spec in EXPORT_FORMATS.values():
        suffix = "nq" if spec.name == "nquads" else spec.suffix.lstrip(".")
        url = rdflib.URIRef(f"{base}/download/escap-kg.{suffix}")
        add((dataset, VOID.dataDump, url))
        distribution = rdflib.URIRef(f"{dataset}#distribution-{spec.name}")
        add((dataset, DCAT.distribution, distribution))
        add((distribution, RDF.type, DCAT.Distribution))
        add((distribution, DCAT.downloadURL, url))
        add(
            (
                distribution,
                DCAT.mediaType,
                rdflib.URIRef(f"https://www.iana.org/assignments/media-types/{spec.media_type}"),
            )
        )
        add((distribution, DCTERMS.license, LICENSE))
    service = rdflib.URIRef(f"{base}/sparql")
    add((service, RDF.type, DCAT.DataService))
    add((service, DCAT.endpointURL, service))
    add((service, DCAT.servesDataset, dataset))
    add((dataset, DCAT.distribution, rdflib.URIRef(f"{dataset}#distribution-sparql")))
    add((rdflib.URIRef(f"{dataset}#distribution-sparql"), RDF.type, DCAT.Distribution))
    add((rdflib.URIRef(f"{dataset}#distribution-sparql"), DCAT.accessService, service))
    add((rdflib.URIRef(f"{dataset}#distribution-sparql"), DCAT.accessURL, service))
    return graph


def _period(graph: rdflib.Graph, dataset: rdflib.URIRef) -> rdflib.URIRef:
    period = rdflib.URIRef(f"{dataset}#period")
    graph.add((period, RDF.type, DCTERMS.PeriodOfTime))
    graph.add((period, DCAT.startDate, rdflib.Literal("2001", datatype=XSD.gYear)))
    graph.add((period, DCAT.endDate, rdflib.Literal("2003", datatype=XSD.gYear)))
    return period


def _slug(iri: str) -> str:
    tail = iri.rstrip("/#").replace("#", "/").rsplit("/", 1)[-1]
    return "".join(c if c.isalnum() else "-" for c in tail).lower() or "thing"
