"""Serialise the graph to every RDF format, byte-identical on every run, and canonical Turtle."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pyoxigraph as ox

from escap_kg.formats import RDF_FORMATS, media_type
from escap_kg.iris import prefixes, used_prefixes
from escap_kg.settings import DEFAULT_BASE_IRI, Settings
from escap_kg.store import DataError, KnowledgeGraph, source_files

if TYPE_CHECKING:
    import rdflib


@dataclass(frozen=True)
class ExportFormat:
    """An export format: its name, file suffix, media type and whether it keeps named graphs."""

    name: str
    suffix: str
    media_type: str
    rdf_format: ox.RdfFormat
    dataset: bool


EXPORT_FORMATS: dict[str, ExportFormat] = {
    name: ExportFormat(name, f".{fmt.file_extension}", media_type(fmt), fmt, fmt.supports_datasets)
    for name, fmt in RDF_FORMATS.items()
}


def _iris(terms: Iterable[object]) -> set[str]:
    found = set()
    for term in terms:
        if isinstance(term, ox.NamedNode):
            found.add(term.value)
        elif isinstance(term, ox.Literal):
            found.add(term.datatype.value)
    return found


def export(kg: KnowledgeGraph, fmt: str) -> bytes:
    """The whole graph in ``fmt`` (see :data:`EXPORT_FORMATS`), in a stable order."""
    try:
        spec = EXPORT_FORMATS[fmt]
    except KeyError:
        raise ValueError(
            f"unknown format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}"
        ) from None
    table = prefixes(kg.settings.base_iri)
    if spec.name == "turtle":
        return canonical_turtle(kg.union, table).encode()
    if spec.dataset:
        quads = kg.quads()
        names = used_prefixes(
            _iris(t for q in quads for t in (q.subject, q.predicate, q.object)), table
        )
        return ox.serialize(quads, format=spec.rdf_format, prefixes=names) or b""
    triples = kg.triples()
    if spec.name == "nt":
        return ox.serialize(triples, format=spec.rdf_format) or b""
    names = used_prefixes(
        _iris(x for t in triples for x in (t.subject, t.predicate, t.object)), table
    )
    return ox.serialize(triples, format=spec.rdf_format, prefixes=names) or b""


def canonical_turtle(graph: rdflib.Graph, table: Mapping[str, str]) -> str:
    """Turtle in our canonical form: sorted, one object per line, only the prefixes it uses."""
    import rdflib

    out = rdflib.Graph(bind_namespaces="none")
    for triple in graph:
        out.add(triple)
    iris = {str(t) for triple in graph for t in triple if isinstance(t, rdflib.URIRef)}
    iris |= {
        str(t.datatype)
        for triple in graph
        for t in triple
        if isinstance(t, rdflib.Literal) and t.datatype
    }
    for prefix, ns in used_prefixes(iris, table).items():
        out.bind(prefix, ns, override=True, replace=True)
    return out.serialize(format="longturtle")


def format_files(settings: Settings, write: bool = True) -> list[Path]:
    """The ontology, shapes and data files that are not in canonical Turtle; with ``write``,
    each is rewritten in it. Extra files of the settings are never touched."""
    table = prefixes(DEFAULT_BASE_IRI)
    own = replace(settings, extra_files=())
    paths = [sf.path for sf in source_files(own)]
    paths.append(settings.ontology_dir / "shapes.ttl")
    changed = []
    for path in paths:
        if not path.exists():
            continue
        text = canonical_file(path, table)
        if path.read_text(encoding="utf-8") != text:
            changed.append(path)
            if write:
                path.write_text(text, encoding="utf-8")
    return changed


def canonical_file(path: Path, table: Mapping[str, str]) -> str:
    """The canonical Turtle of one source file."""
    import rdflib

    graph = rdflib.Graph()
    try:
        graph.parse(path, format="turtle")
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except Exception as err:  # rdflib's parsers raise many kinds of error
        raise DataError(path, f"cannot parse: {err}") from None
    return canonical_turtle(graph, table)
