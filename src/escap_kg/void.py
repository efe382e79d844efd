"""Descriptions of the service (SPARQL Service Description) and the dataset (VoID and DCAT)."""

from __future__ import annotations

from dataclasses import dataclass, field

import rdflib
from rdflib.namespace import DCAT, DCTERMS, FOAF, OWL, RDF, RDFS, SH, SKOS, VOID, XSD
from rdflib_endpoint.sparql_router import SparqlRouter

from escap_kg import __version__
from escap_kg.entailment import stated
from escap_kg.export import EXPORT_FORMATS
from escap_kg.iris import ONTOLOGY_IRI, prefixes
from escap_kg.links import LINKED_DATASETS
from escap_kg.settings import Settings
from escap_kg.stats import CLASS_COUNTS

SD = rdflib.Namespace("http://www.w3.org/ns/sparql-service-description#")
FORMATS = rdflib.Namespace("http://www.w3.org/ns/formats/")
LICENSE = rdflib.URIRef("https://creativecommons.org/licenses/by/4.0/")
TITLE = "escap-kg: ESCAP activities on international migration and development"
DESCRIPTION = (
    "What the UN Economic and Social Commission for Asia and the Pacific did on international "
    "migration and development in 2001-2003: meetings and conferences, partners and their roles, "
    "themes, findings and recommendations, each statement traced to its source paragraph."
)
#: Who makes and publishes the dataset (ESCAP wrote the source document, not the dataset).
MAINTAINERS = "escap-kg maintainers"
SOURCE_SLUG = "escap-migration-activities"

#: Datasets we link to: the namespace their IRIs start with, and a landing IRI for VoID.
LINK_TARGETS: dict[str, tuple[str, str]] = {
    d.key: (d.namespace, d.landing) for d in LINKED_DATASETS
}
LINK_PREDICATES = ("exactMatch", "closeMatch", "broadMatch", "narrowMatch", "relatedMatch")


def service_description(
    graphs: dict[str, int], settings: Settings, endpoint: str, base: str
) -> rdflib.Graph:
    """The SPARQL 1.1 Service Description of the endpoint at ``endpoint``.

    rdflib-endpoint's router builds the description (service, languages, default dataset); we add
    each named graph with its size (``graphs``, counted by the engine, so it works for stores of
    any size) and state what this endpoint does differently: a union default graph, no federated
    query, every result format it writes, and the prefixes it knows without a declaration.
    """
    service = rdflib.URIRef(endpoint)
    seed = rdflib.Graph()
    seed.add((service, SD.endpoint, service))
    router = SparqlRouter(
        graph=rdflib.Dataset(),
        service_description=seed,
        title="escap-kg SPARQL endpoint",
        description=DESCRIPTION,
        version=__version__,
        public_url=endpoint,
        enable_update=settings.update_token is not None,
    )
    graph = router.service_description
    dataset = graph.value(service, SD.defaultDataset)
    for index, (name, size) in enumerate(sorted(graphs.items())):
        named = rdflib.URIRef(f"{endpoint}#graph-{index + 1}")
        described = rdflib.URIRef(f"{endpoint}#graph-{index + 1}-content")
        graph.add((dataset, SD.namedGraph, named))  # type: ignore[arg-type]
        graph.add((named, RDF.type, SD.NamedGraph))
        graph.add((named, SD.name, rdflib.URIRef(name)))
        graph.add((named, SD.graph, described))
        graph.add((described, RDF.type, SD.Graph))
        graph.add((described, VOID.triples, rdflib.Literal(size, datatype=XSD.integer)))
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
    # The prefixes a query may use without declaring them. The Service Description vocabulary
    # has no property for them; SHACL's sh:declare (as WQS-like services publish) says the same.
    for prefix, namespace in sorted(prefixes(settings.base_iri).items()):
        declaration = rdflib.BNode()
        graph.add((service, SH.declare, declaration))
        graph.add((declaration, SH.prefix, rdflib.Literal(prefix)))
        graph.add((declaration, SH.namespace, rdflib.Literal(namespace, datatype=XSD.anyURI)))
    graph.bind("sh", SH)
    graph.bind("sd", SD)
    graph.bind("formats", FORMATS)
    return graph


def _dataset(settings: Settings) -> rdflib.URIRef:
    return rdflib.URIRef(f"{settings.id_base}dataset/escap-kg")


@dataclass
class DatasetStats:
    """Counts for the VoID description, computed with SPARQL by whichever engine serves."""

    triples: int = 0
    subjects: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    links: dict[tuple[str, str], int] = field(default_factory=dict)
    graphs: dict[str, int] = field(default_factory=dict)
    #: The ontology's dcterms:created, the date this release of the dataset was first issued.
    issued: str = ""


