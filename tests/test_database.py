"""On-disk stores: loads that are all or nothing, serving them, and updates that persist."""

from __future__ import annotations

import gzip
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import rdflib
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from escap_kg.cli import app as cli
from escap_kg.database import RETIRED, STAGING, is_store, load, open_for_serving
from escap_kg.server import create_app
from escap_kg.settings import Settings
from escap_kg.store import DataError, KnowledgeGraph

EKG = "https://w3id.org/escap-kg/ontology#"
ID = "https://w3id.org/escap-kg/id/"
DESCRIPTION = "http://purl.org/dc/terms/description"
TOKEN = "a-database-test-token"
ENTAILED = "https://w3id.org/escap-kg/graph/entailed"
# What loads and updates state; the entailed graph, derived from it, is counted on its own.
COUNT = f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH ?g {{ ?s ?p ?o }} FILTER(?g != <{ENTAILED}>) }}"
COUNT_ENTAILED = f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{ENTAILED}> {{ ?s ?p ?o }} }}"
runner = CliRunner()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def extra(tmp_path: Path) -> Path:
    return write(
        tmp_path / "thesaurus.nt",
        "<http://metadata.un.org/thesaurus/1003321> "
        '<http://www.w3.org/2004/02/skos/core#prefLabel> "INTERNATIONAL MIGRATION"@en .\n',
    )


@pytest.fixture
def database(tmp_path: Path, extra: Path, settings: Settings) -> Path:
    db = tmp_path / "store"
    load(db, [extra], settings)
    return db


def served(db: Path, **options: object) -> TestClient:
    settings = replace(Settings(), database=db, workers=2, **options)  # type: ignore[arg-type]
    return TestClient(create_app(settings))


def count(client: TestClient, query: str = COUNT) -> int:
    response = client.get("/sparql", params={"query": query}, headers={"Accept": "text/csv"})
    assert response.status_code == 200, response.text
    return int(response.text.splitlines()[1])


def test_load_holds_our_graph_and_the_extra_file(
    database: Path, kg: KnowledgeGraph, settings: Settings
) -> None:
    assert is_store(database)
    with served(database) as client:
        assert count(client) == len(kg) + 1
        query = (
            "SELECT ?g WHERE { GRAPH ?g { ?c <http://www.w3.org/2004/02/skos/core#prefLabel> "
            '"INTERNATIONAL MIGRATION"@en } }'
        )
        response = client.get("/sparql", params={"query": query}, headers={"Accept": "text/csv"})
        assert response.text.splitlines()[1] == f"{settings.graph_base}extra/thesaurus"
        answer = client.get(
            "/api/queries/01-activities-in-time-order", headers={"Accept": "text/csv"}
        )
        expected = Path("tests/expected/01-activities-in-time-order.csv").read_text()
        assert answer.text.replace("\r\n", "\n") == expected.replace("\r\n", "\n")


def test_a_bad_file_leaves_the_store_as_it_was(
    database: Path, tmp_path: Path, settings: Settings, kg: KnowledgeGraph
) -> None:
    good = write(tmp_path / "good.nt", '<http://example.org/a> <http://example.org/b> "1" .\n')
    bad = write(tmp_path / "bad.ttl", "@prefix ex: <http://example.org/> .\n\nex:a ex:b ;\n")
    with pytest.raises(DataError) as info:
        load(database, [good, bad], settings)
    assert info.value.path == bad
    assert info.value.line == 3
    assert not list(tmp_path.glob(f"store{STAGING}*"))
    with served(database) as client:
        assert count(client) == len(kg) + 1


def test_loads_add_to_a_store_unless_replaced(
    database: Path, tmp_path: Path, settings: Settings, kg: KnowledgeGraph
) -> None:
    more = tmp_path / "more.nt.gz"
    more.write_bytes(gzip.compress(b'<http://example.org/a> <http://example.org/b> "1" .\n'))
    load(database, [more], settings)
    with served(database) as client:
        assert count(client) == len(kg) + 2
    report = load(database, [], settings, replace=True)
    with served(database) as client:
        assert count(client) == len(kg)
        entailed = count(client, COUNT_ENTAILED)
    assert entailed > 0
    assert report.quads == len(kg) + entailed  # the report counts every quad in the store
    assert not list(tmp_path.glob(f"store{RETIRED}*"))


def test_recovery_after_a_crash_between_the_renames(database: Path, tmp_path: Path) -> None:
    retired = tmp_path / f"store{RETIRED}12345"
    database.rename(retired)
    assert open_for_serving(database) == database.resolve()
    assert is_store(database)
    assert not retired.exists()


