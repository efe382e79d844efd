"""Counts: triples per source file and instances per class."""

from __future__ import annotations

from dataclasses import dataclass

import pyoxigraph as ox

from escap_kg.entailment import stated
from escap_kg.store import KnowledgeGraph

#: Instances per class, as stated (not those only the entailed graph types so), most first. The
#: dataset description counts its class partitions with the same query.
CLASS_COUNTS = (
    "SELECT ?class (COUNT(DISTINCT ?s) AS ?n) "
    f"WHERE {{ {stated('?s a ?class')} FILTER(isIRI(?class)) }} "
    "GROUP BY ?class ORDER BY DESC(?n) ?class"
)


@dataclass(frozen=True)
class FileCount:
    """Triples loaded from one file into its named graph."""

    path: str
    graph: str
    triples: int


@dataclass(frozen=True)
class Stats:
    """What the graph holds."""

    files: list[FileCount]
    classes: list[tuple[str, int]]
    triples: int


def graph_stats(kg: KnowledgeGraph) -> Stats:
    """Triples per file (by named graph) and instances per class in the union graph."""
    per_graph = kg.triples_per_graph()
    root = kg.settings.data_dir.parent
    files = [
        FileCount(_relative(sf.path, root), sf.graph, per_graph.get(sf.graph, 0)) for sf in kg.files
    ]
    classes = []
    # The entailed graph's name is relative to the base, as the server's queries send it.
    result = kg.store.query(
        CLASS_COUNTS, use_default_graph_as_union=True, base_iri=kg.settings.base_iri
    )
    if not isinstance(result, ox.QuerySolutions):
        raise TypeError("the class count query must be a SELECT")
    for row in result:
        cls, n = row["class"], row["n"]
        if isinstance(cls, ox.NamedNode) and isinstance(n, ox.Literal):
            classes.append((cls.value, int(n.value)))
    return Stats(files, classes, len(kg))


def _relative(path: object, root: object) -> str:
    try:
        return str(path.relative_to(root))  # type: ignore[attr-defined]
    except ValueError:
        return str(path)
