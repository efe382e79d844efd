"""RDFS subclass and subproperty entailments, materialised by SPARQL rules into a named graph.

The rules are a small fixed set of SPARQL updates run by Oxigraph itself, rather than Python
iteration over triples or owlrl: the engine evaluates them over its indexes in the store (on
disk too, without copying the graph into rdflib), the rules can be read and run unchanged
anywhere, and we need two RDFS rules (rdfs5/rdfs11 for the hierarchies, rdfs9 and rdfs7 for
their use), not the whole OWL 2 RL closure owlrl computes (with its axiomatic triples).

Every rule reads the union of the store's other named graphs and writes only into the entailed
graph (``<base>graph/entailed``), which is dropped first: a refresh is idempotent and follows
deletions. The other graphs are named in ``USING`` clauses rather than matched one at a time
with ``GRAPH ?g``, because a chain of ``rdfs:subClassOf`` may cross graphs (an extra file
refining one of our classes) and a property path inside ``GRAPH ?g`` stays in one graph.
"""

from __future__ import annotations

import time
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
    from all its other named graphs."""
    started = time.monotonic()
    entailed = graph or graph_of(store)
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


def _size(store: ox.Store, graph: str) -> int:
    return sum(1 for _ in store.quads_for_pattern(None, None, None, ox.NamedNode(graph)))
