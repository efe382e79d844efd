"""Prefixes everyone knows: queries and updates may use them undeclared, everywhere."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pyoxigraph as ox
import pytest
import rdflib
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from escap_kg.cli import app
from escap_kg.iris import is_http_iri, is_iri, prefixes
from escap_kg.namespaces import EKG
from escap_kg.server import create_app
from escap_kg.settings import Settings
from escap_kg.sparql import scan
from escap_kg.store import KnowledgeGraph
from tests.conftest import ROOT

TOKEN = "a-test-token-of-some-length"
BASE = Settings().base_iri
TABLE = prefixes(BASE)
DECLARED = "".join(
    f"PREFIX {p}: <{TABLE[p]}>\n" for p in ("ekg", "schema", "skos", "dcterms", "rdf")
)
BODY = (
    "SELECT ?a ?c ?label WHERE { ?a dcterms:subject ?t ; rdf:type ?c . "
    "?t skos:prefLabel ?label . ?a schema:name ?n . FILTER(STRSTARTS(STR(?c), STR(ekg:))) } "
    "ORDER BY ?a ?c ?label"
)
SEMINARS = "SELECT ?a WHERE { ?a a ekg:Seminar }"
SEMINAR = f"{BASE}id/activity/seminar-2002-gender-equality-trafficking"
SD = rdflib.Namespace("http://www.w3.org/ns/sparql-service-description#")
SH = rdflib.Namespace("http://www.w3.org/ns/shacl#")
runner = CliRunner()


@pytest.fixture(scope="module")
def client(kg: KnowledgeGraph) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(workers=1, query_timeout=10), kg)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def writable(kg: KnowledgeGraph) -> Iterator[TestClient]:
    fresh = KnowledgeGraph.from_files(kg.files, kg.settings)
    settings = Settings(workers=1, update_token=TOKEN)
    with TestClient(create_app(settings, fresh)) as test_client:
        yield test_client


def select(client: TestClient, query: str) -> list[list[str]]:
    response = client.post(
        "/sparql",
        content=query,
        headers={"Content-Type": "application/sparql-query", "Accept": "text/csv"},
    )
    assert response.status_code == 200, response.text
    return list(csv.reader(io.StringIO(response.text)))


def refused(client: TestClient, query: str) -> str:
    response = client.get("/sparql", params={"query": query})
    assert response.status_code == 400, response.text
    return response.text


def update(client: TestClient, text: str) -> tuple[int, str]:
    response = client.post(
        "/sparql",
        content=text,
        headers={
            "Content-Type": "application/sparql-update",
            "Authorization": f"Bearer {TOKEN}",
        },
    )
    return response.status_code, response.text


def engine_position(text: str) -> tuple[int, int]:
    """Where Oxigraph itself puts the syntax error of ``text``."""
    with pytest.raises(SyntaxError) as caught:
        ox.Store().query(text)
    position = str(caught.value).removeprefix("error at ").split(": ", 1)[0]
    line, column = position.split(":")
    return int(line), int(column)


# The lexer -------------------------------------------------------------------------------------


def test_scan_reports_prefixes_used_and_declared() -> None:
    text = (
        "PREFIX ekg: <http://example.org/> PREFIX : <http://example.org/empty#>\n"
        'SELECT ?a WHERE { ?a a ekg:Seminar ; schema:name "x:y" ; :p <http://a/b:c> . ?a ?b _:c }'
    )
    info = scan(text)
    assert set(info.prefixes_declared) == {"ekg", ""}
    assert set(info.prefixes_used) == {"ekg", "schema", ""}
    assert info.prefixes_declared["ekg"] == text.index("ekg:")
    assert info.prefixes_used["ekg"] == text.index("ekg:Seminar")


def test_table_has_the_publishers_namespaces() -> None:
    assert TABLE["wd"] == "http://www.wikidata.org/entity/"
    assert TABLE["wdt"] == "http://www.wikidata.org/prop/direct/"
    assert TABLE["unbis"] == "http://metadata.un.org/thesaurus/"
    assert TABLE["sdg"] == "http://metadata.un.org/sdg/"
    assert TABLE["m49"] == "http://metadata.un.org/sdg/codes/geoArea/"
    assert TABLE["activity"] == f"{BASE}id/activity/"


# The endpoint ----------------------------------------------------------------------------------


def test_undeclared_known_prefixes_give_the_same_rows(client: TestClient) -> None:
    declared = select(client, DECLARED + BODY)
    assert len(declared) > 5
    assert select(client, BODY) == declared


def test_links_prefixes_work_undeclared(client: TestClient) -> None:
    rows = select(client, "SELECT ?c WHERE { ?c skos:exactMatch wd:Q34 }")
    assert rows == [["c"], [f"{BASE}id/country/sweden"]]


def test_a_declaration_in_the_query_wins(client: TestClient) -> None:
    assert select(client, SEMINARS) == [["a"], [SEMINAR]]
    assert select(client, "PREFIX ekg: <http://example.org/other#>\n" + SEMINARS) == [["a"]]
    names = select(client, "SELECT ?a WHERE { ?a schema:name ?n } ORDER BY ?a")
    assert len(names) > 2
    redeclared = "PREFIX ekg: <https://schema.org/> SELECT ?a WHERE { ?a ekg:name ?n } ORDER BY ?a"
    assert select(client, redeclared) == names


def test_a_query_starting_with_base_still_works(client: TestClient) -> None:
    text = f"BASE <{BASE}id/activity/> SELECT ?c WHERE {{ <seminar-2002-gender-equality-"
    text += "trafficking> a ?c FILTER(?c = ekg:Seminar) }"
    assert select(client, text) == [["c"], [f"{TABLE['ekg']}Seminar"]]


def test_an_unknown_prefix_is_named_with_its_declaration(client: TestClient) -> None:
    message = refused(client, "SELECT ?a WHERE { ?a a foo:Seminar }")
    assert "line 1, column 24: unknown prefix 'foo:'" in message
    assert "PREFIX foo: <" in message


def test_unknown_prefix_position_on_a_later_line(client: TestClient) -> None:
    message = refused(client, "SELECT ?a\nWHERE {\n  ?a nope:b ?c }")
    assert "line 3, column 6: unknown prefix 'nope:'" in message


@pytest.mark.parametrize(
    "text",
    [
        "SELECT ?a WHERE { ?a a ekg:Seminar ",
        "SELECT ?a WHERE { ?a a ekg:Seminar . ?a ?b } ",
        "SELECT ?a WHERE { ?a a ekg:Seminar } LIMIT x",
        "BASE <http://example.org/> SELECT ?a WHERE { ?a skos:x ?b . ?a <c> }",
    ],
)
def test_error_positions_are_not_shifted(client: TestClient, text: str) -> None:
    # The same text with the prefix declared on a line before it, read by the engine itself.
    used = [p for p in ("ekg", "skos") if f"{p}:" in text]
    declarations = "".join(f"PREFIX {p}: <{TABLE[p]}> " for p in used)
    line, column = engine_position(declarations + "\n" + text)
    assert line == 2
    assert f"line 1, column {column}:" in refused(client, text)


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * WHERE { ?s ?p ?o ",
        "SELECT ?x WHERE { ?x <a> }",
        "PREFIX ex: <http://example.org/>\nSELECT * { ?s ex:y }",
        "SELECT ?x WHERE { ?x ?y ?z . FILTER( }",
        "SELECT ?x WHERE { ?x ?y ?z } GROUP BY ?y",
        "SELECT ?x WHERE { ?x ?y ?z ) }",
    ],
)
def test_errors_are_short_and_readable(client: TestClient, text: str) -> None:
    message = refused(client, text)
    assert "\\u{" not in message
    assert "U+" not in message
    assert "..='" not in message
    assert len(message) < 260, message
    assert "malformed query: line " in message


def _engine_error(text: str) -> SyntaxError:
    try:
        ox.Store().query(text)
    except SyntaxError as err:
        return err
    raise AssertionError(f"{text!r} parses")


def test_the_engine_itself_dumps_unicode_ranges() -> None:
    # What the rewriting above is for: Oxigraph's own message lists the ranges.
    assert "\\u{" in str(_engine_error("PREFIX ex: <http://example.org/>\nSELECT * { ?s ex:y }"))


def test_the_engine_sentence_is_kept(client: TestClient) -> None:
    message = refused(client, "SELECT * WHERE { ?s ?p ?o } LIMIT 99999999999999999999999")
    assert "line 1, column 58: the query limit should be a non negative integer" in message


def test_end_of_query_is_said_in_words(client: TestClient) -> None:
    message = refused(client, "SELECT * WHERE { ?s ?p ?o ")
    assert "line 1, column 27: unexpected end of the query; expected one of" in message
    assert "'}'" in message


# Updates ---------------------------------------------------------------------------------------


def test_updates_know_the_prefixes(writable: TestClient) -> None:
    text = 'INSERT DATA { GRAPH graph:extra-test { activity:x ekg:keyIssue "y"@en } }'
    assert update(writable, text) == (204, "")
    ask = f"ASK {{ <{BASE}id/activity/x> <{TABLE['ekg']}keyIssue> ?o }}"
    assert writable.get("/sparql", params={"query": ask}).json()["boolean"] is True


def test_updates_name_an_unknown_prefix(writable: TestClient) -> None:
    status, message = update(writable, "INSERT DATA { <http://a/x> nope:p 1 }")
    assert status == 400
    assert "malformed update: line 1, column 28: unknown prefix 'nope:'" in message


def test_update_error_positions_are_not_shifted(writable: TestClient) -> None:
    text = "INSERT DATA { activity:x ekg:keyIssue "
    with pytest.raises(SyntaxError) as caught:
        ox.Store().update(
            f"PREFIX activity: <{TABLE['activity']}> PREFIX ekg: <{TABLE['ekg']}>\n" + text
        )
    column = str(caught.value).split(":")[1]
    status, message = update(writable, text)
    assert status == 400
    assert f"malformed update: line 1, column {column}:" in message


# What the endpoint publishes -------------------------------------------------------------------


def test_query_page_lists_the_prefixes(client: TestClient) -> None:
    response = client.get("/sparql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    # The page's script fills this table from the JSON block of prefixes.
    assert '<tbody id="query-ui-prefix-rows"></tbody>' in response.text
    block = response.text.split('id="query-ui-prefixes">', 1)[1].split("</script>", 1)[0]
    assert json.loads(block) == TABLE
    script = client.get("/static/yasgui/query-ui.js").text
    assert 'getElementById("query-ui-prefix-rows")' in script


def test_service_description_declares_each_prefix(client: TestClient) -> None:
    response = client.get("/sparql", headers={"Accept": "text/turtle"})
    graph = rdflib.Graph().parse(data=response.content, format="turtle")
    service = next(graph.subjects(rdflib.RDF.type, SD.Service))
    declared = {
        str(graph.value(d, SH.prefix)): graph.value(d, SH.namespace)
        for d in graph.objects(service, SH.declare)
    }
    assert declared == {
        p: rdflib.Literal(ns, datatype=rdflib.XSD.anyURI) for p, ns in TABLE.items()
    }


# The CLI ---------------------------------------------------------------------------------------


def test_cli_knows_the_prefixes() -> None:
    plain = runner.invoke(app, ["query", "--sparql", BODY, "-f", "csv"])
    declared = runner.invoke(app, ["query", "--sparql", DECLARED + BODY, "-f", "csv"])
    assert plain.exit_code == 0, plain.output
    assert plain.stdout == declared.stdout
    assert len(plain.stdout.splitlines()) > 5
    seminars = runner.invoke(app, ["query", "--sparql", SEMINARS, "-f", "csv"])
    assert seminars.stdout.splitlines() == ["a", SEMINAR]


def test_cli_names_an_unknown_prefix() -> None:
    result = runner.invoke(app, ["query", "--sparql", "SELECT ?a WHERE { ?a a foo:B }"])
    assert result.exit_code == 2
    assert "line 1, column 24: unknown prefix 'foo:'; declare it: PREFIX foo: <" in result.output
    assert "Traceback" not in result.output


def test_cli_error_positions_are_not_shifted() -> None:
    result = runner.invoke(app, ["query", "--sparql", SEMINARS[:-1]])
    assert result.exit_code == 2
    assert f"line 1, column {len(SEMINARS)}: unexpected end of the query" in result.output


@pytest.mark.parametrize(
    ("value", "iri", "http"),
    [
        ("https://w3id.org/escap-kg/id/activity/fifth-appc", True, True),
        ("HTTP://example.org/", True, True),
        ("urn:isbn:0451450523", True, False),
        ("mailto:someone@example.org", True, False),
        ("http://example.org/caf\u00e9", True, True),
        ("http://", True, False),
        ("http:///path", True, False),
        ("id/activity/fifth-appc", False, False),
        ("http://example.org/a b", False, False),
        ("http://example.org/a>b", False, False),
        ('http://example.org/a"b', False, False),
        ("http://example.org/{x}", False, False),
        ("http://example.org/%zz", False, False),
        ("http://example.org/\x00", False, False),
    ],
)
def test_what_an_iri_is(value: str, iri: bool, http: bool) -> None:
    assert is_iri(value) is iri
    assert is_http_iri(value) is http


def test_the_closed_namespace_names_every_term_of_the_ontology_and_no_other() -> None:
    ontology = rdflib.Graph().parse(ROOT / "ontology" / "escap-kg.ttl", format="turtle")
    namespace = str(EKG._NS)
    own = {
        str(term).removeprefix(namespace)
        for term in ontology.subjects()
        if isinstance(term, rdflib.URIRef) and str(term).startswith(namespace)
    }
    declared = set(EKG.__annotations__)
    assert declared == own, (
        f"in namespaces.EKG but not the ontology: {sorted(declared - own)}; "
        f"in the ontology but not namespaces.EKG: {sorted(own - declared)}"
    )
    with pytest.raises(AttributeError):
        _ = EKG.Seminnar
