"""The query catalogue page for people: every question, its answers and its parameter forms."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from escap_kg.queries import Query, load_catalogue
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph
from tests.markup import parse
from tests.test_pages import build_app

EXPECTED = Path(__file__).parent / "expected"
FIFTH_APPC = "https://w3id.org/escap-kg/id/activity/fifth-appc"
WHERE = "15-where-in-the-source"
WIKIDATA = "17-wikidata-names-of-partners"
NETWORK_NOTE = (
    "needs the network: the server must be started with "
    "--allow-service https://query.wikidata.org/sparql"
)
#: Hosts a page may link to: the licence in the footer.
LINKABLE_HOSTS = {"creativecommons.org"}


class Cells(HTMLParser):
    """The rows of the answer table of a page, as the text of their cells."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._in_answer = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and ("class", "answer") in attrs:
            self._in_answer = True
        elif self._in_answer and tag == "tr":
            self.rows.append([])
        elif self._in_answer and tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_answer = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def answer_rows(html: str) -> list[list[str]]:
    cells = Cells()
    cells.feed(html)
    return [row for row in cells.rows if row]


@pytest.fixture(scope="module")
def client(kg: KnowledgeGraph) -> Iterator[TestClient]:
    with TestClient(build_app(Settings(workers=1), kg)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def catalogue(settings: Settings) -> list[Query]:
    return load_catalogue(settings)


@pytest.fixture(scope="module")
def listing(client: TestClient) -> str:
    response = client.get("/queries")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def test_every_query_is_listed_with_its_question(listing: str, catalogue: list[Query]) -> None:
    page = parse(listing)
    assert len(catalogue) >= 17
    for query in catalogue:
        assert query.summary in page.plain, query.id
        assert f"/queries/{query.id}.rq" in page.hrefs, query.id
        if query.id != WIKIDATA:
            assert f"/queries/{query.id}" in page.hrefs, query.id


def test_the_sparql_link_shows_the_query_file(client: TestClient, catalogue: list[Query]) -> None:
    for query in catalogue:
        response = client.get(f"/queries/{query.id}.rq")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text == query.path.read_text(encoding="utf-8")


def test_csv_and_json_links_answer_in_their_type(client: TestClient, listing: str) -> None:
    links = [href for href in parse(listing).hrefs if href.startswith("/api/queries/")]
    # Two per query that runs here (all but the federated one).
    assert len(links) == 2 * 16
    expected = {
        "_format=csv": "text/csv",
        "_format=nt": "application/n-triples",
        "_format=jsonld": "application/ld+json",
        "": "application/sparql-results+json",
    }
    for href in links:
        response = client.get(href)
        assert response.status_code == 200, href
        media_type = response.headers["content-type"].split(";")[0]
        assert media_type == expected[urlsplit(href).query], href
        assert response.content.strip(), href


def test_each_query_runs_to_a_table(client: TestClient, catalogue: list[Query]) -> None:
    for query in catalogue:
        if query.id == WIKIDATA:
            continue
        response = client.get(f"/queries/{query.id}")
        assert response.status_code == 200, query.id
        assert answer_rows(response.text), f"{query.id}: no rows in the answer table"


def test_the_first_query_answers_as_its_expected_csv(client: TestClient) -> None:
    name = "01-activities-in-time-order"
    with (EXPECTED / f"{name}.csv").open(encoding="utf-8", newline="") as handle:
        expected = list(csv.reader(handle))[1:]
    assert answer_rows(client.get(f"/queries/{name}").text) == expected


def test_the_parameter_form_of_query_15(client: TestClient, listing: str) -> None:
    page = parse(listing)
    forms = [a for tag, a in page.tags if tag == "form" and a.get("action") == f"/queries/{WHERE}"]
    assert forms == [{"class": "query-params", "action": f"/queries/{WHERE}", "method": "get"}]
    inputs = [a for tag, a in page.tags if tag == "input" and a.get("name") == "entity"]
    assert len(inputs) == 1
    labels = [a for tag, a in page.tags if tag == "label" and a.get("for") == inputs[0]["id"]]
    assert len(labels) == 1


@pytest.mark.parametrize("entity", [FIFTH_APPC, "id/activity/fifth-appc"])
def test_submitting_the_form_gives_the_rows_of_that_entity(client: TestClient, entity: str) -> None:
    with (EXPECTED / f"{WHERE}.csv").open(encoding="utf-8", newline="") as handle:
        expected = [row for row in list(csv.reader(handle))[1:] if row[0] == FIFTH_APPC]
    assert len(expected) > 10
    response = client.get(f"/queries/{WHERE}", params={"entity": entity})
    assert response.status_code == 200
    assert answer_rows(response.text) == expected
    page = parse(response.text)
    # The form keeps the value, and the downloads carry it too.
    assert entity in [a.get("value") for tag, a in page.tags if tag == "input"]
    csv_link = next(h for h in page.hrefs if "_format=csv" in h)
    download = client.get(csv_link)
    assert download.status_code == 200
    rows = list(csv.reader(download.text.splitlines()))[1:]
    assert rows == expected


def test_a_bad_parameter_is_named_on_the_page(client: TestClient) -> None:
    response = client.get(f"/queries/{WHERE}", params={"entity": "not an iri"})
    assert response.status_code == 400
    assert "is not an IRI" in parse(response.text).plain
    response = client.get(f"/queries/{WHERE}", params={"colour": "blue"})
    assert response.status_code == 400
    assert "has no parameter 'colour'" in parse(response.text).plain
    assert client.get("/queries/99-no-such-query").status_code == 404


def test_the_federated_query_says_it_needs_the_network(client: TestClient, listing: str) -> None:
    item = listing[listing.index(f'<li id="{WIKIDATA}">') :]
    item = item[: item.index("</li>")]
    assert NETWORK_NOTE in parse(item).plain
    hrefs = parse(item).hrefs
    assert f"/queries/{WIKIDATA}" not in hrefs
    assert not [h for h in hrefs if h.startswith("/api/")]
    assert hrefs == [f"/queries/{WIKIDATA}.rq"]
    assert NETWORK_NOTE in parse(client.get(f"/queries/{WIKIDATA}").text).plain


def test_the_home_page_links_to_the_catalogue(client: TestClient) -> None:
    assert "/queries" in parse(client.get("/").text).hrefs


@pytest.mark.parametrize("path", ["/queries", f"/queries/{WHERE}?entity=id/activity/fifth-appc"])
def test_the_pages_pass_the_site_checks(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    page = parse(response.text)
    assert any(tag == "nav" for tag, _ in page.tags), "no site navigation"
    assert not any("style" in attrs for _, attrs in page.tags), "inline style attribute"
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)
    assert all(attrs.get("type") == "application/ld+json" for attrs, _ in page.scripts)
    for href in page.hrefs:
        host = urlsplit(href).hostname
        assert host is None or host in LINKABLE_HOSTS, href
