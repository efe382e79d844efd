"""What the pages show, fetched through the query engine and shaped for the templates."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import pyoxigraph as ox

from escap_kg.namespaces import EKG as EKG_TERM
from escap_kg.pages.terms import (
    DCTERMS,
    EKG,
    ORG,
    OWL,
    PROV,
    RDF,
    RDF_TYPE,
    RDFS,
    SCHEMA,
    SKOS,
    XSD,
    Paths,
    Period,
    class_words,
    dataset_of,
    format_date,
    format_period,
    inverse_words,
    iri_ref,
    local_name,
    period,
    prefixed,
    property_words,
    safe_href,
    span,
    words,
)
from escap_kg.service import answer_of

if TYPE_CHECKING:
    from escap_kg.service import State

Term = ox.NamedNode | ox.BlankNode | ox.Literal

PREFIXES = f"""PREFIX rdf: <{RDF}>
PREFIX rdfs: <{RDFS}>
PREFIX owl: <{OWL}>
PREFIX skos: <{SKOS}>
PREFIX schema: <{SCHEMA}>
PREFIX dcterms: <{DCTERMS}>
PREFIX prov: <{PROV}>
PREFIX org: <{ORG}>
PREFIX ekg: <{EKG}>
"""

# Labels in order of preference, for the name of a resource.
LABEL_PROPERTIES = (
    f"{SKOS}prefLabel",
    f"{RDFS}label",
    f"{SCHEMA}name",
    f"{DCTERMS}title",
)
# Names a search looks at, in order of preference for the name shown.
NAME_PROPERTIES = (*LABEL_PROPERTIES, f"{SKOS}altLabel")
# Plain words for classes we reuse, where the local name alone reads oddly.
CLASS_WORDS: dict[str, str] = {
    f"{ORG}FormalOrganization": "organization",
    f"{PROV}Organization": "organization",
    f"{SKOS}Concept": "concept",
    f"{SKOS}ConceptScheme": "concept scheme",
    f"{PROV}Entity": "entity",
    f"{PROV}Role": "role",
    f"{SCHEMA}Place": "place",
    f"{SCHEMA}EventSeries": "event series",
    f"{SCHEMA}WebPage": "web page",
    f"{ORG}ChangeEvent": "change event",
    f"{OWL}Class": "class",
    f"{OWL}ObjectProperty": "object property",
    f"{OWL}DatatypeProperty": "datatype property",
    f"{OWL}Ontology": "ontology",
}
# Properties whose values are texts worth showing under the title of a page.
TEXT_PROPERTIES = (
    f"{SKOS}definition",
    str(EKG_TERM.statement),
    str(EKG_TERM.objective),
    str(EKG_TERM.keyIssue),
    f"{RDFS}comment",
    f"{DCTERMS}description",
)
# Resources that stand for a link or a role rather than a thing: left out of the diagrams.
PLUMBING_CLASSES = (str(EKG_TERM.Alignment), str(EKG_TERM.Participation))
ROLE_ORDER = ("joint-organiser", "organiser", "cooperation-partner", "associated")


# Talking to the engine --------------------------------------------------------------------------


def term_from_json(binding: dict[str, Any]) -> Term:
    """An RDF term from one binding of SPARQL JSON results."""
    kind, value = binding["type"], binding["value"]
    if kind == "uri":
        return ox.NamedNode(value)
    if kind == "bnode":
        return ox.BlankNode(value)
    if "xml:lang" in binding:
        return ox.Literal(value, language=binding["xml:lang"])
    if "datatype" in binding:
        return ox.Literal(value, datatype=ox.NamedNode(binding["datatype"]))
    return ox.Literal(value)


async def select(state: State, text: str) -> list[dict[str, Term]]:
    """A SELECT through the engine, as rows of RDF terms."""
    data = json.loads(await answer_of(state, PREFIXES + text, "json"))
    return [
        {name: term_from_json(b) for name, b in row.items()} for row in data["results"]["bindings"]
    ]


async def construct(state: State, text: str) -> tuple[bytes, list[ox.Triple]]:
    """A CONSTRUCT through the engine: the N-Triples text and the triples."""
    body = await answer_of(state, PREFIXES + text, "nt")
    triples = [q.triple for q in ox.parse(input=body, format=ox.RdfFormat.N_TRIPLES)]
    return body, triples


def text_of(term: Term | None) -> str:
    """The value of a term as a plain string ('' for None)."""
    return "" if term is None else term.value


# Queries ----------------------------------------------------------------------------------------


def describe_query(iri: str) -> str:
    """The description of a resource: its triples both ways, one hop, and its neighbours' names."""
    r = iri_ref(iri)
    return f"""CONSTRUCT {{
  {r} ?p ?o . ?o rdfs:label ?ol . ?o skos:prefLabel ?op .
  ?s ?q {r} . ?s rdfs:label ?sl . ?s skos:prefLabel ?sp .
}} WHERE {{
  {{ {r} ?p ?o OPTIONAL {{ ?o rdfs:label ?ol }} OPTIONAL {{ ?o skos:prefLabel ?op }} }}
  UNION
  {{ ?s ?q {r} OPTIONAL {{ ?s rdfs:label ?sl }} OPTIONAL {{ ?s skos:prefLabel ?sp }} }}
}}"""


def graph_content_query(graph: str) -> str:
    """Every triple of one named graph."""
    return f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH {iri_ref(graph)} {{ ?s ?p ?o }} }}"


