"""The lists of resources by kind: counts as SPARQL gives them, links, and RDF by negotiation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pyoxigraph as ox
import pytest
import rdflib
from fastapi.testclient import TestClient

from escap_kg.iris import RESOURCE_KINDS
from escap_kg.pages.browse import HOME_KINDS, PAGE_SIZE, kind_words, plural
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph
from tests.markup import parse
from tests.test_pages import BROWSER, build_app

ID = "https://w3id.org/escap-kg/id/"
RDFS_MEMBER = rdflib.RDFS.member
NEW_ACTIVITY = f"{ID}activity/workshop-2004-remittances"
EXTRA = f"""
@prefix ekg: <https://w3id.org/escap-kg/ontology#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix schema: <https://schema.org/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix dcterms: <http://purl.org/dc/terms/> .
@prefix prov: <http://www.w3.org/ns/prov#> .
<{NEW_ACTIVITY}> a ekg:Seminar ;
  rdfs:label "Workshop on remittances and development in Asia and the Pacific"@en ;
  schema:startDate "2004-05"^^xsd:gYearMonth ;
  dcterms:subject <{ID}theme/migration-and-development> ;
  prov:qualifiedAssociation <{ID}participation/workshop-2004-remittances-unfpa> .
<{ID}participation/workshop-2004-remittances-unfpa> a ekg:Participation ;
  prov:agent <{ID}organization/unfpa> ;
  prov:hadRole <{ID}role/cooperation-partner> .
"""


@pytest.fixture(scope="module")
def client(kg: KnowledgeGraph) -> Iterator[TestClient]:
    with TestClient(build_app(Settings(workers=1), kg)) as test_client:
        yield test_client


def under(kind: str) -> str:
    """A pattern for the subjects of statements whose IRI is under the namespace of ``kind``."""
    return f'?s ?p ?o FILTER(isIRI(?s) && STRSTARTS(STR(?s), "{ID}{kind}/"))'


def described(kg: KnowledgeGraph, kind: str) -> set[str]:
    """The resources the graph describes under the namespace of ``kind``, by SPARQL."""
    rows = kg.query(f"SELECT DISTINCT ?s WHERE {{ {under(kind)} }}")
    assert isinstance(rows, ox.QuerySolutions)
    return {row["s"].value for row in rows if isinstance(row["s"], ox.NamedNode)}


def count_of(kg: KnowledgeGraph, kind: str) -> int:
    rows = kg.query(f"SELECT (COUNT(DISTINCT ?s) AS ?n) WHERE {{ {under(kind)} }}")
    assert isinstance(rows, ox.QuerySolutions)
    return int(next(iter(rows))["n"].value)


def rows_of(html: str) -> list[str]:
    """The link of every row of the list's table."""
    return re.findall(r'<tr><th scope="row"><a href="([^"]+)">', html)


@pytest.mark.parametrize("kind", HOME_KINDS)
def test_a_list_holds_every_resource_of_its_kind(
    client: TestClient, kg: KnowledgeGraph, kind: str
) -> None:
    response = client.get(f"/id/{kind}/", headers={"Accept": BROWSER})
    assert response.status_code == 200, response.text
    expected = count_of(kg, kind)
    assert expected > 0, f"the graph has no {kind}: pick another kind for the home page"
    links = rows_of(response.text)
    assert len(links) == expected
    assert sorted(links) == sorted(
        i.removeprefix("https://w3id.org/escap-kg") for i in described(kg, kind)
    )
    page = parse(response.text)
    assert f"{expected} {kind_words(kind, expected)}" in page.plain
    assert f"/id/{kind}.ttl" in page.hrefs
    # Every member's link leads to its page.
    assert client.get(links[0], headers={"Accept": BROWSER}).status_code == 200


