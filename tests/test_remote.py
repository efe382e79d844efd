"""escap-kg in front of a remote SPARQL 1.1 store: publishing to it, querying it, its errors."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Self

import httpx
import pyoxigraph as ox
import pytest
import rdflib
from rdflib.compare import isomorphic

from escap_kg import remote
from escap_kg.engine import EngineError, QueryJob, UpdateJob
from escap_kg.queries import Query, find_query, load_catalogue
from escap_kg.remote import (
    PublishReport,
    RemoteEngine,
    RemoteError,
    add_values,
    publish,
    remote_query,
    sparql_term,
)
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph
from tests.conftest import ServerProcess, free_port

EXPECTED = Path(__file__).parent / "expected"
CATALOGUE = load_catalogue(Settings())
# Federated queries call other endpoints: tests/test_federated.py runs them against a local one.
LOCAL = [q for q in CATALOGUE if not q.federated]
FIFTH_APPC = "https://w3id.org/escap-kg/id/activity/fifth-appc"
UNION_GRAPH = "https://example.org/escap-kg-test/everything"
GRAPH_COUNTS = "SELECT ?g (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } } GROUP BY ?g"
SPARQL_JSON = "application/sparql-results+json"
HOSTILE_IRI = FIFTH_APPC + "> . ?s ?p ?o } #"
HOSTILE_LITERALS = [
    'Bangkok") } UNION { ?place ?p ?name } #',
    "Bangkok\\u0022) } UNION { ?place ?p ?name } #",
    'Bangkok"\n) } UNION { ?place ?p ?name } #',
    "Bangkok\\",
]
LABEL_QUERY = """PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
SELECT ?place WHERE { ?place rdfs:label ?label . BIND(STR(?label) AS ?name) }
ORDER BY ?place
# a comment on the last line, with no line break after it"""


# A real Oxigraph server ------------------------------------------------------------------------


def oxigraph_command() -> str | None:
    """The ``oxigraph`` command (pip install oxigraph), on PATH or beside this interpreter."""
    found = shutil.which("oxigraph")
    if found:
        return found
    beside = Path(sys.executable).with_name("oxigraph")
    return str(beside) if beside.exists() else None


class OxigraphServer(ServerProcess):
    """``oxigraph serve`` on 127.0.0.1 with a free port and its own folder; always stopped."""

    name = "oxigraph"

    def __init__(self, folder: Path, *flags: str) -> None:
        command = oxigraph_command()
        if command is None:
            pytest.skip("the `oxigraph` command is not installed (pip install oxigraph==0.5.13)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.query_url = f"{self.url}/query"
        self.store_url = f"{self.url}/store"
        location = ["--location", str(folder / "db"), "--bind", f"127.0.0.1:{self.port}"]
        super().__init__(
            [command, "serve", *location, *flags], self.query_url, log=folder / "server.log"
        )

    def wait(self, timeout: float = 30) -> Self:
        return super().wait(timeout)


@contextlib.contextmanager
def oxigraph(folder: Path, *flags: str) -> Iterator[OxigraphServer]:
    server = OxigraphServer(folder, *flags)
    try:
        yield server.wait()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def union_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OxigraphServer]:
    """Oxigraph with the union of all graphs as the default graph, as our queries expect."""
    with oxigraph(tmp_path_factory.mktemp("oxigraph-union"), "--union-default-graph") as server:
        yield server


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OxigraphServer]:
    """Oxigraph as it comes: the default graph is a graph of its own."""
    with oxigraph(tmp_path_factory.mktemp("oxigraph-plain")) as server:
        yield server


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[OxigraphServer]:
    with oxigraph(tmp_path) as server:
        yield server


@pytest.fixture(scope="module")
def published(kg: KnowledgeGraph, union_server: OxigraphServer) -> PublishReport:
    return publish(kg, union_server.store_url)


@pytest.fixture(scope="module")
def plain_published(kg: KnowledgeGraph, plain_server: OxigraphServer) -> PublishReport:
    return publish(kg, plain_server.store_url)