def graph_size_query(graph: str, cap: int) -> str:
    """The number of triples of a named graph, counted up to ``cap``."""
    return (
        f"SELECT (COUNT(*) AS ?n) WHERE {{ SELECT * WHERE {{ GRAPH {iri_ref(graph)} "
        f"{{ ?s ?p ?o }} }} LIMIT {int(cap)} }}"
    )


def resource_facts_query(iri: str) -> str:
    """One SELECT for the page of a resource, each row tagged with the ``?part`` it answers:
    ``sources`` (the named graph of each statement, ``?dir ?p ?o ?g``), ``types`` and ``alts``
    (the types and alternative names of its neighbours, ``?n ?t`` and ``?n ?alt``) and
    ``alignments`` (its reified links to other datasets)."""
    r = iri_ref(iri)
    return f"""SELECT ?part ?dir ?p ?o ?g ?n ?t ?alt
       ?al ?target ?match ?confidence ?confidenceLabel ?source ?citation WHERE {{
  {{ SELECT ("sources" AS ?part) ?dir ?p ?o ?g WHERE {{
    {{ GRAPH ?g {{ {r} ?p ?o }} BIND("out" AS ?dir) }}
    UNION
    {{ GRAPH ?g {{ ?o ?p {r} }} BIND("in" AS ?dir) }}
  }} }}
  UNION
  {{ SELECT DISTINCT ("types" AS ?part) ?n ?t WHERE {{
    {{ {r} ?p ?n }} UNION {{ ?n ?p {r} }}
    FILTER(isIRI(?n))
    ?n a ?t .
  }} }}
  UNION
  {{ SELECT DISTINCT ("alts" AS ?part) ?n ?alt WHERE {{
    {{ {r} ?p ?n }} UNION {{ ?n ?p {r} }}
    FILTER(isIRI(?n))
    ?n skos:altLabel ?alt .
  }} }}
  UNION
  {{ SELECT ("alignments" AS ?part) ?al ?target ?match ?confidence ?confidenceLabel ?source
            ?citation WHERE {{
    ?al a ekg:Alignment ; rdf:subject {r} ; rdf:object ?target .
    OPTIONAL {{ ?al rdf:predicate ?match }}
    OPTIONAL {{ ?al ekg:confidence ?confidence
               OPTIONAL {{ ?confidence skos:prefLabel ?confidenceLabel }} }}
    OPTIONAL {{ ?al dcterms:source ?source }}
    OPTIONAL {{ ?al dcterms:bibliographicCitation ?citation }}
  }} }}
}}"""


def _vocabulary_query(ontology_graph: str) -> str:
    return f"""SELECT ?t ?label WHERE {{
  GRAPH {iri_ref(ontology_graph)} {{ ?t rdfs:label ?label }}
}}"""


def _class_parents_query(ontology_graph: str) -> str:
    return f"""SELECT ?c ?super WHERE {{
  GRAPH {iri_ref(ontology_graph)} {{ ?c rdfs:subClassOf ?super }}
  FILTER(isIRI(?c) && isIRI(?super))
}}"""


GRAPHS_QUERY = """SELECT ?g ?label ?source ?sourceLabel ?n WHERE {
  { SELECT DISTINCT ?g WHERE { GRAPH ?g { } } }
  OPTIONAL { ?g rdfs:label ?label }
  OPTIONAL { ?g prov:wasDerivedFrom ?source
             OPTIONAL { ?source rdfs:label ?sourceLabel }
             OPTIONAL { ?source a ekg:SourceParagraph ; schema:position ?n } }
}"""

ACTIVITIES_QUERY = """SELECT ?a ?type ?label ?alt ?start ?end WHERE {
  ?a a ?type . ?type rdfs:subClassOf* ekg:Activity .
  OPTIONAL { ?a rdfs:label ?label }
  OPTIONAL { ?a skos:altLabel ?alt }
  OPTIONAL { ?a schema:startDate ?start }
  OPTIONAL { ?a schema:endDate ?end }
}"""

ROLES_QUERY = """SELECT ?a ?agent ?role ?how ?label ?alt ?type WHERE {
  ?a a ?class . ?class rdfs:subClassOf* ekg:Activity .
  { ?a prov:qualifiedAssociation ?q . ?q prov:agent ?agent ; prov:hadRole ?role .
    BIND("role" AS ?how) }
  UNION { ?a schema:organizer ?agent BIND("organiser" AS ?how) }
  UNION { ?a ekg:partner ?agent BIND("cooperation-partner" AS ?how) }
  UNION { ?a prov:wasAssociatedWith ?agent BIND("associated" AS ?how) }
  OPTIONAL { ?agent skos:prefLabel ?label }
  OPTIONAL { ?agent skos:altLabel ?alt }
  OPTIONAL { ?agent a ?type }
}"""

ROLE_LABELS_QUERY = """SELECT ?role ?label WHERE {
  ?role a prov:Role ; skos:prefLabel ?label .
}"""


