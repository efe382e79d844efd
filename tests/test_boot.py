"""The application ``serve`` runs (boot.py): SPARQL answers while the web application is still
being built; every other request waits for it and is then served by it, never refused; a build
that fails leaves a plain 500 for those requests and SPARQL answering."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from escap_kg.boot import Boot
from escap_kg.endpoint import new_state
from escap_kg.engine import build_engine
from escap_kg.server import create_app
from escap_kg.service import State
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph

ASK = {"query": "ASK { <https://w3id.org/escap-kg/id/organization/escap> ?p ?o }"}


def held_build(release: threading.Event) -> Callable[[State], Any]:
    """A build of the whole application that waits for ``release`` first."""

    def build(state: State) -> Any:
        if not release.wait(30):
            raise TimeoutError("never released")
        return create_app(state=state)

    return build


@pytest.fixture
def booting(settings: Settings, kg: KnowledgeGraph) -> Iterator[tuple[TestClient, threading.Event]]:
    release = threading.Event()
    engine = build_engine(settings, kg).engine
    ready: list[bool] = []
    boot = Boot(new_state(settings, engine), held_build(release), on_ready=lambda: ready.append(1))
    with TestClient(boot) as client:
        assert ready == [1]  # said once the engine was up, before any request
        yield client, release
    release.set()


def in_thread(call: Callable[[], httpx.Response]) -> tuple[threading.Thread, list[httpx.Response]]:
    answers: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answers.append(call()), daemon=True)
    thread.start()
    return thread, answers


def test_sparql_answers_before_the_application_is_built(
    booting: tuple[TestClient, threading.Event],
) -> None:
    client, release = booting
    json_type = {"Accept": "application/sparql-results+json"}
    answer = client.get("/sparql", params=ASK, headers=json_type)
    assert answer.status_code == 200
    assert answer.json()["boolean"] is True
    # The same headers as ever: the security headers and the access log's layer are the entry's.
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["vary"] == "Accept"
    posted = client.post("/sparql", data=ASK, headers=json_type)
    assert posted.json()["boolean"] is True
    malformed = client.get("/sparql", params={"query": "ASK {"})
    assert malformed.status_code == 400
    assert "malformed query" in malformed.text
    assert not release.is_set()


def test_other_requests_wait_for_the_application_then_are_served_by_it(
    booting: tuple[TestClient, threading.Event],
) -> None:
    client, release = booting
    home, home_answers = in_thread(lambda: client.get("/"))
    browser, browser_answers = in_thread(
        lambda: client.get("/sparql", params=ASK, headers={"Origin": "https://example.org"})
    )
    time.sleep(0.5)
    assert home.is_alive()  # waiting, not refused
    assert browser.is_alive()
    release.set()
    home.join(30)
    browser.join(30)
    assert home_answers[0].status_code == 200
    assert "escap-kg" in home_answers[0].text
    # A browser's query took the whole stack, CORS included.
    assert browser_answers[0].status_code == 200
    assert browser_answers[0].headers["access-control-allow-origin"] == "*"
    assert client.get("/api/queries").status_code == 200


def test_a_build_that_fails_leaves_sparql_answering(
    settings: Settings, kg: KnowledgeGraph, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(state: State) -> Any:
        raise RuntimeError("a template is missing")

    boot = Boot(new_state(settings, build_engine(settings, kg).engine), broken)
    with TestClient(boot) as client:
        page = client.get("/")
        assert page.status_code == 500
        assert page.text == "internal error; it has been logged\n"
        assert "Traceback" not in page.text
        query = client.get("/sparql", params=ASK, headers={"Accept": "application/json"})
        assert query.json()["boolean"] is True
    assert "the web application could not be built" in caplog.text
    assert "a template is missing" in caplog.text
