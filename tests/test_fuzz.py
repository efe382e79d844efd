"""Fuzzing the request layer: no generated request, however odd, gets a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escap_kg.server import create_app
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph

MAX_EXAMPLES = 300

ROUTES = [
    "/",
    "/sparql",
    "/search",
    "/docs",
    "/openapi.json",
    "/api/queries",
    "/api/queries/01-activities-in-time-order",
    "/api/queries/15-where-in-the-source",
    "/api/queries/nope",
    "/download/escap-kg.ttl",
    "/download/escap-kg.nq",
    "/download/escap-kg.zip",
    "/.well-known/void",
    "/id/activity/fifth-appc",
    "/id/organization/unfpa.ttl",
    "/id/theme/safe-migration",
    "/id/nothing/here",
    "/graph/un-system-chart.ttl",
    "/graph/extra/x",
    "/ontology",
    "/ontology.ttl",
    "/ontology/1.0",
    "/static/pages/site.css",
    "/static/nope.js",
]
KEYS = [
    "query",
    "update",
    "default-graph-uri",
    "named-graph-uri",
    "using-graph-uri",
    "_format",
    "entity",
    "q",
]
ACCEPTS = [
    "*/*",
    "text/html",
    "text/csv",
    "text/turtle",
    "application/sparql-results+json",
    "application/ld+json",
    "application/rdf+xml;q=0.5, text/*;q=0.1",
    "image/png",
    "*/*;q=0",
    ";;;,,,",
    "text/csv;q=abc",
]
CONTENT_TYPES = [
    "application/sparql-query",
    "application/sparql-update",
    "application/x-www-form-urlencoded",
    "application/sparql-query; charset=latin-1",
    "text/plain",
    "multipart/form-data; boundary=zz",
    "application/json",
]
SPARQL_WORDS = [
    "SELECT",
    "ASK",
    "CONSTRUCT",
    "DESCRIBE",
    "WHERE",
    "FROM",
    "NAMED",
    "GRAPH",
    "SERVICE",
    "SILENT",
    "OPTIONAL",
    "UNION",
    "MINUS",
    "FILTER",
    "NOT EXISTS",
    "BIND",
    "AS",
    "VALUES",
    "LIMIT",
    "OFFSET",
    "ORDER BY",
    "GROUP BY",
    "COUNT(*)",
    "PREFIX ex: <http://example.org/>",
    "BASE <http://example.org/>",
    "INSERT DATA",
    "DELETE WHERE",
    "LOAD",
    "CLEAR ALL",
    "DROP",
    "USING",
    "WITH",
    "a",
    ".",
    ";",
    ",",
    "*",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "&&",
    "||",
    "!",
    "/",
    "|",
    "^",
    "^^",
    "=",
    "<",
    ">",
    "?s",
    "?p",
    "?o",
    "$x",
    "<http://127.0.0.1:9/sparql>",
    "<https://w3id.org/escap-kg/id/activity/fifth-appc>",
    "<id/activity/fifth-appc>",
    "<bad iri>",
    "<foo\\u0000>",
    "ex:thing",
    ":x",
    "_:b",
    '"text"',
    '"x"@en',
    '"1"^^<http://www.w3.org/2001/XMLSchema#integer>',
    '"""long"""',
    "'single'",
    '"unterminated',
    "42",
    "-1",
    "1e400",
    "999999999999999999999",
    "true",
    "# comment\n",
]

sparqlish = st.lists(
    st.one_of(st.sampled_from(SPARQL_WORDS), st.text(max_size=8)), max_size=30
).map(" ".join)
texts = st.one_of(sparqlish, st.text(max_size=60))
query_params = st.lists(
    st.tuples(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), texts), max_size=4
)
segments = st.text(
    alphabet=st.sampled_from("abz09-_.~%/:;@!$&'()*+,=é\u2028"), min_size=1, max_size=12
)
paths = st.one_of(
    st.sampled_from(ROUTES),
    st.tuples(st.sampled_from(ROUTES), segments).map(lambda p: p[0].rstrip("/") + "/" + p[1]),
    st.lists(segments, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)),
)
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
bodies = st.one_of(
    st.none(),
    st.binary(max_size=200),
    sparqlish.map(str.encode),
    st.tuples(st.sampled_from(["query", "update"]), sparqlish).map(
        lambda kv: urlencode({kv[0]: kv[1]}).encode()
    ),
)


@pytest.fixture(scope="module")
def client(kg: KnowledgeGraph) -> Iterator[TestClient]:
    app = create_app(Settings(workers=1, query_timeout=5, update_token="f" * 24), kg)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.slow
def test_no_request_gets_a_server_error(client: TestClient) -> None:
    """No answer is a 5xx or shows a traceback, over all MAX_EXAMPLES generated requests."""
    sent: list[str] = []

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"]),
        path=paths,
        params=query_params,
        accept=st.one_of(st.none(), st.sampled_from(ACCEPTS), header_text),
        content_type=st.one_of(st.none(), st.sampled_from(CONTENT_TYPES), header_text),
        authorization=st.one_of(st.none(), header_text, st.just("Bearer " + "f" * 24)),
        body=bodies,
    )
    def one_request(
        method: str,
        path: str,
        params: list[tuple[str, str]],
        accept: str | None,
        content_type: str | None,
        authorization: str | None,
        body: bytes | None,
    ) -> None:
        headers = {
            name: value
            for name, value in [
                ("Accept", accept),
                ("Content-Type", content_type),
                ("Authorization", authorization),
            ]
            if value is not None
        }
        # One leading slash: "//x" would make the client read "x" as a host name.
        url = "/" + path.lstrip("/") + ("?" + urlencode(params) if params else "")
        response = client.request(method, url, headers=headers, content=body)
        sent.append(url)
        assert response.status_code < 500, (method, url, headers, body, response.text[:500])
        if response.status_code >= 400 and method != "HEAD":
            assert "Traceback" not in response.text

    one_request()
    assert len(sent) >= MAX_EXAMPLES, f"only {len(sent)} requests were generated"
