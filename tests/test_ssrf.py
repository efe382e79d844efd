"""No outbound connection unless allowed: a loopback listener that must never hear from us.

Every disguise of SERVICE and LOAD in ``tests/ssrf_corpus.py`` is sent to a live server through
GET, POST form and POST direct (queries) or as an authorised update, aimed at a listener on
127.0.0.1 that records every connection. Two servers: the default one, where the lexer refuses
and the kernel guard would stop what it missed; and one started with ``--allow-service`` for
another endpoint, where the kernel guard is off and the lexer alone must refuse. A last test
does the opposite: the lexer lets the call through on purpose and the kernel guard alone stops it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from escap_kg.engine import EngineError, QueryEngine, QueryJob
from escap_kg.store import KnowledgeGraph
from tests.conftest import LiveServer
from tests.ssrf_corpus import variants

pytestmark = pytest.mark.slow

TOKEN = "a-token-for-the-ssrf-tests"
RESULTS = b'{"head":{"vars":[]},"results":{"bindings":[{}]}}'
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/sparql-results+json\r\n"
    + f"Content-Length: {len(RESULTS)}\r\nConnection: close\r\n\r\n".encode()
    + RESULTS
)


class Listener:
    """A TCP listener on 127.0.0.1 that records every connection and answers like a SPARQL
    endpoint, so a request that got through would look like a success."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/sparql"
        self.heard: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.heard.append(conn.recv(4096))
                    conn.sendall(ANSWER)
                except OSError:
                    self.heard.append(b"")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    heard = Listener()
    yield heard
    heard.close()


@pytest.fixture(scope="module", params=["guarded", "lexer-only"])
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """The default server (kernel guard on), or one whose guard is off because SERVICE to
    another endpoint is allowed: there the lexer alone must refuse the listener."""
    options = ["--workers", "2", "--query-timeout", "5"]
    if request.param == "lexer-only":
        options += ["--allow-service", "http://127.0.0.1:9/allowed-elsewhere"]
    live = LiveServer(*options, env={"ESCAP_KG_UPDATE_TOKEN": TOKEN}).wait()
    yield live
    live.stop()


def send(server: LiveServer, kind: str, text: str) -> list[httpx.Response]:
    url = f"{server.url}/sparql"
    with httpx.Client(timeout=30) as client:
        if kind == "update":
            return [
                client.post(
                    url,
                    content=text,
                    headers={
                        "Content-Type": "application/sparql-update",
                        "Authorization": f"Bearer {TOKEN}",
                    },
                ),
                client.post(
                    url, data={"update": text}, headers={"Authorization": f"Bearer {TOKEN}"}
                ),
            ]
        return [
            client.get(url, params={"query": text}),
            client.post(url, data={"query": text}),
            client.post(url, content=text, headers={"Content-Type": "application/sparql-query"}),
        ]


def test_the_corpus_is_large_enough(listener: Listener) -> None:
    corpus = variants(listener.url)
    assert len(corpus) >= 50
    assert {kind for _, kind, _ in corpus} == {"query", "update"}


def test_no_disguise_reaches_the_listener(server: LiveServer, listener: Listener) -> None:
    before = len(listener.heard)
    refused = []
    for name, kind, text in variants(listener.url):
        for response in send(server, kind, text):
            assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
            assert "refused" not in response.text.lower(), (name, response.text)
            refused.append(name)
    assert len(listener.heard) == before, f"the listener heard {listener.heard[before:]}"
    assert len(refused) >= 150


def test_the_catalogue_api_calls_no_other_endpoint(server: LiveServer, listener: Listener) -> None:
    before = len(listener.heard)
    response = httpx.get(f"{server.url}/api/queries/17-wikidata-names-of-partners", timeout=30)
    assert response.status_code == 400, response.text
    assert response.text.count("\n") == 1, "one line"
    assert "--allow-service https://query.wikidata.org/sparql" in response.text
    entity = httpx.get(
        f"{server.url}/api/queries/15-where-in-the-source",
        params={"entity": listener.url},
        timeout=30,
    )
    assert entity.status_code == 200, entity.text
    assert len(listener.heard) == before


def test_the_kernel_guard_alone_stops_the_call(kg: KnowledgeGraph, listener: Listener) -> None:
    """The lexer is told the listener is allowed, so only the kernel guard stands in the way;
    the control (guard off) shows the same job does reach the listener."""
    query = f"SELECT * WHERE {{ SERVICE <{listener.url}> {{ ?s ?p ?o }} }}"
    job = QueryJob(query, "json", allowed_services=(listener.url,))

    async def run(allow_service: bool) -> str:
        engine = QueryEngine(kg.nquads(), workers=1, max_workers=1, allow_service=allow_service)
        await engine.start()
        try:
            assert engine.guard == ("off: SERVICE is allowed" if allow_service else "on")
            try:
                return (await (await engine.query(job, 10)).read()).decode()
            except EngineError as err:
                return f"{err.status} {err.message}"
        finally:
            await engine.close()

    before = len(listener.heard)
    guarded = asyncio.run(run(allow_service=False))
    assert guarded.startswith("400 "), guarded
    assert "Permission denied" in guarded
    assert len(listener.heard) == before, "the kernel guard let the call through"
    control = asyncio.run(run(allow_service=True))
    assert len(listener.heard) == before + 1, f"the control did not reach the listener: {control}"
    assert listener.heard[-1].startswith(b"POST /sparql") or listener.heard[-1].startswith(
        b"GET /sparql"
    )
