"""Entity reconciliation: names matched to our IRIs, as the Reconciliation Service API 0.2 asks.

The matching is the library's: a table of every resource of the reconcilable types with its
names (labels and aliases), read through SPARQL, plus the full-text index for candidates whose
texts hold the words. Where the SPARQL runs (the server's engine, or a local store for
``escap-kg add``) is the caller's :class:`Source`.

Scores are honest: 100 and ``match: true`` only for a query equal to one name or alias of a
single candidate of the requested type (case, accents and punctuation aside) whose property
constraints all hold; anything else scores below 100 by how close its best name is.
"""

from __future__ import annotations

import html
import json
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any, Protocol

import pyoxigraph as ox

from escap_kg import __version__
from escap_kg.iris import is_iri
from escap_kg.search import INDEX_NAME, Index, SearchError, build_index
from escap_kg.store import KnowledgeGraph

EKG = "https://w3id.org/escap-kg/ontology#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
SCHEMA = "https://schema.org/"
DCTERMS = "http://purl.org/dc/terms/"
XSD = "http://www.w3.org/2001/XMLSchema#"

#: Most queries in one batch, and most identifiers in one data extension.
MAX_BATCH = 100
MAX_EXTEND_IDS = 500
#: Candidates per query when the query gives no limit, and at most.
DEFAULT_LIMIT = 5
MAX_LIMIT = 50
#: A name at least this similar to the query makes its resource a candidate.
CANDIDATE_SIMILARITY = 0.6
#: Past this many entities, a query is compared with the names that share a word's start.
LARGE_TABLE = 5000


class ReconcileError(Exception):
    """A request the service cannot answer: the message says what is wrong and where."""


@dataclass(frozen=True)
class ReconType:
    """A type entities are reconciled against: a class of the ontology (or one it reuses)."""

    id: str
    name: str
    description: str


TYPES: tuple[ReconType, ...] = (
    ReconType(f"{EKG}Activity", "Activity", "A meeting, conference or seminar"),
    ReconType(
        "http://www.w3.org/ns/org#FormalOrganization",
        "Organization",
        "A UN body or other organization",
    ),
    ReconType(f"{EKG}Country", "Country", "A country, a place (its government is an organization)"),
    ReconType(f"{EKG}ActorGroup", "Actor group", "Governments, civil society and other groups"),
    ReconType(f"{SKOS}Concept", "Theme", "A theme of the themes scheme"),
    ReconType(f"{EKG}Finding", "Finding", "What an activity noted"),
    ReconType(f"{EKG}Recommendation", "Recommendation", "A recommendation of a plan of action"),
    ReconType(f"{EKG}Document", "Document", "A meeting report or background paper"),
    ReconType(f"{SCHEMA}Place", "Place", "A city or region"),
)
TYPE_BY_ID = {t.id: t for t in TYPES}


@dataclass(frozen=True)
class ReconProperty:
    """A property for constraints, suggestions and data extension.

    ``kind``: ``date`` (compared at the precision given), ``entity`` (one of our resources, by
    IRI or name), ``text``, or ``link`` (an IRI in another dataset, in ``namespace``).
    """

    id: str
    name: str
    kind: str
    aliases: tuple[str, ...] = ()
    namespace: str = ""


LINK_PREDICATES = (
    f"{SKOS}exactMatch",
    f"{SKOS}closeMatch",
    f"{SKOS}relatedMatch",
    f"{SKOS}broadMatch",
    f"{SKOS}narrowMatch",
    f"{SCHEMA}sameAs",
)

PROPERTIES: tuple[ReconProperty, ...] = (
    ReconProperty(f"{RDFS}label", "label", "text", ("label",)),
    ReconProperty(f"{SKOS}altLabel", "other name", "text", ("alias", "other name")),
    ReconProperty(f"{SCHEMA}startDate", "start date", "date", ("date", "start", "start date")),
    ReconProperty(f"{SCHEMA}endDate", "end date", "date", ("end", "end date")),
    ReconProperty(f"{SCHEMA}location", "place", "entity", ("place", "location")),
    ReconProperty(f"{SCHEMA}organizer", "organizer", "entity", ("organizer", "organizer")),
    ReconProperty(f"{EKG}partner", "partner", "entity", ("partner",)),
    ReconProperty(f"{DCTERMS}subject", "theme", "entity", ("theme", "subject")),
    ReconProperty(
        "wikidata", "Wikidata item", "link", ("wikidata",), "http://www.wikidata.org/entity/"
    ),
    ReconProperty(
        "unbis", "UNBIS Thesaurus concept", "link", ("unbis",), "http://metadata.un.org/thesaurus/"
    ),
    ReconProperty(
        "m49", "UN M49 area", "link", ("m49",), "http://metadata.un.org/sdg/codes/geoArea/"
    ),
    ReconProperty("sdg", "SDG target", "link", ("sdg",), "http://metadata.un.org/sdg/"),
)

