"""The result cache and entity tags: repeated work answered at once, never a stale answer."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from escap_kg.cache import ResultCache, cacheable, entity_tag, matches
from escap_kg.cli import app
from tests.conftest import LiveServer

TOKEN = "a-result-cache-test-token"
JSON = "application/sparql-results+json"
COUNT = "SELECT (COUNT(*) AS ?n) WHERE { ?s <http://example.org/cached> ?o }"


def count(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    return int(response.json()["results"]["bindings"][0]["n"]["value"])


def get(client: httpx.Client, query: str, **headers: str) -> httpx.Response:
    return client.get("/sparql", params={"query": query}, headers={"Accept": JSON, **headers})


def insert(client: httpx.Client, n: int) -> None:
    response = client.post(
        "/sparql",
        content=f"INSERT DATA {{ <http://example.org/s{n}> <http://example.org/cached> {n} }}",
        headers={"Content-Type": "application/sparql-update", "Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 204, response.text


# The cache on its own -------------------------------------------------------------------------


def test_the_least_recently_used_answers_go_first_past_the_bound() -> None:
    cache = ResultCache(3 * 1024)
    for key in "abc":
        cache.put(1, key, b"x" * 500, "text/plain")
    assert cache.get(1, "a") is not None  # now the most recently used
    cache.put(1, "d", b"x" * 500, "text/plain")
    assert cache.size <= 3 * 1024
    assert cache.get(1, "b") is None, "the least recently used went first"
    assert [cache.get(1, k) is not None for k in "acd"] == [True, True, True]


def test_an_answer_over_the_bound_is_not_kept_and_zero_keeps_nothing() -> None:
    cache = ResultCache(1024)
    entry = cache.put(1, "big", b"x" * 2048, "text/plain")
    assert entry.etag == entity_tag(b"x" * 2048)
    assert cache.get(1, "big") is None
    off = ResultCache(0)
    off.put(1, "a", b"small", "text/plain")
    assert off.get(1, "a") is None
    assert len(off) == 0


def test_a_streamed_answer_is_kept_once_it_ends_whole_within_its_limit() -> None:
    cache = ResultCache(8 * 1024)
    assert cache.streamed_limit == 2 * 1024
    whole = cache.collector(1, "whole", "text/csv")
    assert whole is not None
    for piece in (b"a" * 600, b"b" * 600):
        whole.add(piece)
    assert cache.get(1, "whole") is None, "not before it has ended"
    whole.done()
    kept = cache.get(1, "whole")
    assert kept is not None
    assert kept.body == b"a" * 600 + b"b" * 600
    assert dict(kept.fields)[b"content-type"] == b"text/csv; charset=utf-8"
    assert dict(kept.fields)[b"content-length"] == b"1200"
    too_big = cache.collector(1, "too big", "text/csv")
    cut_off = cache.collector(1, "cut off", "text/csv")
    assert too_big is not None
    assert cut_off is not None
    too_big.add(b"x" * 3000)
    too_big.done()
    cut_off.add(b"y" * 100)
    cut_off.drop()  # the stream stopped short
    cut_off.done()
    assert cache.get(1, "too big") is None
    assert cache.get(1, "cut off") is None
    assert cache.gathering == 0, "every reservation returned"


def test_answers_being_gathered_never_reserve_more_than_the_bound() -> None:
    cache = ResultCache(8 * 1024)
    gathering = [cache.collector(1, n, "text/csv") for n in range(5)]
    assert [c is not None for c in gathering] == [True, True, True, True, False]
    first = gathering[0]
    assert first is not None
    first.drop()
    assert cache.collector(1, "again", "text/csv") is not None
    assert ResultCache(0).collector(1, "off", "text/csv") is None


def test_a_requests_bytes_find_its_answer_until_the_version_changes() -> None:
    cache = ResultCache(64 * 1024)
    raw = ("POST", b"", b"query=ASK%20%7B%7D", b"application/x-www-form-urlencoded", None)
    assert cache.recall(1, raw) is None
    cache.put(1, "job", b"yes", "text/plain")
    cache.alias(raw, "job")
    kept = cache.recall(1, raw)
    assert kept is not None
    assert kept.body == b"yes"
    assert cache.recall(2, raw) is None, "a new version of the store forgets the bytes too"
    cache.put(2, "job", b"yes", "text/plain")
    assert cache.recall(2, raw) is None
    huge = ("POST", b"", b"x" * 9000, None, None)
    cache.alias(huge, "job")
    assert cache.recall(2, huge) is None, "bytes over an eighth of the bound are not remembered"


def test_a_new_version_of_the_store_drops_every_answer() -> None:
    cache = ResultCache(1024 * 1024)
    cache.put(1, "a", b"old", "text/plain")
    assert cache.get(2, "a") is None
    assert (len(cache), cache.size) == (0, 0)


@pytest.mark.parametrize(
    ("query", "kept"),
    [
        ("SELECT ?s WHERE { ?s ?p ?o }", True),
        ("SELECT (NOW() AS ?t) WHERE {}", False),
        ("SELECT (rand () AS ?r) WHERE {}", False),
        ("SELECT (STRUUID() AS ?u) WHERE {}", False),
        ("SELECT * WHERE { SERVICE <http://example.org/sparql> { ?s ?p ?o } }", False),
        ("SELECT ?bnode WHERE { ?s ?bnode ?o }", True),
    ],
)
def test_answers_that_may_change_between_runs_are_not_kept(query: str, kept: bool) -> None:
    assert cacheable(query) is kept


def test_if_none_match_names_a_tag_weakly_or_with_a_star() -> None:
    assert matches('"a", "b"', '"b"')
    assert matches('W/"b"', '"b"')
    assert matches("*", '"b"')
    assert not matches('"a"', '"b"')
    assert not matches(None, '"b"')


# A server in memory ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    live = LiveServer("--query-timeout", "10", env={"ESCAP_KG_UPDATE_TOKEN": TOKEN}).wait()
    yield live
    live.stop()


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def test_an_update_through_the_protocol_is_seen_by_the_same_get_at_once(
    client: httpx.Client,
) -> None:
    before = count(get(client, COUNT))
    assert count(get(client, COUNT)) == before  # answered from the cache
    insert(client, 1)
    assert count(get(client, COUNT)) == before + 1
    insert(client, 2)
    assert count(get(client, COUNT)) == before + 2


def test_a_get_with_the_answers_tag_gets_304_until_the_store_changes(
    client: httpx.Client,
) -> None:
    query = "SELECT ?o WHERE { ?s <http://example.org/tagged> ?o }"
    first = get(client, query)
    tag = first.headers["etag"]
    assert tag.startswith('"')
    again = get(client, query, **{"If-None-Match": tag})
    assert again.status_code == 304, again.text
    assert again.content == b""
    assert again.headers["etag"] == tag
    other = get(client, query, **{"If-None-Match": '"something-else"'})
    assert (other.status_code, other.content) == (200, first.content)

    response = client.post(
        "/sparql",
        content="INSERT DATA { <http://example.org/t> <http://example.org/tagged> 7 }",
        headers={"Content-Type": "application/sparql-update", "Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 204
    changed = get(client, query, **{"If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != tag
    assert "7" in changed.text


def test_each_format_is_kept_apart(client: httpx.Client) -> None:
    query = "SELECT ?x WHERE { VALUES ?x { 1 2 } }"
    as_json = get(client, query)
    as_csv = client.get("/sparql", params={"query": query}, headers={"Accept": "text/csv"})
    assert as_json.headers["content-type"].startswith(JSON)
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text.splitlines() == ["x", "1", "2"]
    assert get(client, query).content == as_json.content


def test_the_dataset_of_the_request_is_part_of_the_key(client: httpx.Client) -> None:
    query = "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"
    whole = count(get(client, query))
    empty = client.get(
        "/sparql",
        params={"query": query, "default-graph-uri": "http://example.org/no-such-graph"},
        headers={"Accept": JSON},
    )
    assert count(empty) == 0
    assert count(get(client, query)) == whole > 0


def test_an_answer_over_a_mib_streams_and_is_kept_once_it_has_ended(
    client: httpx.Client,
) -> None:
    query = "SELECT ?s ?p ?o ?n WHERE { ?s ?p ?o VALUES ?n { 1 2 3 4 } } # streamed, kept"
    first = get(client, query)
    assert first.status_code == 200, first.text
    assert len(first.content) > 1024 * 1024, "the query must give an answer that streams"
    assert "etag" not in first.headers, "streamed: its tag is not known before it ends"
    again = get(client, query)
    assert again.content == first.content
    assert again.headers["content-length"] == str(len(first.content))
    assert again.headers["etag"].startswith('"')
    assert again.headers["x-content-type-options"] == "nosniff"
    assert get(client, query, **{"If-None-Match": again.headers["etag"]}).status_code == 304


def test_the_same_post_is_recalled_and_another_accept_is_another_answer(
    client: httpx.Client,
) -> None:
    query = "SELECT ?o WHERE { ?s <http://example.org/posted> ?o } # recalled"

    def post(accept: str) -> httpx.Response:
        response = client.post("/sparql", data={"query": query}, headers={"Accept": accept})
        assert response.status_code == 200, response.text
        return response

    first, again = post(JSON), post(JSON)
    assert again.content == first.content
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["content-security-policy"] == first.headers["content-security-policy"]
    as_csv = post("text/csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.content.startswith(b"o\r\n")
    insert_posted = client.post(
        "/sparql",
        content="INSERT DATA { <http://example.org/p> <http://example.org/posted> 7 }",
        headers={"Content-Type": "application/sparql-update", "Authorization": f"Bearer {TOKEN}"},
    )
    assert insert_posted.status_code == 204, insert_posted.text
    assert b'"7"' in post(JSON).content, "the same bytes after an update are run again"


def test_errors_are_not_kept(client: httpx.Client) -> None:
    broken = "SELECT ?x WHERE { ?x ?y }"
    for _ in range(2):
        response = get(client, broken)
        assert response.status_code == 400
        assert "etag" not in response.headers


def test_catalogue_answers_and_pages_get_tags_and_304(client: httpx.Client) -> None:
    for path in ("/api/queries/03-partners-of-escap", "/api/queries", "/"):
        first = client.get(path)
        assert first.status_code == 200, (path, first.text)
        tag = first.headers["etag"]
        again = client.get(path, headers={"If-None-Match": tag})
        assert again.status_code == 304, path
        assert again.content == b""
    page = client.get("/", headers={"Accept": "text/html"})
    tag = page.headers["etag"]
    insert(client, 3)
    assert client.get("/", headers={"Accept": "text/html", "If-None-Match": tag}).status_code == 200


def test_without_the_cache_answers_are_still_tagged() -> None:
    live = LiveServer("--cache-bytes", "0").wait()
    try:
        with httpx.Client(base_url=live.url) as client:
            first = get(client, "ASK { ?s ?p ?o }")
            assert first.status_code == 200
            tagged = {"If-None-Match": first.headers["etag"]}
            assert get(client, "ASK { ?s ?p ?o }", **tagged).status_code == 304
    finally:
        live.stop()


def test_a_negative_cache_size_is_refused_clearly() -> None:
    result = CliRunner().invoke(app, ["serve", "--cache-bytes", "-1"])
    assert result.exit_code == 2, result.output
    assert "cache" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


# A server on disk, and a load by another process -----------------------------------------------


def test_a_load_into_the_served_store_is_seen_by_the_same_get_at_once(tmp_path: Path) -> None:
    database = tmp_path / "db"
    first = tmp_path / "first.nt"
    first.write_text('<http://example.org/a> <http://example.org/cached> "1" .\n')
    load = [sys.executable, "-m", "escap_kg", "load", "--db", str(database)]
    assert subprocess.run([*load, str(first)], capture_output=True, check=False).returncode == 0
    live = LiveServer("--db", str(database)).wait()
    try:
        with httpx.Client(base_url=live.url, timeout=30) as client:
            assert count(get(client, COUNT)) == 1
            tag = get(client, COUNT).headers["etag"]
            second = tmp_path / "second.nt"
            second.write_text('<http://example.org/b> <http://example.org/cached> "2" .\n')
            done = subprocess.run([*load, str(second)], capture_output=True, text=True, check=False)
            assert done.returncode == 0, done.stderr
            after = get(client, COUNT, **{"If-None-Match": tag})
            assert count(after) == 2
    finally:
        live.stop()
