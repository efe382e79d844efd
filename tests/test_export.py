"""Exports round-trip in every format, are byte-stable, and the Turtle sources are canonical."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys

import pytest
import rdflib
from rdflib.compare import graph_diff, isomorphic, to_isomorphic

from escap_kg.export import EXPORT_FORMATS, canonical_file, export
from escap_kg.namespaces import prefixes
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph, source_files

RDFLIB_FORMATS = {
    "turtle": "turtle",
    "nt": "nt",
    "nquads": "nquads",
    "trig": "trig",
    "jsonld": "json-ld",
    "xml": "xml",
}


def assert_isomorphic(expected: rdflib.Graph, actual: rdflib.Graph, what: str) -> None:
    if isomorphic(expected, actual):
        return
    _both, missing, extra = graph_diff(to_isomorphic(expected), to_isomorphic(actual))
    lines = [f"- {t}" for t in sorted(missing)[:10]] + [f"+ {t}" for t in sorted(extra)[:10]]
    pytest.fail(f"{what} is not isomorphic to the graph:\n" + "\n".join(lines))


@pytest.mark.parametrize("fmt", sorted(EXPORT_FORMATS))
def test_export_round_trips(kg: KnowledgeGraph, fmt: str) -> None:
    body = export(kg, fmt)
    spec = EXPORT_FORMATS[fmt]
    if spec.dataset:
        parsed = rdflib.Dataset()
        parsed.parse(io.BytesIO(body), format=RDFLIB_FORMATS[fmt])
        for sf in kg.files:
            expected = kg.dataset.graph(rdflib.URIRef(sf.graph))
            actual = parsed.graph(rdflib.URIRef(sf.graph))
            assert_isomorphic(expected, actual, f"graph {sf.stem} of the {fmt} export")
    else:
        parsed_graph = rdflib.Graph()
        parsed_graph.parse(io.BytesIO(body), format=RDFLIB_FORMATS[fmt])
        assert_isomorphic(kg.union, parsed_graph, f"the {fmt} export")


def test_unknown_format_is_refused(kg: KnowledgeGraph) -> None:
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        export(kg, "csv")


def test_export_is_byte_identical_across_processes(kg: KnowledgeGraph) -> None:
    """Python's hash seed changes set order between processes; the bytes must not change."""
    script = (
        "import hashlib, sys\n"
        "from escap_kg.export import EXPORT_FORMATS, export\n"
        "from escap_kg.store import KnowledgeGraph\n"
        "kg = KnowledgeGraph.load()\n"
        "digests = (hashlib.sha256(export(kg, f)).hexdigest() for f in sorted(EXPORT_FORMATS))\n"
        "print(' '.join(digests))\n"
    )
    here = " ".join(hashlib.sha256(export(kg, f)).hexdigest() for f in sorted(EXPORT_FORMATS))
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == here, f"export differs with PYTHONHASHSEED={seed}"


FILES = [sf.path for sf in source_files(Settings())] + [Settings().ontology_dir / "shapes.ttl"]


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_turtle_sources_are_canonical(path: os.PathLike[str]) -> None:
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        pytest.fail(f"{path} is missing")
    expected = canonical_file(path, prefixes(Settings().base_iri))
    assert path.read_text(encoding="utf-8") == expected, (
        f"{path} is not in canonical form; run `escap-kg format` and commit the result"
    )