_SKOS = "http://www.w3.org/2004/02/skos/core#"
# The dataset described is the one downloaded: stated triples, without the entailed graph,
# which is a derived copy any RDFS reasoner rebuilds. "graphs" still counts every named graph
# the endpoint holds, the entailed one too, for the service description.
STATS_QUERIES: dict[str, str] = {
    "triples": (
        f"SELECT (COUNT(*) AS ?n) WHERE {{ SELECT DISTINCT ?s ?p ?o WHERE {{ {stated()} }} }}"
    ),
    "subjects": f"SELECT (COUNT(DISTINCT ?s) AS ?n) WHERE {{ {stated()} }}",
    "classes": CLASS_COUNTS,
    "issued": f"SELECT ?created WHERE {{ <{ONTOLOGY_IRI}> <{DCTERMS.created}> ?created }}",
    "graphs": "SELECT ?graph (COUNT(*) AS ?n) WHERE { GRAPH ?graph { ?s ?p ?o } } GROUP BY ?graph",
    "links": (
        "SELECT ?target ?link (COUNT(*) AS ?n) WHERE { "
        "VALUES ?link { "
        + " ".join(f"<{_SKOS}{p}>" for p in LINK_PREDICATES)
        + f" }} {stated('?s ?link ?o')} . VALUES (?target ?ns) {{ "
        + " ".join(f'("{name}" "{ns}")' for name, (ns, _) in LINK_TARGETS.items())
        + ' } FILTER(isIRI(?o) && STRSTARTS(STR(?o), ?ns) && (?target != "sdg" || '
        + f'!STRSTARTS(STR(?o), "{LINK_TARGETS["m49"][0]}"))) }} GROUP BY ?target ?link'
    ),
}


def describe_dataset(
    stats: DatasetStats, settings: Settings, base: str, sizes: dict[str, int] | None = None
) -> rdflib.Graph:
    """A VoID and DCAT description: size, classes, links, who made it and when, its version,
    licence, source, downloads (with their size in bytes where ``sizes``, keyed by export format
    name, gives it) and endpoint.

    No dcterms:modified: nothing the server holds says truthfully when the data last changed
    (file times are those of the checkout), so it is left out rather than guessed.
    """
    graph = rdflib.Graph()
    for prefix, ns in (
        ("void", VOID),
        ("dcat", DCAT),
        ("dcterms", DCTERMS),
        ("skos", SKOS),
        ("foaf", FOAF),
        ("owl", OWL),
    ):
        graph.bind(prefix, ns)
    sizes = sizes or {}
    dataset = _dataset(settings)
    add = graph.add
    add((dataset, RDF.type, VOID.Dataset))
    add((dataset, RDF.type, DCAT.Dataset))
    add((dataset, DCTERMS.title, rdflib.Literal(TITLE, lang="en")))
    add((dataset, DCTERMS.description, rdflib.Literal(DESCRIPTION, lang="en")))
    add((dataset, DCTERMS.license, LICENSE))
    add((dataset, OWL.versionInfo, rdflib.Literal(__version__)))
    add((dataset, rdflib.URIRef(f"{DCAT}version"), rdflib.Literal(__version__)))  # DCAT 3
    maintainers = rdflib.URIRef(f"{dataset}#maintainers")
    add((maintainers, RDF.type, FOAF.Agent))
    add((maintainers, FOAF.name, rdflib.Literal(MAINTAINERS)))
    add((dataset, DCTERMS.creator, maintainers))
    add((dataset, DCTERMS.publisher, maintainers))
    if stats.issued:
        add((dataset, DCTERMS.issued, rdflib.Literal(stats.issued, datatype=XSD.date)))
    add((dataset, DCTERMS.source, rdflib.URIRef(f"{settings.id_base}source/{SOURCE_SLUG}")))
    add((dataset, VOID.sparqlEndpoint, rdflib.URIRef(f"{base}/sparql")))
    add((dataset, VOID.uriSpace, rdflib.Literal(settings.id_base)))
    add((dataset, VOID.vocabulary, rdflib.URIRef("https://w3id.org/escap-kg/ontology#")))
    add((dataset, DCAT.keyword, rdflib.Literal("international migration", lang="en")))
    add((dataset, DCAT.keyword, rdflib.Literal("ESCAP", lang="en")))
    add((dataset, DCTERMS.temporal, _period(graph, dataset)))
    add((dataset, VOID.triples, rdflib.Literal(stats.triples, datatype=XSD.integer)))
    add((dataset, VOID.distinctSubjects, rdflib.Literal(stats.subjects, datatype=XSD.integer)))
    add((dataset, VOID.classes, rdflib.Literal(len(stats.classes), datatype=XSD.integer)))
    for cls, count in sorted(stats.classes.items()):
        part = rdflib.URIRef(f"{dataset}#class-{_slug(cls)}")
        add((dataset, VOID.classPartition, part))
        add((part, VOID["class"], rdflib.URIRef(cls)))
        add((part, VOID.entities, rdflib.Literal(count, datatype=XSD.integer)))
    for (name, predicate), count in sorted(stats.links.items()):
        namespace, landing = LINK_TARGETS[name]
        target = rdflib.URIRef(landing)
        add((target, RDF.type, VOID.Dataset))
        add((target, VOID.uriSpace, rdflib.Literal(namespace)))
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
        if spec.name in sizes:
            size = rdflib.Literal(sizes[spec.name], datatype=XSD.nonNegativeInteger)
            add((distribution, DCAT.byteSize, size))
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