@pytest.fixture
def closed_port() -> int:
    return free_port()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        port: int = sock.getsockname()[1]
        yield port


# Helpers ---------------------------------------------------------------------------------------


def remote_counts(server: OxigraphServer) -> dict[str, int]:
    _, body = remote_query(server.query_url, GRAPH_COUNTS, accept=SPARQL_JSON)
    rows = json.loads(body)["results"]["bindings"]
    return {row["g"]["value"]: int(row["n"]["value"]) for row in rows}


def csv_rows(data: bytes | str) -> list[list[str]]:
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return list(csv.reader(io.StringIO(text, newline="")))


def expected_rows(query: Query) -> list[list[str]]:
    return csv_rows((EXPECTED / f"{query.id}.csv").read_text(encoding="utf-8"))


def expected_graph(query: Query) -> rdflib.Graph:
    return rdflib.Graph().parse(EXPECTED / f"{query.id}.nt", format="nt")


def json_rows(data: bytes) -> list[list[str]]:
    """SPARQL JSON results as CSV would write them: a header, then each term's value."""
    parsed = json.loads(data)
    variables = parsed["head"]["vars"]
    rows = [
        [b.get(v, {}).get("value", "") for v in variables] for b in parsed["results"]["bindings"]
    ]
    return [variables, *rows]


@contextlib.asynccontextmanager
async def engine_at(url: str, **options: Any) -> AsyncIterator[RemoteEngine]:
    engine = RemoteEngine(url, **options)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.close()


async def engine_error(url: str, job: QueryJob, timeout: float = 10, **options: Any) -> EngineError:
    async with engine_at(url, **options) as engine:
        try:
            answer = await engine.query(job, timeout)
            await answer.read()
        except EngineError as err:
            return err
    raise AssertionError(f"no error for {job.text!r}")


def catalogue_query(name: str) -> Query:
    return next(q for q in CATALOGUE if q.id.startswith(name))


# Publishing ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_publish_puts_each_graph_into_its_own_named_graph(
    kg: KnowledgeGraph, union_server: OxigraphServer, published: PublishReport
) -> None:
    local = kg.triples_per_graph()
    assert "" not in local, "the embedded graph has nothing in the default graph"
    assert published.graphs == local
    assert published.triples == len(kg)
    assert str(published).startswith(f"{len(local)} graphs, {len(kg):,} triples written to")
    assert remote_counts(union_server) == {g: n for g, n in local.items() if n}


@pytest.mark.slow
def test_publish_again_replaces_and_never_duplicates(
    kg: KnowledgeGraph, union_server: OxigraphServer, published: PublishReport
) -> None:
    before = remote_counts(union_server)
    again = publish(kg, union_server.store_url)
    assert again.graphs == published.graphs
    assert remote_counts(union_server) == before
    assert before == {g: n for g, n in kg.triples_per_graph().items() if n}


@pytest.mark.slow
def test_publish_the_union_into_one_named_graph(
    kg: KnowledgeGraph, plain_server: OxigraphServer
) -> None:
    for _ in range(2):
        report = publish(kg, plain_server.store_url, graph=UNION_GRAPH)
        assert report.graphs == {UNION_GRAPH: len(kg.triples())}
        assert remote_counts(plain_server)[UNION_GRAPH] == len(kg.triples())