def _counts_query(themes_scheme: str) -> str:
    return f"""SELECT ?what (COUNT(DISTINCT ?x) AS ?n) WHERE {{
  {{ ?x a ?c . ?c rdfs:subClassOf* ekg:Activity . BIND("activities" AS ?what) }}
  UNION {{ ?x a org:FormalOrganization . BIND("organisations" AS ?what) }}
  UNION {{ ?x a ekg:Country . BIND("countries" AS ?what) }}
  UNION {{ ?x skos:inScheme {iri_ref(themes_scheme)} . BIND("themes" AS ?what) }}
  UNION {{ ?x a ekg:Finding . BIND("findings" AS ?what) }}
  UNION {{ ?x a ekg:Recommendation . BIND("recommendations" AS ?what) }}
}} GROUP BY ?what"""


def _concepts_query(scheme: str) -> str:
    s = iri_ref(scheme)
    return f"""SELECT ?c ?label ?broader ?top ?uses WHERE {{
  ?c skos:inScheme {s} .
  OPTIONAL {{ ?c skos:prefLabel ?label }}
  OPTIONAL {{ {{ ?c skos:broader ?broader }} UNION {{ ?broader skos:narrower ?c }}
             ?broader skos:inScheme {s} }}
  OPTIONAL {{ {{ ?c skos:topConceptOf {s} }} UNION {{ {s} skos:hasTopConcept ?c }}
             BIND(true AS ?top) }}
  OPTIONAL {{ SELECT ?c (COUNT(DISTINCT ?x) AS ?uses) WHERE {{
    ?x dcterms:subject|ekg:focus|ekg:keyAgendaItem ?c }} GROUP BY ?c }}
}}"""


def _search_index_query(id_base: str) -> str:
    # The base is a checked IRI: no quote, backslash or space can be in it.
    prefix = iri_ref(id_base)[1:-1]
    names = " ".join(iri_ref(p) for p in NAME_PROPERTIES)
    return f"""SELECT ?r ?p ?label ?type WHERE {{
  VALUES ?p {{ {names} }}
  ?r ?p ?label .
  FILTER(isIRI(?r) && STRSTARTS(STR(?r), "{prefix}"))
  OPTIONAL {{ ?r a ?type }}
}}"""


# Shapes for the templates -----------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where a statement comes from, as a small badge: ``¶2`` or ``other public sources``."""

    text: str
    href: str | None
    title: str


@dataclass
class Value:
    """One value of a property on a page: a link to our page, an outgoing link, or a literal.

    ``href`` is only ever one of our routes or an IRI that :func:`safe_href` allows.
    """

    text: str
    href: str | None = None
    external: str | None = None
    title: str = ""
    lang: str | None = None
    is_literal: bool = False
    sources: list[Source] = field(default_factory=list)


@dataclass
class Row:
    """A property and its values on a page."""

    predicate: str
    label: str
    href: str | None
    title: str
    values: list[Value] = field(default_factory=list)


@dataclass(frozen=True)
class Node:
    """A resource as shown in pictures and lists: IRI, name, link and kind."""

    iri: str
    label: str
    href: str | None
    kind: str  # our resource kind, "external", "ontology" or "other"
    dataset: str | None = None


@dataclass(frozen=True)
class Edge:
    """A link between the resource of a page and a neighbour, for the neighbourhood picture."""

    node: Node
    label: str
    outgoing: bool


@dataclass(frozen=True)
class ExternalLink:
    """A link to another dataset, with how sure we are of it and where it was found."""

    dataset: str
    code: str
    iri: str
    match: str
    confidence: str
    source: str | None
    citation: str | None
    details: str | None

    @property
    def href(self) -> str | None:
        """The link to the identifier in its dataset, if it is safe to link."""
        return safe_href(self.iri)

    @property
    def source_href(self) -> str | None:
        """The link to where the alignment was found, if it is a web address safe to link."""
        return safe_href(self.source)


@dataclass(frozen=True)
class SourceLink:
    """Where a graph comes from: one of our resources (a page), a public web address, or (when
    it is not safe to link) text."""

    href: str | None
    text: str
    external: bool


@dataclass(frozen=True)
class GraphInfo:
    """A named graph: its name, where it comes from, and how its statements are badged."""

    iri: str
    label: str
    href: str | None
    paragraph: int | None
    paragraph_href: str | None
    sources: tuple[SourceLink, ...]

    @property
    def badge(self) -> Source | None:
        """The provenance badge of a statement from this graph, if it has a source."""
        if self.paragraph is not None and self.paragraph_href is not None:
            title = f"stated in paragraph {self.paragraph} of the source document"
            return Source(f"\u00b6{self.paragraph}", self.paragraph_href, title)
        external = [s for s in self.sources if s.external]
        if len(external) == 1 and len(self.sources) == 1:
            # A graph of one outside source: the badge names that source.
            return Source(self.label, self.href, f"stated in {self.label} ({external[0].text})")
        if external:
            return Source("other public sources", self.href, self.label)
        if self.sources:
            return Source("source document", self.href, self.label)
        return None


@dataclass(frozen=True)
class GraphUse:
    """A graph that holds statements of a page's resource, and how many."""

    graph: GraphInfo
    count: int


@dataclass
class Activity:
    """An activity on a timeline: name, dates and who took part in which role."""

    iri: str
    label: str
    short: str
    type: str
    when: Period | None
    href: str | None
    agents: list[tuple[Node, str]] = field(default_factory=list)  # (agent, role key)

    @property
    def date_text(self) -> str:
        """The dates in words, or ``date unknown``."""
        return format_period(self.when) if self.when else "date unknown"


