"""The dataset and its source can be cited: CITATION.cff, the home page and the VoID description."""

from __future__ import annotations

import html
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pyoxigraph as ox
import pytest
import rdflib
from fastapi.testclient import TestClient

from escap_kg.citation import cite
from escap_kg.pages import add_page_routes
from escap_kg.server import create_app
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph

ROOT = Path(__file__).resolve().parent.parent
SOURCE = "https://w3id.org/escap-kg/id/source/escap-migration-activities"
ONTOLOGY = "https://w3id.org/escap-kg/ontology"


@pytest.fixture(scope="module")
def client(kg: KnowledgeGraph) -> Iterator[TestClient]:
    app = create_app(Settings(workers=1), kg)
    if not any(getattr(route, "path", None) == "/id/{kind}/{slug}" for route in app.routes):
        add_page_routes(app, app.state.escap)
    with TestClient(app) as test_client:
        yield test_client


def one_value(kg: KnowledgeGraph, query: str) -> str:
    result = kg.query(query)
    assert isinstance(result, ox.QuerySolutions)
    rows = list(result)
    assert len(rows) == 1, query
    return str(rows[0][0].value)


def issued(kg: KnowledgeGraph) -> str:
    query = f"SELECT ?d WHERE {{ <{ONTOLOGY}> <http://purl.org/dc/terms/created> ?d }}"
    return one_value(kg, query)


def bibtex_fields(entry: str) -> dict[str, str]:
    """The fields of one BibTeX entry, after checking that its braces balance."""
    depth = 0
    for char in entry:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0, f"a closing brace with none open in {entry!r}"
    assert depth == 0, f"unbalanced braces in {entry!r}"
    match = re.fullmatch(r"@misc\{escap-kg,\n(.*)\n\}", entry, re.DOTALL)
    assert match, f"not a @misc{{escap-kg, ...}} entry: {entry!r}"
    fields = {}
    for line in match.group(1).split(",\n"):
        name, _, value = line.strip().partition(" = ")
        assert value.startswith("{"), line
        assert value.endswith("}"), line
        fields[name] = value[1:-1].strip("{}")
    return fields


def test_citation_cff_is_valid_and_true_to_the_project(kg: KnowledgeGraph) -> None:
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):
        assert cff.get(key), f"CITATION.cff needs {key}"
    assert [a["name"] for a in cff["authors"]] == ["escap-kg maintainers"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert cff["version"] == project["version"]
    assert cff["license"] == "CC-BY-4.0"
    assert str(cff["date-released"]) == issued(kg)
    assert "url" not in cff
    assert "repository-code" not in cff
    [source] = cff["references"]
    title = one_value(kg, f"SELECT ?t WHERE {{ <{SOURCE}> <http://purl.org/dc/terms/title> ?t }}")
    assert source["title"] == title
    assert source["authors"][0]["alias"] == "ESCAP"
    assert "url" not in source
    assert "doi" not in source


def test_home_page_cites_the_dataset(client: TestClient, kg: KnowledgeGraph) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert '<h2 id="cite">Cite this dataset</h2>' in page.text
    text = re.search(r'<p class="citation">(.*?)</p>', page.text, re.DOTALL)
    entry = re.search(r'<pre class="bibtex"[^>]*><code>(.*?)</code></pre>', page.text, re.DOTALL)
    assert text, "the citation block lacks its plain-text citation"
    assert entry, "the citation block lacks its BibTeX entry"
    fields = bibtex_fields(html.unescape(entry.group(1)))
    year = issued(kg)[:4]
    assert fields["author"] == "escap-kg maintainers"
    assert fields["title"].startswith("escap-kg: ESCAP activities on international migration")
    assert fields["year"] == year
    assert fields["version"] == "0.1.0"
    assert fields["url"] == "http://testserver/"
    assert "CC BY 4.0" in fields["note"]
    plain = html.unescape(text.group(1))
    for fact in (fields["author"], fields["title"], f"({year})", "version 0.1.0", "CC BY 4.0"):
        assert fact in plain, f"{fact!r} is not in the plain-text citation {plain!r}"
    assert plain.endswith("http://testserver/")


def test_bibtex_stays_balanced_whatever_the_host() -> None:
    citation = cite("http://a{b}\\c/", "")
    fields = bibtex_fields(citation.bibtex)
    assert fields["url"] == "http://a%7Bb%7D%5Cc/"
    assert "year" not in fields
    assert "(n.d.)" in citation.text


DCAT = "http://www.w3.org/ns/dcat#"
ASKS = {
    "creator": "?d dcterms:creator [ foaf:name 'escap-kg maintainers' ]",
    "publisher": "?d dcterms:publisher [ a foaf:Agent ; foaf:name ?publisher ]",
    "issued": "?d dcterms:issued ?issued FILTER(?issued = '{issued}'^^xsd:date)",
    "version": "?d owl:versionInfo '0.1.0' ; dcat:version '0.1.0'",
    "licence": "?d dcterms:license <https://creativecommons.org/licenses/by/4.0/>",
    "source": f"?d dcterms:source <{SOURCE}>",
    "endpoint": "?d void:sparqlEndpoint <http://testserver/sparql> ; dcat:distribution [ "
    "dcat:accessService [ dcat:endpointURL <http://testserver/sparql> ] ]",
    "dumps": "?d dcat:distribution [ a dcat:Distribution ; "
    "dcat:downloadURL <http://testserver/download/escap-kg.ttl> ; "
    "dcat:mediaType <https://www.iana.org/assignments/media-types/text/turtle> ; "
    "dcat:byteSize ?size ]",
}


@pytest.fixture(scope="module")
def void(client: TestClient) -> rdflib.Graph:
    response = client.get("/.well-known/void", headers={"Accept": "text/turtle"})
    assert response.status_code == 200
    return rdflib.Graph().parse(data=response.text, format="turtle")


@pytest.mark.parametrize("what", list(ASKS))
def test_void_states(void: rdflib.Graph, kg: KnowledgeGraph, what: str) -> None:
    pattern = ASKS[what].replace("{issued}", issued(kg))
    query = f"""PREFIX dcterms: <http://purl.org/dc/terms/>
    PREFIX dcat: <{DCAT}>
    PREFIX foaf: <http://xmlns.com/foaf/0.1/>
    PREFIX owl: <http://www.w3.org/2002/07/owl#>
    PREFIX void: <http://rdfs.org/ns/void#>
    PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>
    ASK {{ ?d a dcat:Dataset, void:Dataset . {pattern} }}"""
    assert void.query(query).askAnswer, f"the dataset description lacks its {what}: {pattern}"


def test_void_byte_sizes_are_those_of_the_downloads(void: rdflib.Graph, client: TestClient) -> None:
    dcat = rdflib.Namespace(DCAT)
    sizes = {
        str(void.value(d, dcat.downloadURL)): void.value(d, dcat.byteSize)
        for d in void.subjects(rdflib.RDF.type, dcat.Distribution)
        if void.value(d, dcat.downloadURL) is not None
    }
    assert len(sizes) == 6
    for url, size in sorted(sizes.items()):
        assert size is not None, f"{url} has no dcat:byteSize"
        body = client.get(url.removeprefix("http://testserver"), headers={"Accept-Encoding": ""})
        assert body.status_code == 200
        assert int(size) == len(body.content), url
