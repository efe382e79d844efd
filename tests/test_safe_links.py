"""Only http, https and mailto IRIs from the data become links; anything else is shown as text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from escap_kg.pages.terms import Paths, safe_href
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph
from tests.markup import Page, parse
from tests.test_pages import build_app

BASE = "https://w3id.org/escap-kg/"
ID = f"{BASE}id/"
ORG_IRI = f"{ID}organization/link-test"
ORG_PAGE = "/id/organization/link-test"
WIKIDATA = "http://www.wikidata.org/entity/"
GRAPH_PAGE = "/graph/extra/links"
# Written out separately so that the test does not lean on the code it checks.
ALLOWED = re.compile(r"(?:https?://|mailto:|/(?!/)|#)")
LINK_ATTRIBUTES = ("href", "xlink:href", "src", "action", "formaction", "poster", "data")

# IRIs a page must never link to (each is a valid IRI, so it can be a node of the graph).
HOSTILE_IRIS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(2)",
    "data:text/html,%3Cscript%3Ealert(3)%3C/script%3E",
    "vbscript:x",
    "file:///etc/passwd",
    "urn:isbn:0451450523",
]
# Texts that cannot be IRIs but can be literals where a web address is expected.
HOSTILE_TEXTS = [
    "data:text/html,<script>alert(1)</script>",
    " javascript:x",
    "java\tscript:y",
    "javascript:alert(6)",
]
GOOD = ["https://example.org/ok", "mailto:someone@example.org"]


def turtle_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t") + '"'


def hostile_turtle() -> str:
    targets = ", ".join(f"<{iri}>" for iri in [*HOSTILE_IRIS, *GOOD])
    lines = [
        "@prefix rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .",
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .",
        "@prefix skos: <http://www.w3.org/2004/02/skos/core#> .",
        "@prefix schema: <https://schema.org/> .",
        "@prefix dcterms: <http://purl.org/dc/terms/> .",
        "@prefix prov: <http://www.w3.org/ns/prov#> .",
        "@prefix org: <http://www.w3.org/ns/org#> .",
        "@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .",
        "@prefix ekg: <https://w3id.org/escap-kg/ontology#> .",
        f"<{ORG_IRI}> a org:FormalOrganization, <javascript:alert(5)> ;",
        '  rdfs:label "Link test organisation"@en ;',
        f'  rdfs:seeAlso {targets}, [ rdfs:label "a blank node" ] ;',
        "  <javascript:property> <https://example.org/via-a-hostile-property> ;",
        f"  skos:exactMatch <{WIKIDATA}Q1> .",
        f"<javascript:alert(4)> dcterms:subject <{ORG_IRI}> .",
    ]
    # Alignments whose 'found in' is a hostile or a good web address.
    sources = [*HOSTILE_TEXTS, "https://example.org/alignment-source"]
    for number, source in enumerate(sources, start=2):
        lines.append(
            f"<{ID}alignment/link-test-{number}> a ekg:Alignment ; rdf:subject <{ORG_IRI}> ;"
            f" rdf:predicate skos:closeMatch ; rdf:object <{WIKIDATA}Q{number}> ;"
            f" dcterms:source {turtle_string(source)} ."
        )
    derived = ", ".join(
        [
            *(turtle_string(t) for t in HOSTILE_TEXTS),
            "<javascript:alert(7)>",
            "<https://example.org/graph-source>",
        ]
    )
    lines += [
        f'<{BASE}graph/extra/links> rdfs:label "Link test graph" ; prov:wasDerivedFrom {derived} .',
        # An activity and a theme that are not ours, on the timeline, home page and theme tree.
        '<javascript:alert(8)> a ekg:Seminar ; rdfs:label "Hostile seminar" ;',
        f'  schema:startDate "2002-05-01"^^xsd:date ; schema:organizer <{ORG_IRI}>, <vbscript:z> .',
        f"<javascript:alert(9)> skos:inScheme <{ID}scheme/themes> ;",
        '  skos:prefLabel "Hostile theme" .',
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data = Path(tmp_path_factory.mktemp("links")) / "links.ttl"
    data.write_text(hostile_turtle(), encoding="utf-8")
    settings = Settings(workers=1, extra_files=(data,))
    app = build_app(settings, KnowledgeGraph.load(settings))
    with TestClient(app) as test_client:
        yield test_client


def page(client: TestClient, path: str) -> tuple[str, Page]:
    response = client.get(path, headers={"Accept": "text/html"})
    assert response.status_code == 200, (path, response.status_code)
    return response.text, parse(response.text)


def link_targets(page: Page) -> list[tuple[str, str, str]]:
    """Every ``(tag, attribute, value)`` that a browser would follow or load."""
    found = []
    for tag, attrs in page.tags:
        for name in LINK_ATTRIBUTES:
            if name in attrs:
                found.append((tag, name, attrs[name] or ""))
    return found


def assert_no_unsafe_link(page: Page) -> None:
    for tag, name, value in link_targets(page):
        if (tag, name, value) == ("link", "href", "data:,"):
            continue  # our own empty favicon, a constant of the template
        assert ALLOWED.match(value), f"<{tag} {name}={value!r}>"


# The rule itself ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        *HOSTILE_IRIS,
        *HOSTILE_TEXTS,
        "javascript://example.org/%0Aalert(1)",
        "\x00javascript:alert(1)",
        "\x01https://example.org/",
        " https://example.org/",
        "https://example.org/\n",
        "https://exam ple.org/",
        "https://example.org/\u202e",
        "\thttps://example.org/",
        "HTTPS://example.org/",
        "Mailto:someone@example.org",
        "https:example.org",
        "https://",
        "http:///etc/passwd",
        "mailto:",
        "ftp://example.org/",
        "_:b0",
        "/id/activity/fifth-appc",
        "//example.org/",
        "example.org/",
        "",
    ],
)
def test_only_plain_http_https_and_mailto_are_links(value: str) -> None:
    assert safe_href(value) is None


@pytest.mark.parametrize(
    "value",
    [
        "https://example.org/ok",
        "http://www.wikidata.org/entity/Q1",
        "mailto:someone@example.org",
        "https://example.org/a?b=c#d",
        "https://example.org/caf\u00e9",
    ],
)
def test_http_https_and_mailto_stay_links(value: str) -> None:
    assert safe_href(value) == value


def test_our_iris_still_map_to_local_paths() -> None:
    paths = Paths(BASE)
    assert paths.href(f"{ID}activity/fifth-appc") == "/id/activity/fifth-appc"
    assert paths.href(f"{BASE}ontology#Seminar") == "/ontology#Seminar"
    assert paths.href("https://example.org/ok") == "https://example.org/ok"
    assert paths.href("javascript:alert(1)") is None


# The pages ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [ORG_PAGE, GRAPH_PAGE, "/", "/id/scheme/themes", "/ontology", "/search?q=link+test"],
)
def test_no_page_links_to_a_hostile_iri(client: TestClient, path: str) -> None:
    html, parsed = page(client, path)
    assert_no_unsafe_link(parsed)
    assert "<script>alert" not in html
    assert "None" not in [value for _, _, value in link_targets(parsed)]


def test_the_resource_page_shows_hostile_iris_as_text_and_links_the_good_ones(
    client: TestClient,
) -> None:
    html, parsed = page(client, ORG_PAGE)
    for value in [*HOSTILE_IRIS, *HOSTILE_TEXTS, "javascript:alert(4)", "javascript:alert(5)"]:
        assert " ".join(value.split()) in parsed.plain, value
    assert "javascript:alert(7)" in parsed.plain
    assert "data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;" in html
    hrefs = parsed.hrefs
    for good in GOOD:
        assert good in hrefs, good
    assert "https://example.org/via-a-hostile-property" in hrefs
    assert "https://example.org/alignment-source" in hrefs
    assert "https://example.org/graph-source" in hrefs
    assert "http://www.wikidata.org/entity/Q1" in hrefs
    assert "/graph/extra/links" in hrefs


def neighbourhood(html: str) -> tuple[str, Page]:
    found = re.search(r"<svg[^>]*picture neighbourhood.*?</svg>", html, flags=re.DOTALL)
    assert found, "no neighbourhood picture"
    return found.group(0), parse(found.group(0))


def test_the_neighbourhood_picture_draws_hostile_iris_without_a_link(client: TestClient) -> None:
    html, _ = page(client, ORG_PAGE)
    svg, picture = neighbourhood(html)
    assert_no_unsafe_link(picture)
    for value in [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(2)",
        "vbscript:x",
        "javascript:alert(4)",
    ]:
        # Drawn as text, named in full on hover (after the link's name), never a link.
        assert re.search(rf"<title>[a-z ]+: {re.escape(value)}</title>", svg), value
    assert {"https://example.org/ok", "mailto:someone@example.org"} <= set(picture.hrefs)


def test_timelines_and_the_network_draw_foreign_activities_without_a_link(
    client: TestClient,
) -> None:
    html, parsed = page(client, "/")
    assert "Hostile seminar" in parsed.plain
    assert "Hostile theme" in parsed.plain
    pictures = re.findall(r"<svg.*?</svg>", html, flags=re.DOTALL)
    assert any("Hostile seminar" in svg for svg in pictures)
    for svg in pictures:
        assert_no_unsafe_link(parse(svg))
    _, org = page(client, ORG_PAGE)
    assert "Hostile seminar" in org.plain


def test_the_graph_page_lists_hostile_subjects_as_text(client: TestClient) -> None:
    _, parsed = page(client, GRAPH_PAGE)
    assert "javascript:alert(4)" in parsed.plain
    assert "javascript:alert(8)" in parsed.plain
    assert "/id/organization/link-test" in parsed.hrefs


def test_the_ontology_page_lists_foreign_instances_as_text(client: TestClient) -> None:
    _, parsed = page(client, "/ontology")
    assert "Hostile seminar" in parsed.plain
    assert any(href.startswith("/id/activity/") for href in parsed.hrefs)


def walk(data: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(data, dict):
        for k, v in data.items():
            yield from walk(v, k)
    elif isinstance(data, list):
        for v in data:
            yield from walk(v, key)
    else:
        yield key, data


@pytest.mark.parametrize("path", [ORG_PAGE, GRAPH_PAGE, "/", "/ontology"])
def test_jsonld_addresses_are_http_https_or_mailto(client: TestClient, path: str) -> None:
    _, parsed = page(client, path)
    data = parsed.jsonld()
    addresses = [(k, v) for k, v in walk(data) if k in ("url", "sameAs", "license", "contentUrl")]
    assert addresses
    for key, value in addresses:
        assert isinstance(value, str), (key, value)
        assert ALLOWED.match(value), (key, value)
    if path == ORG_PAGE:
        assert data["url"] == f"http://testserver{ORG_PAGE}"
        assert data["sameAs"] == "http://www.wikidata.org/entity/Q1"


def test_the_rdf_keeps_the_hostile_iris_as_data(client: TestClient) -> None:
    triples = client.get(f"{ORG_PAGE}.nt").text
    assert (
        f"<{ORG_IRI}> <http://www.w3.org/2000/01/rdf-schema#seeAlso> <javascript:alert(1)> ."
        in (triples)
    )
    assert "<file:///etc/passwd>" in triples