@dataclass(frozen=True)
class SearchEntry:
    """A resource as a search finds it: its best name, all its names and its type."""

    iri: str
    label: str
    names: tuple[str, ...]
    kind: str


@dataclass
class Concept:
    """A concept of a scheme with its narrower concepts, for a browsable tree."""

    node: Node
    uses: int
    children: list[Concept] = field(default_factory=list)


@dataclass
class Resource:
    """Everything a resource page shows."""

    iri: str
    label: str
    kind: str | None
    path: str | None
    types: list[Node]
    type_iris: list[str]
    texts: list[tuple[str, Value]]
    alt_labels: list[str]
    when: Period | None
    outgoing: list[Row]
    incoming: list[Row]
    edges: list[Edge]
    links: list[ExternalLink]
    graphs: list[GraphUse]
    nt: str
    triples: list[ox.Triple]
    names: dict[str, str]
    neighbour_types: dict[str, set[str]]

    @property
    def paragraphs(self) -> list[GraphUse]:
        """The graphs of source paragraphs this resource's statements come from, in order."""
        found = [g for g in self.graphs if g.graph.paragraph is not None]
        return sorted(found, key=lambda g: g.graph.paragraph or 0)

    @property
    def other_sources(self) -> list[GraphUse]:
        """The graphs of other public sources (not source paragraphs) that say something here."""
        return [g for g in self.graphs if g.graph.paragraph is None]

    def values(self, predicate: str) -> list[Term]:
        """The objects of this resource's statements with ``predicate``."""
        subject = ox.NamedNode(self.iri)
        return [
            t.object
            for t in self.triples
            if t.subject == subject
            and t.predicate.value == predicate
            and not isinstance(t.object, ox.Triple)
        ]

    def subjects(self, predicate: str) -> list[str]:
        """The IRIs linking to this resource with ``predicate``."""
        obj = ox.NamedNode(self.iri)
        return [
            t.subject.value
            for t in self.triples
            if t.object == obj
            and t.predicate.value == predicate
            and isinstance(t.subject, ox.NamedNode)
        ]


# The pages' data, cached per version of the graph -----------------------------------------------