@pytest.mark.parametrize(
    ("accept", "suffix", "syntax"),
    [
        ("text/turtle", None, "turtle"),
        ("application/ld+json", None, "json-ld"),
        (None, "nt", "nt"),
        (None, "rdf", "xml"),
    ],
)
def test_a_list_in_rdf_has_a_member_statement_for_each_resource(
    client: TestClient, kg: KnowledgeGraph, accept: str | None, suffix: str | None, syntax: str
) -> None:
    path = f"/id/finding.{suffix}" if suffix else "/id/finding/"
    response = client.get(path, headers={"Accept": accept} if accept else {})
    assert response.status_code == 200, response.text
    if accept:
        assert "Accept" in response.headers["vary"]
        assert (
            response.headers["content-location"]
            == f"/id/finding.{'ttl' if syntax == 'turtle' else 'jsonld'}"
        )
    graph = rdflib.Graph()
    graph.parse(data=response.content, format=syntax)
    namespace = rdflib.URIRef(f"{ID}finding/")
    members = {str(o) for o in graph.objects(namespace, RDFS_MEMBER)}
    assert members == described(kg, "finding")
    for member in members:
        node = rdflib.URIRef(member)
        assert (
            node,
            rdflib.RDF.type,
            rdflib.URIRef("https://w3id.org/escap-kg/ontology#Finding"),
        ) in graph
        assert graph.value(node, rdflib.RDFS.label) is not None, member


def test_the_home_cards_link_to_the_lists_with_their_counts(
    client: TestClient, kg: KnowledgeGraph
) -> None:
    html = client.get("/", headers={"Accept": BROWSER}).text
    for kind in HOME_KINDS:
        n = count_of(kg, kind)
        card = re.search(
            rf'<a href="/id/{kind}/"><span class="count-number">([\d,]+)</span> ([a-z ]+)</a>', html
        )
        assert card, f"no card links to /id/{kind}/"
        assert int(card.group(1).replace(",", "")) == n
        assert card.group(2) == kind_words(kind, n)


def test_the_browse_page_lists_every_kind_the_graph_has(
    client: TestClient, kg: KnowledgeGraph
) -> None:
    html = client.get("/id/", headers={"Accept": BROWSER}).text
    for kind in RESOURCE_KINDS:
        n = count_of(kg, kind)
        if n:
            assert re.search(
                rf'<a href="/id/{kind}/">{kind_words(kind, n)}</a></th><td class="number">{n}</td>',
                html,
            ), kind
        else:
            assert f'href="/id/{kind}/"' not in html


def test_a_kind_without_its_slash_leads_to_the_list(client: TestClient) -> None:
    response = client.get("/id/activity", follow_redirects=False)
    assert response.status_code == 308
    assert response.headers["location"] == "/id/activity/"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/id/no-such-kind/", "no such kind"),
        ("/id/no-such-kind.ttl", "no such kind"),
        ("/id/activity/?page=0", "its pages are 1 to 1"),
        ("/id/activity/?page=two", "its pages are 1 to 1"),
        ("/id/activity.txt", "not the form of an IRI we mint"),
    ],
)
def test_a_bad_list_address_is_a_clear_404(client: TestClient, path: str, message: str) -> None:
    response = client.get(path, headers={"Accept": BROWSER})
    assert response.status_code == 404
    assert message in parse(response.text).plain


def test_a_list_answers_406_to_what_it_cannot_give(client: TestClient) -> None:
    response = client.get("/id/activity/", headers={"Accept": "image/png"})
    assert response.status_code == 406
    assert "text/turtle" in response.text


def test_a_list_grows_with_the_data(tmp_path: Path) -> None:
    extra = tmp_path / "more.ttl"
    extra.write_text(EXTRA, encoding="utf-8")
    settings = Settings(workers=1, extra_files=(extra,))
    kg = KnowledgeGraph.load(settings)
    with TestClient(build_app(settings, kg)) as client:
        html = client.get("/id/activity/", headers={"Accept": BROWSER}).text
    links = rows_of(html)
    assert len(links) == count_of(kg, "activity")
    # Sorted by date: the 2004 workshop comes last, with its date and type.
    assert links[-1] == "/id/activity/workshop-2004-remittances"
    assert "May 2004" in html


def test_plurals() -> None:
    assert kind_words("activity", 2) == "activities"
    assert kind_words("activity", 1) == "activity"
    assert kind_words("country", 0) == "countries"
    assert kind_words("actor-group", 3) == "actor groups"
    assert kind_words("series", 2) == "series"
    assert plural("expert group meeting", 2) == "expert group meetings"
    assert plural("survey", 2) == "surveys"
    assert PAGE_SIZE >= 100
