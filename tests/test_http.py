"""The HTTP layer against a real server: upgrade requests, slow and vanishing clients, limits."""

from __future__ import annotations

import contextlib
import json
import re
import selectors
import socket
import time
import weakref
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from escap_kg.settings import Settings
from tests.conftest import LiveServer

SEMINAR_QUERY = "SELECT ?a WHERE { ?a a <https://w3id.org/escap-kg/ontology#Seminar> }"
SEMINAR = "https://w3id.org/escap-kg/id/activity/seminar-2002-gender-equality-trafficking"
#: The headers Java's java.net.http.HttpClient (and so Apache Jena) sends, in its order.
JDK_UPGRADE = (
    b"Connection: Upgrade, HTTP2-Settings\r\n"
    b"HTTP2-Settings: AAEAAEAAAAIAAAABAAMAAABkAAQBAAAAAAUAAEAA\r\n"
    b"Upgrade: h2c\r\n"
    b"User-Agent: Java-http-client/17.0.15\r\n"
)
TIMEOUT = 1.0


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    started = LiveServer("--header-timeout", str(TIMEOUT), "--body-timeout", str(TIMEOUT)).wait()
    yield started
    started.stop()


def jdk_request(port: int, method: str, target: str, body: bytes = b"", kind: str = "") -> bytes:
    """The request head JDK HttpClient writes: upgrade headers first, then the caller's."""
    head = f"{method} {target} HTTP/1.1\r\n".encode()
    head += b"Connection: Upgrade, HTTP2-Settings\r\n"
    if body:
        head += f"Content-Length: {len(body)}\r\n".encode()
    head += f"Host: 127.0.0.1:{port}\r\n".encode()
    head += JDK_UPGRADE.split(b"\r\n", 1)[1]
    if kind:
        head += f"Content-Type: {kind}\r\n".encode()
    return head + b"\r\n"


#: Bytes read from a socket past the response they came with: the start of the next one.
_PENDING: weakref.WeakKeyDictionary[socket.socket, bytes] = weakref.WeakKeyDictionary()


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """A response head from ``sock``, and what came after it."""
    data = _PENDING.pop(sock, b"")
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response head: {data!r}"
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


