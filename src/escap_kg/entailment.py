"""RDFS subclass and subproperty entailments, materialised by SPARQL rules into a named graph.

The rules are a small fixed set of SPARQL updates run by Oxigraph itself, rather than Python
iteration over triples or owlrl: the engine evaluates them over its indexes in the store (on
disk too, without copying the graph into rdflib), the rules can be read and run unchanged
anywhere, and we need two RDFS rules (rdfs5/rdfs11 for the hierarchies, rdfs9 and rdfs7 for
their use), not the whole OWL 2 RL closure owlrl computes (with its axiomatic triples).

The rules are the definition; :func:`refresh` derives the same graph about ten times faster
by splitting them: it reads the two hierarchies (a few dozen statements) and closes them in
Python, then runs one small update per class and super-class (and per property and
super-property), which the engine answers from the index of that one term. Only where a
derived statement could feed another rule (a subproperty of ``rdf:type``, ``rdfs:subClassOf``
or ``rdfs:subPropertyOf``) does it run the rules themselves until nothing more is derived.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pyoxigraph as ox

from escap_kg.settings import DEFAULT_BASE_IRI

RULESET = "id/ruleset/rdfs-subclass-subproperty"
ENTAILED = "graph/entailed"
ONTOLOGY = "https://w3id.org/escap-kg/ontology"
ONTOLOGY_GRAPH = "graph/escap-kg"

RDFS = "http://www.w3.org/2000/01/rdf-schema#"
OWL = "http://www.w3.org/2002/07/owl#"

# The closure of both hierarchies: C ⊑ E for C ⊑ D ⊑+ E (rdfs11, rdfs5).
_CLOSURE = """
INSERT {{ GRAPH {entailed} {{ ?c {rel} ?e }} }}
{using}
WHERE {{
  ?c {rel} ?d . ?d {rel}+ ?e .
  FILTER NOT EXISTS {{ GRAPH ?g {{ ?c {rel} ?e }} }}
}}
"""

# Types from the closed class hierarchy (rdfs9); a step suffices, the closure is in place.
_TYPES = """
INSERT {{ GRAPH {entailed} {{ ?x a ?super }} }}
{using}
WHERE {{
  ?c {subclass} ?super . ?x a ?c .
  FILTER NOT EXISTS {{ GRAPH ?g {{ ?x a ?super }} }}
}}
"""

# Statements from the closed property hierarchy (rdfs7).
_PROPERTIES = """
INSERT {{ GRAPH {entailed} {{ ?s ?super ?o }} }}
{using}
WHERE {{
  ?p {subproperty} ?super . ?s ?p ?o .
  FILTER NOT EXISTS {{ GRAPH ?g {{ ?s ?super ?o }} }}
}}
"""

# A derived statement can feed another rule (a subproperty of rdf:type, or of
# rdfs:subClassOf), so the set runs again until nothing is added; RDFS needs few rounds.
MAX_ROUNDS = 5


@dataclass(frozen=True)
class Refresh:
    """What a refresh did: the graph, the triples it holds, the rounds and the time taken."""

    graph: str
    triples: int
    rounds: int
    seconds: float


def entailed_graph(base_iri: str = DEFAULT_BASE_IRI) -> str:
    """The IRI of the entailed graph under ``base_iri``."""
    return base_iri + ENTAILED


def stated(triple: str = "?s ?p ?o") -> str:
    """A pattern for ``triple`` in the union default graph as stated, not only entailed.

    Rules derive nothing a named graph states, so a triple of the entailed graph is in no
    other. The graph's IRI is relative, resolved against the base IRI the server sends with
    every query (its own and an upstream's alike), so the pattern needs no base of its own.
    """
    return f"{triple} FILTER NOT EXISTS {{ GRAPH <{ENTAILED}> {{ {triple} }} }}"


def ruleset_iri(base_iri: str = DEFAULT_BASE_IRI) -> str:
    """The IRI of the rule set, as data/provenance.ttl describes it."""
    return base_iri + RULESET


def graph_of(store: ox.Store) -> str:
    """The entailed graph of a store: beside the graph our ontology was loaded into (which
    carries the base IRI the store was built with), else under the default base."""
    found = store.query(
        f"SELECT ?g WHERE {{ GRAPH ?g {{ <{ONTOLOGY}> a <{OWL}Ontology> }} }} ORDER BY ?g"
    )
    assert isinstance(found, ox.QuerySolutions)  # noqa: S101 - a SELECT
    for row in found:
        graph = row["g"]
        if isinstance(graph, ox.NamedNode) and graph.value.endswith(ONTOLOGY_GRAPH):
            return graph.value[: -len(ONTOLOGY_GRAPH)] + ENTAILED
    return entailed_graph()


def rules(entailed: str, others: list[str]) -> list[str]:
    """The rule set as SPARQL updates reading ``others`` (and the entailed graph) and writing
    into ``entailed``; run them in order after dropping the entailed graph."""
    using = "\n".join(
        [f"USING <{g}>" for g in [*others, entailed]] + [f"USING NAMED <{g}>" for g in others]
    )
    terms = {
        "entailed": f"<{entailed}>",
        "using": using,
        "subclass": f"<{RDFS}subClassOf>",
        "subproperty": f"<{RDFS}subPropertyOf>",
    }
    return [
        _CLOSURE.format(rel=terms["subclass"], **terms),
        _CLOSURE.format(rel=terms["subproperty"], **terms),
        _TYPES.format(**terms),
        _PROPERTIES.format(**terms),
        _TYPES.format(**terms),
    ]


def refresh(store: ox.Store, graph: str | None = None) -> Refresh:
    """Rebuild the entailed graph of ``store`` (``graph``, or the one :func:`graph_of` finds)
    from all its other named graphs: the graph :func:`rules` derive, computed directly (see
    the module's docstring)."""
    started = time.monotonic()
    entailed = graph or graph_of(store)
    store.update(f"DROP SILENT GRAPH <{entailed}>")
    if not _derive(store, ox.NamedNode(entailed)):
        return refresh_by_rules(store, entailed, started)
    return Refresh(entailed, _size(store, entailed), 1, time.monotonic() - started)


def refresh_by_rules(store: ox.Store, entailed: str, started: float | None = None) -> Refresh:
    """Rebuild the entailed graph by running :func:`rules` until nothing more is derived."""
    started = time.monotonic() if started is None else started
    store.update(f"DROP SILENT GRAPH <{entailed}>")
    others = sorted(
        g.value for g in store.named_graphs() if isinstance(g, ox.NamedNode) and g.value != entailed
    )
    size, rounds = 0, 0
    if others:
        for rounds in range(1, MAX_ROUNDS + 1):  # noqa: B007 - reported
            for rule in rules(entailed, others):
                store.update(rule)
            grown = _size(store, entailed)
            if grown == size:
                break
            size = grown
    return Refresh(entailed, size, rounds, time.monotonic() - started)


_Term = ox.NamedNode | ox.BlankNode | ox.Literal | ox.Triple
_Statement = tuple[_Term, ox.NamedNode, _Term]
_SUBCLASS = ox.NamedNode(f"{RDFS}subClassOf")
_SUBPROPERTY = ox.NamedNode(f"{RDFS}subPropertyOf")
_TYPE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")


def _stated(
    store: ox.Store,
    entailed: ox.NamedNode,
    subject: _Term | None = None,
    predicate: ox.NamedNode | None = None,
    obj: _Term | None = None,
) -> Iterator[_Statement]:
    """The statements of the named graphs the rules read (every one but ``entailed``)."""
    for quad in store.quads_for_pattern(subject, predicate, obj, None):  # type: ignore[arg-type]
        if isinstance(quad.graph_name, ox.NamedNode) and quad.graph_name != entailed:
            yield quad.subject, quad.predicate, quad.object


def _closure(edges: set[tuple[_Term, _Term]]) -> dict[_Term, set[_Term]]:
    """Every term's strict super-terms: the transitive closure of ``edges``."""
    direct: dict[_Term, set[_Term]] = {}
    for sub, sup in edges:
        direct.setdefault(sub, set()).add(sup)
    closed: dict[_Term, set[_Term]] = {}
    for start in direct:
        seen: set[_Term] = set()
        todo = list(direct[start])
        while todo:
            term = todo.pop()
            if term not in seen:
                seen.add(term)
                todo.extend(direct.get(term, ()))
        closed[start] = seen
    return closed


# One class and one of its super-classes: the types rule (rdfs9) for that pair, evaluated by the
# engine over its indexes; and the same for one property and one of its super-properties (rdfs7).
# MINUS (one pass over each side) rather than FILTER NOT EXISTS (a lookup per row): 3x faster.
_PAIR_TYPES = """
CONSTRUCT {{ ?x a {sup} }}
WHERE {{
  {{ GRAPH ?g {{ ?x a {sub} }} FILTER(?g != {entailed}) }}
  MINUS {{ GRAPH ?h {{ ?x a {sup} }} FILTER(?h != {entailed}) }}
}}
"""
_PAIR_PROPERTIES = """
CONSTRUCT {{ ?s {sup} ?o }}
WHERE {{
  {{ GRAPH ?g {{ ?s {sub} ?o }} FILTER(?g != {entailed}) }}
  MINUS {{ GRAPH ?h {{ ?s {sup} ?o }} FILTER(?h != {entailed}) }}
}}
"""


def _derive(store: ox.Store, entailed: ox.NamedNode) -> bool:
    """Write what the rules derive from the named graphs of ``store`` into ``entailed`` (just
    dropped); False, writing nothing, when a derived statement could feed another rule (a
    property whose super-properties include ``rdf:type``, ``rdfs:subClassOf`` or
    ``rdfs:subPropertyOf``, or ``rdf:type`` with super-properties), where only the rules, run
    until nothing more is derived, will do.
    """
    classes = _closure({(s, o) for s, _, o in _stated(store, entailed, None, _SUBCLASS)})
    properties = _closure({(s, o) for s, _, o in _stated(store, entailed, None, _SUBPROPERTY)})
    feeding = {_TYPE, _SUBCLASS, _SUBPROPERTY}
    if _TYPE in properties or any(feeding & supers for supers in properties.values()):
        return False
    # The closure of both hierarchies (rdfs11, rdfs5), but what a named graph states.
    closure = [
        ox.Quad(sub, relation, sup, entailed)  # type: ignore[arg-type]
        for relation, closed in ((_SUBCLASS, classes), (_SUBPROPERTY, properties))
        for sub, supers in closed.items()
        for sup in supers
        if not any(True for _ in _stated(store, entailed, sub, relation, sup))
    ]
    store.extend(closure)
    # Types and statements of the closed hierarchies: one query per pair, each a single pass
    # over the index of that class or property. The hierarchies are closed, so no derived
    # statement feeds another pair's rule. The answers go into the graph as N-Triples through
    # the bulk loader, far faster than as an update's inserts on disk (without a transaction:
    # loads build a staging copy of the store, and updates are not atomic over the rules).
    queries = []
    for template, closed in ((_PAIR_TYPES, classes), (_PAIR_PROPERTIES, properties)):
        for sub, supers in closed.items():
            for sup in supers:
                if isinstance(sub, ox.NamedNode) and isinstance(sup, ox.NamedNode):
                    queries.append(template.format(entailed=entailed, sub=sub, sup=sup))
                elif template is _PAIR_TYPES:
                    # A blank node in a query's text would be a variable.
                    _types_of_blank_pair(store, entailed, sub, sup)
    _derive_in_threads(store, entailed, queries)
    return True


def _derive_in_threads(store: ox.Store, entailed: ox.NamedNode, queries: list[str]) -> None:
    """Run the pairs' queries on threads (the engine evaluates without Python's lock), a few
    at a time, while one more thread bulk-loads the answers so far: at 1M statements 1.6 s on
    two cores instead of 3.6 s on one. The queries never read the entailed graph, which is the
    only one the bulk loader (not a transaction) writes."""
    # Imported here: the workers import this module, and start faster without it.
    from concurrent.futures import Future, ThreadPoolExecutor

    threads = max(1, min(_THREADS, os.cpu_count() or 1))

    def derived(query: str) -> bytes:
        found = store.query(query)
        assert isinstance(found, ox.QueryTriples)  # noqa: S101 - a CONSTRUCT
        return found.serialize(format=ox.RdfFormat.N_TRIPLES) or b""

    pending = bytearray()
    with (
        ThreadPoolExecutor(threads, thread_name_prefix="entailment") as pool,
        ThreadPoolExecutor(1, thread_name_prefix="entailment-load") as loader,
    ):
        loading: Future[None] | None = None
        for start in range(0, len(queries), 2 * threads):
            for answer in pool.map(derived, queries[start : start + 2 * threads]):
                pending += answer
            if len(pending) >= _BATCH_BYTES:
                if loading is not None:
                    loading.result()  # one batch in memory at a time, besides the next
                loading = loader.submit(_load, store, entailed, pending)
                pending = bytearray()
        if loading is not None:
            loading.result()
    _load(store, entailed, pending)


#: Threads that evaluate the pairs' queries at once, at most (and no more than the cores).
_THREADS = 4


#: Derived statements, as N-Triples, collected before each bulk load into the entailed graph.
_BATCH_BYTES = 8 * 2**20


def _load(store: ox.Store, entailed: ox.NamedNode, triples: bytearray) -> None:
    if triples:
        store.bulk_load(bytes(triples), format=ox.RdfFormat.N_TRIPLES, to_graph=entailed)


def _types_of_blank_pair(store: ox.Store, entailed: ox.NamedNode, sub: _Term, sup: _Term) -> None:
    """The types rule for a class or super-class that is a blank node (an OWL restriction)."""
    found = [
        ox.Quad(x, _TYPE, sup, entailed)  # type: ignore[arg-type]
        for x, _, _ in _stated(store, entailed, None, _TYPE, sub)
        if not any(True for _ in _stated(store, entailed, x, _TYPE, sup))
    ]
    store.extend(found)


def _size(store: ox.Store, graph: str) -> int:
    counted = store.query(f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}")
    assert isinstance(counted, ox.QuerySolutions)  # noqa: S101 - a SELECT
    return int(next(counted)["n"].value)
