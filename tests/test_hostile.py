"""Hostile requests: every one gets a 4xx with a readable message, never a 500, a hang or a crash.

Most go through TestClient; what only a real server shows (huge request lines, oversized
headers, raw paths with dot segments) goes to ``escap-kg serve`` over a socket.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from escap_kg.server import create_app
from escap_kg.settings import Settings
from escap_kg.sparql import MAX_NESTING, MAX_OPERATORS
from escap_kg.store import KnowledgeGraph
from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "a-hostile-test-token-of-some-length"
SPARQL_QUERY = {"Content-Type": "application/sparql-query"}
SPARQL_UPDATE = {"Content-Type": "application/sparql-update"}
INSERT = "INSERT DATA { <urn:hostile:s> <urn:hostile:p> <urn:hostile:o> }"
TEN_MB = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def client(kg: KnowledgeGraph) -> Iterator[TestClient]:
    app = create_app(Settings(workers=1, query_timeout=5), kg)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def writable(kg: KnowledgeGraph) -> Iterator[TestClient]:
    app = create_app(Settings(workers=1, query_timeout=5, update_token=TOKEN), kg)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


class Recorder(http.server.BaseHTTPRequestHandler):
    """Records every request it gets; the endpoint must never call it."""

    seen: list[str] = []  # noqa: RUF012 - shared by design, reset per test

    def do_GET(self) -> None:
        self.seen.append(f"GET {self.path}")
        self.send_response(200)
        self.send_header("Content-Type", "text/turtle")
        self.end_headers()
        self.wfile.write(b"<urn:x:s> <urn:x:p> <urn:x:o> .\n")

    def do_POST(self) -> None:
        self.seen.append(f"POST {self.path}")
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def outside() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server in a thread: its base URL and the requests it received."""
    Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", Recorder.seen
    finally:
        server.shutdown()
        server.server_close()


def readable(response: Response, status: int | None = None, contains: str = "") -> str:
    """Assert a 4xx (or exactly ``status``) with a short plain message; return the message."""
    if status is None:
        assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    else:
        assert response.status_code == status, (response.status_code, response.text[:300])
    text = response.text
    assert text.strip(), "empty error message"
    assert "Traceback" not in text
    assert "internal error" not in text
    assert contains in text, text[:300]
    return text


def query(client: TestClient, text: str, accept: str | None = None) -> Response:
    headers = dict(SPARQL_QUERY)
    if accept:
        headers["Accept"] = accept
    return client.post("/sparql", content=text.encode(), headers=headers)


# Malformed and truncated queries ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "SELECT",
        "SELECT * WHERE",
        "SELECT * WHERE {",
        "SELECT * WHERE { ?s ?p }",
        "SELECT * WHERE { ?s ?p ?o } }",
        "WHERE { ?s ?p ?o }",
        "PREFIX : SELECT * {}",
        "SELECT ?x WHERE { ?s ?p ?o } ORDER BY",
        "ASK { FILTER( }",
        "CONSTRUCT WHERE",
        "DESCRIBE",
        "SELECT (COUNT(*) AS) WHERE {}",
        "\x00\x01\x02",
        "}}}}{{{{",
        ")))(((",
        "SELECT * WHERE { ?s ?p 'abc }",
        'SELECT * WHERE { ?s ?p """abc }',
        "SELECT * WHERE { ?s ?p ?o } LIMIT -1",
        "SELECT * WHERE { ?s ?p ?o } LIMIT x",
    ],
)
def test_malformed_queries(client: TestClient, text: str) -> None:
    readable(query(client, text), 400)


def test_unterminated_string_is_named(client: TestClient) -> None:
    readable(query(client, 'SELECT * WHERE { ?s ?p "abc }'), 400, "unterminated string")