#: The properties proposed for extension, by type (the first are shown for any type).
PROPOSED: dict[str, tuple[str, ...]] = {
    f"{EKG}Activity": (
        f"{SCHEMA}startDate",
        f"{SCHEMA}endDate",
        f"{SCHEMA}location",
        f"{SCHEMA}organizer",
        f"{EKG}partner",
        f"{DCTERMS}subject",
        "wikidata",
    ),
    f"{SKOS}Concept": ("unbis", "sdg", "wikidata"),
    f"{EKG}Country": ("wikidata", "unbis", "m49"),
    f"{SCHEMA}Place": ("wikidata", "unbis", "m49"),
}
DEFAULT_PROPOSED = (f"{RDFS}label", f"{SKOS}altLabel", "wikidata", "unbis")


def find_property(pid: str) -> ReconProperty | None:
    """The property with this id (an IRI, or ``wikidata``...) or one of its short names."""
    key = pid.strip()
    for prop in PROPERTIES:
        if key == prop.id or key.lower() in prop.aliases:
            return prop
    return None


# Names ------------------------------------------------------------------------------------------

STOP_WORDS = frozenset({"a", "an", "and", "at", "for", "in", "of", "on", "the", "to"})
_YEAR = re.compile(r"^(1[89]|20)\d\d$")