@pytest.mark.slow
def test_publish_keeps_blank_nodes_escapes_and_the_default_graph(
    fresh_server: OxigraphServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote, "TRIPLES_PER_CHUNK", 2)  # a blank node spans several chunks
    g = ox.NamedNode("https://example.org/g")
    node, p = ox.BlankNode(), ox.NamedNode("https://example.org/p")
    values = ['a "quoted"\nline', "back\\slash \\u0022", "Mīgrasi 移民 🚶", "tab\there", "x"]
    store = ox.Store()
    store.extend(ox.Quad(node, p, ox.Literal(v), g) for v in values)
    store.add(ox.Quad(ox.NamedNode("https://example.org/s"), p, node, g))
    store.add(ox.Quad(ox.NamedNode("https://example.org/s"), p, ox.Literal("default")))
    small = KnowledgeGraph(store, [], Settings())
    report = publish(small, fresh_server.store_url)
    assert report.graphs == {"": 1, g.value: len(values) + 1}
    for params, quads in (
        ({"graph": g.value}, list(store.quads_for_pattern(None, None, None, g))),
        ({"default": ""}, list(store.quads_for_pattern(None, None, None, ox.DefaultGraph()))),
    ):
        answer = httpx.get(
            fresh_server.store_url, params=params, headers={"Accept": "application/n-triples"}
        )
        assert answer.status_code == 200, answer.text
        local = ox.serialize([q.triple for q in quads], format=ox.RdfFormat.N_TRIPLES) or b""
        assert isomorphic(
            rdflib.Graph().parse(data=answer.content, format="nt"),
            rdflib.Graph().parse(data=local, format="nt"),
        )


@pytest.mark.slow
def test_publish_to_a_wrong_url_names_the_url_and_the_answer(
    kg: KnowledgeGraph, union_server: OxigraphServer
) -> None:
    with pytest.raises(RemoteError) as caught:
        publish(kg, f"{union_server.url}/nope")
    message = str(caught.value)
    assert caught.value.status == 404
    assert f"PUT {union_server.url}/nope?graph=" in message
    assert "404 Not Found" in message
    assert "is not supported by this server" in message  # Oxigraph's own words


def test_publish_to_a_closed_port_says_it_cannot_reach_the_store(
    kg: KnowledgeGraph, closed_port: int
) -> None:
    url = f"http://127.0.0.1:{closed_port}/store"
    with pytest.raises(RemoteError, match=rf"cannot reach the graph store at {url}\?graph="):
        publish(kg, url, timeout=5)


def test_publish_refuses_a_bad_url_or_graph(kg: KnowledgeGraph) -> None:
    with pytest.raises(RemoteError, match="not an http"):
        publish(kg, "ftp://example.org/store")
    with pytest.raises(RemoteError, match="Invalid IRI"):
        publish(kg, "http://127.0.0.1:9/store", graph="not an iri")


@pytest.mark.slow
def test_publish_timeout_is_a_remote_error(kg: KnowledgeGraph, silent_port: int) -> None:
    with pytest.raises(RemoteError, match=r"did not answer within 0\.5 s"):
        publish(kg, f"http://127.0.0.1:{silent_port}/store", timeout=0.5)


# The catalogue on the remote store --------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("query", LOCAL, ids=[q.id for q in LOCAL])
def test_catalogue_query_gives_the_expected_answer_remotely(
    union_server: OxigraphServer, published: PublishReport, query: Query
) -> None:
    if (EXPECTED / f"{query.id}.nt").exists():
        content_type, body = remote_query(
            union_server.query_url, query.text, accept="application/n-triples"
        )
        assert content_type.startswith("application/n-triples")
        graph = rdflib.Graph().parse(data=body, format="nt")
        assert isomorphic(graph, expected_graph(query)), f"{query.id}: the graph differs"
        return
    content_type, body = remote_query(union_server.query_url, query.text, accept="text/csv")
    assert content_type.startswith("text/csv")
    assert csv_rows(body) == expected_rows(query), f"{query.id}: the answer differs"


# Bindings ---------------------------------------------------------------------------------------


def test_values_clause_is_appended_after_the_whole_query() -> None:
    text = add_values(
        LABEL_QUERY,
        {"name": ox.Literal('a "b"\nc\\'), "place": ox.NamedNode(FIFTH_APPC)},
    )
    assert text.startswith(LABEL_QUERY)
    assert text.endswith(f'\nVALUES (?name ?place) {{ ("a \\"b\\"\\nc\\\\" <{FIFTH_APPC}>) }}\n')
    assert add_values(LABEL_QUERY, {}) == LABEL_QUERY