def test_updates_persist_on_disk(database: Path) -> None:
    update = f'INSERT DATA {{ GRAPH <{ID}graph-test> {{ <{ID}activity/x> <{EKG}keyIssue> "k" }} }}'
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/sparql-update"}
    ask = f"ASK {{ <{ID}activity/x> <{EKG}keyIssue> ?o }}"
    with served(database, update_token=TOKEN) as client:
        before = count(client)
        assert client.post("/sparql", content=update, headers=headers).status_code == 204
        assert all(client.get("/sparql", params={"query": ask}).json()["boolean"] for _ in range(4))
        failing = client.post(
            "/sparql", content=f"{update} ; CREATE GRAPH <{ID}graph-test>", headers=headers
        )
        assert failing.status_code == 400
        assert count(client) == before + 1
    # ekg:keyIssue refines dcterms:description: the writer's refresh of the entailed graph
    # was written to disk with the update.
    derived = f'ASK {{ GRAPH <{ENTAILED}> {{ <{ID}activity/x> <{DESCRIPTION}> "k" }} }}'
    with served(database) as again:
        assert again.get("/sparql", params={"query": ask}).json()["boolean"] is True
        assert again.get("/sparql", params={"query": derived}).json()["boolean"] is True
        assert count(again) == before + 1


def test_downloads_and_descriptions_from_a_store(database: Path, kg: KnowledgeGraph) -> None:
    entailed = rdflib.URIRef(ENTAILED)
    with served(database) as client:
        # Streamed downloads hold what is stated, as the in-memory ones do: no entailed graph.
        for suffix, fmt in (("nq", "nquads"), ("trig", "trig")):
            response = client.get(f"/download/escap-kg.{suffix}")
            assert response.status_code == 200
            dataset = rdflib.Dataset()
            dataset.parse(data=response.content, format=fmt)
            quads = list(dataset.quads((None, None, None, None)))
            assert len(quads) == len(kg) + 1, suffix
            assert not [q for q in quads if q[3] == entailed], suffix
        for suffix, fmt in (("nt", "nt"), ("ttl", "turtle")):
            response = client.get(f"/download/escap-kg.{suffix}")
            assert len(rdflib.Graph().parse(data=response.text, format=fmt)) == (
                len(kg.triples()) + 1
            ), suffix
        void = client.get("/.well-known/void", headers={"Accept": "text/turtle"})
        assert f"void:triples {len(kg.triples()) + 1}" in void.text.replace("\n", " ").replace(
            "  ", " "
        )
        description = client.get("/sparql", headers={"Accept": "text/turtle"})
        assert "extra/thesaurus" in description.text


def test_cli_load_and_serve_errors(tmp_path: Path, extra: Path) -> None:
    db = tmp_path / "cli-store"
    done = runner.invoke(cli, ["load", "--db", str(db), str(extra)])
    assert done.exit_code == 0, done.output
    assert "quads" in done.stdout
    # The time of each step, which add up to no more than the whole.
    line = next(x for x in done.stdout.splitlines() if x.startswith("loaded "))
    whole = float(re.search(r"quads, ([\d.]+) s \(", line)[1])  # type: ignore[index]
    steps = dict(re.findall(r"(bulk load|entailment|search index) ([\d.]+) s", line))
    assert set(steps) == {"bulk load", "entailment", "search index"}, line
    assert sum(map(float, steps.values())) <= whole + 0.15, line
    missing = runner.invoke(cli, ["load", "--db", str(db), str(tmp_path / "nowhere.ttl")])
    assert missing.exit_code == 2
    assert "nowhere.ttl: file not found" in missing.stderr
    bad = write(tmp_path / "bad.nt", "<http://example.org/a> <http://example.org/b> .\n")
    broken = runner.invoke(cli, ["load", "--db", str(db), str(bad)])
    assert broken.exit_code == 2
    assert f"{bad}:1:" in broken.stderr
    not_a_store = tmp_path / "plain"
    not_a_store.mkdir()
    (not_a_store / "notes.txt").write_text("hello")
    refused = runner.invoke(cli, ["load", "--db", str(not_a_store)])
    assert refused.exit_code == 2
    assert "is not an escap-kg store" in refused.stderr
    serve = runner.invoke(cli, ["serve", "--db", str(not_a_store), "--port", "1"])
    assert serve.exit_code == 2
    assert "not an escap-kg store" in serve.stderr
    both = runner.invoke(cli, ["serve", "--db", str(db), "--data", str(extra), "--port", "1"])
    assert both.exit_code == 2
    shutil.rmtree(db)


@pytest.fixture
def big_store(tmp_path: Path, settings: Settings) -> Path:
    """A store with 200,000 extra triples, for streaming."""
    path = tmp_path / "big.nt"
    with path.open("w") as out:
        for i in range(200_000):
            out.write(f'<http://example.org/s{i}> <http://example.org/p> "value {i}" .\n')
    db = tmp_path / "big"
    load(db, [path], settings)
    return db


@pytest.mark.slow
def test_large_answers_stream(big_store: Path) -> None:
    with served(big_store, max_result_bytes=500 * 2**20) as client:
        query = "SELECT ?s ?o WHERE { ?s <http://example.org/p> ?o }"
        with client.stream(
            "GET", "/sparql", params={"query": query}, headers={"Accept": "text/csv"}
        ) as response:
            assert response.status_code == 200
            assert "content-length" not in response.headers
            lines = sum(chunk.count(b"\n") for chunk in response.iter_bytes())
        assert lines == 200_001
    with served(big_store, max_result_bytes=1_000_000) as limited:
        response = limited.get("/sparql", params={"query": query}, headers={"Accept": "text/csv"})
        assert response.status_code == 413
