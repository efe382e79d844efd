"""The SPARQL 1.1 Protocol, the catalogue API, downloads and descriptions, through TestClient.

The cases follow the W3C protocol test suite (w3c/rdf-tests: sparql/sparql11/protocol), named
after its tests where one matches.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import pytest
import rdflib
from fastapi.testclient import TestClient

from escap_kg.server import create_app
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph

EKG = "https://w3id.org/escap-kg/ontology#"
ID = "https://w3id.org/escap-kg/id/"
GRAPH = "https://w3id.org/escap-kg/graph/"
ENTAILED = f"{GRAPH}entailed"
SEMINARS = f"SELECT ?a WHERE {{ ?a a <{EKG}Seminar> }}"
TOKEN = "a-test-token-of-some-length"
SLOW = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }"


@pytest.fixture(scope="module")
def client(kg: KnowledgeGraph) -> Iterator[TestClient]:
    settings = Settings(workers=2, query_timeout=10)
    with TestClient(create_app(settings, kg)) as test_client:
        yield test_client


def rows(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body)))


# Query operations ------------------------------------------------------------------------------


def test_query_get(client: TestClient) -> None:
    response = client.get("/sparql", params={"query": SEMINARS})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/sparql-results+json")
    bindings = response.json()["results"]["bindings"]
    assert [b["a"]["value"] for b in bindings] == [
        f"{ID}activity/seminar-2002-gender-equality-trafficking"
    ]


def test_query_post_form(client: TestClient) -> None:
    response = client.post(
        "/sparql",
        content=f"query={quote(SEMINARS)}",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/csv"},
    )
    assert response.status_code == 200
    assert rows(response.text) == [
        ["a"],
        [f"{ID}activity/seminar-2002-gender-equality-trafficking"],
    ]


def test_query_post_direct(client: TestClient) -> None:
    response = client.post(
        "/sparql", content="ASK {}", headers={"Content-Type": "application/sparql-query"}
    )
    assert response.status_code == 200
    assert response.json() == {"head": {}, "boolean": True}


def test_form_body_is_decoded_once(client: TestClient) -> None:
    """A literal '%41' in the query must reach the engine as '%41', not as 'A'."""
    query = 'SELECT ?x WHERE { BIND("100%41" AS ?x) }'
    body = "query=" + quote(query, safe="")
    response = client.post(
        "/sparql",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/csv"},
    )
    assert rows(response.text) == [["x"], ["100%41"]]


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, "application/sparql-results+json"),
        ("*/*", "application/sparql-results+json"),
        ("application/sparql-results+json", "application/sparql-results+json"),
        ("application/sparql-results+xml", "application/sparql-results+xml"),
        ("text/csv", "text/csv"),
        ("text/tab-separated-values", "text/tab-separated-values"),
        ("application/json", "application/json"),
        ("text/csv;q=0.5, application/sparql-results+xml;q=0.9", "application/sparql-results+xml"),
        ("text/*;q=0.8, application/sparql-results+json;q=0.1", "text/csv"),
        ("text/csv;q=0, */*;q=0.1", "application/sparql-results+json"),
    ],
)
def test_select_content_negotiation(
    client: TestClient, accept: str | None, media_type: str
) -> None:
    headers = {"Accept": accept} if accept else {}
    response = client.get("/sparql", params={"query": SEMINARS}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == media_type
    assert "Accept" in response.headers["vary"]
    assert "seminar-2002-gender-equality-trafficking" in response.text


def test_select_tsv_and_xml_are_well_formed(client: TestClient) -> None:
    tsv = client.get(
        "/sparql", params={"query": SEMINARS}, headers={"Accept": "text/tab-separated-values"}
    )
    assert tsv.text.splitlines() == [
        "?a",
        f"<{ID}activity/seminar-2002-gender-equality-trafficking>",
    ]
    xml = client.get(
        "/sparql", params={"query": SEMINARS}, headers={"Accept": "application/sparql-results+xml"}
    )
    from xml.etree import ElementTree

    root = ElementTree.fromstring(xml.content)  # noqa: S314 - our own server's answer
    ns = {"r": "http://www.w3.org/2005/sparql-results#"}
    assert [u.text for u in root.findall(".//r:uri", ns)] == [
        f"{ID}activity/seminar-2002-gender-equality-trafficking"
    ]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/sparql-results+json", '"boolean":true'),
        ("application/sparql-results+xml", "<boolean>true</boolean>"),
        ("text/csv", "true"),
        ("text/tab-separated-values", "true"),
    ],
)
def test_query_content_type_ask(client: TestClient, accept: str, expected: str) -> None:
    response = client.get(
        "/sparql", params={"query": "ASK { ?s ?p ?o }"}, headers={"Accept": accept}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == accept
    assert expected in response.text


CONSTRUCT = f"CONSTRUCT {{ ?a a <{EKG}Seminar> }} WHERE {{ ?a a <{EKG}Seminar> }}"
DESCRIBE = f"DESCRIBE <{ID}activity/fifth-appc>"


@pytest.mark.parametrize(
    ("accept", "media_type", "rdflib_format"),
    [
        (None, "text/turtle", "turtle"),
        ("*/*", "text/turtle", "turtle"),
        ("text/turtle", "text/turtle", "turtle"),
        ("application/n-triples", "application/n-triples", "nt"),
        ("application/rdf+xml", "application/rdf+xml", "xml"),
        ("application/ld+json", "application/ld+json", "json-ld"),
    ],
)
@pytest.mark.parametrize("query", [CONSTRUCT, DESCRIBE], ids=["construct", "describe"])
def test_query_content_type_graph(
    client: TestClient, query: str, accept: str | None, media_type: str, rdflib_format: str
) -> None:
    headers = {"Accept": accept} if accept else {}
    response = client.get("/sparql", params={"query": query}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == media_type
    graph = rdflib.Graph().parse(data=response.content, format=rdflib_format)
    assert len(graph) > 0
    if query == DESCRIBE:
        assert (rdflib.URIRef(f"{ID}activity/fifth-appc"), None, None) in graph


def test_not_acceptable(client: TestClient) -> None:
    response = client.get("/sparql", params={"query": SEMINARS}, headers={"Accept": "image/png"})
    assert response.status_code == 406
    assert "application/sparql-results+json" in response.text
    graph = client.get("/sparql", params={"query": CONSTRUCT}, headers={"Accept": "text/csv"})
    assert graph.status_code == 406


# Datasets ---------------------------------------------------------------------------------------

COUNT_TRIPLES = "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"
COUNT_ENTAILED = f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{ENTAILED}> {{ ?s ?p ?o }} }}"


def count(client: TestClient, query: str, params: dict[str, list[str]] | None = None) -> int:
    response = client.get(
        "/sparql", params={"query": query, **(params or {})}, headers={"Accept": "text/csv"}
    )
    assert response.status_code == 200, response.text
    return int(rows(response.text)[1][0])


def test_default_graph_is_the_union(client: TestClient, kg: KnowledgeGraph) -> None:
    # Every graph: the stated ones and the entailed graph the server derives from them, whose
    # triples no stated graph repeats. A statement that two paragraphs both make is in the
    # graph of each, and the engine's union counts it once per graph.
    entailed = count(client, COUNT_ENTAILED)
    assert entailed > 0
    assert count(client, COUNT_TRIPLES) == len(kg.quads()) + entailed


def test_query_dataset_default_graphs(client: TestClient, kg: KnowledgeGraph) -> None:
    sizes = kg.triples_per_graph()
    one = f"{GRAPH}paragraph-4"
    two = f"{GRAPH}paragraph-5"
    assert count(client, COUNT_TRIPLES, {"default-graph-uri": [one]}) == sizes[one]
    both = count(client, COUNT_TRIPLES, {"default-graph-uri": [one, two]})
    assert both == sizes[one] + sizes[two]


def test_query_dataset_named_graphs(client: TestClient, kg: KnowledgeGraph) -> None:
    query = "SELECT (COUNT(DISTINCT ?g) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }"
    # The 20 graphs of our files, and the entailed graph the server adds.
    assert len(kg.triples_per_graph()) == 20
    assert count(client, query) == 20 + 1
    graphs = client.get(
        "/sparql",
        params={"query": "SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }"},
        headers={"Accept": "text/csv"},
    )
    assert {row[0] for row in rows(graphs.text)[1:]} == {*kg.triples_per_graph(), ENTAILED}
    named = {"named-graph-uri": [f"{GRAPH}paragraph-1", f"{GRAPH}paragraph-2"]}
    assert count(client, query, named) == 2
    # With only named graphs given, the default graph is empty.
    assert count(client, COUNT_TRIPLES, named) == 0


def test_from_selects_among_held_graphs(client: TestClient, kg: KnowledgeGraph) -> None:
    sizes = kg.triples_per_graph()
    query = f"SELECT (COUNT(*) AS ?n) FROM <{GRAPH}paragraph-3> WHERE {{ ?s ?p ?o }}"
    assert count(client, query) == sizes[f"{GRAPH}paragraph-3"]
    named = (
        f"SELECT (COUNT(*) AS ?n) FROM NAMED <{GRAPH}paragraph-3> "
        "WHERE { GRAPH ?g { ?s ?p ?o } }"
    )
    assert count(client, named) == sizes[f"{GRAPH}paragraph-3"]


def test_protocol_dataset_overrides_from(client: TestClient, kg: KnowledgeGraph) -> None:
    sizes = kg.triples_per_graph()
    query = f"SELECT (COUNT(*) AS ?n) FROM <{GRAPH}paragraph-3> WHERE {{ ?s ?p ?o }}"
    given = {"default-graph-uri": [f"{GRAPH}paragraph-4"]}
    assert count(client, query, given) == sizes[f"{GRAPH}paragraph-4"]


@pytest.mark.parametrize("target", ["file:///etc/passwd", "http://127.0.0.1:9/data.ttl"])
def test_from_never_reads_files_or_the_network(client: TestClient, target: str) -> None:
    assert count(client, f"SELECT (COUNT(*) AS ?n) FROM <{target}> WHERE {{ ?s ?p ?o }}") == 0
    assert count(client, COUNT_TRIPLES, {"default-graph-uri": [target]}) == 0


def test_service_is_refused(client: TestClient) -> None:
    query = "SELECT * WHERE { SERVICE <http://127.0.0.1:9/sparql> { ?s ?p ?o } }"
    response = client.get("/sparql", params={"query": query})
    assert response.status_code == 400
    assert "SERVICE" in response.text


def test_keywords_inside_strings_and_iris_are_not_operations(client: TestClient) -> None:
    query = 'SELECT ?x WHERE { BIND("SERVICE LOAD FROM" AS ?x) } # SERVICE in a comment'
    response = client.get("/sparql", params={"query": query}, headers={"Accept": "text/csv"})
    assert response.status_code == 200
    assert rows(response.text) == [["x"], ["SERVICE LOAD FROM"]]


def test_base_iri_resolves_relative_iris(client: TestClient) -> None:
    response = client.get("/sparql", params={"query": "ASK { <id/activity/fifth-appc> ?p ?o }"})
    assert response.json()["boolean"] is True


# Errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT ?x WHERE { ?x ?p }", "malformed query: line 1, column"),
        ("SELEC ?x WHERE { ?x ?p ?o }", "malformed query"),
        ('SELECT ?x WHERE { ?x ?p "unterminated }', "unterminated string"),
        ("", "malformed query"),
        ("PREFIX ex: <http://example.org/>", "malformed query"),
    ],
)
def test_bad_query_syntax(client: TestClient, query: str, message: str) -> None:
    response = client.get("/sparql", params={"query": query})
    assert response.status_code == 400
    assert message in response.text
    assert "Traceback" not in response.text


def test_bad_multiple_queries(client: TestClient) -> None:
    response = client.get("/sparql?query=ASK%20%7B%7D&query=SELECT%20%2A%20%7B%7D")
    assert response.status_code == 400
    assert "more than one 'query'" in response.text


def test_bad_query_method(client: TestClient) -> None:
    response = client.put("/sparql?query=ASK%20%7B%7D", content=b"")
    assert response.status_code == 405


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("text/plain", b"ASK {}", 415),
        (None, b"query=ASK%20%7B%7D", 415),
        (None, b"ASK {}", 415),
        ("application/sparql-query; charset=UTF-16", "ASK {}".encode("utf-16"), 400),
        ("application/sparql-query", b'ASK { ?s ?p "\xff\xfe" }', 400),
        ("application/x-www-form-urlencoded", b"query=ASK%20%7B%7D%FF", 400),
        ("application/x-www-form-urlencoded", b"query=ASK \xff", 400),
        ("application/x-www-form-urlencoded", b"nothing=here", 400),
        ("application/sparql-update", "CLEAR ALL".encode("utf-16"), 400),
    ],
    ids=[
        "wrong-media-type",
        "missing-form-type",
        "missing-direct-type",
        "utf16-charset",
        "non-utf8-direct",
        "non-utf8-percent-encoded",
        "non-utf8-form",
        "missing-query",
        "update-non-utf8",
    ],
)
def test_bad_requests(
    client: TestClient, content_type: str | None, body: bytes, status: int
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/sparql", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.text.strip()
    assert "Traceback" not in response.text


def test_query_and_update_together(client: TestClient) -> None:
    response = client.post(
        "/sparql",
        content="query=ASK%20%7B%7D&update=CLEAR%20ALL",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400


def test_request_body_limit(kg: KnowledgeGraph) -> None:
    settings = Settings(workers=1, max_body_bytes=1000)
    with TestClient(create_app(settings, kg)) as small:
        big = "ASK {}" + " " * 2000
        response = small.post(
            "/sparql", content=big, headers={"Content-Type": "application/sparql-query"}
        )
        assert response.status_code == 413
        assert "1,000 bytes" in response.text


def test_result_size_limit(kg: KnowledgeGraph) -> None:
    with TestClient(create_app(Settings(workers=1, max_result_bytes=2000), kg)) as small:
        response = small.get("/sparql", params={"query": "SELECT * WHERE { ?s ?p ?o }"})
        assert response.status_code == 413
        assert "larger than the limit of 2,000 bytes" in response.text
        assert small.get("/sparql", params={"query": "ASK {}"}).status_code == 200


def test_time_limit_stops_the_query_and_the_worker_is_replaced(kg: KnowledgeGraph) -> None:
    app = create_app(Settings(workers=1, query_timeout=1), kg)
    with TestClient(app) as short:
        engine = app.state.escap.engine
        before = engine.pids()
        response = short.get("/sparql", params={"query": SLOW})
        assert response.status_code == 503
        assert "time limit of 1 s" in response.text
        # The next query is answered by the replacement worker.
        assert short.get("/sparql", params={"query": "ASK {}"}).status_code == 200
        assert engine.killed == 1
        assert engine.pids() != before


# Update ---------------------------------------------------------------------------------------

INSERT = f'INSERT DATA {{ GRAPH <{GRAPH}extra-test> {{ <{ID}activity/x> <{EKG}keyIssue> "y" }} }}'
ASK_INSERTED = f"ASK {{ <{ID}activity/x> <{EKG}keyIssue> ?o }}"


@pytest.fixture
def writable(kg: KnowledgeGraph) -> Iterator[TestClient]:
    fresh = KnowledgeGraph.from_files(kg.files, kg.settings)
    with TestClient(create_app(Settings(workers=2, update_token=TOKEN), fresh)) as test_client:
        yield test_client


def ask(client: TestClient, query: str) -> bool:
    response = client.get("/sparql", params={"query": query})
    assert response.status_code == 200, response.text
    return bool(response.json()["boolean"])


def test_updates_are_refused_without_a_configured_token(client: TestClient) -> None:
    response = client.post(
        "/sparql",
        content=INSERT,
        headers={"Content-Type": "application/sparql-update", "Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 403
    assert "disabled" in response.text
    assert not ask(client, ASK_INSERTED)


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), ("Basic dXNlcjpwYXNz", 401), ("Bearer wrong-token-of-some-length", 403)],
)
def test_update_needs_the_token(
    writable: TestClient, authorization: str | None, status: int
) -> None:
    headers = {"Content-Type": "application/sparql-update"}
    if authorization:
        headers["Authorization"] = authorization
    response = writable.post("/sparql", content=INSERT, headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert not ask(writable, ASK_INSERTED)


def test_update_post_direct_and_form(writable: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = writable.post(
        "/sparql", content=INSERT, headers={"Content-Type": "application/sparql-update", **auth}
    )
    assert response.status_code == 204, response.text
    assert ask(writable, ASK_INSERTED)
    # Every worker sees it: ask more times than there are workers.
    assert all(ask(writable, ASK_INSERTED) for _ in range(4))
    delete = f"DELETE WHERE {{ GRAPH ?g {{ <{ID}activity/x> ?p ?o }} }}"
    form = writable.post(
        "/sparql",
        content="update=" + quote(delete, safe=""),
        headers={"Content-Type": "application/x-www-form-urlencoded", **auth},
    )
    assert form.status_code == 204, form.text
    assert not any(ask(writable, ASK_INSERTED) for _ in range(4))


def test_insert_data_into_the_default_graph(writable: TestClient) -> None:
    """An update's default graph is the store's own; queries see it in the union."""
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/sparql-update"}
    plain = f'INSERT DATA {{ <{ID}activity/x> <{EKG}keyIssue> "in the default graph" }}'
    assert writable.post("/sparql", content=plain, headers=auth).status_code == 204
    assert all(ask(writable, ASK_INSERTED) for _ in range(4))


def test_failing_update_changes_nothing(writable: TestClient, kg: KnowledgeGraph) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/sparql-update"}
    before = count(writable, COUNT_TRIPLES)
    failing = f"{INSERT} ; CREATE GRAPH <{GRAPH}paragraph-1>"
    response = writable.post("/sparql", content=failing, headers=auth)
    assert response.status_code == 400
    assert "already exists" in response.text
    assert count(writable, COUNT_TRIPLES) == before
    assert not ask(writable, ASK_INSERTED)


def test_update_as_query_and_query_as_update_are_refused(writable: TestClient) -> None:
    as_query = writable.get("/sparql", params={"query": INSERT})
    assert as_query.status_code == 400
    assert "send it as 'update'" in as_query.text
    via_get = writable.get("/sparql", params={"update": INSERT})
    assert via_get.status_code == 400
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/sparql-update"}
    as_update = writable.post("/sparql", content="ASK {}", headers=auth)
    assert as_update.status_code == 400
    assert not ask(writable, ASK_INSERTED)


def test_load_is_refused(writable: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/sparql-update"}
    response = writable.post("/sparql", content="LOAD <http://127.0.0.1:9/x.ttl>", headers=auth)
    assert response.status_code == 400
    assert "LOAD" in response.text


def test_update_dataset_parameters(writable: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/sparql-update"}
    target = f"{GRAPH}extra-copy"
    update = (
        f"INSERT {{ GRAPH <{target}> {{ ?s <{EKG}keyIssue> ?o }} }} "
        f"WHERE {{ ?s <{EKG}keyIssue> ?o }}"
    )
    source = f"{GRAPH}paragraph-4"
    response = writable.post(
        f"/sparql?using-graph-uri={quote(source, safe='')}", content=update, headers=auth
    )
    assert response.status_code == 204, response.text
    assert count(writable, COUNT_TRIPLES, {"default-graph-uri": [target]}) == 1
    conflict = writable.post(
        f"/sparql?using-graph-uri={quote(source, safe='')}",
        content=f"WITH <{source}> DELETE {{ ?s ?p ?o }} WHERE {{ ?s ?p ?o }}",
        headers=auth,
    )
    assert conflict.status_code == 400
    assert "names its own dataset" in conflict.text


def test_update_base_uri(writable: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/sparql-update"}
    update = (
        "CLEAR SILENT GRAPH <http://example.org/protocol-base-test/> ; "
        "INSERT DATA { GRAPH <http://example.org/protocol-base-test/> "
        "{ <http://example.org/s> <http://example.org/p> <test> } }"
    )
    assert writable.post("/sparql", content=update, headers=auth).status_code == 204
    query = (
        "SELECT ?o WHERE { GRAPH <http://example.org/protocol-base-test/> "
        "{ <http://example.org/s> <http://example.org/p> ?o } }"
    )
    answer = writable.get("/sparql", params={"query": query}, headers={"Accept": "text/csv"})
    value = rows(answer.text)[1][0]
    assert value != "test"
    assert value.startswith("https://w3id.org/escap-kg/")


# Service description, query UI, CORS ----------------------------------------------------------

SD = rdflib.Namespace("http://www.w3.org/ns/sparql-service-description#")


@pytest.mark.parametrize(
    ("accept", "rdflib_format"),
    [
        ("text/turtle", "turtle"),
        ("application/ld+json", "json-ld"),
        ("application/rdf+xml", "xml"),
        (None, "turtle"),
        ("*/*", "turtle"),
        ("text/turtle;q=0.5, application/rdf+xml", "xml"),
    ],
)
def test_service_description(
    client: TestClient, kg: KnowledgeGraph, accept: str | None, rdflib_format: str
) -> None:
    headers = {"Accept": accept} if accept else {}
    response = client.get("/sparql", headers=headers)
    assert response.status_code == 200
    graph = rdflib.Graph().parse(data=response.content, format=rdflib_format)
    service = next(graph.subjects(rdflib.RDF.type, SD.Service))
    assert (service, SD.endpoint, rdflib.URIRef("http://testserver/sparql")) in graph
    assert (service, SD.feature, SD.UnionDefaultGraph) in graph
    assert (service, SD.feature, SD.BasicFederatedQuery) not in graph
    assert (service, SD.supportedLanguage, SD.SPARQL11Query) in graph
    assert (service, SD.supportedLanguage, SD.SPARQL11Update) not in graph
    # Each named graph with its size: those of our files, and the entailed graph, which is a
    # named graph of the endpoint too, though the downloads leave it out.
    sizes = {
        str(graph.value(named, SD.name)): graph.value(
            graph.value(named, SD.graph), rdflib.VOID.triples
        ).toPython()
        for named in graph.subjects(rdflib.RDF.type, SD.NamedGraph)
    }
    assert sizes == {**kg.triples_per_graph(), ENTAILED: count(client, COUNT_ENTAILED)}
    formats = set(graph.objects(service, SD.resultFormat))
    assert rdflib.URIRef("http://www.w3.org/ns/formats/SPARQL_Results_TSV") in formats


def test_browser_gets_the_query_ui(client: TestClient) -> None:
    response = client.get("/sparql", headers={"Accept": "text/html,*/*;q=0.8"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "01-activities-in-time-order" in response.text


def test_cors_allows_any_origin_without_credentials(client: TestClient) -> None:
    response = client.get(
        "/sparql", params={"query": "ASK {}"}, headers={"Origin": "https://example.org"}
    )
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
    preflight = client.options(
        "/sparql",
        headers={
            "Origin": "https://example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "POST" in preflight.headers["access-control-allow-methods"]


# Catalogue API ----------------------------------------------------------------------------------


def test_api_lists_the_catalogue(client: TestClient) -> None:
    listing = client.get("/api/queries").json()
    assert len(listing) == 17
    first = listing[0]
    assert first["id"] == "01-activities-in-time-order"
    assert first["question"].endswith("?")
    assert first["link"] == "http://testserver/api/queries/01-activities-in-time-order"
    where = next(q for q in listing if q["id"] == "15-where-in-the-source")
    assert where["parameters"][0]["name"] == "entity"


def test_api_runs_a_query_as_json_and_csv(client: TestClient) -> None:
    as_json = client.get("/api/queries/01-activities-in-time-order")
    assert as_json.status_code == 200
    assert as_json.headers["content-type"].startswith("application/sparql-results+json")
    assert len(as_json.json()["results"]["bindings"]) == 4
    as_csv = client.get("/api/queries/01-activities-in-time-order", headers={"Accept": "text/csv"})
    table = rows(as_csv.text)
    assert table[0][0] == "activity"
    assert len(table) == 5
    spreadsheet = client.get("/api/queries/01-activities-in-time-order?_format=csv")
    assert spreadsheet.text == as_csv.text
    assert "filename=" in spreadsheet.headers["content-disposition"]


def test_api_binds_parameters_as_terms(client: TestClient) -> None:
    sweden = f"{ID}country/sweden"
    response = client.get(
        "/api/queries/15-where-in-the-source",
        params={"entity": sweden},
        headers={"Accept": "text/csv"},
    )
    table = rows(response.text)[1:]
    assert table
    assert {r[0] for r in table} == {sweden}
    hostile = client.get("/api/queries/15-where-in-the-source", params={"entity": sweden + "> } #"})
    assert hostile.status_code == 400
    assert "not an absolute IRI" in hostile.text


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/api/queries/99-nothing", 404, "no catalogue query"),
        ("/api/queries/01-activities-in-time-order?bogus=1", 400, "no parameter 'bogus'"),
        ("/api/queries/01-activities-in-time-order?_format=xls", 400, "_format must be one of"),
    ],
)
def test_api_errors(client: TestClient, path: str, status: int, message: str) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert message in response.text


def test_api_construct_query(client: TestClient) -> None:
    response = client.get("/api/queries/16-fifth-appc-neighbourhood")
    assert response.headers["content-type"].startswith("text/turtle")
    assert len(rdflib.Graph().parse(data=response.text, format="turtle")) > 10


def test_openapi_documents_the_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/queries" in spec["paths"]
    assert "/api/queries/{query_id}" in spec["paths"]
    assert "/sparql" in spec["paths"]


# Downloads and VoID -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "media_type", "rdflib_format"),
    [
        ("ttl", "text/turtle", "turtle"),
        ("nt", "application/n-triples", "nt"),
        ("nq", "application/n-quads", "nquads"),
        ("trig", "application/trig", "trig"),
        ("jsonld", "application/ld+json", "json-ld"),
        ("rdf", "application/rdf+xml", "xml"),
    ],
)
def test_downloads(
    client: TestClient, kg: KnowledgeGraph, suffix: str, media_type: str, rdflib_format: str
) -> None:
    response = client.get(f"/download/escap-kg.{suffix}", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type
    assert response.headers["content-disposition"] == f'attachment; filename="escap-kg.{suffix}"'
    etag = response.headers["etag"]
    if rdflib_format in ("nquads", "trig", "json-ld"):
        parsed = rdflib.Dataset()
        parsed.parse(data=response.content, format=rdflib_format)
        assert sum(1 for _ in parsed.quads((None, None, None, None))) == len(kg)
    else:
        assert len(rdflib.Graph().parse(data=response.content, format=rdflib_format)) == len(
            kg.triples()
        )
    again = client.get(f"/download/escap-kg.{suffix}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    url = f"/download/escap-kg.{suffix}"
    with client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as zipped:
        assert zipped.headers["content-encoding"] == "gzip"
        sent = b"".join(zipped.iter_raw())
    assert gzip.decompress(sent) == response.content
    assert len(sent) < len(response.content) / 2, (len(sent), len(response.content))


def test_unknown_download(client: TestClient) -> None:
    response = client.get("/download/escap-kg.xlsx")
    assert response.status_code == 404
    assert "ttl" in response.text
    traversal = client.get("/download/..%2F..%2Fetc%2Fpasswd")
    assert traversal.status_code == 404


def test_void_description(client: TestClient, kg: KnowledgeGraph) -> None:
    response = client.get("/.well-known/void", headers={"Accept": "text/turtle"})
    assert response.status_code == 200
    graph = rdflib.Graph().parse(data=response.text, format="turtle")
    void = rdflib.Namespace("http://rdfs.org/ns/void#")
    dcat = rdflib.Namespace("http://www.w3.org/ns/dcat#")
    dataset = next(graph.subjects(rdflib.RDF.type, void.Dataset, unique=True))
    datasets = [d for d in graph.subjects(rdflib.RDF.type, dcat.Dataset)]
    assert datasets == [rdflib.URIRef(f"{ID}dataset/escap-kg")]
    dataset = datasets[0]
    assert graph.value(dataset, void.triples).toPython() == len(kg.triples())
    assert (
        dataset,
        rdflib.DCTERMS.license,
        rdflib.URIRef("https://creativecommons.org/licenses/by/4.0/"),
    ) in graph
    assert (dataset, void.sparqlEndpoint, rdflib.URIRef("http://testserver/sparql")) in graph
    dumps = {str(d) for d in graph.objects(dataset, void.dataDump)}
    assert "http://testserver/download/escap-kg.ttl" in dumps
    targets = {str(t) for t in graph.objects(None, void.objectsTarget)}
    assert "https://www.wikidata.org/" in targets
    assert "http://metadata.un.org/thesaurus/" in targets
    as_jsonld = client.get("/.well-known/void", headers={"Accept": "application/ld+json"})
    assert json.loads(as_jsonld.text)


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        Settings(update_token="short")
    with pytest.raises(ValueError, match="must be positive"):
        replace(Settings(), query_timeout=0)


def test_session_files_and_updates_survive_a_worker_replacement(
    kg: KnowledgeGraph, tmp_path: Path
) -> None:
    """Files added for a session are loaded by the workers; after an update, a replacement
    worker (here after a killed query) starts from the updated graph, extra files included."""
    from escap_kg.engine import QueryEngine

    extra = tmp_path / "extra.nt"
    extra.write_text('<http://example.org/a> <http://example.org/b> "session data" .\n')
    engine = QueryEngine(kg.nquads(), workers=1, extra=[(extra, f"{GRAPH}extra/extra")])
    settings = Settings(workers=1, query_timeout=1, update_token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/sparql-update"}
    with TestClient(create_app(settings, engine=engine)) as client:
        assert ask(client, 'ASK { <http://example.org/a> ?p "session data" }')
        assert client.post("/sparql", content=INSERT, headers=auth).status_code == 204
        killed = client.get("/sparql", params={"query": SLOW})
        assert killed.status_code == 503
        assert engine.killed == 1
        assert ask(client, ASK_INSERTED)
        assert ask(client, 'ASK { <http://example.org/a> ?p "session data" }')
        download = client.get("/download/escap-kg.nq")
        assert b"session data" in download.content


@pytest.mark.parametrize("path", ["/sparql?query=ASK%7B%7D", "/api/queries", "/docs", "/nowhere"])
def test_security_headers_on_every_response(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert "server" not in response.headers


def test_docs_use_no_cdn(client: TestClient) -> None:
    page = client.get("/docs").text
    assert "/static/swagger/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200
    assert client.get("/redoc").status_code == 404