def normalise(text: str) -> str:
    """Lowercase, without accents, ``&`` read as "and", punctuation as spaces, one space."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    plain = plain.replace("&", " and ")
    plain = re.sub(r"[^\w]+|_", " ", plain)
    return " ".join(plain.split())


def _words(normalised: str) -> list[str]:
    return [w for w in normalised.split() if w not in STOP_WORDS]


def _split_years(words: list[str]) -> tuple[list[str], list[int]]:
    years = [int(w) for w in words if _YEAR.match(w)]
    return [w for w in words if not _YEAR.match(w)], years


def _ratio(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b).ratio()


def _word_score(word: str, other: str) -> float:
    if word == other:
        return 1.0
    if len(word) >= 3 and other.startswith(word):
        return 0.8  # an abbreviation: "conf" for "conference"
    if len(word) >= 4 and len(other) >= 4:
        ratio = _ratio(word, other)
        if ratio >= 0.8:
            return ratio  # a typo: "swedn" for "sweden"
    return 0.0


def word_similarity(query: list[str], name: list[str]) -> float:
    """How well the words of a query cover those of a name and the other way round (0-1):
    a Dice coefficient over words, where a word may be an abbreviation or a typo of another,
    or an acronym of several ("un" for "united nations")."""
    if not query or not name:
        return 0.0
    used = [False] * len(name)
    matched = 0.0
    for word in query:
        # The best reading of this word: (credit, first name word, name words covered).
        best = (0.0, 0, 0)
        for i, other in enumerate(name):
            if used[i]:
                continue
            score = _word_score(word, other)
            if score * 2 > best[0]:
                best = (score * 2, i, 1)
            k = len(word)
            covered = name[i : i + k]
            if (
                k >= 2
                and len(covered) == k
                and not any(used[i : i + k])
                and "".join(w[0] for w in covered) == word
                and 0.9 * (1 + k) > best[0]
            ):
                best = (0.9 * (1 + k), i, k)
        credit, start, span = best
        for j in range(start, start + span):
            used[j] = True
        matched += credit / 2
    return min(1.0, 2 * matched / (len(query) + len(name)))


def name_similarity(query: str, name: str) -> float:
    """Similarity of a query to one name (0-1): 1 for the same normalised text."""
    q, n = normalise(query), normalise(name)
    if q == n:
        return 1.0
    q_words, _years = _split_years(_words(q))
    n_words = _words(n)
    by_words = word_similarity(q_words, n_words)
    by_letters = _ratio(" ".join(q_words), " ".join(n_words))
    return min(0.99, max(by_words, by_letters))


# The table of entities --------------------------------------------------------------------------


@dataclass
class Entity:
    """A resource that can be reconciled: its names (``True`` for a label, ``False`` for an
    alias), the reconcilable types it has, and its dates for descriptions and years."""

    iri: str
    label: str = ""
    names: dict[str, bool] = field(default_factory=dict)
    types: set[str] = field(default_factory=set)
    start: str = ""
    end: str = ""

    @property
    def name(self) -> str:
        """The name shown: its label, else its first name, else its IRI."""
        return self.label or next(iter(self.names), self.iri)

    def description(self) -> str:
        """Its types and dates, to tell namesakes apart."""
        kinds = ", ".join(TYPE_BY_ID[t].name for t in sorted(self.types) if t in TYPE_BY_ID)
        dates = self.start + (f" to {self.end}" if self.end and self.end != self.start else "")
        return " \u00b7 ".join(part for part in (kinds, dates) if part)

    def years(self) -> tuple[int, int] | None:
        """The years it spans, from its dates (``None`` if it has none)."""
        if not self.start[:4].isdigit():
            return None
        first = int(self.start[:4])
        last = int(self.end[:4]) if self.end[:4].isdigit() else first
        return first, last


@dataclass
class Table:
    """Every reconcilable entity, and an index of their normalised names."""

    entities: dict[str, Entity]
    by_name: dict[str, set[str]]
    #: The entities by the first two letters of each word of their names.
    by_start: dict[str, set[str]] = field(default_factory=dict)

    def exact(self, query: str) -> set[str]:
        """The entities with a name equal to ``query`` once normalised."""
        return set(self.by_name.get(normalise(query), ()))

    def pool(self, query: str) -> Iterable[str]:
        """The entities whose names are compared with ``query``: all of them in a graph of
        our size; in a large store, those with a name equal to it or sharing the start of a
        word with it (so a query costs time in proportion to its neighbours, not the store)."""
        if len(self.entities) <= LARGE_TABLE:
            return self.entities
        found = self.exact(query)
        for word in normalise(query).split():
            found |= self.by_start.get(word[:2], set())
        return found


def _values(types: Iterable[str]) -> str:
    return " ".join(f"<{t}>" for t in types)


NAMES_QUERY = f"""
SELECT DISTINCT ?entity ?type ?name ?alias WHERE {{
  VALUES ?type {{ {_values(t.id for t in TYPES)} }}
  ?entity a/<{RDFS}subClassOf>* ?type .
  FILTER(isIRI(?entity))
  {{ ?entity <{RDFS}label>|<{SKOS}prefLabel>|<{SCHEMA}name>|<{DCTERMS}title> ?name .
     BIND(false AS ?alias) }}
  UNION {{ ?entity <{SKOS}altLabel> ?name . BIND(true AS ?alias) }}
}}
"""

DETAILS_QUERY = f"""
SELECT ?entity ?label ?start ?end WHERE {{
  VALUES ?type {{ {_values(t.id for t in TYPES)} }}
  ?entity a/<{RDFS}subClassOf>* ?type .
  FILTER(isIRI(?entity))
  OPTIONAL {{ ?entity <{RDFS}label> ?label }}
  OPTIONAL {{ ?entity <{SCHEMA}startDate> ?start }}
  OPTIONAL {{ ?entity <{SCHEMA}endDate> ?end }}
}}
"""

Row = Mapping[str, Mapping[str, str]]


def build_table(name_rows: Iterable[Row], detail_rows: Iterable[Row]) -> Table:
    """The table from the answers (SPARQL JSON bindings) of the two queries above."""
    entities: dict[str, Entity] = {}
    for row in name_rows:
        iri = row["entity"]["value"]
        entity = entities.setdefault(iri, Entity(iri))
        entity.types.add(row["type"]["value"])
        name = row["name"]["value"].strip()
        if name:
            is_label = row["alias"]["value"] == "false"
            entity.names[name] = entity.names.get(name, False) or is_label
    for row in detail_rows:
        known = entities.get(row["entity"]["value"])
        if known is None:
            continue
        if "label" in row and (not known.label or row["label"]["value"] < known.label):
            known.label = row["label"]["value"]
        if "start" in row:
            known.start = min(filter(None, (known.start, row["start"]["value"])))
        if "end" in row:
            known.end = max(known.end, row["end"]["value"])
    by_name: dict[str, set[str]] = {}
    by_start: dict[str, set[str]] = {}
    for entity in entities.values():
        for name in entity.names:
            normalised = normalise(name)
            by_name.setdefault(normalised, set()).add(entity.iri)
            for word in normalised.split():
                by_start.setdefault(word[:2], set()).add(entity.iri)
    return Table(entities, by_name, by_start)


# Queries and candidates -------------------------------------------------------------------------


@dataclass(frozen=True)
class Constraint:
    """A property constraint of a query: the property and the values it should have."""

    prop: ReconProperty
    values: tuple[str | dict[str, Any], ...]


@dataclass(frozen=True)
class ReconQuery:
    """One query of a batch, checked."""

    text: str
    types: tuple[str, ...] = ()
    type_strict: str = "any"
    limit: int = DEFAULT_LIMIT
    constraints: tuple[Constraint, ...] = ()


@dataclass
class Candidate:
    """A candidate entity for a query, with its score (0-100) and whether it surely matches."""

    entity: Entity
    score: float
    match: bool
    features: dict[str, float | bool]

    def as_json(self) -> dict[str, Any]:
        """The candidate as the API returns it."""
        return {
            "id": self.entity.iri,
            "name": self.entity.name,
            "description": self.entity.description(),
            "score": self.score,
            "match": self.match,
            "type": [
                {"id": t, "name": TYPE_BY_ID[t].name}
                for t in sorted(self.entity.types)
                if t in TYPE_BY_ID
            ],
            "features": [{"id": k, "value": v} for k, v in self.features.items()],
        }


def _json(text: str, parameter: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ReconcileError(
            f"{parameter}: not JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from None


def parse_batch(text: str) -> dict[str, ReconQuery]:
    """A batch of queries (the JSON of the ``queries`` parameter), checked; raises
    :class:`ReconcileError` naming the query and field that is wrong."""
    data = _json(text, "queries")
    if not isinstance(data, dict):
        raise ReconcileError('queries: a JSON object of named queries, e.g. {"q0": {...}}')
    if len(data) > MAX_BATCH:
        raise ReconcileError(f"queries: {len(data)} queries; send at most {MAX_BATCH} at once")
    return {str(key): parse_query(key, value) for key, value in data.items()}


def parse_query(key: str, value: object) -> ReconQuery:
    """One query of a batch, checked."""
    if not isinstance(value, dict):
        raise ReconcileError(f"queries.{key}: a query is a JSON object")
    unknown = set(value) - {"query", "type", "limit", "properties", "type_strict"}
    if unknown:
        raise ReconcileError(f"queries.{key}: unknown field(s) {', '.join(sorted(unknown))}")
    text = value.get("query", "")
    if not isinstance(text, str):
        raise ReconcileError(f"queries.{key}.query: a string")
    types_value = value.get("type", [])
    types = [types_value] if isinstance(types_value, str) else types_value
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise ReconcileError(f"queries.{key}.type: a type id or a list of them")
    for t in types:
        if t not in TYPE_BY_ID:
            known = ", ".join(TYPE_BY_ID)
            raise ReconcileError(f"queries.{key}.type: unknown type {t!r}; one of {known}")
    limit = value.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int | float) or limit < 1:
        raise ReconcileError(f"queries.{key}.limit: a positive number")
    strict = value.get("type_strict", "any")
    if strict not in ("any", "should", "all"):
        raise ReconcileError(f"queries.{key}.type_strict: any, should or all")
    constraints = []
    properties = value.get("properties", [])
    if not isinstance(properties, list):
        raise ReconcileError(f"queries.{key}.properties: a list of {{pid, v}} objects")
    for i, item in enumerate(properties):
        where = f"queries.{key}.properties[{i}]"
        if not isinstance(item, dict) or "pid" not in item or "v" not in item:
            raise ReconcileError(f"{where}: an object with pid and v")
        prop = find_property(str(item["pid"]))
        if prop is None:
            raise ReconcileError(f"{where}.pid: unknown property {item['pid']!r}")
        raw = item["v"] if isinstance(item["v"], list) else [item["v"]]
        values: list[str | dict[str, Any]] = []
        for v in raw:
            if isinstance(v, dict) and isinstance(v.get("id"), str):
                values.append({"id": v["id"], "name": str(v.get("name", ""))})
            elif isinstance(v, str | int | float) and not isinstance(v, bool):
                values.append(str(v))
            else:
                raise ReconcileError(f"{where}.v: a string, a number or an {{id}} object")
        constraints.append(Constraint(prop, tuple(values)))
    if not text.strip() and not constraints:
        raise ReconcileError(f"queries.{key}: give a query string or properties")
    return ReconQuery(text, tuple(types), strict, min(int(limit), MAX_LIMIT), tuple(constraints))


#: One value of a property of an entity: its lexical form or IRI, and its label if any.
Value = tuple[str, str]


def _date_fits(given: str, stated: str) -> bool:
    """A date constraint holds when one date is a prefix of the other (a year, a month)."""
    given = given.strip()
    return bool(given) and (stated.startswith(given) or given.startswith(stated))


def _constraint_holds(constraint: Constraint, values: list[Value]) -> bool | None:
    """True if a stated value fits a given one, False if none does, None if none is stated."""
    if not values:
        return None
    for given in constraint.values:
        for stated, label in values:
            if isinstance(given, dict):
                if given["id"] == stated:
                    return True
                given_text = given.get("name", "")
            else:
                given_text = given
            if not given_text:
                continue
            if constraint.prop.kind == "date":
                if _date_fits(given_text, stated):
                    return True
            elif normalise(given_text) in (normalise(stated), normalise(label)) or (
                constraint.prop.kind == "entity" and name_similarity(given_text, label) >= 0.9
            ):
                return True
    return False


def candidates(
    query: ReconQuery,
    table: Table,
    hits: Sequence[str] = (),
    values: Mapping[str, Mapping[str, list[Value]]] | None = None,
) -> list[Candidate]:
    """The candidates for one query, best first: the entities of the requested types whose
    names are close to the query, and those the full-text search found (``hits``, best first);
    ``values`` holds the stated values of the constrained properties of each entity."""
    scored, full_text = _found(query, table, hits)
    exact = {iri for iri, (similarity, _) in scored.items() if similarity == 1.0}
    found = [
        _judged(query, table.entities[iri], similarity, how, full_text, len(exact), values or {})
        for iri, (similarity, how) in scored.items()
    ]
    found.sort(key=lambda c: (-c.score, c.entity.name, c.entity.iri))
    return found[: query.limit]


def _typed(query: ReconQuery, entity: Entity) -> bool:
    """Whether ``entity`` is of the types the query asks for, as strictly as it asks."""
    wanted = set(query.types)
    if not wanted or query.type_strict == "should":
        return True
    if query.type_strict == "all":
        return wanted <= entity.types
    return bool(wanted & entity.types)


def _found(
    query: ReconQuery, table: Table, hits: Sequence[str]
) -> tuple[dict[str, tuple[float, str]], dict[str, int]]:
    """Each candidate's best name similarity and how it was found (an identifier, a name, the
    full-text search, or properties alone), and the rank of each full-text hit."""
    text = query.text.strip()
    scored: dict[str, tuple[float, str]] = {}
    if text in table.entities:  # an identifier given as the query
        scored[text] = (1.0, "id")
    for iri in table.pool(text) if text else ():
        entity = table.entities[iri]
        if iri in scored or not _typed(query, entity):
            continue
        best = max((name_similarity(text, n) for n in entity.names), default=0.0)
        if best >= CANDIDATE_SIMILARITY:
            scored[iri] = (best, "name")
    full_text: dict[str, int] = {}
    for rank, iri in enumerate(dict.fromkeys(hits)):
        hit = table.entities.get(iri)
        if hit is not None and _typed(query, hit):
            full_text[iri] = rank
            if iri not in scored:
                best = max((name_similarity(text, n) for n in hit.names), default=0.0)
                scored[iri] = (best, "text")
    if not text:  # properties only: every entity of the types is a candidate
        for iri, entity in table.entities.items():
            if _typed(query, entity):
                scored.setdefault(iri, (0.0, "properties"))
    return scored, full_text


def _judged(
    query: ReconQuery,
    entity: Entity,
    similarity: float,
    how: str,
    full_text: Mapping[str, int],
    exact_count: int,
    values: Mapping[str, Mapping[str, list[Value]]],
) -> Candidate:
    """One candidate's score, features and ``match``: sure only for the one exact name of an
    entity of the wanted types whose constraints and years all hold."""
    iri, wanted = entity.iri, set(query.types)
    _words_only, years = _split_years(_words(normalise(query.text.strip())))
    score = similarity * 100
    if how == "text" or iri in full_text:
        # Found by its texts: a full-text hit alone is weak evidence of identity.
        score = max(score, 50.0 - 2 * full_text.get(iri, 0))
    features: dict[str, float | bool] = {
        "name_exact": similarity == 1.0,
        "name_similarity": round(similarity, 3),
        "full_text": iri in full_text,
    }
    if wanted:
        features["type_match"] = bool(wanted & entity.types)
        if not features["type_match"]:
            score -= 20
    span = entity.years()
    if years and span is not None:
        fits = any(span[0] <= y <= span[1] for y in years)
        features["year_match"] = fits
        score += 5 if fits else -30
    constraints_hold = True
    for constraint in query.constraints:
        holds = _constraint_holds(constraint, list(values.get(iri, {}).get(constraint.prop.id, [])))
        features[f"property:{constraint.prop.name}"] = bool(holds)
        if holds:
            score += 5
        else:
            constraints_hold = False
            score -= 10 if holds is None else 30
    sure = (
        similarity == 1.0
        and exact_count == 1
        and constraints_hold
        and (not wanted or bool(wanted & entity.types))
        and not (years and features.get("year_match") is False)
    )
    score = 100.0 if sure else round(max(0.0, min(score, 99.0)), 1)
    return Candidate(entity, score, sure, features)


# Where the data comes from ----------------------------------------------------------------------


class Source(Protocol):
    """Where the service reads the graph: SPARQL SELECT answers as JSON bindings, and a
    full-text search giving IRIs best first (empty when there is no index)."""

    @property
    def version(self) -> int:
        """Changes whenever the graph may have."""
        ...

    async def select(self, text: str) -> list[dict[str, dict[str, str]]]: ...

    async def search(self, text: str, limit: int) -> list[str]: ...


def _iri_list(iris: Iterable[str]) -> str:
    return " ".join(f"<{i}>" for i in iris if is_iri(i))


def values_query(iris: Iterable[str], props: Iterable[ReconProperty]) -> str:
    """SPARQL for the stated values of ``props`` on ``iris``, with the labels of the values."""
    direct = [p.id for p in props if p.kind != "link"]
    parts = []
    if direct:
        parts.append(
            f"{{ VALUES ?p {{ {_iri_list(direct)} }} ?entity ?p ?value . "
            f"BIND(STR(?p) AS ?pid) OPTIONAL {{ ?value <{RDFS}label> ?label }} }}"
        )
    if any(p.kind == "link" for p in props):
        # Every dataset is told apart (the longest namespace first: M49 areas are under sdg/),
        # and the caller keeps the ones asked for.
        links = sorted((p for p in PROPERTIES if p.kind == "link"), key=lambda p: -len(p.namespace))
        cases = " ".join(f'IF(STRSTARTS(STR(?value), "{p.namespace}"), "{p.id}",' for p in links)
        parts.append(
            f"{{ VALUES ?p {{ {_iri_list(LINK_PREDICATES)} }} ?entity ?p ?value . "
            f'FILTER(isIRI(?value)) BIND({cases} ""{")" * len(links)} AS ?pid) '
            'FILTER(?pid != "") }'
        )
    return (
        "SELECT DISTINCT ?entity ?pid ?value ?label ?datatype WHERE { "
        f"VALUES ?entity {{ {_iri_list(iris)} }} "
        + " UNION ".join(parts)
        + " BIND(DATATYPE(?value) AS ?datatype) }"
    )


def _by_entity(
    rows: Iterable[Row], wanted: Iterable[ReconProperty]
) -> dict[str, dict[str, list[tuple[str, str, str, str]]]]:
    ids = {p.id for p in wanted}
    found: dict[str, dict[str, list[tuple[str, str, str, str]]]] = {}
    for row in rows:
        pid = row["pid"]["value"]
        if pid not in ids:
            continue
        value = row["value"]
        item = (
            value["value"],
            row.get("label", {}).get("value", ""),
            value["type"],
            row.get("datatype", {}).get("value", ""),
        )
        bucket = found.setdefault(row["entity"]["value"], {}).setdefault(pid, [])
        if item not in bucket:
            bucket.append(item)
    for props in found.values():
        for bucket in props.values():
            bucket.sort()
    return found


class Reconciler:
    """The reconciliation service over a :class:`Source`; the table is read once per version."""

    def __init__(self, source: Source, name: str = "escap-kg", id_base: str = "") -> None:
        self.source = source
        self.name = name
        self.id_base = id_base
        self._table: tuple[int, Table] | None = None

    async def table(self) -> Table:
        """The entities and their names, as of the source's current version."""
        version = self.source.version
        if self._table is None or self._table[0] != version:
            names = await self.source.select(NAMES_QUERY)
            details = await self.source.select(DETAILS_QUERY)
            self._table = (version, build_table(names, details))
        return self._table[1]

    async def reconcile(self, batch: Mapping[str, ReconQuery]) -> dict[str, Any]:
        """The answer to a batch: candidates for each query, by the query's key."""
        return {
            key: {"result": [c.as_json() for c in await self.candidates(query)]}
            for key, query in batch.items()
        }

    async def candidates(self, query: ReconQuery) -> list[Candidate]:
        """The candidates for one query, best first."""
        table = await self.table()
        hits = await self.source.search(query.text, 20) if query.text.strip() else []
        values: dict[str, dict[str, list[Value]]] = {}
        if query.constraints:
            # Constraints are checked on the candidates that the names and texts give.
            loose = replace(query, limit=MAX_LIMIT * 4, constraints=())
            iris = [c.entity.iri for c in candidates(loose, table, hits)]
            props = [c.prop for c in query.constraints]
            rows = await self.source.select(values_query(iris, props)) if iris else []
            values = {
                iri: {pid: [(v[0], v[1]) for v in items] for pid, items in by_prop.items()}
                for iri, by_prop in _by_entity(rows, props).items()
            }
        return candidates(query, table, hits, values)

    async def suggest_entities(
        self, prefix: str, types: Sequence[str] = (), cursor: int = 0, limit: int = 10
    ) -> dict[str, Any]:
        """Entities whose names start with, or have words starting with, ``prefix``."""
        table = await self.table()
        wanted = set(types)
        target = normalise(prefix)
        if not target:
            return {"result": []}
        words = target.split()
        ranked: list[tuple[int, str, Entity]] = []
        for entity in table.entities.values():
            if wanted and not wanted & entity.types:
                continue
            rank = None
            if entity.iri == prefix.strip():
                rank = 0
            for name in entity.names:
                n = normalise(name)
                tokens = n.split()
                if n.startswith(target):
                    rank = min(rank if rank is not None else 9, 1 if entity.names[name] else 2)
                elif all(any(t.startswith(w) for t in tokens) for w in words):
                    rank = min(rank if rank is not None else 9, 3)
            if rank is not None:
                ranked.append((rank, entity.name.lower(), entity))
        ranked.sort(key=lambda r: (r[0], r[1], r[2].iri))
        return {
            "result": [
                {
                    "id": e.iri,
                    "name": e.name,
                    "description": e.description(),
                    "notable": [{"id": t, "name": TYPE_BY_ID[t].name} for t in sorted(e.types)],
                }
                for _, _, e in ranked[cursor : cursor + limit]
            ]
        }

    @staticmethod
    def suggest_types(prefix: str, cursor: int = 0, limit: int = 10) -> dict[str, Any]:
        """The reconcilable types whose names or ids hold ``prefix``."""
        target = normalise(prefix)
        found = [
            {"id": t.id, "name": t.name, "description": t.description}
            for t in TYPES
            if not target or target in normalise(t.name) or target in normalise(_local(t.id))
        ]
        return {"result": found[cursor : cursor + limit]}

    @staticmethod
    def suggest_properties(prefix: str, cursor: int = 0, limit: int = 10) -> dict[str, Any]:
        """The properties whose names, ids or short names hold ``prefix``."""
        target = normalise(prefix)
        found = [
            {"id": p.id, "name": p.name, "description": f"{p.kind}; also: {', '.join(p.aliases)}"}
            for p in PROPERTIES
            if not target
            or target in normalise(p.name)
            or target in normalise(_local(p.id))
            or any(target in normalise(a) for a in p.aliases)
        ]
        return {"result": found[cursor : cursor + limit]}

    @staticmethod
    def propose_properties(type_id: str, limit: int = 10) -> dict[str, Any]:
        """The properties worth fetching for entities of a type."""
        if type_id and type_id not in TYPE_BY_ID:
            raise ReconcileError(f"type: unknown type {type_id!r}; one of {', '.join(TYPE_BY_ID)}")
        ids = dict.fromkeys((*PROPOSED.get(type_id, ()), *DEFAULT_PROPOSED))
        by_id = {p.id: p for p in PROPERTIES}
        chosen = [{"id": i, "name": by_id[i].name} for i in ids][:limit]
        return {"type": type_id, "limit": limit, "properties": chosen}

    async def extend(self, text: str) -> dict[str, Any]:
        """The answer to a data extension query (the JSON of the ``extend`` parameter)."""
        data = _json(text, "extend")
        if not isinstance(data, dict) or not isinstance(data.get("ids"), list):
            raise ReconcileError('extend: an object {"ids": [...], "properties": [{"id": ...}]}')
        ids = [i for i in data["ids"] if isinstance(i, str)]
        if len(ids) != len(data["ids"]):
            raise ReconcileError("extend.ids: a list of entity identifiers (strings)")
        if len(ids) > MAX_EXTEND_IDS:
            raise ReconcileError(f"extend.ids: at most {MAX_EXTEND_IDS} at once")
        props = []
        for i, item in enumerate(data.get("properties", [])):
            pid = item.get("id") if isinstance(item, dict) else None
            prop = find_property(pid) if isinstance(pid, str) else None
            if prop is None:
                raise ReconcileError(f"extend.properties[{i}].id: unknown property {pid!r}")
            props.append(prop)
        table = await self.table()
        rows = await self.source.select(values_query(ids, props)) if ids and props else []
        stated = _by_entity(rows, props)
        meta = [{"id": prop.id, "name": prop.name} for prop in props]
        result: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for iri in ids:
            cells: dict[str, list[dict[str, Any]]] = {}
            for prop in props:
                cells[prop.id] = [
                    _cell(v, label, kind, datatype, table)
                    for v, label, kind, datatype in stated.get(iri, {}).get(prop.id, [])
                ]
            result[iri] = cells
        return {"meta": meta, "rows": result}

    async def preview(self, iri: str, page_url: str = "") -> str:
        """A small HTML page about one entity, for OpenRefine's preview pane."""
        table = await self.table()
        entity = table.entities.get(iri)
        if entity is None:
            raise ReconcileError(f"id: no entity {iri!r} in this service")
        others = [n for n in entity.names if n != entity.name]
        e = html.escape
        link = f'<a href="{e(page_url or iri)}" target="_blank">{e(iri)}</a>'
        parts = [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            f"<title>{e(entity.name)}</title>",
            "<style>body{font:13px sans-serif;margin:6px}p{margin:2px 0}"
            ".d{color:#555}</style></head><body>",
            f"<p><strong>{e(entity.name)}</strong></p>",
            f'<p class="d">{e(entity.description())}</p>',
        ]
        if others:
            parts.append(f"<p>Also: {e('; '.join(others))}</p>")
        parts.append(f"<p>{link}</p></body></html>")
        return "".join(parts)

    def manifest(self, service_url: str, documentation: str = "") -> dict[str, Any]:
        """The service manifest for a service answering at ``service_url``."""
        manifest: dict[str, Any] = {
            "versions": ["0.2"],
            "name": self.name,
            "identifierSpace": self.id_base,
            "schemaSpace": EKG,
            "serviceVersion": __version__,
            "view": {"url": f"{service_url}/view?id={{{{id}}}}"},
            "preview": {"url": f"{service_url}/preview?id={{{{id}}}}", "width": 420, "height": 140},
            "defaultTypes": [{"id": t.id, "name": t.name} for t in TYPES],
            "suggest": {
                kind: {"service_url": service_url, "service_path": f"/suggest/{kind}"}
                for kind in ("entity", "type", "property")
            },
            "extend": {
                "propose_properties": {"service_url": service_url, "service_path": "/properties"},
                "property_settings": [],
            },
            "batchSize": 20,
        }
        if documentation:
            manifest["documentation"] = documentation
        return manifest