def test_terms_are_written_in_n_triples_syntax() -> None:
    assert sparql_term(ox.NamedNode(FIFTH_APPC)) == f"<{FIFTH_APPC}>"
    assert sparql_term(ox.Literal("Bangkok", language="en")) == '"Bangkok"@en'
    xsd_date = ox.NamedNode("http://www.w3.org/2001/XMLSchema#date")
    assert (
        sparql_term(ox.Literal("2002-12-11", datatype=xsd_date))
        == f'"2002-12-11"^^<{xsd_date.value}>'
    )
    assert sparql_term(ox.Literal("\x00\x7f")) == '"\\u0000\\u007F"'
    for hostile in HOSTILE_LITERALS:
        written = sparql_term(ox.Literal(hostile))
        assert "\n" not in written
        [parsed] = ox.parse(f"<urn:s> <urn:p> {written} .", format=ox.RdfFormat.N_TRIPLES)
        assert parsed.object == ox.Literal(hostile)


def test_a_hostile_iri_is_refused() -> None:
    with pytest.raises(ValueError, match="Invalid IRI"):
        add_values(LABEL_QUERY, {"place": ox.NamedNode(HOSTILE_IRI)})
    with pytest.raises(ValueError, match="not a SPARQL variable name"):
        add_values(LABEL_QUERY, {"x) { } #": ox.Literal("x")})
    with pytest.raises(ValueError, match="already ends with a VALUES clause"):
        add_values("SELECT ?x WHERE { } VALUES ?x { 1 }", {"x": ox.Literal("x")})
    with pytest.raises(ValueError, match="only IRIs and literals"):
        sparql_term(ox.BlankNode())  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_parameter_is_bound_remotely(
    union_server: OxigraphServer, published: PublishReport
) -> None:
    query = find_query("where-in-the-source")
    _, body = remote_query(
        union_server.query_url,
        query.text,
        accept="text/csv",
        bindings={"entity": ox.NamedNode(FIFTH_APPC)},
    )
    rows = csv_rows(body)[1:]
    assert rows
    assert {r[0] for r in rows} == {FIFTH_APPC}
    assert {r[3] for r in rows} == {"1", "2"}


@pytest.mark.slow
def test_a_hostile_literal_cannot_change_the_query(
    union_server: OxigraphServer, published: PublishReport
) -> None:
    def places(name: str) -> list[list[str]]:
        _, body = remote_query(
            union_server.query_url,
            LABEL_QUERY,
            accept="text/csv",
            bindings={"name": ox.Literal(name)},
        )
        return csv_rows(body)[1:]

    assert places("Bangkok") == [["https://w3id.org/escap-kg/id/place/bangkok"]]
    for hostile in HOSTILE_LITERALS:
        assert places(hostile) == [], f"{hostile!r} changed the query"


@pytest.mark.slow
def test_engine_binds_parameters_and_refuses_a_hostile_iri(
    union_server: OxigraphServer, published: PublishReport
) -> None:
    query = find_query("where-in-the-source")

    async def scenario() -> None:
        async with engine_at(union_server.query_url) as engine:
            job = QueryJob(query.text, "csv", bindings=(("entity", ("iri", FIFTH_APPC)),))
            rows = csv_rows(await (await engine.query(job, 10)).read())[1:]
            assert {r[0] for r in rows} == {FIFTH_APPC}
            hostile = QueryJob(query.text, "csv", bindings=(("entity", ("iri", HOSTILE_IRI)),))
            with pytest.raises(EngineError) as caught:
                await engine.query(hostile, 10)
            assert caught.value.status == 400
            assert "is not an absolute IRI" in caught.value.message
            for value in HOSTILE_LITERALS:
                job = QueryJob(LABEL_QUERY, "csv", bindings=(("name", ("literal", value)),))
                assert csv_rows(await (await engine.query(job, 10)).read())[1:] == []

    asyncio.run(scenario())