def test_truncated_catalogue_queries(client: TestClient) -> None:
    """A catalogue query cut at many points: each prefix is answered or refused, never a 500."""
    for path in sorted((ROOT / "queries").glob("0[3-9]-*.rq"))[:3]:
        text = path.read_text()
        cuts = sorted({*range(0, len(text), max(1, len(text) // 25)), len(text) - 1})
        for cut in cuts:
            response = query(client, text[:cut])
            assert response.status_code < 500, (path.name, cut, response.text[:300])
            if response.status_code >= 400:
                readable(response)


# Size limits -------------------------------------------------------------------------------------


def test_ten_megabyte_query_body(client: TestClient) -> None:
    text = "SELECT * WHERE { ?s ?p ?o } #" + "x" * TEN_MB
    readable(query(client, text), 413, "larger than the limit")


def test_ten_megabyte_form_body(client: TestClient) -> None:
    body = "query=" + quote("ASK {}") + "&pad=" + "x" * TEN_MB
    response = client.post(
        "/sparql", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    readable(response, 413, "larger than the limit")


def test_ten_megabyte_update_body(writable: TestClient) -> None:
    response = writable.post(
        "/sparql",
        content=b"INSERT DATA { <urn:a> <urn:b> '" + b"x" * TEN_MB + b"' }",
        headers={**SPARQL_UPDATE, "Authorization": f"Bearer {TOKEN}"},
    )
    readable(response, 413, "larger than the limit")


def test_body_without_content_length_is_still_limited(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"#" + b"y" * (100 * 1024) + b"\n"

    response = client.post("/sparql", content=chunks(), headers=SPARQL_QUERY)
    readable(response, 413, "larger than the limit")


def test_long_get_query_string(client: TestClient) -> None:
    """As long as the client library lets us send (httpx caps a URL component at 64 KiB)."""
    text = "ASK { } #" + "z" * 60_000
    response = client.get("/sparql", params={"query": text})
    assert response.status_code == 200


# Nesting and chains the engine's parser would overflow its stack on ---------------------------


DEEP = 10_000


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * WHERE " + "{" * DEEP + "}" * DEEP,
        "SELECT * WHERE { FILTER(" + "(" * DEEP + "1" + ")" * DEEP + ") }",
        "SELECT * WHERE { " + "OPTIONAL { " * DEEP + "}" * DEEP + " }",
        "SELECT * WHERE { " + "{ ?s ?p ?o } UNION { " * DEEP + "}" * DEEP + " }",
        "SELECT * WHERE { " + "FILTER NOT EXISTS { " * DEEP + "}" * DEEP + " }",
        "SELECT * WHERE { ?s ?p " + "(" * DEEP + ")" * DEEP + " }",
        "SELECT * WHERE { ?s ?p " + "[ ?p " * DEEP + "?o" + "]" * DEEP + " }",
        "SELECT * WHERE { ?s " + "(" * DEEP + "<urn:p>" + ")" * DEEP + " ?o }",
        "SELECT * WHERE { FILTER(" + "STR(" * DEEP + "1" + ")" * DEEP + ") }",
        "SELECT * WHERE { FILTER(" + "!" * 20_000 + "true) }",
        "SELECT * WHERE { FILTER(" + "- " * 20_000 + "1) }",
    ],
    ids=[
        "groups",
        "parentheses",
        "optional",
        "union",
        "not-exists",
        "collections",
        "blank-nodes",
        "paths",
        "functions",
        "not",
        "minus",
    ],
)
def test_deep_nesting_is_refused(client: TestClient, text: str) -> None:
    readable(query(client, text), 400, "nested too deeply")


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * WHERE { FILTER(" + " && ".join(["true"] * DEEP) + ") }",
        "SELECT * WHERE { FILTER(" + " + ".join(["1"] * DEEP) + ") }",
        "SELECT * WHERE { ?s " + "/".join(["<urn:p>"] * DEEP) + " ?o }",
        "SELECT * WHERE { ?s " + "|".join(["<urn:p>"] * 30_000) + " ?o }",
        "SELECT * WHERE { " + " UNION ".join(["{ BIND(1 AS ?x) }"] * DEEP) + " }",
        "SELECT * WHERE { " + " ".join(["OPTIONAL { BIND(1 AS ?x) }"] * DEEP) + " }",
        "SELECT * WHERE { " + " ".join(["FILTER(true)"] * DEEP) + " }",
        "SELECT * WHERE { " + " ".join(f"BIND(1 AS ?x{i})" for i in range(3000)) + " }",
    ],
    ids=["and", "plus", "path-sequence", "path-alternative", "union", "optional", "filter", "bind"],
)
def test_long_operator_chains_are_refused(client: TestClient, text: str) -> None:
    readable(query(client, text), 400, "too many operators")


def test_nesting_up_to_the_limit_is_answered(client: TestClient) -> None:
    depth = MAX_NESTING
    response = query(client, "SELECT * WHERE " + "{" * depth + "}" * depth)
    assert response.status_code == 200, response.text
    inner = " && ".join(["true"] * (MAX_OPERATORS // 3))
    text = "ASK " + "{" * (depth - 10) + f"FILTER({inner})" + "}" * (depth - 10)
    assert query(client, text).status_code == 200


def test_the_worker_survives_the_hostile_queries(client: TestClient) -> None:
    response = client.get("/sparql", params={"query": "ASK {}"})
    assert response.status_code == 200
    assert response.json()["boolean"] is True


# LIMIT and OFFSET past machine integers ----------------------------------------------------------


@pytest.mark.parametrize("clause", ["LIMIT", "OFFSET"])
def test_limit_and_offset_past_u64(client: TestClient, clause: str) -> None:
    readable(
        query(client, f"SELECT * WHERE {{ ?s ?p ?o }} {clause} 999999999999999999999"),
        400,
        "non negative integer",
    )


@pytest.mark.parametrize(
    "tail",
    [
        "LIMIT 18446744073709551615",
        "LIMIT 9223372036854775808",
        "OFFSET 9223372036854775807 LIMIT 9223372036854775807",
        "OFFSET 18446744073709551615",
    ],
)
def test_limit_and_offset_at_machine_bounds(client: TestClient, tail: str) -> None:
    response = query(client, f"SELECT ?s WHERE {{ ?s a ?c }} {tail}", accept="text/csv")
    assert response.status_code == 200, response.text[:300]
    if "OFFSET" in tail:
        assert response.text.strip() == "s"


# Bad IRIs and literals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * WHERE { <http://exa mple.org> ?p ?o }",
        "SELECT * WHERE { <foo\\u0000> ?p ?o }",
        "SELECT * WHERE { <foo\x00> ?p ?o }",
        'SELECT * WHERE { ?s ?p "x"^^<bad iri> }',
        "SELECT * WHERE { <http://a/\\u00> ?p ?o }",
        'SELECT * WHERE { ?s ?p "x"@ }',
        'SELECT * WHERE { ?s ?p "x"^^ }',
        "SELECT * WHERE { ?s ?p 'unterminated }",
        "SELECT * WHERE { ?s ?p 'line\nbreak' }",
        "BASE <not absolute> SELECT * WHERE { <a> ?p ?o }",
    ],
)
def test_invalid_iris_and_literals(client: TestClient, text: str) -> None:
    readable(query(client, text), 400)


@pytest.mark.parametrize(
    "text",
    [
        'SELECT * WHERE { BIND("1"^^xsd:integerX AS ?x) }',
        'SELECT ?x WHERE { BIND("abc"^^xsd:integer + 1 AS ?x) }',
        'SELECT ?x WHERE { BIND("2002-13-45"^^xsd:date AS ?x) }',
        'SELECT ?x WHERE { BIND(xsd:integer("1e400") AS ?x) }',
        "SELECT ?x WHERE { BIND(99999999999999999999999999999999 * 9999999999999999999 AS ?x) }",
        "SELECT ?x WHERE { BIND(1 / 0 AS ?x) }",
    ],
)
def test_ill_typed_literals_are_answered(client: TestClient, text: str) -> None:
    prologue = "PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>\n"
    response = query(client, prologue + text)
    assert response.status_code in (200, 400), response.text[:300]
    if response.status_code == 400:
        readable(response)


# Encodings --------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/sparql-query", "application/sparql-update"])
def test_non_utf8_body(client: TestClient, content_type: str) -> None:
    response = client.post(
        "/sparql", content=b"ASK { ?s ?p '\xff\xfe' }", headers={"Content-Type": content_type}
    )
    readable(response, 400, "UTF-8")


def test_non_utf8_form_body(client: TestClient) -> None:
    response = client.post(
        "/sparql",
        content=b"query=ASK%20%7B%7D\xff",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    readable(response, 400, "UTF-8")


@pytest.mark.parametrize(
    "url",
    [
        "/sparql?query=ASK%20%7B%20%FF%FE%20%7D",
        "/sparql?query=%C0%AF",
        "/sparql?%FF=1",
        "/api/queries/15-where-in-the-source?entity=%FF",
        "/sparql?query=ASK%20%7B%7D&default-graph-uri=%ED%A0%80",
    ],
)
def test_non_utf8_percent_encoding(client: TestClient, url: str) -> None:
    readable(client.get(url), 400, "UTF-8")


@pytest.mark.parametrize("charset", ["latin-1", "utf-16", "x-nonsense"])
def test_other_charsets(client: TestClient, charset: str) -> None:
    response = client.post(
        "/sparql",
        content=b"ASK {}",
        headers={"Content-Type": f"application/sparql-query; charset={charset}"},
    )
    readable(response, 400, "charset")


# Content negotiation and request types -----------------------------------------------------------


@pytest.mark.parametrize(
    "accept", ["application/x-nope", "image/png", "text/html;q=0", "*/*;q=0", "foo/bar, baz/qux"]
)
def test_unknown_accept_types(client: TestClient, accept: str) -> None:
    readable(query(client, "SELECT * WHERE {} LIMIT 1", accept=accept), 406, "available")


def test_unknown_accept_on_the_api(client: TestClient) -> None:
    response = client.get(
        "/api/queries/01-activities-in-time-order", headers={"Accept": "image/png"}
    )
    readable(response, 406)


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/json", "multipart/form-data; boundary=x"]
)
def test_unsupported_request_types(client: TestClient, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/sparql", content=b"ASK {}", headers=headers)
    readable(response, 415, "unsupported request type")


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods(client: TestClient, method: str) -> None:
    readable(client.request(method, "/sparql", content=b"ASK {}"), 405)


# Updates ----------------------------------------------------------------------------------------


def test_update_when_updates_are_off(client: TestClient) -> None:
    response = client.post(
        "/sparql", content=INSERT, headers={**SPARQL_UPDATE, "Authorization": f"Bearer {TOKEN}"}
    )
    readable(response, 403, "disabled")


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("", 401),
        ("Bearer", 401),
        ("Bearer ", 401),
        ("Basic dXNlcjpwYXNz", 401),
        ("Bearer wrong-token-of-some-length", 403),
        ("Bearer " + TOKEN[:-1], 403),
        ("Bearer " + TOKEN + "x", 403),
        (("Bearer " + "é" * 40).encode(), 403),
    ],
)
def test_update_tokens(
    writable: TestClient, authorization: str | bytes | None, status: int
) -> None:
    headers: dict[str, str | bytes] = dict(SPARQL_UPDATE)
    if authorization is not None:
        headers["Authorization"] = authorization
    readable(writable.post("/sparql", content=INSERT.encode(), headers=headers), status)
    ask = writable.get("/sparql", params={"query": "ASK { <urn:hostile:s> ?p ?o }"})
    assert ask.json()["boolean"] is False


def test_update_by_get(client: TestClient) -> None:
    readable(client.get("/sparql", params={"update": INSERT}), 400, "POST")


# Nothing leaves the server ----------------------------------------------------------------------


def test_service_to_a_host_not_allowed(client: TestClient, outside: tuple[str, list[str]]) -> None:
    url, seen = outside
    for text in [
        f"SELECT * WHERE {{ SERVICE <{url}/sparql> {{ ?s ?p ?o }} }}",
        f"SELECT * WHERE {{ SERVICE SILENT <{url}/sparql> {{ ?s ?p ?o }} }}",
        f"SELECT * WHERE {{ BIND(<{url}/sparql> AS ?e) SERVICE ?e {{ ?s ?p ?o }} }}",
        f"PREFIX x: <{url}/> SELECT * WHERE {{ SERVICE x:sparql {{ ?s ?p ?o }} }}",
        f"SELECT * WHERE {{ service <{url}/sparql> {{ ?s ?p ?o }} }}",
    ]:
        readable(query(client, text), 400, "is not allowed")
    assert seen == []


def test_from_and_default_graph_uri_stay_local(
    client: TestClient, outside: tuple[str, list[str]]
) -> None:
    url, seen = outside
    data = f"{url}/data.ttl"
    response = query(client, f"SELECT * FROM <{data}> FROM NAMED <{data}> WHERE {{ ?s ?p ?o }}")
    assert response.status_code == 200
    assert response.json()["results"]["bindings"] == []
    response = client.get(
        "/sparql",
        params={
            "query": "SELECT * WHERE { ?s ?p ?o }",
            "default-graph-uri": data,
            "named-graph-uri": data,
        },
    )
    assert response.status_code == 200
    assert response.json()["results"]["bindings"] == []
    assert seen == []


def test_load_is_refused(writable: TestClient, outside: tuple[str, list[str]]) -> None:
    url, seen = outside
    response = writable.post(
        "/sparql",
        content=f"LOAD <{url}/data.ttl>",
        headers={**SPARQL_UPDATE, "Authorization": f"Bearer {TOKEN}"},
    )
    readable(response, 400, "LOAD")
    assert seen == []


# Path traversal ---------------------------------------------------------------------------------

TRAVERSALS = [
    "/download/..%2F..%2Fetc%2Fpasswd",
    "/download/escap-kg.ttl%00",
    "/download/escap-kg.%2e%2e%2f%2e%2e%2fpyproject.toml",
    "/download/escap-kg.ttl%2F..%2F..%2Fpyproject.toml",
    "/id/../../etc/passwd",
    "/id/activity/..%2F..",
    "/id/activity/..%2F..%2F..%2Fetc%2Fpasswd",
    "/id/%2e%2e/%2e%2e/etc/passwd",
    "/graph/..%2F..%2Fpyproject.toml",
    "/ontology.%2e%2e%2fpyproject.toml",
    "/static/../pyproject.toml",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2F..%2F..%2Fpyproject.toml",
    "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fpyproject.toml",
    "/static/pages/..%5C..%5Cpyproject.toml",
    "/static/%00",
]


def no_file_contents(text: str) -> None:
    assert "root:" not in text
    assert "[project]" not in text
    assert "build-backend" not in text


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal(client: TestClient, path: str) -> None:
    response = client.get(path, headers={"Accept": "text/plain"})
    assert response.status_code in (400, 404), (response.status_code, response.text[:300])
    assert response.text.strip()
    assert "Traceback" not in response.text
    no_file_contents(response.text)


# What only a real server shows ------------------------------------------------------------------


def raw_request(server: LiveServer, request: bytes, timeout: float = 20) -> tuple[int, bytes]:
    """Send bytes as they are; the status (0 when the server closed without one) and the reply."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    if not reply.startswith(b"HTTP/1.1 "):
        return 0, reply
    return int(reply[9:12]), reply


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "request_bytes"),
    [
        (
            "10 MB query string",
            b"GET /sparql?query=ASK%20%7B%7D%23" + b"a" * TEN_MB + b" HTTP/1.1\r\n"
            b"Host: x\r\nConnection: close\r\n\r\n",
        ),
        (
            "100 KB header",
            b"GET /sparql?query=ASK%20%7B%7D HTTP/1.1\r\nHost: x\r\nX-Big: "
            + b"b" * 100_000
            + b"\r\nConnection: close\r\n\r\n",
        ),
        (
            "many headers",
            b"GET /sparql?query=ASK%20%7B%7D HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(5000))
            + b"Connection: close\r\n\r\n",
        ),
        (
            "huge content-length",
            b"POST /sparql HTTP/1.1\r\nHost: x\r\nContent-Type: application/sparql-query\r\n"
            b"Content-Length: 99999999999999999999\r\nConnection: close\r\n\r\nASK {}",
        ),
        (
            "bad content-length",
            b"POST /sparql HTTP/1.1\r\nHost: x\r\nContent-Type: application/sparql-query\r\n"
            b"Content-Length: -5\r\nConnection: close\r\n\r\nASK {}",
        ),
        (
            "garbage request line",
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64 + b"\r\n\r\n",
        ),
        (
            "non-UTF-8 path",
            b"GET /id/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ),
        (
            "dot segments in the raw path",
            b"GET /static/../../pyproject.toml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ),
        (
            "dot segments to /etc/passwd",
            b"GET /id/../../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ),
    ],
)
def test_live_server_hostile_requests(
    live_server: LiveServer, name: str, request_bytes: bytes
) -> None:
    status, reply = raw_request(live_server, request_bytes)
    assert status == 0 or 400 <= status < 500, (name, reply[:300])
    if "header" in name:
        assert status == 431, (name, reply[:300])
    assert b"Traceback" not in reply
    no_file_contents(reply.decode("latin-1"))
    # The server is still up and answering.
    check = raw_request(
        live_server,
        b"GET /sparql?query=ASK%20%7B%7D HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert check[0] == 200, check[1][:300]
