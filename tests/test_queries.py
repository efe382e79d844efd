"""Each catalogue query gives its expected answer, on Oxigraph and on rdflib's own engine."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pyoxigraph as ox
import pytest
import rdflib
from rdflib.compare import isomorphic

from escap_kg.queries import (
    Query,
    QueryError,
    bind,
    find_query,
    load_catalogue,
    parse_query_file,
    run,
    serialize_result,
)
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph

EXPECTED = Path(__file__).parent / "expected"
CATALOGUE = load_catalogue(Settings())
# Federated queries call other endpoints: tests/test_federated.py runs them against a local one.
LOCAL = [q for q in CATALOGUE if not q.federated]
FIFTH_APPC = "https://w3id.org/escap-kg/id/activity/fifth-appc"


def expected_rows(query: Query) -> list[list[str]]:
    path = EXPECTED / f"{query.id}.csv"
    assert path.exists(), f"no expected answer for {query.id}: write {path}"
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def oxigraph_rows(result: ox.QuerySolutions) -> list[list[str]]:
    text = serialize_result(result, "csv").decode()
    return list(csv.reader(io.StringIO(text, newline="")))


def test_catalogue_is_large_enough_and_numbered() -> None:
    assert len(CATALOGUE) >= 12
    numbers = [q.number for q in CATALOGUE]
    assert numbers == [f"{i:02d}" for i in range(1, len(CATALOGUE) + 1)]


@pytest.mark.parametrize("query", CATALOGUE, ids=[q.id for q in CATALOGUE])
def test_query_header_and_prefixes(query: Query) -> None:
    assert query.summary.endswith("?"), f"{query.path}: the summary should be a question"
    assert query.text.startswith("#+ summary:")
    body = "\n".join(line for line in query.text.splitlines() if not line.startswith("#"))
    assert not re.search(r"SELECT\s+(DISTINCT\s+)?\*", body), f"{query.path}: name the variables"
    declared = set(re.findall(r"PREFIX\s+([\w-]*):", body))
    used = set(re.findall(r"(?<![\w<\"/#?$])([A-Za-z][\w-]*):[\w-]", body)) - {"http", "https"}
    assert used <= declared, f"{query.path}: undeclared prefixes {sorted(used - declared)}"


@pytest.mark.parametrize("query", LOCAL, ids=[q.id for q in LOCAL])
def test_query_answer_on_oxigraph(kg: KnowledgeGraph, query: Query) -> None:
    result = run(kg, query.text)
    if isinstance(result, ox.QueryTriples):
        graph = rdflib.Graph().parse(data=serialize_result(result, "nt").decode(), format="nt")
        expected = rdflib.Graph().parse(EXPECTED / f"{query.id}.nt", format="nt")
        assert isomorphic(graph, expected), f"{query.id}: the constructed graph changed"
        return
    assert isinstance(result, ox.QuerySolutions)
    actual, expected = oxigraph_rows(result), expected_rows(query)
    assert actual[0] == expected[0], f"{query.id}: variables changed"
    assert actual[1:] == expected[1:], (
        f"{query.id}: the answer changed ({len(actual) - 1} rows, expected {len(expected) - 1}); "
        f"if the new answer is right, update {EXPECTED / (query.id + '.csv')}"
    )


@pytest.fixture(scope="module")
def rdflib_dataset(kg: KnowledgeGraph) -> rdflib.Dataset:
    dataset = rdflib.Dataset(default_union=True)
    dataset.parse(data=kg.nquads().decode(), format="nquads")
    return dataset


def _rdflib_cell(term: object) -> str:
    return "" if term is None else str(term)


@pytest.mark.slow
@pytest.mark.parametrize("query", LOCAL, ids=[q.id for q in LOCAL])
def test_query_runs_unchanged_on_another_engine(
    rdflib_dataset: rdflib.Dataset, query: Query
) -> None:
    """The catalogue is plain SPARQL 1.1: rdflib's engine gives the same answer."""
    result = rdflib_dataset.query(query.text)
    if result.type == "CONSTRUCT":
        expected = rdflib.Graph().parse(EXPECTED / f"{query.id}.nt", format="nt")
        assert result.graph is not None
        assert isomorphic(result.graph, expected)
        return
    expected = expected_rows(query)
    assert [str(v) for v in result.vars or []] == expected[0]
    rows = [[_rdflib_cell(row[v]) for v in result.vars or []] for row in result]  # type: ignore[index]
    assert rows == expected[1:]


def test_parameter_is_bound_as_a_term(kg: KnowledgeGraph) -> None:
    query = find_query("where-in-the-source")
    assert [p.name for p in query.params] == ["entity"]
    result = run(kg, query.text, bind(query, {"entity": FIFTH_APPC}))
    assert isinstance(result, ox.QuerySolutions)
    rows = oxigraph_rows(result)[1:]
    assert rows, "no statements found for the Fifth APPC"
    assert {r[0] for r in rows} == {FIFTH_APPC}
    # The Fifth APPC is named in paragraphs 1 (undertaken by ESCAP) and 2 (everything else).
    assert {r[3] for r in rows} == {"1", "2"}


def test_injection_through_a_parameter_is_impossible(kg: KnowledgeGraph) -> None:
    query = find_query("where-in-the-source")
    with pytest.raises(QueryError, match="not an absolute IRI"):
        bind(query, {"entity": FIFTH_APPC + "> . ?s ?p ?o } #"})


@pytest.mark.parametrize("name", ["1", "01", "activities-in-time-order", CATALOGUE[0].id])
def test_find_query_by_any_name(name: str) -> None:
    assert find_query(name).id == CATALOGUE[0].id


def test_catalogue_errors(tmp_path: Path) -> None:
    (tmp_path / "01-no-summary.rq").write_text("SELECT ?x WHERE { ?x ?p ?o }\n")
    with pytest.raises(QueryError, match=r"01-no-summary\.rq:1: the first line must be"):
        load_catalogue(Settings(queries_dir=tmp_path))
    (tmp_path / "01-no-summary.rq").unlink()
    (tmp_path / "Bad Name.rq").write_text("#+ summary: x?\nASK {}\n")
    with pytest.raises(QueryError, match=r"named NN-slug\.rq"):
        load_catalogue(Settings(queries_dir=tmp_path))
    binary = tmp_path / "binary.rq"
    binary.write_bytes(b"\xff\xfe SELECT")
    with pytest.raises(QueryError, match="not UTF-8"):
        parse_query_file(binary)
