"""Loading: one named graph per file, errors that name the file and line, all or nothing."""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path

import pyoxigraph as ox
import pytest

from escap_kg.settings import DEFAULT_BASE_IRI, Settings
from escap_kg.store import DataError, KnowledgeGraph, source_files


def test_one_named_graph_per_file(kg: KnowledgeGraph) -> None:
    graphs = kg.triples_per_graph()
    assert len(kg.files) == len(graphs)
    for sf in kg.files:
        assert graphs[sf.graph] > 0, f"{sf.path} loaded no triples"
        assert sf.graph == f"{DEFAULT_BASE_IRI}graph/{sf.stem}"
    stems = {sf.stem for sf in kg.files}
    assert {"escap-kg", "themes", "vocabularies", "paragraph-1", "paragraph-5", "wikidata"} <= stems


def test_shapes_are_not_served(kg: KnowledgeGraph) -> None:
    assert "shapes" not in {sf.stem for sf in kg.files}


def test_union_default_graph(kg: KnowledgeGraph) -> None:
    # A statement made in two paragraphs is in both graphs: the union has it once per graph.
    result = kg.query("SELECT (COUNT(*) AS ?n) WHERE { SELECT DISTINCT ?s ?p ?o { ?s ?p ?o } }")
    assert isinstance(result, ox.QuerySolutions)
    n = int(next(iter(result))["n"].value)  # type: ignore[union-attr]
    assert n == len(kg.triples())


def _bad_turtle(tmp_path: Path) -> Path:
    bad = tmp_path / "bad.ttl"
    bad.write_text('@prefix ex: <http://example.org/> .\n\nex:a ex:b "unterminated .\n')
    return bad


def test_parse_error_names_file_and_line(tmp_path: Path) -> None:
    bad = _bad_turtle(tmp_path)
    with pytest.raises(DataError) as info:
        KnowledgeGraph.load(Settings(extra_files=(bad,)))
    assert info.value.path == bad
    assert info.value.line == 3
    assert str(info.value).startswith(f"{bad}:3:")


def test_bad_file_in_data_folder_refuses_the_whole_load(tmp_path: Path, settings: Settings) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.ttl").write_text("<http://example.org/a> <http://example.org/b> 1 .\n")
    (data / "zz-bad.ttl").write_text("<http://example.org/a> <http://example.org/b> .\n")
    with pytest.raises(DataError, match=r"zz-bad\.ttl:1"):
        KnowledgeGraph.load(replace(settings, data_dir=data))


A, B, C, G = (f"http://example.org/{x}" for x in "abcg")
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
SYNTAXES = [
    ("extra.nt", f"<{A}> <{B}> <{C}> .\n"),
    ("extra.nq", f"<{A}> <{B}> <{C}> <{G}> .\n"),
    ("extra.jsonld", f'{{"@id": "{A}", "{B}": {{"@id": "{C}"}}}}'),
    (
        "extra.rdf",
        f'<rdf:RDF xmlns:rdf="{RDF_NS}"><rdf:Description rdf:about="{A}">'
        f'<b xmlns="http://example.org/" rdf:resource="{C}"/></rdf:Description></rdf:RDF>',
    ),
    ("extra.trig", f"<{G}> {{ <{A}> <{B}> <{C}> }}\n"),
]


@pytest.mark.parametrize(("name", "text"), SYNTAXES)
def test_extra_files_in_every_syntax(tmp_path: Path, name: str, text: str) -> None:
    content = text.encode()
    path = tmp_path / name
    path.write_bytes(content)
    gz = tmp_path / f"gz-{name}.gz"
    gz.write_bytes(gzip.compress(content))
    kg = KnowledgeGraph.load(Settings(extra_files=(path, gz)))
    assert bool(kg.query(f"ASK {{ <{A}> <{B}> <{C}> }}"))
    extra = {sf.stem for sf in kg.files if sf.kind == "extra"}
    assert extra == {"extra", f"gz-{name.split('.')[0]}"}


def test_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    odd = tmp_path / "data.csv"
    odd.write_text("a,b\n")
    with pytest.raises(DataError, match="unknown RDF file type"):
        KnowledgeGraph.load(Settings(extra_files=(odd,)))
    with pytest.raises(DataError, match="file not found"):
        KnowledgeGraph.load(Settings(extra_files=(tmp_path / "missing.ttl",)))


def test_two_files_with_one_graph_name_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "x.ttl", tmp_path / "b" / "x.ttl"
    for p in (first, second):
        p.write_text("<http://example.org/a> <http://example.org/b> 1 .\n")
    with pytest.raises(DataError, match="already taken"):
        source_files(Settings(extra_files=(first, second)))


def test_resource_base_is_a_setting() -> None:
    base = "http://127.0.0.1:8000/"
    kg = KnowledgeGraph.load(Settings(base_iri=base))
    assert bool(kg.query(f"ASK {{ <{base}id/activity/fifth-appc> ?p ?o }}"))
    assert not bool(kg.query(f"ASK {{ <{DEFAULT_BASE_IRI}id/activity/fifth-appc> ?p ?o }}"))
    assert all(sf.graph.startswith(f"{base}graph/") for sf in kg.files)
    # The ontology namespace is not part of the resource base.
    assert bool(kg.query("ASK { ?s a <https://w3id.org/escap-kg/ontology#Conference> }"))


@pytest.mark.parametrize("base", ["ftp://example.org/", "https://example.org", "relative/"])
def test_bad_base_iri_is_refused(base: str) -> None:
    with pytest.raises(ValueError, match="base IRI"):
        Settings(base_iri=base)