# The remote engine ------------------------------------------------------------------------------


@pytest.mark.slow
def test_engine_answers_as_json_csv_and_turtle(
    union_server: OxigraphServer, published: PublishReport
) -> None:
    first, partners, neighbourhood = (catalogue_query(n) for n in ("01-", "03-", "16-"))

    async def scenario() -> None:
        async with engine_at(union_server.query_url) as engine:
            answer = await engine.query(QueryJob(first.text, "json"), 10)
            assert answer.result_format == "json"
            assert answer.rest is None
            assert json_rows(answer.body) == expected_rows(first)
            answer = await engine.query(QueryJob(partners.text, "csv"), 10)
            assert csv_rows(answer.body) == expected_rows(partners)
            answer = await engine.query(QueryJob(neighbourhood.text, "turtle"), 10)
            graph = rdflib.Graph().parse(data=answer.body, format="turtle")
            assert isomorphic(graph, expected_graph(neighbourhood))
            # Many queries at once share the connection pool.
            answers = await asyncio.gather(
                *(engine.query(QueryJob(first.text, "csv"), 10) for _ in range(20))
            )
            assert all(csv_rows(a.body) == expected_rows(first) for a in answers)

    asyncio.run(scenario())


@pytest.mark.slow
def test_engine_resolves_relative_iris_against_the_base(
    union_server: OxigraphServer, published: PublishReport
) -> None:
    text = (
        "SELECT ?label WHERE { <id/place/bangkok> "
        "<http://www.w3.org/2000/01/rdf-schema#label> ?label }"
    )

    async def scenario() -> None:
        async with engine_at(union_server.query_url) as engine:
            job = QueryJob(text, "csv", base_iri="https://w3id.org/escap-kg/")
            assert csv_rows((await engine.query(job, 10)).body) == [["label"], ["Bangkok"]]

    asyncio.run(scenario())


@pytest.mark.slow
def test_engine_passes_the_protocol_dataset(
    union_server: OxigraphServer, published: PublishReport
) -> None:
    context = "https://w3id.org/escap-kg/graph/un-system-chart"
    text = "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"
    named = "SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }"

    async def scenario() -> None:
        async with engine_at(union_server.query_url) as engine:
            job = QueryJob(text, "csv", default_graphs=(context,), named_graphs=())
            rows = csv_rows((await engine.query(job, 10)).body)
            assert rows == [["n"], [str(published.graphs[context])]]
            job = QueryJob(named, "csv", default_graphs=(), named_graphs=(context,))
            assert csv_rows((await engine.query(job, 10)).body) == [["g"], [context]]

    asyncio.run(scenario())