class SiteData:
    """What the pages show, fetched through the engine; shared lists are cached per version of
    the graph (not to be confused with the query catalogue, :mod:`escap_kg.pages.catalogue`)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.paths = Paths(state.settings.base_iri)
        self._cache: dict[tuple[str, int], Any] = {}

    @property
    def ontology_graph(self) -> str:
        """The named graph that holds the ontology."""
        return f"{self.paths.graph_base}escap-kg"

    @property
    def themes_scheme(self) -> str:
        """The IRI of the themes concept scheme."""
        return f"{self.paths.id_base}scheme/themes"

    async def _cached(self, key: str, make: Callable[[], Awaitable[Any]]) -> Any:
        generation = self.state.generation
        if (key, generation) not in self._cache:
            value = await make()
            self._cache = {k: v for k, v in self._cache.items() if k[1] == generation}
            self._cache[(key, generation)] = value
        return self._cache[(key, generation)]

    # Shared lists ------------------------------------------------------------------------------

    async def vocabulary(self) -> dict[str, str]:
        """Labels of the ontology's classes and properties, by IRI."""

        async def make() -> dict[str, str]:
            rows = await select(self.state, _vocabulary_query(self.ontology_graph))
            labels = dict(CLASS_WORDS)
            for row in rows:
                labels[row["t"].value] = row["label"].value
            return labels

        result: dict[str, str] = await self._cached("vocabulary", make)
        return result

    async def class_parents(self) -> dict[str, set[str]]:
        """The direct superclasses of each class, as the ontology states them."""

        async def make() -> dict[str, set[str]]:
            rows = await select(self.state, _class_parents_query(self.ontology_graph))
            parents: dict[str, set[str]] = defaultdict(set)
            for row in rows:
                parents[row["c"].value].add(row["super"].value)
            return dict(parents)

        result: dict[str, set[str]] = await self._cached("class parents", make)
        return result

    async def graphs(self) -> dict[str, GraphInfo]:
        """Every named graph with its label and source."""

        async def make() -> dict[str, GraphInfo]:
            rows = await select(self.state, GRAPHS_QUERY)
            found: dict[str, dict[str, Any]] = {}
            for row in rows:
                iri = row["g"].value
                info = found.setdefault(iri, {"label": "", "sources": {}, "n": None, "para": None})
                if "label" in row and not info["label"]:
                    info["label"] = row["label"].value
                if "source" in row:
                    source = row["source"].value
                    path = self.paths.path(source)
                    if path is not None:
                        text = text_of(row.get("sourceLabel")) or self.paths.slug_words(source)
                        info["sources"][source] = SourceLink(path, text, False)
                    else:
                        text = source.split("://", 1)[-1]
                        info["sources"][source] = SourceLink(safe_href(source), text, True)
                    if "n" in row:
                        info["n"] = int(row["n"].value)
                        info["para"] = path or safe_href(source)
            return {
                iri: GraphInfo(
                    iri,
                    info["label"] or iri.rsplit("/", 1)[-1],
                    self.paths.href(iri),
                    info["n"],
                    info["para"],
                    tuple(link for _, link in sorted(info["sources"].items())),
                )
                for iri, info in sorted(found.items())
            }

        result: dict[str, GraphInfo] = await self._cached("graphs", make)
        return result

    async def role_labels(self) -> dict[str, str]:
        """Names of the roles agents have in activities, by role key (``joint-organiser``...)."""

        async def make() -> dict[str, str]:
            rows = await select(self.state, ROLE_LABELS_QUERY)
            labels = {
                "organiser": "organizer",
                "joint-organiser": "joint organizer",
                "cooperation-partner": "partner in cooperation",
                "associated": "associated",
            }
            for row in rows:
                labels[row["role"].value.rsplit("/", 1)[-1]] = row["label"].value
            return labels

        result: dict[str, str] = await self._cached("roles", make)
        return result

    async def activities(self) -> list[Activity]:
        """Every activity with its dates, organisers and partners, in time order."""

        async def make() -> list[Activity]:
            rows = await select(self.state, ACTIVITIES_QUERY)
            found: dict[str, dict[str, Any]] = {}
            vocabulary = await self.vocabulary()
            for row in rows:
                iri = row["a"].value
                item = found.setdefault(iri, {"alts": set(), "types": set()})
                for name in ("label", "start", "end"):
                    if name in row:
                        item[name] = row[name]
                if "alt" in row:
                    item["alts"].add(row["alt"].value)
                item["types"].add(row["type"].value)
            activities = []
            for iri, item in found.items():
                label = text_of(item.get("label")) or self.paths.slug_words(iri)
                start, end = item.get("start"), item.get("end")
                when = span(
                    _period(start) if isinstance(start, ox.Literal) else None,
                    _period(end) if isinstance(end, ox.Literal) else None,
                )
                own = sorted(t for t in item["types"] if t != str(EKG_TERM.Activity))
                kind = class_words(own[0] if own else str(EKG_TERM.Activity), vocabulary)
                activities.append(
                    Activity(
                        iri,
                        label,
                        short_name(label, item["alts"]),
                        kind,
                        when,
                        self.paths.path(iri),
                    )
                )
            by_iri = {a.iri: a for a in activities}
            for activity_iri, agents in (await self._roles()).items():
                if activity_iri in by_iri:
                    by_iri[activity_iri].agents = agents
            activities.sort(key=lambda a: (a.when.first if a.when else date.max, a.label))
            return activities

        result: list[Activity] = await self._cached("activities", make)
        return result

    async def _roles(self) -> dict[str, list[tuple[Node, str]]]:
        rows = await select(self.state, ROLES_QUERY)
        names: dict[str, dict[str, Any]] = {}
        roles: dict[tuple[str, str], set[str]] = defaultdict(set)
        for row in rows:
            agent = row["agent"].value
            item = names.setdefault(agent, {"label": "", "alts": set(), "types": set()})
            if "label" in row:
                item["label"] = row["label"].value
            if "alt" in row:
                item["alts"].add(row["alt"].value)
            if "type" in row:
                item["types"].add(row["type"].value)
            how = row["how"].value
            key = row["role"].value.rsplit("/", 1)[-1] if how == "role" else how
            roles[(row["a"].value, agent)].add(("0" if how == "role" else "1") + key)
        result: dict[str, list[tuple[Node, str]]] = defaultdict(list)
        for (activity, agent), keys in sorted(roles.items()):
            stated = sorted(k[1:] for k in keys if k[0] == "0")
            implied = sorted((k[1:] for k in keys if k[0] == "1"), key=_role_rank)
            choice = min(stated, key=_role_rank) if stated else implied[0]
            item = names[agent]
            label = short_name(item["label"] or self.paths.slug_words(agent), item["alts"])
            kind = "country" if str(EKG_TERM.Country) in item["types"] else "organization"
            node = Node(agent, label, self.paths.path(agent), kind)
            result[activity].append((node, choice))
        for agents in result.values():
            agents.sort(key=lambda pair: (_role_rank(pair[1]), pair[0].label))
        return result

    async def counts(self) -> dict[str, int]:
        """How many triples, activities, organisations, themes, findings, recommendations."""

        async def make() -> dict[str, int]:
            from escap_kg.service import dataset_stats

            rows = await select(self.state, _counts_query(self.themes_scheme))
            counts = {row["what"].value: int(row["n"].value) for row in rows}
            stats = await dataset_stats(self.state)
            result = {"triples": stats.triples}
            for name in (
                "activities",
                "organisations",
                "countries",
                "themes",
                "findings",
                "recommendations",
            ):
                result[name] = counts.get(name, 0)
            return result

        result: dict[str, int] = await self._cached("counts", make)
        return result

    async def concept_tree(self, scheme: str) -> list[Concept]:
        """The concepts of a scheme as a tree, from its top concepts down by broader/narrower."""

        async def make() -> list[Concept]:
            rows = await select(self.state, _concepts_query(scheme))
            labels: dict[str, str] = {}
            broader: dict[str, set[str]] = defaultdict(set)
            tops: set[str] = set()
            uses: dict[str, int] = {}
            for row in rows:
                c = row["c"].value
                if "label" in row:
                    labels[c] = row["label"].value
                labels.setdefault(c, self.paths.slug_words(c))
                if "broader" in row:
                    broader[c].add(row["broader"].value)
                if "top" in row:
                    tops.add(c)
                if "uses" in row:
                    uses[c] = int(row["uses"].value)
            narrower: dict[str, list[str]] = defaultdict(list)
            for child, parents in broader.items():
                for parent in parents:
                    narrower[parent].append(child)
            roots = sorted(
                tops | {c for c in labels if not broader.get(c)}, key=lambda c: labels[c]
            )

            def grow(iri: str, trail: frozenset[str]) -> Concept:
                kids = sorted(narrower.get(iri, []), key=lambda k: labels.get(k, k))
                node = Node(iri, labels[iri], self.paths.path(iri), "theme")
                return Concept(
                    node,
                    uses.get(iri, 0),
                    [grow(k, trail | {k}) for k in kids if k not in trail and k in labels],
                )

            return [grow(root, frozenset({root})) for root in roots]

        result: list[Concept] = await self._cached(f"tree {scheme}", make)
        return result

    async def search_index(self) -> list[SearchEntry]:
        """Every resource under our base with its names and the name of its type."""

        async def make() -> list[SearchEntry]:
            rows = await select(self.state, _search_index_query(self.paths.id_base))
            vocabulary = await self.vocabulary()
            names: dict[str, dict[str, int]] = defaultdict(dict)
            kinds: dict[str, set[str]] = defaultdict(set)
            for row in rows:
                iri = row["r"].value
                rank = NAME_PROPERTIES.index(row["p"].value)
                label = row["label"].value
                names[iri][label] = min(rank, names[iri].get(label, rank))
                if "type" in row:
                    kinds[iri].add(row["type"].value)
            entries = []
            for iri, found in sorted(names.items()):
                ordered = sorted(found, key=lambda label: (found[label], label))
                types = _type_nodes(sorted(kinds[iri]), vocabulary, self)
                kind = types[0].label if types else ""
                entries.append(SearchEntry(iri, ordered[0], tuple(ordered), kind))
            return entries

        result: list[SearchEntry] = await self._cached("search", make)
        return result

    # One resource ------------------------------------------------------------------------------

    async def describe(self, iri: str) -> tuple[bytes, list[ox.Triple]]:
        """The description of ``iri`` (its triples both ways and its neighbours' names)."""
        return await construct(self.state, describe_query(iri))

    async def resource(self, iri: str) -> Resource | None:
        """Everything the page of ``iri`` shows, or None when the graph knows nothing of it."""
        facts = await self.resource_facts(iri)
        if facts is None:
            return None
        vocabulary = await self.vocabulary()
        graphs = await self.graphs()
        return _ResourceAssembly(self, facts, vocabulary, graphs).resource()

    async def resource_facts(self, iri: str) -> ResourceFacts | None:
        """What the graph says of ``iri`` for its page, in two round trips to the engine: its
        description, then one SELECT for the graphs of its statements, its neighbours' types
        and alternative names, and its alignments. None when the graph knows nothing of it."""
        body, triples = await self.describe(iri)
        if not triples:
            return None
        facts = ResourceFacts(iri, body, triples)
        for row in await select(self.state, resource_facts_query(iri)):
            part = row.pop("part").value
            if part == "sources":
                facts.sources.append(row)
            elif part == "types":
                facts.neighbour_types[row["n"].value].add(row["t"].value)
            elif part == "alts":
                facts.alts[row["n"].value].add(row["alt"].value)
            else:
                facts.alignments.append(row)
        return facts

    def node(
        self, iri: str, names: dict[str, str], types: set[str], vocabulary: dict[str, str]
    ) -> Node:
        """How a linked resource is shown: our page, an outgoing dataset link or a plain IRI."""
        path = self.paths.path(iri)
        dataset = dataset_of(iri)
        if dataset is not None and path is None:
            name, code = dataset
            return Node(iri, names.get(iri) or code, safe_href(iri), "external", name)
        if path is not None:
            kind = self.paths.kind(iri) or "ontology"
            if kind == "ontology":
                label = vocabulary.get(iri) or names.get(iri) or words(local_name(iri))
            else:
                label = names.get(iri) or self.paths.slug_words(iri)
            return Node(iri, label, path, kind)
        return Node(iri, names.get(iri) or prefixed(iri), safe_href(iri), "other")


