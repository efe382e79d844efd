"""A researcher's day against a real server on 127.0.0.1: class-aware answers, known prefixes,
full-text search, the catalogue page and the query page, through plain HTTP clients."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.slow

ID = "https://w3id.org/escap-kg/id/"


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    live = LiveServer("--workers", "1").wait()
    yield live
    live.stop()


def select(server: LiveServer, query: str) -> list[dict[str, str]]:
    answer = httpx.get(
        f"{server.url}/sparql",
        params={"query": query},
        headers={"Accept": "application/sparql-results+json"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return [{k: v["value"] for k, v in row.items()} for row in answer.json()["results"]["bindings"]]


def test_class_aware_answers_with_known_prefixes(server: LiveServer) -> None:
    """No PREFIX declared: the endpoint knows ekg:, schema: and prov:; the classes nest."""
    seminars = select(server, "SELECT ?a WHERE { ?a a ekg:Seminar }")
    assert len(seminars) == 1
    events = {row["a"] for row in select(server, "SELECT ?a WHERE { ?a a schema:Event }")}
    assert f"{ID}activity/fifth-appc" in events
    assert seminars[0]["a"] in events
    agents = {row["x"] for row in select(server, "SELECT ?x WHERE { ?x a prov:Agent }")}
    assert f"{ID}organization/unfpa" in agents


def test_an_unknown_prefix_is_named_with_the_line_to_add(server: LiveServer) -> None:
    answer = httpx.get(f"{server.url}/sparql", params={"query": "SELECT ?a WHERE { ?a a foo:B }"})
    assert answer.status_code == 400
    assert "unknown prefix 'foo:'" in answer.text
    assert "PREFIX foo:" in answer.text


def test_full_text_search_finds_words_in_findings(server: LiveServer) -> None:
    answer = httpx.get(f"{server.url}/api/search", params={"q": "counselling"}, timeout=30)
    assert answer.status_code == 200, answer.text
    hits = answer.json()
    assert hits
    assert "<mark>" in hits[0]["snippet"]
    page = httpx.get(f"{server.url}/search", params={"q": "counselling"}, timeout=30)
    assert page.status_code == 200
    assert "<mark>" in page.text


def test_the_catalogue_and_query_pages(server: LiveServer) -> None:
    catalogue = httpx.get(f"{server.url}/queries", timeout=30)
    assert catalogue.status_code == 200
    assert "needs the network" in catalogue.text
    csv = httpx.get(f"{server.url}/api/queries/01-activities-in-time-order?_format=csv")
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    ui = httpx.get(f"{server.url}/sparql", headers={"Accept": "text/html"}, timeout=30)
    assert ui.status_code == 200
    assert 'href="/queries"' in ui.text
    assert "#+ summary" not in ui.text