@pytest.mark.slow
def test_engine_streams_a_large_answer(
    union_server: OxigraphServer, published: PublishReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote, "BUFFER", 4096)
    text = "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }"
    _, whole = remote_query(union_server.query_url, text, accept="application/n-triples")
    assert len(whole) > 4096

    async def scenario() -> None:
        async with engine_at(union_server.query_url) as engine:
            answer = await engine.query(QueryJob(text, "nt"), 30)
            assert answer.rest is not None
            assert len(answer.body) >= 4096
            streamed = await answer.read()
            assert sorted(streamed.splitlines()) == sorted(whole.splitlines())
            # Over the limit half way through the stream: 413 while reading.
            answer = await engine.query(QueryJob(text, "nt", max_bytes=len(whole) // 2), 30)
            with pytest.raises(EngineError) as caught:
                await answer.read()
            assert caught.value.status == 413

    asyncio.run(scenario())


@pytest.mark.slow
def test_engine_malformed_query_is_400(union_server: OxigraphServer) -> None:
    text = "SELECT ?s WHERE { ?s ?p }"
    job = QueryJob(text, "json", base_iri="https://w3id.org/escap-kg/")
    error = asyncio.run(engine_error(union_server.query_url, job))
    assert error.status == 400
    # The position is in the text as sent, as the local engine gives it, despite the added BASE.
    with pytest.raises(SyntaxError, match=r"^error at 1:26: ") as local:
        ox.Store().query(text)
    assert (
        error.message
        == f"malformed query: line 1, column 26: {local.value.args[0].split(': ', 1)[1]}"
    )


def test_engine_unreachable_store_is_502(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/query"
    error = asyncio.run(engine_error(url, QueryJob("ASK {}", "json")))
    assert error.status == 502
    assert error.message.startswith(f"cannot reach the upstream store at {url}: ")


@pytest.mark.slow
def test_engine_answer_over_the_limit_is_413(
    union_server: OxigraphServer, published: PublishReport
) -> None:
    job = QueryJob(catalogue_query("01-").text, "json", max_bytes=100)
    error = asyncio.run(engine_error(union_server.query_url, job))
    assert error.status == 413
    assert error.message == "the answer is larger than the limit of 100 bytes; add LIMIT"


@pytest.mark.slow
def test_engine_timeout_is_503(silent_port: int) -> None:
    url = f"http://127.0.0.1:{silent_port}/query"
    started = time.monotonic()
    error = asyncio.run(engine_error(url, QueryJob("ASK {}", "json"), timeout=0.5))
    assert time.monotonic() - started < 5
    assert error.status == 503
    assert error.message == "the upstream store did not answer within 0.5 s"


@pytest.mark.slow
def test_engine_other_upstream_error_is_502(union_server: OxigraphServer) -> None:
    error = asyncio.run(engine_error(f"{union_server.url}/nope", QueryJob("ASK {}", "json")))
    assert error.status == 502
    assert "answered 404 Not Found" in error.message


def test_engine_refuses_updates() -> None:
    async def scenario() -> None:
        async with engine_at("http://127.0.0.1:9/query") as engine:
            with pytest.raises(EngineError) as caught:
                await engine.update(UpdateJob("CLEAR ALL"), 10)
        assert caught.value.status == 403
        assert caught.value.message == (
            "updates go to the upstream store directly; this server is read-only in front of it"
        )

    asyncio.run(scenario())


def test_engine_not_started_is_503() -> None:
    async def scenario() -> None:
        with pytest.raises(EngineError) as caught:
            await RemoteEngine("http://127.0.0.1:9/query").query(QueryJob("ASK {}", "json"), 1)
        assert caught.value.status == 503

    asyncio.run(scenario())


@pytest.mark.slow
def test_engine_makes_the_union_when_the_store_does_not(
    kg: KnowledgeGraph, plain_server: OxigraphServer, plain_published: PublishReport
) -> None:
    ours = [sf.graph for sf in kg.files]
    first, trace = catalogue_query("01-"), catalogue_query("15-")

    async def scenario() -> None:
        # Without the union the plain store's default graph is empty: no answer.
        async with engine_at(plain_server.query_url) as engine:
            answer = await engine.query(QueryJob(first.text, "csv"), 10)
            assert csv_rows(answer.body)[1:] == []
        async with engine_at(
            plain_server.query_url, union_default_graph=False, graphs=ours
        ) as engine:
            for query in (first, trace):
                answer = await engine.query(QueryJob(query.text, "csv"), 10)
                assert csv_rows(answer.body) == expected_rows(query), query.id

    asyncio.run(scenario())


@pytest.mark.slow
def test_engine_lists_the_graphs_for_the_union(
    kg: KnowledgeGraph, fresh_server: OxigraphServer
) -> None:
    publish(kg, fresh_server.store_url)
    first = catalogue_query("01-")

    async def scenario() -> None:
        async with engine_at(fresh_server.query_url, union_default_graph=False) as engine:
            assert engine.graphs == tuple(sorted(kg.triples_per_graph()))
            answer = await engine.query(QueryJob(first.text, "csv"), 10)
            assert csv_rows(answer.body) == expected_rows(first)

    asyncio.run(scenario())
