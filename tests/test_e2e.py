"""End to end: ``escap-kg serve`` on 127.0.0.1, used by real SPARQL clients."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import rdflib
from rdflib.plugins.stores.sparqlstore import SPARQLStore
from SPARQLWrapper import CSV, JSON, TSV, TURTLE, XML, SPARQLWrapper
from SPARQLWrapper.SPARQLExceptions import QueryBadFormed, Unauthorized

from tests.conftest import FIXTURES, ROOT, LiveServer
from tests.proc import memory_kib, process_tree

EKG = "https://w3id.org/escap-kg/ontology#"
ID = "https://w3id.org/escap-kg/id/"
TOKEN = "an-end-to-end-test-token"
# DISTINCT: the path reaches ekg:Activity from each activity's own class and, through the
# entailed graph, from the ekg:Activity type it has there too.
ACTIVITIES = f"""
SELECT DISTINCT ?activity ?date WHERE {{
  ?activity a/<http://www.w3.org/2000/01/rdf-schema#subClassOf>* <{EKG}Activity> ;
    <https://schema.org/startDate> ?date .
}} ORDER BY STR(?date)"""

pytestmark = pytest.mark.slow


def wrapper(server: LiveServer) -> SPARQLWrapper:
    return SPARQLWrapper(f"{server.url}/sparql")


def test_sparqlwrapper_select_in_every_format(live_server: LiveServer) -> None:
    sparql = wrapper(live_server)
    sparql.setQuery(ACTIVITIES)
    sparql.setReturnFormat(JSON)
    bindings = sparql.queryAndConvert()["results"]["bindings"]  # type: ignore[index,call-overload]
    assert [b["date"]["value"] for b in bindings] == ["2001", "2002-10", "2002-12-11", "2003"]
    sparql.setReturnFormat(XML)
    document = sparql.queryAndConvert()
    assert len(document.getElementsByTagName("result")) == 4  # type: ignore[union-attr]
    for fmt, separator in ((CSV, ","), (TSV, "\t")):
        sparql.setReturnFormat(fmt)
        text = sparql.queryAndConvert().decode()  # type: ignore[union-attr]
        lines = text.strip().splitlines()
        assert len(lines) == 5
        assert separator in lines[0]


def test_sparqlwrapper_ask_construct_and_post(live_server: LiveServer) -> None:
    sparql = wrapper(live_server)
    sparql.setQuery(f"ASK {{ <{ID}activity/fifth-appc> a <{EKG}Conference> }}")
    sparql.setReturnFormat(JSON)
    assert sparql.queryAndConvert()["boolean"] is True  # type: ignore[index,call-overload]
    sparql.setMethod("POST")
    sparql.setQuery(
        f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ BIND(<{ID}activity/fifth-appc> AS ?s) ?s ?p ?o }}"
    )
    sparql.setReturnFormat(TURTLE)
    graph = rdflib.Graph().parse(data=sparql.queryAndConvert(), format="turtle")  # type: ignore[arg-type]
    assert (rdflib.URIRef(f"{ID}activity/fifth-appc"), None, None) in graph


def test_sparqlwrapper_sees_a_malformed_query(live_server: LiveServer) -> None:
    sparql = wrapper(live_server)
    sparql.setQuery("SELECT ?x WHERE { ?x ?p }")
    with pytest.raises(QueryBadFormed, match="malformed query"):
        sparql.query()


def test_rdflib_sparqlstore(live_server: LiveServer) -> None:
    graph = rdflib.Graph(store=SPARQLStore(f"{live_server.url}/sparql"))
    rows = list(graph.query(ACTIVITIES))
    assert [str(row[1]) for row in rows] == ["2001", "2002-10", "2002-12-11", "2003"]  # type: ignore[index]
    seminar = rdflib.URIRef(f"{ID}activity/seminar-2002-gender-equality-trafficking")
    labels = set(graph.objects(seminar, rdflib.RDFS.label))
    assert labels == {
        rdflib.Literal(
            "Seminar on Promoting Gender Equality to Combat Trafficking in Women and Children",
            lang="en",
        )
    }


def test_httpx_downloads_and_api(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        turtle = client.get("/download/escap-kg.ttl")
        assert turtle.status_code == 200
        assert turtle.headers["content-encoding"] == "gzip"
        assert len(rdflib.Graph().parse(data=turtle.text, format="turtle")) > 1000
        listing = client.get("/api/queries").json()
        assert listing[0]["link"].startswith(live_server.url)
        answer = client.get(listing[0]["link"], headers={"Accept": "text/csv"})
        assert answer.status_code == 200
        assert answer.text.count("\n") == 5
        assert "server" not in turtle.headers


@pytest.fixture(scope="module")
def writable_server() -> Iterator[LiveServer]:
    server = LiveServer("--workers", "2", env={"ESCAP_KG_UPDATE_TOKEN": TOKEN}).wait()
    yield server
    server.stop()


def test_update_with_and_without_the_token(writable_server: LiveServer) -> None:
    update = f'INSERT DATA {{ <{ID}activity/e2e> <{EKG}keyIssue> "from an end-to-end test"@en }}'
    ask = f"ASK {{ <{ID}activity/e2e> ?p ?o }}"

    anonymous = wrapper(writable_server)
    anonymous.setMethod("POST")
    anonymous.setQuery(update)
    with pytest.raises(Unauthorized):
        anonymous.query()

    sparql = wrapper(writable_server)
    sparql.setMethod("POST")
    sparql.addCustomHttpHeader("Authorization", f"Bearer {TOKEN}")
    sparql.setQuery(update)
    sparql.query()

    check = wrapper(writable_server)
    check.setQuery(ask)
    check.setReturnFormat(JSON)
    assert all(check.queryAndConvert()["boolean"] for _ in range(4))  # type: ignore[index,call-overload]

    wrong = httpx.post(
        f"{writable_server.url}/sparql",
        content="CLEAR ALL",
        headers={"Content-Type": "application/sparql-update", "Authorization": "Bearer nope"},
    )
    assert wrong.status_code == 403
    assert check.queryAndConvert()["boolean"]  # type: ignore[index,call-overload]


def test_serve_refuses_a_file_that_does_not_parse(tmp_path: Path) -> None:
    bad = tmp_path / "thesaurus.ttl"
    bad.write_text('@prefix ex: <http://example.org/> .\nex:a ex:b "broken .\n')
    done = subprocess.run(
        [sys.executable, "-m", "escap_kg", "serve", "--port", "1", "--data", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"{bad}:2:" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--max-workers", "0"], {}, "maximum number of workers (0) must be at least"),
        (
            ["--workers", "3", "--max-workers", "2"],
            {},
            "(2) must be at least the number of workers (3)",
        ),
        ([], {"ESCAP_KG_MAX_WORKERS": "many"}, "ESCAP_KG_MAX_WORKERS='many' is not a number"),
        ([], {"ESCAP_KG_WORKERS": "0"}, "the number of workers must be at least 1"),
    ],
)
def test_serve_refuses_bad_worker_counts(
    args: list[str], env: dict[str, str], message: str
) -> None:
    import os

    done = subprocess.run(
        [sys.executable, "-m", "escap_kg", "serve", "--port", "1", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_refuses_our_own_data_when_it_does_not_validate(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for path in (ROOT / "data").rglob("*.ttl"):
        target = data / path.relative_to(ROOT / "data")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    (data / "broken.ttl").write_bytes(
        (FIXTURES / "invalid" / "activity-missing-start-date.ttl").read_bytes()
    )
    done = subprocess.run(
        [sys.executable, "-m", "escap_kg", "serve", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**__import__("os").environ, "ESCAP_KG_DATA_DIR": str(data)},
    )
    assert done.returncode == 1
    assert f"{data / 'broken.ttl'}:" in done.stderr
    assert "not serving a graph that does not validate" in done.stderr


def test_other_data_is_served_beside_ours(tmp_path: Path) -> None:
    extra = tmp_path / "unbis-extract.nt"
    extra.write_text(
        "<http://metadata.un.org/thesaurus/1003321> "
        '<http://www.w3.org/2004/02/skos/core#prefLabel> "INTERNATIONAL MIGRATION"@en .\n'
    )
    server = LiveServer("--workers", "1", "--data", str(extra)).wait()
    try:
        sparql = wrapper(server)
        sparql.setQuery(
            "SELECT ?theme WHERE { ?theme <http://www.w3.org/2004/02/skos/core#exactMatch> ?c . "
            '?c <http://www.w3.org/2004/02/skos/core#prefLabel> "INTERNATIONAL MIGRATION"@en }'
        )
        sparql.setReturnFormat(JSON)
        bindings = sparql.queryAndConvert()["results"]["bindings"]  # type: ignore[index,call-overload]
        assert [b["theme"]["value"] for b in bindings] == [f"{ID}theme/international-migration"]
    finally:
        server.stop()


def _tree_pss_mib(pid: int) -> float:
    """PSS of a server and all its processes, in MiB (see :func:`tests.proc.memory_kib`)."""
    return memory_kib(process_tree(pid))[1] / 1024


@pytest.mark.skipif(
    not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc for PSS"
)
def test_a_large_answer_streams_in_bounded_memory(tmp_path: Path) -> None:
    rows = 600_000
    data = tmp_path / "many.nt"
    with data.open("w") as out:
        for i in range(rows):
            out.write(
                f"<http://example.org/a-long-enough-item-identifier/{i:07d}> "
                f'<http://example.org/value> "value number {i} of many" .\n'
            )
    # One worker and no added ones, so the same process answers twice.
    server = LiveServer(
        "--workers",
        "1",
        "--max-workers",
        "1",
        "--max-result-bytes",
        str(2**30),
        "--data",
        str(data),
    )
    server.wait(timeout=120)
    try:
        # The search index is built by a fork of the zygote once the graph is loaded: wait for
        # it, so that its memory is not counted as the answer's.
        deadline = time.monotonic() + 120
        search = f"{server.url}/api/search"
        while httpx.get(search, params={"q": "value"}, timeout=30).status_code == 503:
            assert time.monotonic() < deadline, "the search index was never built"
            time.sleep(0.5)
        query = "SELECT ?s ?v WHERE { ?s <http://example.org/value> ?v }"
        # The same answer once first: the worker's caches warm up, and the pages of the graph
        # it shares with its zygote are copied as the scan touches them, so what follows
        # measures only what the answer itself costs.
        with httpx.stream(
            "POST", f"{server.url}/sparql", data={"query": query}, timeout=120
        ) as warm:
            assert warm.status_code == 200
            for _ in warm.iter_bytes():
                pass
        before = _tree_pss_mib(server.process.pid)
        peak = before
        received = lines = 0
        with httpx.stream(
            "POST",
            f"{server.url}/sparql",
            data={"query": query},
            headers={"Accept": "text/csv"},
            timeout=120,
        ) as response:
            assert response.status_code == 200
            assert "content-length" not in response.headers
            sampled = 0.0
            for chunk in response.iter_bytes():
                received += len(chunk)
                lines += chunk.count(b"\n")
                if time.monotonic() - sampled > 0.1:  # reading PSS walks the page tables
                    peak = max(peak, _tree_pss_mib(server.process.pid))
                    sampled = time.monotonic()
            peak = max(peak, _tree_pss_mib(server.process.pid))
        assert lines == rows + 1
        assert received > 40 * 2**20, "the answer should be much larger than the memory bound"
        assert peak - before < 40, (
            f"memory grew by {peak - before:.0f} MiB while streaming {received / 2**20:.0f} MiB"
        )
    finally:
        server.stop()


def test_an_answer_cut_off_half_way_is_an_incomplete_response(tmp_path: Path) -> None:
    """Past the size limit after streaming has begun (the 200 has gone), the response ends
    without its last chunk: clients report an error instead of taking part of the answer, and
    the log says why in one line, with no traceback."""
    import socket

    data = tmp_path / "rows.nt"
    with data.open("w") as out:
        for i in range(60_000):
            out.write(f'<http://example.org/item/{i:06d}> <http://example.org/v> "value {i}" .\n')
    limit = 2 * 2**20  # over the first megabyte a worker sends before the answer streams
    server = LiveServer("--max-result-bytes", str(limit), "--data", str(data)).wait(timeout=120)
    query = "SELECT ?s ?v WHERE { ?s <http://example.org/v> ?v }"
    try:
        sizes: list[int] = []
        with httpx.stream(
            "POST",
            f"{server.url}/sparql",
            data={"query": query},
            headers={"Accept": "text/csv"},
            timeout=60,
        ) as response:
            assert response.status_code == 200
            chunks = response.iter_bytes()
            with pytest.raises(httpx.RemoteProtocolError, match="incomplete"):
                sizes.extend(len(chunk) for chunk in chunks)
        assert 2**20 <= sum(sizes) <= limit

        # On the wire: chunked, and the connection closes with no terminating zero chunk.
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as raw:
            body = f"query={query}".encode()
            raw.sendall(
                b"POST /sparql HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/csv\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            wire = b""
            while part := raw.recv(65536):
                wire += part
        head, _, rest = wire.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert b"transfer-encoding: chunked" in head.lower()
        assert not rest.endswith(b"0\r\n\r\n")

        # The next request on the same server is served normally.
        assert httpx.post(f"{server.url}/sparql", data={"query": "ASK {}"}).status_code == 200
        time.sleep(0.5)
        log = server.output()
        assert log.count("answer cut off after") == 2, log
        assert log.count("POST /sparql 200") == 3, log
        assert log.count(" incomplete\n") == 2, log
        assert f"the answer is larger than the limit of {limit:,} bytes" in log
        assert "Traceback" not in log, log
    finally:
        server.stop()


def test_the_access_log_has_a_line_per_request_and_no_query_text_or_token() -> None:
    """Method, path, status and duration for each request, at info level; never the query text
    (a GET carries it in the query string) nor an update token."""
    import re

    token = "a-secret-update-token-0123456789"
    marker = "querytextthatmustnotbelogged"
    server = LiveServer(env={"ESCAP_KG_UPDATE_TOKEN": token}).wait()
    try:
        # The readiness probe's own line is written just after its answer: wait for it.
        for _ in range(100):
            if server.output().count(" escap_kg.access: ") >= 1:
                break
            time.sleep(0.02)
        before = server.output().count(" escap_kg.access: ")
        query = f'ASK {{ ?s ?p "{marker}" }}'
        assert httpx.get(f"{server.url}/sparql", params={"query": query}).status_code == 200
        update = f'INSERT DATA {{ <http://example.org/x> <http://example.org/y> "{marker}" }}'
        for bearer, status in ((token, 204), ("wrong-token-wrong-token-wrong", 403)):
            response = httpx.post(
                f"{server.url}/sparql",
                content=update,
                headers={
                    "Content-Type": "application/sparql-update",
                    "Authorization": f"Bearer {bearer}",
                },
            )
            assert response.status_code == status
        assert httpx.get(f"{server.url}/nowhere").status_code == 404
        time.sleep(0.3)
        log = server.output()
        lines = [line for line in log.splitlines() if " escap_kg.access: " in line][before:]
        pattern = r"INFO escap_kg\.access: 127\.0\.0\.1 (GET|POST) (\S+) (\d{3}) \d+\.\dms$"
        seen = [re.search(pattern, line) for line in lines]
        assert all(seen), lines
        assert [(m[1], m[2], m[3]) for m in seen if m] == [
            ("GET", "/sparql", "200"),
            ("POST", "/sparql", "204"),
            ("POST", "/sparql", "403"),
            ("GET", "/nowhere", "404"),
        ]
        assert marker not in log
        assert token not in log
        assert "wrong-token" not in log
    finally:
        server.stop()