def read_response(sock: socket.socket) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One HTTP/1.1 response from ``sock``: status line, headers (lower-cased names) and body
    (by Content-Length or chunked)."""
    head, rest = read_head(sock)
    status, *lines = head.split(b"\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(b":", 1) for line in lines)}

    def more() -> bytes:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of a response body"
        return chunk

    if b"content-length" in headers:
        size = int(headers[b"content-length"])
        while len(rest) < size:
            rest += more()
        _PENDING[sock] = rest[size:]
        return status, headers, rest[:size]
    assert headers.get(b"transfer-encoding") == b"chunked", headers
    body = b""
    while True:
        while b"\r\n" not in rest:
            rest += more()
        line, rest = rest.split(b"\r\n", 1)
        size = int(line, 16)
        while len(rest) < size + 2:
            rest += more()
        body, rest = body + rest[:size], rest[size + 2 :]
        if size == 0:
            _PENDING[sock] = rest
            return status, headers, body


def connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def assert_ask_on(sock: socket.socket, server: LiveServer) -> None:
    """The connection still speaks HTTP/1.1: a plain ``ASK {}`` on it is answered."""
    sock.sendall(
        f"GET /sparql?query={quote('ASK {}')} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        "Accept: application/sparql-results+json\r\n\r\n".encode()
    )
    status, _, body = read_response(sock)
    assert status == b"HTTP/1.1 200 OK"
    assert json.loads(body)["boolean"] is True


def seminars(body: bytes) -> list[str]:
    return [row["a"]["value"] for row in json.loads(body)["results"]["bindings"]]


@pytest.mark.parametrize("split", [False, True], ids=["one-write", "head-then-body"])
@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("application/sparql-query", SEMINAR_QUERY.encode()),
        ("application/x-www-form-urlencoded", f"query={quote(SEMINAR_QUERY)}".encode()),
    ],
    ids=["direct", "form"],
)
def test_a_jdk_post_with_an_h2c_upgrade_gets_its_body_through(
    server: LiveServer, kind: str, body: bytes, split: bool
) -> None:
    """Java's HttpClient asks to upgrade to h2c on every request; the upgrade is ignored, the
    body read and the query answered over HTTP/1.1 (it was once answered 400, body lost)."""
    with connect(server) as sock:
        head = jdk_request(server.port, "POST", "/sparql", body, kind)
        if split:
            sock.sendall(head)
            time.sleep(0.1)
            sock.sendall(body)
        else:
            sock.sendall(head + body)
        status, headers, answer = read_response(sock)
        assert status == b"HTTP/1.1 200 OK", answer
        assert b"upgrade" not in headers
        assert seminars(answer) == [SEMINAR]
        assert_ask_on(sock, server)


def test_a_jdk_get_with_an_h2c_upgrade_is_answered(server: LiveServer) -> None:
    with connect(server) as sock:
        sock.sendall(jdk_request(server.port, "GET", f"/sparql?query={quote(SEMINAR_QUERY)}"))
        status, headers, answer = read_response(sock)
        assert status == b"HTTP/1.1 200 OK", answer
        assert b"upgrade" not in headers
        assert seminars(answer) == [SEMINAR]
        assert_ask_on(sock, server)


@pytest.mark.parametrize(
    "upgrade",
    [
        b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        b"Connection: keep-alive, Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n",
    ],
    ids=["websocket", "h2c"],
)
def test_other_upgrade_requests_are_served_as_http_1_1(server: LiveServer, upgrade: bytes) -> None:
    """No protocol switch is offered: the page is served, and the connection goes on."""
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + upgrade + b"\r\n")
        status, headers, page = read_response(sock)
        assert status == b"HTTP/1.1 200 OK"
        assert headers[b"content-type"].startswith(b"text/html")
        assert b"<html" in page
        assert_ask_on(sock, server)


def test_a_head_request_gets_its_head_at_once_and_the_connection_goes_on(
    server: LiveServer,
) -> None:
    """A response's head is held for its body; a HEAD answer, which has none, still leaves."""
    with connect(server) as sock:
        sock.sendall(b"HEAD /static/pages/site.css HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head, rest = read_head(sock)
        assert head.startswith(b"HTTP/1.1 200 OK"), head
        assert b"\r\nx-content-type-options: nosniff" in head
        assert rest == b"", "no body after the head of a HEAD answer"
        assert_ask_on(sock, server)


def test_pipelined_requests_are_answered_in_order_each_whole(server: LiveServer) -> None:
    """Two requests in one write: two answers, in order (they may arrive in one read)."""
    for _ in range(10):
        with connect(server) as sock:
            ask = f"GET /sparql?query={quote('ASK {}')} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            sock.sendall(
                (
                    ask
                    + "Accept: text/csv\r\n\r\n"
                    + ask
                    + "Accept: application/sparql-results+json\r\n\r\n"
                ).encode()
            )
            first, second = read_response(sock), read_response(sock)
            assert first[1][b"content-type"].startswith(b"text/csv"), first
            assert json.loads(second[2])["boolean"] is True


def test_connect_is_refused(server: LiveServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n")
        status, _, _ = read_response(sock)
        assert status == b"HTTP/1.1 400 Bad Request"
        assert sock.recv(100) == b""


def ask(server: LiveServer) -> float:
    started = time.monotonic()
    answer = httpx.get(f"{server.url}/sparql", params={"query": "ASK {}"}, timeout=5)
    assert answer.status_code == 200
    assert answer.json()["boolean"] is True
    return time.monotonic() - started


def test_slow_clients_are_closed_while_others_are_answered(server: LiveServer) -> None:
    """50 clients that send a request head a byte at a time, and 50 that send a head then stall
    in the body, are all closed soon after the 1 s read timeouts, with 408; meanwhile
    ``ASK {}`` keeps being answered at once."""
    margin = 3.0
    body_head = (
        b"POST /sparql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n"
        b"Content-Type: application/sparql-query\r\n\r\nASK"
    )
    selector = selectors.DefaultSelector()
    opened: dict[socket.socket, tuple[str, float]] = {}
    replies: dict[socket.socket, bytes] = {}
    reset: set[socket.socket] = set()
    for kind in ("head", "body"):
        for _ in range(50):
            sock = connect(server)
            sock.sendall(b"GET /sparql HTTP/1.1\r\nHost: 1" if kind == "head" else body_head)
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
            opened[sock] = (kind, time.monotonic())
            replies[sock] = b""
    closed: dict[socket.socket, float] = {}
    slowest_ask = 0.0
    deadline = time.monotonic() + TIMEOUT + margin
    try:
        while len(closed) < len(opened) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.2):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(4096)
                except ConnectionResetError:
                    # A trickled byte that crossed the server's close; its 408 may be lost.
                    reset.add(sock)
                    data = b""
                replies[sock] += data
                if not data:
                    closed[sock] = time.monotonic()
                    selector.unregister(sock)
            for sock, (kind, _) in opened.items():
                if kind == "head" and sock not in closed:
                    with contextlib.suppress(OSError):
                        sock.send(b"1")
            slowest_ask = max(slowest_ask, ask(server))
    finally:
        selector.close()
        for sock in opened:
            sock.close()
    assert len(closed) == len(opened), f"{len(opened) - len(closed)} slow clients still open"
    for kind in ("head", "body"):
        lasted = [at - opened[sock][1] for sock, at in closed.items() if opened[sock][0] == kind]
        assert TIMEOUT * 0.9 < min(lasted) <= max(lasted) < TIMEOUT + margin, (kind, lasted)
    assert {reply.split(b"\r\n", 1)[0] for s, reply in replies.items() if s not in reset} == {
        b"HTTP/1.1 408 Request Timeout"
    }
    # How many trickled bytes cross the server's close depends on scheduling; some 408s for
    # slow heads must still have arrived whole.
    assert all(opened[sock][0] == "head" for sock in reset)
    assert any(opened[sock][0] == "head" and sock not in reset for sock in closed)
    assert slowest_ask < 1.0