@dataclass
class ResourceFacts:
    """What the engine answered about one resource, before it is shaped for its page."""

    iri: str
    body: bytes
    triples: list[ox.Triple]
    #: The named graphs of each statement: rows of ``?dir ?p ?o ?g``.
    sources: list[dict[str, Term]] = field(default_factory=list)
    neighbour_types: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    alts: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    #: Its links to other datasets, as alignment records (``alignments`` rows).
    alignments: list[dict[str, Term]] = field(default_factory=list)


class _ResourceAssembly:
    """Shapes the facts of one resource into the :class:`Resource` its page shows."""

    def __init__(
        self,
        site: SiteData,
        facts: ResourceFacts,
        vocabulary: dict[str, str],
        graphs: dict[str, GraphInfo],
    ) -> None:
        self.site = site
        self.facts = facts
        self.vocabulary = vocabulary
        self.graphs = graphs
        self.me = ox.NamedNode(facts.iri)
        self.names = _names(facts.triples, self.me)
        self.statement_graphs: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        self.per_graph: dict[str, int] = defaultdict(int)
        for row in facts.sources:
            key = (row["dir"].value, row["p"].value, str(row["o"]))
            self.statement_graphs[key].append(row["g"].value)
            self.per_graph[row["g"].value] += 1

    def resource(self) -> Resource:
        facts, me = self.facts, self.me
        outgoing, incoming, edges = self.rows_and_edges()
        type_iris = [
            t.object.value
            for t in facts.triples
            if t.subject == me
            and t.predicate.value == RDF_TYPE
            and isinstance(t.object, ox.NamedNode)
        ]
        own_alts = sorted(
            t.object.value
            for t in facts.triples
            if t.subject == me
            and t.predicate.value == f"{SKOS}altLabel"
            and isinstance(t.object, ox.Literal)
        )
        start = _first_literal(facts.triples, me, f"{SCHEMA}startDate")
        end = _first_literal(facts.triples, me, f"{SCHEMA}endDate")
        paths = self.site.paths
        return Resource(
            iri=facts.iri,
            label=self.names.get(facts.iri) or paths.slug_words(facts.iri),
            kind=paths.kind(facts.iri),
            path=paths.path(facts.iri),
            types=_type_nodes(type_iris, self.vocabulary, self.site),
            type_iris=type_iris,
            texts=self.texts(),
            alt_labels=own_alts,
            when=span(_period(start) if start else None, _period(end) if end else None),
            outgoing=sorted(outgoing, key=_row_order),
            incoming=sorted(incoming, key=lambda r: r.label),
            edges=edges,
            links=self.external_links(),
            graphs=[
                GraphUse(self.graphs[g], n)
                for g, n in sorted(self.per_graph.items())
                if g in self.graphs
            ],
            nt=_sorted_nt(facts.body),
            triples=facts.triples,
            names=self.names,
            neighbour_types=dict(facts.neighbour_types),
        )

    def types_of(self, iri: str) -> set[str]:
        return self.facts.neighbour_types.get(iri, set())

    def badges(self, direction: str, predicate: str, term: Term) -> list[Source]:
        """The provenance badges of one statement, one per distinct source."""
        found: list[Source] = []
        for graph in sorted(self.statement_graphs.get((direction, predicate, str(term)), [])):
            info = self.graphs.get(graph)
            badge = info.badge if info else None
            if badge and badge not in found:
                found.append(badge)
        return found

    def value(self, term: Term, predicate: str, direction: str) -> Value:
        """One value of a property as the page shows it: a literal, or a link to a resource."""
        sources = self.badges(direction, predicate, term)
        if isinstance(term, ox.Literal):
            datatype = term.datatype.value
            text = format_date(term.value, datatype)
            if datatype == f"{XSD}boolean":
                text = "yes" if term.value in ("true", "1") else "no"
            title = prefixed(datatype) if term.language is None else f"@{term.language}"
            return Value(text, None, None, title, term.language, True, sources)
        if isinstance(term, ox.BlankNode):
            return Value(f"_:{term.value}", None, None, "blank node", sources=sources)
        node = self.site.node(term.value, self.names, self.types_of(term.value), self.vocabulary)
        if predicate == RDF_TYPE and node.kind == "other":
            text = f"{class_words(term.value, self.vocabulary)} ({prefixed(term.value)})"
            return Value(text, node.href, None, term.value, sources=sources)
        return Value(
            node.label,
            node.href,
            node.dataset if node.kind == "external" else None,
            term.value,
            sources=sources,
        )

    def row(self, rows: dict[str, Row], predicate: str, label: str) -> Row:
        """The row of ``predicate`` in ``rows``, added on first use."""
        if predicate not in rows:
            rows[predicate] = Row(
                predicate, label, self.site.paths.href(predicate), prefixed(predicate)
            )
        return rows[predicate]

    def rows_and_edges(self) -> tuple[list[Row], list[Row], list[Edge]]:
        """The statements from and to the resource as rows of values, and its neighbours as
        the edges of its picture (left out: alignments, shown with the links, and plumbing)."""
        outgoing: dict[str, Row] = {}
        incoming: dict[str, Row] = {}
        edges: dict[tuple[str, bool], list[str]] = defaultdict(list)
        iri, me, vocabulary = self.facts.iri, self.me, self.vocabulary
        for triple in self.facts.triples:
            p = triple.predicate.value
            if triple.subject == me and not isinstance(triple.object, ox.Triple):
                entry = self.row(outgoing, p, property_words(p, vocabulary))
                entry.values.append(self.value(triple.object, p, "out"))
                if isinstance(triple.object, ox.NamedNode) and p != RDF_TYPE:
                    target = triple.object.value
                    if target != iri and not _plumbing(self.types_of(target)):
                        edges[(target, True)].append(entry.label)
            elif triple.object == me and isinstance(triple.subject, ox.NamedNode):
                source = triple.subject.value
                if p == f"{RDF}subject" and _is_alignment(self.types_of(source)):
                    continue  # shown with the links to other datasets
                entry = self.row(incoming, p, inverse_words(p, vocabulary))
                entry.values.append(self.value(triple.subject, p, "in"))
                if source != iri and not _plumbing(self.types_of(source)):
                    edges[(source, False)].append(property_words(p, vocabulary))
        for entry in (*outgoing.values(), *incoming.values()):
            entry.values.sort(key=lambda v: (not v.is_literal, v.text.lower()))
        return list(outgoing.values()), list(incoming.values()), self.edges(edges)

    def edges(self, edges: dict[tuple[str, bool], list[str]]) -> list[Edge]:
        """One edge per neighbour: its links from here say it already when there are any."""
        found = []
        for (target, out), labels in edges.items():
            if not out and (target, True) in edges:
                continue
            node = self.site.node(target, self.names, self.types_of(target), self.vocabulary)
            short = short_name(node.label, self.facts.alts.get(target, set()))
            shown = Node(node.iri, short, node.href, node.kind, node.dataset)
            found.append(Edge(shown, " \u00b7 ".join(dict.fromkeys(labels)), out))
        return found

    def texts(self) -> list[tuple[str, Value]]:
        """The texts shown under the title (definition, statement, objective...), in order."""
        texts: list[tuple[str, Value]] = []
        for p in TEXT_PROPERTIES:
            for t in self.facts.triples:
                if (
                    t.subject == self.me
                    and t.predicate.value == p
                    and isinstance(t.object, ox.Literal)
                ):
                    words_of = property_words(p, self.vocabulary)
                    texts.append((words_of, self.value(t.object, p, "out")))
        return texts

    def external_links(self) -> list[ExternalLink]:
        """The links to other datasets, stated or recorded as alignments, with their details."""
        rows = self.facts.alignments
        details: dict[str, dict[str, Term]] = {row["target"].value: row for row in rows}
        links: dict[str, ExternalLink] = {}
        candidates = [
            (t.object.value, t.predicate.value)
            for t in self.facts.triples
            if t.subject == self.me and isinstance(t.object, ox.NamedNode)
        ]
        candidates += [
            (row["target"].value, text_of(row.get("match")) or f"{SKOS}relatedMatch")
            for row in rows
        ]
        for target, predicate in candidates:
            found = dataset_of(target)
            if found is None or target in links:
                continue
            name, code = found
            row = details.get(target, {})
            confidence = text_of(row.get("confidenceLabel")) or (
                text_of(row.get("confidence")).rsplit("/", 1)[-1] if "confidence" in row else ""
            )
            links[target] = ExternalLink(
                dataset=name,
                code=code,
                iri=target,
                match=property_words(predicate, self.vocabulary),
                confidence=confidence,
                source=text_of(row.get("source")) or None,
                citation=text_of(row.get("citation")) or None,
                details=self.site.paths.path(row["al"].value) if "al" in row else None,
            )
        return sorted(links.values(), key=lambda link: (link.dataset, link.code))


