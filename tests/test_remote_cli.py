"""`publish`, `query --endpoint` and `serve --upstream` against a real Oxigraph server."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from escap_kg.cli import app
from escap_kg.store import KnowledgeGraph
from tests.conftest import LiveServer
from tests.test_remote import OxigraphServer, oxigraph

EXPECTED = Path(__file__).parent / "expected"
runner = CliRunner()
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OxigraphServer]:
    with oxigraph(tmp_path_factory.mktemp("oxigraph-cli"), "--union-default-graph") as server:
        yield server


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def remote_count(server: OxigraphServer) -> int:
    answer = httpx.post(
        server.query_url,
        data={"query": "SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }"},
        headers={"Accept": "text/csv"},
    )
    return int(rows(answer.text)[1][0])


def test_publish_then_query_the_store(store: OxigraphServer, kg: KnowledgeGraph) -> None:
    first = runner.invoke(app, ["publish", "--endpoint", store.store_url])
    assert first.exit_code == 0, first.output
    assert f"published {len(kg):,} triples in 20 graph(s)" in first.stdout
    assert remote_count(store) == len(kg)
    again = runner.invoke(app, ["publish", "--endpoint", store.store_url])
    assert again.exit_code == 0
    assert remote_count(store) == len(kg), "a second publish must replace, not add"

    answer = runner.invoke(app, ["query", "01", "--endpoint", store.query_url, "--format", "csv"])
    assert answer.exit_code == 0, answer.output
    expected = (EXPECTED / "01-activities-in-time-order.csv").read_text()
    assert rows(answer.stdout) == rows(expected)
    table = runner.invoke(app, ["query", "08", "--endpoint", store.query_url])
    assert "position" in table.stdout
    assert table.stderr == "6 row(s)\n"
    assert len(table.stdout.splitlines()) == 1 + 6


def test_remote_errors_are_one_line(store: OxigraphServer, tmp_path: Path) -> None:
    wrong = runner.invoke(app, ["publish", "--endpoint", f"{store.url}/nowhere"])
    assert wrong.exit_code == 2
    assert "nowhere" in wrong.stderr
    assert "Traceback" not in wrong.output
    closed = runner.invoke(
        app, ["query", "1", "--endpoint", "http://127.0.0.1:9/query", "--format", "csv"]
    )
    assert closed.exit_code == 2
    assert "127.0.0.1:9" in closed.stderr
    bad = runner.invoke(app, ["publish", "--endpoint", store.store_url, "--user", "nocolon"])
    assert bad.exit_code == 2


def test_serve_in_front_of_the_store(store: OxigraphServer) -> None:
    runner.invoke(app, ["publish", "--endpoint", store.store_url])
    server = LiveServer("--upstream", store.query_url).wait()
    try:
        api = httpx.get(
            f"{server.url}/api/queries/01-activities-in-time-order", headers={"Accept": "text/csv"}
        )
        assert api.status_code == 200
        expected = (EXPECTED / "01-activities-in-time-order.csv").read_text()
        assert rows(api.text) == rows(expected)
        ui = httpx.get(f"{server.url}/sparql", headers={"Accept": "text/html"})
        assert "01-activities-in-time-order" in ui.text
        update = httpx.post(
            f"{server.url}/sparql",
            content="CLEAR ALL",
            headers={"Content-Type": "application/sparql-update", "Authorization": "Bearer x"},
        )
        assert update.status_code == 403
        assert "Loaded" not in server.output()
    finally:
        server.stop()