def _cell(value: str, label: str, kind: str, datatype: str, table: Table) -> dict[str, Any]:
    """One value of a data extension row: an entity, a date, a number or text."""
    if kind == "uri":
        entity = table.entities.get(value)
        if entity is not None:
            return {"id": value, "name": entity.name}
        if label:
            return {"id": value, "name": label}
        return {"str": value}
    if datatype == f"{XSD}date" and re.fullmatch(r"\d{4}-\d\d-\d\d", value):
        return {"date": f"{value}T00:00:00Z"}
    if datatype == f"{XSD}integer" and re.fullmatch(r"[+-]?\d+", value):
        return {"int": int(value)}
    return {"str": value}


class LocalSource:
    """A source over a graph loaded in this process (the command line's), with a full-text
    index built in a temporary folder on the first search; :meth:`close` removes it."""

    version = 0

    def __init__(self, kg: KnowledgeGraph) -> None:
        self.kg = kg
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._index: Index | None = None

    async def select(self, text: str) -> list[dict[str, dict[str, str]]]:
        """The bindings of a SELECT over the union of the graphs."""
        result = self.kg.query(text)
        if not isinstance(result, ox.QuerySolutions):
            raise ReconcileError("a SELECT query was expected")
        body = result.serialize(format=ox.QueryResultsFormat.JSON) or b"{}"
        rows: list[dict[str, dict[str, str]]] = json.loads(body)["results"]["bindings"]
        return rows

    async def search(self, text: str, limit: int) -> list[str]:
        """The IRIs whose texts hold every word of ``text``, best first."""
        if self._index is None:
            self._folder = tempfile.TemporaryDirectory(prefix="escap-kg-search-")
            path = Path(self._folder.name) / INDEX_NAME
            build_index(self.kg.store, path)
            self._index = Index(path)
        try:
            return [hit.iri for hit in self._index.search(text, limit)]
        except SearchError:
            return []  # no word to search for

    def close(self) -> None:
        """Close and remove the index, if one was built."""
        if self._index is not None:
            self._index.close()
            self._index = None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


def _local(iri: str) -> str:
    """The last segment of an IRI (after its last ``#`` or ``/``)."""
    return re.split(r"[#/]", iri)[-1]


def callback_name(value: str) -> str | None:
    """A JSONP callback name that is a plain JavaScript identifier path, else ``None``."""
    ok = re.fullmatch(r"[A-Za-z_$][\w$]{0,63}(\.[A-Za-z_$][\w$]{0,63}){0,4}", value)
    return value if ok else None


__all__ = [
    "PROPERTIES",
    "TYPES",
    "Candidate",
    "Entity",
    "LocalSource",
    "ReconQuery",
    "ReconcileError",
    "Reconciler",
    "Source",
    "Table",
    "build_table",
    "callback_name",
    "candidates",
    "find_property",
    "name_similarity",
    "normalise",
    "parse_batch",
]