# Helpers ----------------------------------------------------------------------------------------


def _period(term: Term) -> Period | None:
    if isinstance(term, ox.Literal):
        return period(term.value, term.datatype.value)
    return None


def _first_literal(triples: list[ox.Triple], me: ox.NamedNode, predicate: str) -> Term | None:
    for t in triples:
        if t.subject == me and t.predicate.value == predicate and isinstance(t.object, ox.Literal):
            return t.object
    return None


def _role_rank(key: str) -> int:
    return ROLE_ORDER.index(key) if key in ROLE_ORDER else len(ROLE_ORDER)


def _is_alignment(types: set[str]) -> bool:
    return str(EKG_TERM.Alignment) in types


def _plumbing(types: set[str]) -> bool:
    return any(t in PLUMBING_CLASSES for t in types)


def _names(triples: list[ox.Triple], me: ox.NamedNode) -> dict[str, str]:
    """The best name of every IRI in a description, English preferred."""
    best: dict[str, tuple[int, str]] = {}
    for t in triples:
        p = t.predicate.value
        if p not in LABEL_PROPERTIES or not isinstance(t.object, ox.Literal):
            continue
        if not isinstance(t.subject, ox.NamedNode):
            continue
        rank = LABEL_PROPERTIES.index(p) * 2 + (0 if t.object.language in (None, "en") else 1)
        iri = t.subject.value
        if iri not in best or rank < best[iri][0]:
            best[iri] = (rank, t.object.value)
    return {iri: label for iri, (_, label) in best.items()}