def new_log_lines(server: LiveServer, before: str, wait_for: str) -> list[str]:
    deadline = time.monotonic() + 5
    while wait_for not in server.output()[len(before) :] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    return server.output()[len(before) :].splitlines()


def test_a_client_gone_mid_body_is_one_log_line(server: LiveServer) -> None:
    before = server.output()
    with connect(server) as sock:
        sock.sendall(
            b"POST /sparql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n"
            b"Content-Type: application/sparql-query\r\n\r\nASK"
        )
        time.sleep(0.2)
    lines = new_log_lines(server, before, "escap_kg.access")
    assert len(lines) == 1, lines
    assert re.search(
        r"INFO escap_kg\.access: 127\.0\.0\.1 POST /sparql 0 \d+\.\dms incomplete: "
        r"the connection closed before the whole request body arrived$",
        lines[0],
    ), lines
    assert "Traceback" not in server.output()


def test_control_characters_in_a_path_are_escaped_in_the_log(server: LiveServer) -> None:
    """A path with ``%0a`` cannot forge a second line in the access log."""
    before = server.output()
    forged = "2026-01-01 00:00:00,000 INFO escap_kg.access: 10.0.0.1 GET /admin 200 1.0ms"
    path = "/nowhere%0d%0a" + quote(forged) + "%7f%1b"
    assert httpx.get(server.url + path).status_code == 404
    lines = new_log_lines(server, before, "escap_kg.access")
    assert len(lines) == 1, lines
    assert re.search(
        r"INFO escap_kg\.access: 127\.0\.0\.1 GET /nowhere\\x0d\\x0a2026-01-01 00:00:00,000 "
        r"INFO escap_kg\.access: 10\.0\.0\.1 GET /admin 200 1\.0ms\\x7f\\x1b 404 \d+\.\dms$",
        lines[0],
    ), lines


def test_connections_past_the_limit_are_answered_503() -> None:
    server = LiveServer(env={"ESCAP_KG_MAX_CONNECTIONS": "2"}).wait()
    try:
        held = [connect(server) for _ in range(2)]
        for sock in held:
            assert_ask_on(sock, server)
        with connect(server) as third:
            third.sendall(b"GET /sparql?query=ASK%20%7B%7D HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, _, body = read_response(third)
            assert status == b"HTTP/1.1 503 Service Unavailable"
            assert body == b"Service Unavailable"
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:
            with connect(server) as again:
                again.sendall(b"GET /sparql?query=ASK%20%7B%7D HTTP/1.1\r\nHost: x\r\n\r\n")
                status, _, _ = read_response(again)
            if status == b"HTTP/1.1 200 OK" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == b"HTTP/1.1 200 OK"
        held[0].close()
    finally:
        server.stop()


def test_read_timeouts_and_connections_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCAP_KG_HEADER_TIMEOUT", "2.5")
    monkeypatch.setenv("ESCAP_KG_MAX_CONNECTIONS", "7")
    settings = Settings.from_env(body_timeout=3.0)
    assert (settings.header_timeout, settings.body_timeout, settings.max_connections) == (
        2.5,
        3.0,
        7,
    )
    assert Settings().max_connections == 1000
    monkeypatch.setenv("ESCAP_KG_MAX_CONNECTIONS", "many")
    with pytest.raises(ValueError, match="ESCAP_KG_MAX_CONNECTIONS='many' is not a number"):
        Settings.from_env()
    with pytest.raises(ValueError, match="read timeouts and the number of connections"):
        Settings(body_timeout=0)
