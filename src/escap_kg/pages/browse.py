"""Lists of resources by kind (``/id/activity/``...): every member with its counts and links.

A kind is one of the prefixes of the prefix table (``activity:`` is ``<base>id/activity/``), so
the kinds come from :data:`escap_kg.iris.RESOURCE_KINDS` and a list's members are exactly the
resources the graph describes (the subject of at least one statement) whose IRI is that prefix
followed by a slug we mint. Everything is read through the engine, once per version of the store.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyoxigraph as ox

from escap_kg.entailment import stated
from escap_kg.iris import RESOURCE_KINDS, SLUG
from escap_kg.pages.terms import (
    DCTERMS,
    EKG,
    RDF_TYPE,
    RDFS,
    SCHEMA,
    SKOS,
    Paths,
    checked_iri,
    class_words,
    format_period,
    period,
    span,
    words,
)
from escap_kg.service import answer_of, select_rows

if TYPE_CHECKING:
    from escap_kg.service import State

#: Members shown on one page of a list; the RDF of a list has them all.
PAGE_SIZE = 200
#: The kinds the home page counts, each a card that links to its list.
HOME_KINDS = (
    "activity",
    "organization",
    "country",
    "theme",
    "finding",
    "recommendation",
    "document",
)
#: Plurals that adding "s" (or "y" -> "ies") gets wrong.
PLURALS = {"series": "series", "planned work": "planned work", "confidence": "confidence levels"}
#: The names of a resource, best first.
NAMES = (f"{SKOS}prefLabel", f"{RDFS}label", f"{SCHEMA}name", f"{DCTERMS}title")
#: A slug we mint, as a SPARQL (XPath) regular expression, which has no ``(?:``.
SLUG_PATTERN = SLUG.pattern.replace("(?:", "(")


def kind_words(kind: str, count: int = 1) -> str:
    """``activity`` -> ``activity`` (one) or ``activities`` (any other number)."""
    return plural(words(kind), count)


def plural(name: str, count: int) -> str:
    """``expert group meeting`` for one, ``expert group meetings`` for any other number."""
    if count == 1:
        return name
    if name in PLURALS:
        return PLURALS[name]
    if name.endswith("y") and name[-2:-1] not in "aeiou":
        return name[:-1] + "ies"
    return name if name.endswith("s") else name + "s"


@dataclass(frozen=True)
class Member:
    """One resource of a list: its name and page, its types, its dates, and two counts."""

    iri: str
    label: str
    href: str
    types: tuple[str, ...]
    when: str
    sort_date: str
    statements: int
    linked_from: int


@dataclass(frozen=True)
class KindCount:
    """A kind of resource with the number of resources of it and the address of its list."""

    kind: str
    count: int
    href: str

    @property
    def name(self) -> str:
        """The kind in words, singular or plural as the count asks."""
        return kind_words(self.kind, self.count)


@dataclass(frozen=True)
class Listing:
    """One page of the list of a kind."""

    kind: str
    namespace: str
    count: int
    members: list[Member]
    by_type: list[tuple[str, int]]
    page: int
    pages: int
    dated: bool

    @property
    def title(self) -> str:
        """``Activities``: the kind in the plural, capitalised."""
        name = kind_words(self.kind, 2)
        return name[:1].upper() + name[1:]

    @property
    def summary(self) -> str:
        """``4 activities: 2 expert group meetings, 1 conference, 1 seminar.``"""
        if not self.count:
            return "The graph describes nothing of this kind."
        text = f"{self.count} {kind_words(self.kind, self.count)}"
        if self.by_type:
            text += ": " + ", ".join(f"{n} {plural(name, n)}" for name, n in self.by_type)
        return text + "."

    @property
    def first(self) -> int:
        """The position in the list of the first member on this page (from 1)."""
        return (self.page - 1) * PAGE_SIZE + 1 if self.members else 0

    @property
    def last(self) -> int:
        """The position in the list of the last member on this page."""
        return (self.page - 1) * PAGE_SIZE + len(self.members)


class Browse:
    """The lists, through the engine; their members are cached per version of the store."""

    def __init__(self, state: State, paths: Paths) -> None:
        self.state = state
        self.paths = paths
        self._generation: int | None = None
        self._values: dict[str, Any] = {}

    def namespace(self, kind: str) -> str:
        """The IRI of the list of ``kind``: the namespace of its resources' IRIs."""
        return checked_iri(f"{self.paths.id_base}{kind}/")

    def _members_pattern(self, kind: str, var: str = "?s") -> str:
        return (
            f'FILTER(isIRI({var}) && STRSTARTS(STR({var}), "{self.namespace(kind)}") && '
            f'REGEX(STRAFTER(STR({var}), "{self.namespace(kind)}"), "{SLUG_PATTERN}"))'
        )

    async def _cached(self, key: str, make: Callable[[], Awaitable[Any]]) -> Any:
        """``make()``'s value, computed once for each version of the store."""
        generation = self.state.generation
        if self._generation != generation:
            self._generation, self._values = generation, {}
        if key in self._values:
            return self._values[key]
        value = await make()
        if self._generation == generation:
            self._values[key] = value
        return value

    async def counts(self) -> dict[str, KindCount]:
        """Every kind with the number of resources the graph describes of it (none left out)."""

        async def make() -> dict[str, KindCount]:
            base = checked_iri(self.paths.id_base)
            rows = await select_rows(
                self.state,
                f"""SELECT ?kind (COUNT(DISTINCT ?s) AS ?n) WHERE {{
                  ?s ?p ?o FILTER(isIRI(?s) && STRSTARTS(STR(?s), "{base}"))
                  BIND(STRBEFORE(STRAFTER(STR(?s), "{base}"), "/") AS ?kind)
                  FILTER(REGEX(STRAFTER(STRAFTER(STR(?s), "{base}"), "/"), "{SLUG_PATTERN}"))
                }} GROUP BY ?kind""",
            )
            found = {row["kind"]: int(row["n"]) for row in rows}
            return {
                kind: KindCount(kind, found.get(kind, 0), f"/id/{kind}/") for kind in RESOURCE_KINDS
            }

        result: dict[str, KindCount] = await self._cached("counts", make)
        return result

    async def members(self, kind: str, vocabulary: dict[str, str]) -> list[Member]:
        """Every member of the list of ``kind``, in date order when they have dates, else by
        name. ``vocabulary`` names the classes (the ontology's labels)."""

        async def make() -> list[Member]:
            return await self._members(kind, vocabulary)

        result: list[Member] = await self._cached(f"members {kind}", make)
        return result

    async def _members(self, kind: str, vocabulary: dict[str, str]) -> list[Member]:
        members = self._members_pattern(kind)
        statements = await select_rows(
            self.state,
            f"""SELECT ?s (COUNT(*) AS ?n) WHERE {{
              SELECT DISTINCT ?s ?p ?o WHERE {{ {stated()} {members} }}
            }} GROUP BY ?s""",
        )
        names = " ".join(f"<{p}>" for p in NAMES)
        labels = await select_rows(
            self.state,
            f"""SELECT ?s ?p ?label (LANG(?label) AS ?lang) WHERE {{
              VALUES ?p {{ {names} }} ?s ?p ?label {members} }}""",
        )
        types = await select_rows(
            self.state,
            f"SELECT DISTINCT ?s ?t WHERE {{ {stated('?s a ?t')} {members} FILTER(isIRI(?t)) }}",
        )
        dates = await select_rows(
            self.state,
            f"""SELECT ?s ?p ?d (DATATYPE(?d) AS ?type) WHERE {{
              VALUES ?p {{ <{SCHEMA}startDate> <{SCHEMA}endDate> }} ?s ?p ?d {members} }}""",
        )
        incoming = await select_rows(
            self.state,
            f"""SELECT ?s (COUNT(DISTINCT ?x) AS ?n) WHERE {{
              ?x ?q ?s {members} FILTER(isIRI(?x) && ?x != ?s) }} GROUP BY ?s""",
        )
        best: dict[str, tuple[int, str]] = {}
        for row in labels:
            rank = NAMES.index(row["p"]) * 2 + (0 if row.get("lang", "") in ("", "en") else 1)
            if row["s"] not in best or (rank, row["label"]) < best[row["s"]]:
                best[row["s"]] = (rank, row["label"])
        kinds: dict[str, set[str]] = defaultdict(set)
        for row in types:
            kinds[row["s"]].add(row["t"])
        when: dict[str, dict[str, Any]] = defaultdict(dict)
        for row in dates:
            found = period(row["d"], row.get("type", ""))
            if found is not None:
                when[row["s"]][row["p"].removeprefix(SCHEMA)] = found
        linked = {row["s"]: int(row["n"]) for row in incoming}
        result = []
        for row in statements:
            iri = row["s"]
            dated = span(when[iri].get("startDate"), when[iri].get("endDate"))
            result.append(
                Member(
                    iri=iri,
                    label=best[iri][1] if iri in best else self.paths.slug_words(iri),
                    href=self.paths.path(iri) or iri,
                    types=_type_names(kinds[iri], vocabulary),
                    when=format_period(dated) if dated else "",
                    sort_date=dated.first.isoformat() if dated else "9999",
                    statements=int(row["n"]),
                    linked_from=linked.get(iri, 0),
                )
            )
        result.sort(key=lambda m: (m.sort_date, m.label.lower(), m.iri))
        return result

    async def listing(self, kind: str, page: int, vocabulary: dict[str, str]) -> Listing:
        """Page ``page`` (from 1) of the list of ``kind``."""
        members = await self.members(kind, vocabulary)
        by_type: dict[str, int] = defaultdict(int)
        for member in members:
            for name in member.types:
                by_type[name] += 1
        start = (page - 1) * PAGE_SIZE
        return Listing(
            kind=kind,
            namespace=self.namespace(kind),
            count=len(members),
            members=members[start : start + PAGE_SIZE],
            by_type=sorted(by_type.items(), key=lambda item: (-item[1], item[0])),
            page=page,
            pages=max(math.ceil(len(members) / PAGE_SIZE), 1),
            dated=any(m.when for m in members),
        )

    async def rdf(self, kind: str) -> bytes:
        """The list as N-Triples: the list's IRI (the namespace), its name, ``rdfs:member`` to
        each member, and each member's stated types and names.

        A linked-data client that dereferences ``<base>id/activity/`` expects statements about
        that IRI: ``rdfs:member`` (RDF Schema's own container membership, no other vocabulary
        needed) says which resources it holds, so a crawler can follow each one, and the types
        and names let a client show the list without dereferencing every member. The number of
        ``rdfs:member`` statements is the count the page shows.
        """
        ns = self.namespace(kind)
        members = self._members_pattern(kind)
        names = " ".join(f"<{p}>" for p in (RDF_TYPE, *NAMES[:2]))
        body = await answer_of(
            self.state,
            f"""CONSTRUCT {{ <{ns}> <{RDFS}member> ?s . ?s ?p ?o }} WHERE {{
              {{ SELECT DISTINCT ?s WHERE {{ ?s ?any ?value {members} }} }}
              OPTIONAL {{ VALUES ?p {{ {names} }} {stated("?s ?p ?o")} }}
            }}""",
            "nt",
        )
        title = kind_words(kind, 2)
        about = ox.Triple(
            ox.NamedNode(ns), ox.NamedNode(f"{RDFS}label"), ox.Literal(title, language="en")
        )
        return f"{about} .\n".encode() + body


def _type_names(iris: set[str], vocabulary: dict[str, str]) -> tuple[str, ...]:
    """The names of a resource's stated types, our ontology's first; one per distinct name."""
    ours = sorted(t for t in iris if t.startswith(EKG))
    chosen = ours or sorted(iris)
    return tuple(dict.fromkeys(class_words(t, vocabulary) for t in chosen))


def parse_page(value: str | None, pages: int) -> int | None:
    """The page number asked for (1 when none is), or None when it is not one of the list's."""
    if value is None:
        return 1
    if not value.isdigit() or not 1 <= int(value) <= pages:
        return None
    return int(value)


__all__ = [
    "HOME_KINDS",
    "PAGE_SIZE",
    "Browse",
    "KindCount",
    "Listing",
    "Member",
    "kind_words",
    "parse_page",
    "plural",
]