def short_name(label: str, alts: set[str] | list[str]) -> str:
    """A name that fits a picture: the label, or its shortest alternative when it is long."""
    if len(label) <= 40 or not alts:
        return label
    return min(alts, key=lambda a: (len(a), a))


def _type_nodes(iris: list[str], vocabulary: dict[str, str], site: SiteData) -> list[Node]:
    """The types of a resource, ours first, one per distinct name."""
    ordered = sorted(set(iris), key=lambda t: (not t.startswith(EKG), t))
    nodes: list[Node] = []
    seen: set[str] = set()
    for iri in ordered:
        label = class_words(iri, vocabulary)
        if label in seen:
            continue
        seen.add(label)
        nodes.append(Node(iri, label, site.paths.href(iri), "ontology"))
    return nodes


def _row_order(row: Row) -> tuple[int, str]:
    first = (f"{RDF}type", f"{SCHEMA}startDate", f"{SCHEMA}endDate", f"{SCHEMA}location")
    rank = first.index(row.predicate) if row.predicate in first else len(first)
    return rank, row.label


def _sorted_nt(body: bytes) -> str:
    lines = sorted(set(body.decode("utf-8").splitlines()))
    return "\n".join(line for line in lines if line.strip()) + "\n"


__all__ = [
    "Activity",
    "Concept",
    "Edge",
    "ExternalLink",
    "GraphInfo",
    "GraphUse",
    "Node",
    "Resource",
    "ResourceFacts",
    "Row",
    "SearchEntry",
    "SiteData",
    "Source",
    "SourceLink",
    "Value",
    "construct",
    "describe_query",
    "graph_content_query",
    "graph_size_query",
    "select",
    "short_name",
]
