"""Linked-data pages: every IRI we mint answers, by content negotiation, as a page or as RDF."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyoxigraph as ox
import pytest
import rdflib
from fastapi import FastAPI
from fastapi.testclient import TestClient

from escap_kg.pages import add_page_routes
from escap_kg.pages.jsonld import OTHER_SCHEMA_TYPES, SchemaTypes
from escap_kg.pages.render import jsonld_block
from escap_kg.pages.terms import (
    Paths,
    dataset_of,
    format_date,
    inverse_words,
    property_words,
    split_suffix,
    words,
)
from escap_kg.server import create_app
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph
from escap_kg.ui import STATIC_DIR
from tests.conftest import ROOT as ROOT_DIR
from tests.markup import parse

BASE = "https://w3id.org/escap-kg/"
ID = f"{BASE}id/"
EKG = "https://w3id.org/escap-kg/ontology#"
SCHEMA = "https://schema.org/"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
PROV = "http://www.w3.org/ns/prov#"
FIFTH_APPC = f"{ID}activity/fifth-appc"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
RDF_TYPES = {
    "text/turtle": "turtle",
    "application/ld+json": "json-ld",
    "application/n-triples": "nt",
    "application/rdf+xml": "xml",
}
SUFFIXES = {"ttl": "text/turtle", "jsonld": "application/ld+json", "nt": "application/n-triples"}
SUFFIXES["rdf"] = "application/rdf+xml"
# One resource of every kind the pages must serve, and the IRI each path stands for.
RESOURCES = {
    "/id/activity/fifth-appc": FIFTH_APPC,
    "/id/organization/unfpa": f"{ID}organization/unfpa",
    "/id/country/sweden": f"{ID}country/sweden",
    "/id/theme/safe-migration": f"{ID}theme/safe-migration",
    "/id/scheme/themes": f"{ID}scheme/themes",
    "/id/finding/fifth-appc-rising-share-of-women": f"{ID}finding/fifth-appc-rising-share-of-women",
    "/id/recommendation/fifth-appc-combat-trafficking": (
        f"{ID}recommendation/fifth-appc-combat-trafficking"
    ),
    "/id/plan/fifth-appc-plan-of-action": f"{ID}plan/fifth-appc-plan-of-action",
    "/id/paragraph/escap-migration-activities-2": f"{ID}paragraph/escap-migration-activities-2",
    "/graph/paragraph-2": f"{BASE}graph/paragraph-2",
}
PAGES = [*RESOURCES, "/ontology", "/", "/search?q=trafficking", "/id/activity/no-such-activity"]


def build_app(settings: Settings, kg: KnowledgeGraph) -> FastAPI:
    """The application with the pages, whether or not create_app adds them already."""
    app = create_app(settings, kg)
    if not any(getattr(route, "path", None) == "/id/{kind}/{slug}" for route in app.routes):
        add_page_routes(app, app.state.escap)
    return app


@pytest.fixture(scope="module")
def client(kg: KnowledgeGraph) -> Iterator[TestClient]:
    app = build_app(Settings(workers=1), kg)
    with TestClient(app) as test_client:
        yield test_client


def graph_of(body: bytes, media_type: str) -> rdflib.Graph:
    graph = rdflib.Graph()
    graph.parse(data=body, format=RDF_TYPES[media_type])
    return graph


def both_ways(kg: KnowledgeGraph, iri: str) -> set[tuple[str, str, str]]:
    """Every triple with ``iri`` on either side, as N-Triples terms."""
    node = ox.NamedNode(iri)
    found = set()
    for quad in kg.store.quads_for_pattern(node, None, None):
        found.add((str(quad.subject), str(quad.predicate), str(quad.object)))
    for quad in kg.store.quads_for_pattern(None, None, node):
        found.add((str(quad.subject), str(quad.predicate), str(quad.object)))
    return found


def varies_on_accept(response: httpx.Response) -> bool:
    """True when the Vary header names Accept (CORS adds Origin beside it)."""
    return "accept" in [v.strip().lower() for v in response.headers.get("vary", "").split(",")]


def as_nt(graph: rdflib.Graph) -> set[tuple[str, str, str]]:
    return {(s.n3(), p.n3(), o.n3()) for s, p, o in graph}


# Content negotiation ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*RESOURCES, "/ontology"])
def test_a_browser_gets_a_page(client: TestClient, path: str) -> None:
    response = client.get(path, headers={"Accept": BROWSER})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert varies_on_accept(response)
    assert 'rel="alternate"; type="text/turtle"' in response.headers["link"]
    assert "<svg" in response.text


@pytest.mark.parametrize("media_type", list(RDF_TYPES))
@pytest.mark.parametrize("path", list(RESOURCES))
def test_rdf_clients_get_the_description(
    client: TestClient, kg: KnowledgeGraph, path: str, media_type: str
) -> None:
    response = client.get(path, headers={"Accept": media_type})
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type
    assert varies_on_accept(response)
    suffix = next(s for s, t in SUFFIXES.items() if t == media_type)
    assert response.headers["content-location"] == f"{path}.{suffix}"
    graph = graph_of(response.content, media_type)
    iri = RESOURCES[path]
    assert as_nt(graph) >= both_ways(kg, iri)


@pytest.mark.parametrize("suffix", list(SUFFIXES))
@pytest.mark.parametrize("path", ["/id/activity/fifth-appc", "/id/theme/safe-migration"])
def test_a_suffix_chooses_the_syntax_without_headers(
    client: TestClient, kg: KnowledgeGraph, path: str, suffix: str
) -> None:
    response = client.get(f"{path}.{suffix}", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == SUFFIXES[suffix]
    assert not varies_on_accept(response)
    assert as_nt(graph_of(response.content, SUFFIXES[suffix])) >= both_ways(kg, RESOURCES[path])


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/html"),
        ("*/*", "text/html"),
        (BROWSER, "text/html"),
        ("text/turtle", "text/turtle"),
        ("text/turtle;q=0.5, application/ld+json", "application/ld+json"),
        ("text/html;q=0.1, application/n-triples;q=0.9", "application/n-triples"),
        ("application/rdf+xml, text/turtle;q=0.9", "application/rdf+xml"),
        ("text/*;q=0.9, text/html;q=0", "text/turtle"),
        ("application/json", "application/json"),
    ],
)
def test_q_values_decide(client: TestClient, accept: str | None, expected: str) -> None:
    headers = {"Accept": accept} if accept is not None else {}
    response = client.get("/id/organization/unfpa", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == expected
    assert varies_on_accept(response)


@pytest.mark.parametrize("path", ["/id/activity/fifth-appc", "/graph/paragraph-2", "/ontology"])
def test_nothing_acceptable_is_406(client: TestClient, path: str) -> None:
    response = client.get(path, headers={"Accept": "image/png, text/html;q=0"})
    assert response.status_code == 406
    assert varies_on_accept(response)
    assert "text/turtle" in response.text


def test_head_answers_like_get(client: TestClient) -> None:
    response = client.head("/id/activity/fifth-appc.ttl")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/turtle")


# Not ours, or not there ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/id/activity/no-such-activity",
        "/id/activity/no-such-activity.ttl",
        "/id/unicorn/fifth-appc",
        "/id/activity/Fifth-APPC",
        "/id/activity/fifth_appc",
        "/id/activity/-fifth-appc",
        "/id/activity/fifth-appc/more",
        "/id/activity/fifth-appc.exe",
        "/id/unicorn",
        "/id/activity/x%3E%20%3Fp%20%3Fo%20%7D%20%23",
        "/id/activity/%3Chttp%3A%2F%2Fexample.org%2F%3E",
        "/graph/no-such-graph",
        "/graph/paragraph-2/more",
        "/graph/extra/not-loaded",
        "/ontology/9.9.9",
        "/ontology.exe",
    ],
)
def test_unknown_or_foreign_paths_are_404_with_a_way_on(client: TestClient, path: str) -> None:
    response = client.get(path, headers={"Accept": BROWSER})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    page = parse(response.text)
    assert "/sparql" in page.hrefs
    assert "/" in page.hrefs
    assert any(href.startswith("/search") for href in page.hrefs)
    assert "Not found" in page.plain


def test_a_404_for_an_rdf_client_is_plain_text(client: TestClient) -> None:
    response = client.get("/id/activity/no-such-activity", headers={"Accept": "text/turtle"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")
    assert varies_on_accept(response)


def test_the_not_found_page_escapes_the_path(client: TestClient) -> None:
    response = client.get("/id/theme/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert response.status_code == 404
    assert "<script>alert(1)" not in response.text
    assert "&lt;script&gt;" in response.text


# What the pages say ----------------------------------------------------------------------------


def test_activity_page(client: TestClient) -> None:
    page = parse(client.get("/id/activity/fifth-appc").text)
    text = prose(page_html(client))
    assert "Fifth Asian and Pacific Population Conference" in text
    assert "Also known as Fifth APPC" in text
    assert "11\u201317 December 2002" in text
    # The class's label, not its IRI, and properties in plain words.
    assert "conference" in text
    for words_ in ("start date", "end date", "organizer", "key agenda item", "noted", "location"):
        assert words_ in text, words_
    assert "startDate" not in text
    assert "https://schema.org/startDate" not in text
    # Related resources link to their pages on this server.
    for href in (
        "/id/organization/unfpa",
        "/id/organization/escap",
        "/id/theme/migration-and-development",
        "/id/place/bangkok",
        "/id/finding/fifth-appc-rising-share-of-women",
        "/id/activity/egm-2001-migration-and-development",
        "/id/plan/fifth-appc-plan-of-action",
        "/ontology#Conference",
    ):
        assert href in page.hrefs, href
    # Where the statements come from: paragraph 2, and for the place the one outside source.
    assert "/id/paragraph/escap-migration-activities-2" in page.hrefs
    assert "\u00b62" in text
    assert "UN press release SG/SM/8562, 17 December 2002" in text
    assert "/graph/un-press-release-sg-sm-8562" in page.hrefs
    # The pictures: the neighbourhood and the timeline, with links to the pages.
    svgs = [a for tag, a in page.tags if tag == "svg"]
    assert len(svgs) == 2
    assert {"picture neighbourhood", "picture timeline"} <= {a.get("class") for a in svgs}
    assert re.search(r'<svg[^>]*neighbourhood.*?href="/id/organization/unfpa"', page_html(client))
    # The triples, to copy.
    pre = re.search(r'<pre class="triples"[^>]*>(.*?)</pre>', page_html(client), flags=re.DOTALL)
    assert pre is not None
    assert f"&lt;{FIFTH_APPC}&gt; &lt;{SCHEMA}startDate&gt;" in pre.group(1)


def prose(html: str) -> str:
    """The text a reader sees, without the triples to copy and the JSON-LD."""
    html = re.sub(r"<pre.*?</pre>|<script.*?</script>", " ", html, flags=re.DOTALL)
    return parse(html).plain


def page_html(client: TestClient, path: str = "/id/activity/fifth-appc") -> str:
    text: str = client.get(path).text
    return text


def test_organisation_page_links_to_wikidata_and_has_a_timeline(client: TestClient) -> None:
    html = page_html(client, "/id/organization/escap")
    page = parse(html)
    assert "http://www.wikidata.org/entity/Q1142901" in page.hrefs
    assert "Wikidata Q1142901" in page.plain
    assert "also known as" in page.plain
    assert "ESCAP" in page.plain
    assert 'class="picture timeline"' in html
    assert "/id/activity/fifth-appc" in page.hrefs
    assert "United Nations" in page.plain
    assert "/id/organization/ecosoc" in page.hrefs


def test_theme_page_links_to_unbis_and_sdg(client: TestClient) -> None:
    page = parse(page_html(client, "/id/theme/international-migration"))
    assert "http://metadata.un.org/thesaurus/1003321" in page.hrefs
    assert "UNBIS Thesaurus 1003321" in page.plain
    assert "http://metadata.un.org/sdg/10.7" in page.hrefs
    assert "SDG target 10.7" in page.plain
    assert "/id/theme/migration" in page.hrefs
    assert "/id/theme/labour-migration" in page.hrefs
    # The confidence of each link, from its alignment.
    assert "high" in page.plain
    assert "medium" in page.plain


def test_country_page_links_to_m49(client: TestClient) -> None:
    page = parse(page_html(client, "/id/country/sweden"))
    assert "http://metadata.un.org/sdg/codes/geoArea/752" in page.hrefs
    assert "UN M49 area 752" in page.plain
    # A country is a place: its government, the partner of the seminar, serves it.
    assert "/id/organization/government-of-sweden" in page.hrefs


def test_scheme_page_shows_the_tree(client: TestClient) -> None:
    html = page_html(client, "/id/scheme/themes")
    assert '<ul class="tree">' in html
    assert re.search(
        r'href="/id/theme/international-migration">.*?<ul class="subtree">.*?'
        r'href="/id/theme/labour-migration"',
        html,
        flags=re.DOTALL,
    )


def test_finding_recommendation_plan_and_paragraph_pages(client: TestClient) -> None:
    finding = parse(page_html(client, "/id/finding/fifth-appc-rising-share-of-women")).plain
    assert "Women form a rising share of international migrants" in finding
    assert "statement" in finding
    assert "noted by" in finding
    plan = parse(page_html(client, "/id/plan/fifth-appc-plan-of-action"))
    assert "adopted at" in plan.plain
    assert "addressed to" in plan.plain
    assert "/id/recommendation/fifth-appc-combat-trafficking" in plan.hrefs
    assert "\u00b63" in plan.plain
    recommendation = parse(page_html(client, "/id/recommendation/fifth-appc-combat-trafficking"))
    assert "/id/plan/fifth-appc-plan-of-action" in recommendation.hrefs
    paragraph = parse(page_html(client, "/id/paragraph/escap-migration-activities-2"))
    assert "/graph/paragraph-2" in paragraph.hrefs
    assert "source of" in paragraph.plain


def test_graph_page_and_its_rdf(client: TestClient, kg: KnowledgeGraph) -> None:
    page = parse(page_html(client, "/graph/paragraph-2"))
    assert "Statements of paragraph 2 of the source" in page.plain
    assert "named graph" in page.plain
    assert page.jsonld()["@type"] == "Dataset"
    assert "/id/activity/fifth-appc" in page.hrefs
    assert "/id/paragraph/escap-migration-activities-2" in page.hrefs
    response = client.get("/graph/paragraph-2.ttl")
    assert response.status_code == 200
    graph = graph_of(response.content, "text/turtle")
    fifth = rdflib.URIRef(FIFTH_APPC)
    assert (fifth, rdflib.URIRef(f"{SCHEMA}startDate"), None) in graph
    g = rdflib.URIRef(f"{BASE}graph/paragraph-2")
    para = rdflib.URIRef(f"{ID}paragraph/escap-migration-activities-2")
    assert (g, rdflib.URIRef(f"{PROV}wasDerivedFrom"), para) in graph
    content = kg.store.quads_for_pattern(None, None, None, ox.NamedNode(str(g)))
    assert len(graph) >= len(list(content))


def test_each_statement_names_its_one_outside_source(client: TestClient) -> None:
    """Bangkok is the place of two meetings, each from a different outside source: the page
    names each source beside its statement."""
    page = parse(page_html(client, "/id/place/bangkok"))
    assert "UN press release SG/SM/8562, 17 December 2002" in page.plain
    assert "ScandAsia news report on the October 2002 seminar" in page.plain
    assert "other public sources" not in page.plain
    assert "/graph/un-press-release-sg-sm-8562" in page.hrefs
    assert "/graph/scandasia-seminar-opening-2002" in page.hrefs


def test_jsonld_of_an_activity_matches_the_graph(client: TestClient, kg: KnowledgeGraph) -> None:
    data = parse(page_html(client)).jsonld()
    assert data["@context"] == "https://schema.org"
    assert data["@type"] == "Event"
    assert data["@id"] == FIFTH_APPC
    assert data["name"] == "Fifth Asian and Pacific Population Conference"
    assert data["startDate"] == "2002-12-11"
    assert data["endDate"] == "2002-12-17"
    organizers = data["organizer"]
    assert isinstance(organizers, list)
    expected = {
        str(quad.object)[1:-1]
        for quad in kg.store.quads_for_pattern(
            ox.NamedNode(FIFTH_APPC), ox.NamedNode(f"{SCHEMA}organizer"), None
        )
    }
    assert {o["@id"] for o in organizers} == expected
    assert all(o["@type"] == "Organization" for o in organizers)
    assert {o["name"] for o in organizers} == {
        "UNFPA",
        "United Nations Economic and Social Commission for Asia and the Pacific",
    }
    assert data["location"]["name"] == "Bangkok"  # type: ignore[index]
    about = {t["@id"] for t in data["about"]}  # type: ignore[attr-defined]
    assert f"{ID}theme/migration-and-development" in about


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/id/organization/unfpa", "Organization"),
        ("/id/country/sweden", "Country"),
        ("/id/theme/safe-migration", "DefinedTerm"),
        ("/id/scheme/themes", "DefinedTermSet"),
        ("/id/plan/fifth-appc-plan-of-action", "CreativeWork"),
        ("/id/recommendation/fifth-appc-combat-trafficking", "CreativeWork"),
        ("/id/series/asian-and-pacific-population-conference", "EventSeries"),
    ],
)
def test_jsonld_types(client: TestClient, path: str, kind: str) -> None:
    data = parse(page_html(client, path)).jsonld()
    assert data["@type"] == kind
    assert data["name"]


def test_jsonld_same_as_for_organisations(client: TestClient) -> None:
    data = parse(page_html(client, "/id/organization/unfpa")).jsonld()
    assert data["sameAs"] == "http://www.wikidata.org/entity/Q623036"


def test_turtle_holds_the_resource_both_ways_and_its_neighbours_names(
    client: TestClient, kg: KnowledgeGraph
) -> None:
    response = client.get("/id/activity/fifth-appc", headers={"Accept": "text/turtle"})
    graph = graph_of(response.content, "text/turtle")
    fifth = rdflib.URIRef(FIFTH_APPC)
    assert (fifth, rdflib.URIRef(f"{SCHEMA}startDate"), None) in graph
    egm = rdflib.URIRef(f"{ID}activity/egm-2001-migration-and-development")
    assert (egm, rdflib.URIRef(f"{EKG}preparatoryTo"), fifth) in graph
    unfpa = rdflib.URIRef(f"{ID}organization/unfpa")
    assert (unfpa, rdflib.URIRef(f"{RDFS}label"), rdflib.Literal("UNFPA", lang="en")) in graph
    # Exactly one hop: the neighbours' own other statements are not there.
    assert (unfpa, rdflib.URIRef("http://www.w3.org/2004/02/skos/core#exactMatch"), None) not in (
        graph
    )
    assert as_nt(graph) >= both_ways(kg, FIFTH_APPC)
    assert "@prefix activity:" in response.text


# Home, ontology, search ------------------------------------------------------------------------


def test_home_page(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 200
    html = response.text
    page = parse(html)
    text = page.plain
    assert "ESCAP and international migration" in text
    for count in ("4 activities", "11 organizations", "35 themes", "6 findings"):
        assert count in text, count
    assert "4 recommendations" in text
    assert 'class="picture timeline"' in html
    assert 'class="picture network"' in html
    for href in (
        "/sparql",
        "/api/queries",
        "/docs",
        "/download/escap-kg.ttl",
        "/.well-known/void",
        "/ontology",
        "/id/activity/fifth-appc",
        "/id/organization/unifem",
        "/id/organization/government-of-sweden",
    ):
        assert href in page.hrefs, href
    # The themes as a tree: trafficking in women and children under trafficking in persons.
    assert re.search(
        r'href="/id/theme/trafficking-in-persons">.*?<ul class="subtree">\s*<li><a '
        r'href="/id/theme/trafficking-in-women-and-children"',
        html,
        flags=re.DOTALL,
    )
    assert parse(html).jsonld()["@type"] == "Dataset"


def test_home_counts_come_from_the_graph(client: TestClient, kg: KnowledgeGraph) -> None:
    triples = len({(q.subject, q.predicate, q.object) for q in kg.store})
    assert f"{triples:,} triples" in parse(page_html(client, "/")).plain


def test_ontology_page(client: TestClient) -> None:
    html = page_html(client, "/ontology")
    page = parse(html)
    ids = {a.get("id") for _, a in page.tags}
    for term in ("Activity", "Conference", "Finding", "adoptedAt", "preparatoryTo", "isAdHoc"):
        assert term in ids, term
    text = page.plain
    assert "The activity, typically a conference, at which a plan of action was adopted." in text
    assert "#PlanOfAction" in page.hrefs
    assert "http://www.w3.org/ns/prov#wasGeneratedBy" in page.hrefs
    assert "https://schema.org/Event" in page.hrefs
    assert 'class="picture ontology"' in html
    assert parse(html).jsonld()["@type"] == "DefinedTermSet"


@pytest.mark.parametrize("path", ["/ontology", "/ontology.ttl", "/ontology/0.1.0.ttl"])
def test_ontology_rdf_is_the_ontology_graph(
    client: TestClient, kg: KnowledgeGraph, path: str
) -> None:
    headers = {"Accept": "text/turtle"} if path == "/ontology" else {}
    response = client.get(path, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/turtle")
    graph = graph_of(response.content, "text/turtle")
    ontology = ox.NamedNode(f"{BASE}graph/escap-kg")
    assert len(graph) == len(list(kg.store.quads_for_pattern(None, None, None, ontology)))
    assert (rdflib.URIRef(f"{EKG}Activity"), rdflib.RDFS.subClassOf, None) in graph


def test_ontology_version_page(client: TestClient) -> None:
    response = client.get("/ontology/0.1.0", headers={"Accept": BROWSER})
    assert response.status_code == 200
    assert 'id="Activity"' in response.text


def test_search(client: TestClient) -> None:
    page = parse(page_html(client, "/search?q=trafficking"))
    assert "/id/activity/seminar-2002-gender-equality-trafficking" in page.hrefs
    assert "/id/theme/trafficking-in-persons" in page.hrefs
    page = parse(page_html(client, "/search?q=Fifth+APPC"))
    assert "/id/activity/fifth-appc" in page.hrefs
    assert "No resource" in parse(page_html(client, "/search?q=zzzzqqq")).plain


# Pages that work under a strict Content-Security-Policy ----------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_pages_need_nothing_but_our_static_files(client: TestClient, path: str) -> None:
    html = client.get(path).text
    page = parse(html)
    assert not any("style" in attrs for _, attrs in page.tags), "inline style attribute"
    assert "<style" not in html
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)
    for attrs, _ in page.scripts:
        assert attrs.get("type") == "application/ld+json"
        assert "src" not in attrs
    for tag, attrs in page.tags:
        for name in ("src", "srcset", "poster", "data"):
            assert name not in attrs or tag == "object", (tag, attrs)
        if tag == "link":
            href = attrs.get("href") or ""
            assert href.startswith(("/", "data:")), href
            if href.startswith("/static/"):
                assert (STATIC_DIR / href.removeprefix("/static/")).is_file(), href
    assert client.get("/static/pages/site.css").status_code == 200


def test_jsonld_block_cannot_close_its_script() -> None:
    block = str(jsonld_block({"name": "</script><script>alert(1)</script><!--"}))
    assert "<" not in block
    assert json.loads(block)["name"].startswith("</script>")


@pytest.fixture(scope="module")
def hostile_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("hostile")
    data = Path(folder) / "hostile.ttl"
    data.write_text(
        f"<{ID}theme/hostile> a <http://www.w3.org/2004/02/skos/core#Concept> ;\n"
        f'  <{RDFS}label> "</script><script>alert(1)</script> & <b>bold</b>"@en ;\n'
        f"  <http://www.w3.org/2004/02/skos/core#inScheme> <{ID}scheme/themes> .\n",
        encoding="utf-8",
    )
    settings = Settings(workers=1, extra_files=(data,))
    app = build_app(settings, KnowledgeGraph.load(settings))
    with TestClient(app) as test_client:
        yield test_client


def test_hostile_labels_are_escaped_everywhere(hostile_client: TestClient) -> None:
    html = hostile_client.get("/id/theme/hostile").text
    assert "<script>alert" not in html
    assert "<b>bold</b>" not in html
    page = parse(html)
    assert len(page.scripts) == 1
    assert page.jsonld()["name"] == "</script><script>alert(1)</script> & <b>bold</b>"
    assert "</script><script>alert(1)</script> & <b>bold</b>" in page.plain
    extra = hostile_client.get("/graph/extra/hostile")
    assert extra.status_code == 200
    assert "<script>alert" not in extra.text
    assert hostile_client.get("/graph/extra/hostile.ttl").status_code == 200
    assert "<script>alert" not in hostile_client.get("/id/scheme/themes").text
    assert "<script>alert" not in hostile_client.get("/").text


# Another resource base, served from this host ---------------------------------------------------


def test_another_base_maps_onto_the_routes() -> None:
    settings = Settings(workers=1, base_iri="http://example.org/kg/")
    app = build_app(settings, KnowledgeGraph.load(settings))
    with TestClient(app) as client:
        response = client.get("/id/activity/fifth-appc", headers={"Accept": "text/turtle"})
        assert response.status_code == 200
        graph = graph_of(response.content, "text/turtle")
        fifth = rdflib.URIRef("http://example.org/kg/id/activity/fifth-appc")
        assert (fifth, rdflib.URIRef(f"{SCHEMA}startDate"), None) in graph
        page = parse(client.get("/id/activity/fifth-appc").text)
        assert "/id/organization/unfpa" in page.hrefs
        assert "/id/paragraph/escap-migration-activities-2" in page.hrefs
        assert "http://example.org/kg/id/activity/fifth-appc" in page.plain


def test_routes_are_added_once(kg: KnowledgeGraph) -> None:
    app = build_app(Settings(workers=1), kg)
    before = len(app.routes)
    add_page_routes(app, app.state.escap)
    add_page_routes(app, app.state.escap)
    assert len(app.routes) == before
    homes = [
        r
        for r in app.routes
        if getattr(r, "path", None) == "/" and "GET" in (getattr(r, "methods", None) or ())
    ]
    assert len(homes) == 1


# Words for terms --------------------------------------------------------------------------------


def test_words_for_terms() -> None:
    assert words("startDate") == "start date"
    assert words("wasAssociatedWith") == "was associated with"
    assert property_words(f"{SCHEMA}startDate", {}) == "start date"
    assert property_words(f"{EKG}plannedWork", {f"{EKG}plannedWork": "has planned work"}) == (
        "has planned work"
    )
    assert inverse_words(f"{SCHEMA}organizer", {}) == "organizer of"
    assert inverse_words("http://example.org/mentions", {}) == "mentions of"
    assert dataset_of("http://www.wikidata.org/entity/Q34") == ("Wikidata", "Wikidata Q34")
    assert dataset_of("http://metadata.un.org/sdg/10.7") == ("SDG", "SDG target 10.7")
    assert dataset_of("http://metadata.un.org/sdg/5") == ("SDG", "SDG goal 5")
    assert dataset_of("http://metadata.un.org/sdg/codes/geoArea/752") == (
        "UN M49",
        "UN M49 area 752",
    )
    assert dataset_of("http://example.org/x") is None


def test_dates_at_their_precision() -> None:
    xsd = "http://www.w3.org/2001/XMLSchema#"
    assert format_date("2001", f"{xsd}gYear") == "2001"
    assert format_date("2002-10", f"{xsd}gYearMonth") == "October 2002"
    assert format_date("2002-12-11", f"{xsd}date") == "11 December 2002"
    assert format_date("not a date", f"{xsd}date") == "not a date"


def test_paths_are_strict() -> None:
    paths = Paths(BASE)
    assert paths.resource_iri("activity", "fifth-appc") == FIFTH_APPC
    for kind, slug in (
        ("activity", "Fifth"),
        ("activity", "a>b"),
        ("activity", "a b"),
        ("activity", ""),
        ("activity", "a--b"),
        ("nope", "fifth-appc"),
    ):
        assert paths.resource_iri(kind, slug) is None
    assert paths.path(FIFTH_APPC) == "/id/activity/fifth-appc"
    assert paths.path(f"{EKG}Activity") == "/ontology#Activity"
    assert paths.path("https://w3id.org/escap-kg/ontology") == "/ontology"
    assert paths.path(f"{BASE}graph/context") == "/graph/context"
    assert paths.path("http://www.wikidata.org/entity/Q34") is None
    assert paths.path(f"{BASE}elsewhere/x") is None
    assert split_suffix("fifth-appc.ttl") == ("fifth-appc", "ttl")
    assert split_suffix("fifth-appc") == ("fifth-appc", None)
    assert split_suffix("fifth-appc.exe") == ("fifth-appc.exe", None)


@pytest.mark.slow
def test_every_iri_we_mint_answers(client: TestClient, kg: KnowledgeGraph) -> None:
    paths = Paths(BASE)
    minted = {
        term.value
        for quad in kg.store
        for term in (quad.subject, quad.object, quad.graph_name)
        if isinstance(term, ox.NamedNode) and term.value.startswith((f"{BASE}id/", f"{BASE}graph/"))
    }
    assert len(minted) > 100
    for iri in sorted(minted):
        path = paths.path(iri)
        assert path is not None, iri
        page = client.get(path)
        assert page.status_code == 200, (iri, page.text[:200])
        assert "<svg" in page.text or "graph/" in iri, iri
        turtle = client.get(f"{path}.ttl")
        assert turtle.status_code == 200, iri
        assert len(graph_of(turtle.content, "text/turtle")) > 0, iri


@pytest.mark.slow
def test_pages_over_an_upstream_store(kg: KnowledgeGraph, tmp_path: Path) -> None:
    """The pages read everything through the engine, so they work in front of another store."""
    from escap_kg.remote import RemoteEngine, publish
    from tests.test_remote import oxigraph

    with oxigraph(tmp_path, "--union-default-graph") as server:
        publish(kg, server.store_url)
        app = create_app(Settings(workers=1), engine=RemoteEngine(server.query_url))
        if not any(getattr(route, "path", None) == "/id/{kind}/{slug}" for route in app.routes):
            add_page_routes(app, app.state.escap)
        with TestClient(app) as client:
            page = parse(client.get("/id/activity/fifth-appc").text)
            assert "11\u201317 December 2002" in page.plain
            assert "/id/organization/unfpa" in page.hrefs
            assert "\u00b62" in page.plain
            turtle = client.get("/id/activity/fifth-appc.ttl")
            assert as_nt(graph_of(turtle.content, "text/turtle")) >= both_ways(kg, FIFTH_APPC)
            assert "4 activities" in parse(client.get("/").text).plain
            assert client.get("/ontology").status_code == 200
            assert client.get("/id/activity/no-such-activity").status_code == 404


# schema.org types from the ontology -------------------------------------------------------------

EKG_NS = "https://w3id.org/escap-kg/ontology#"


def ontology_parents() -> dict[str, set[str]]:
    graph = rdflib.Graph().parse(ROOT_DIR / "ontology" / "escap-kg.ttl", format="turtle")
    parents: dict[str, set[str]] = {}
    for child, parent in graph.subject_objects(rdflib.RDFS.subClassOf):
        if isinstance(child, rdflib.URIRef) and isinstance(parent, rdflib.URIRef):
            parents.setdefault(str(child), set()).add(str(parent))
    return parents


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (["Seminar", "Activity", "http://www.w3.org/ns/prov#Activity", f"{SCHEMA}Event"], "Event"),
        (["Conference"], "Event"),
        (["MeetingReport", "Document", f"{SCHEMA}CreativeWork", f"{SCHEMA}Report"], "Report"),
        (["BackgroundPaper", "Document"], "CreativeWork"),
        (["Country", "http://www.w3.org/ns/prov#Agent"], "Country"),
        (["Region", f"{SCHEMA}Place"], "Place"),
        (["Finding", "http://www.w3.org/ns/prov#Entity"], "Claim"),
        (["Recommendation", "http://www.w3.org/ns/prov#Plan"], "CreativeWork"),
        (["ActorGroup"], "Audience"),
        (["http://www.w3.org/ns/org#FormalOrganization"], "Organization"),
        (["http://www.w3.org/2004/02/skos/core#Concept"], "DefinedTerm"),
        ([f"{SCHEMA}EventSeries"], "EventSeries"),
        (["Participation", "http://www.w3.org/ns/prov#Association"], "Thing"),
        (["Alignment"], "Thing"),
    ],
)
def test_schema_types_follow_the_ontology(types: list[str], expected: str) -> None:
    schema = SchemaTypes(ontology_parents())
    iris = [t if "/" in t else f"{EKG_NS}{t}" for t in types]
    assert schema(iris) == expected


def test_schema_types_are_stated_once() -> None:
    """A class the ontology aligns with schema.org has no entry of its own in the table."""
    schema = SchemaTypes(ontology_parents())
    stated = {
        cls
        for cls, parents in schema.parents.items()
        if any(p.startswith(SCHEMA) for p in {*parents, *schema.ancestors(cls)})
    }
    assert not stated & set(OTHER_SCHEMA_TYPES), "the ontology states these already"
