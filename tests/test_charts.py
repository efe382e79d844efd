"""The home page's charts: drawn from SPARQL, accessible, and following the data when it grows."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pyoxigraph as ox
import pytest
from fastapi.testclient import TestClient

from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph
from tests.markup import parse
from tests.test_browse import EXTRA
from tests.test_pages import BROWSER, build_app

SVG = "{http://www.w3.org/2000/svg}"
PROV = "http://www.w3.org/ns/prov#"
SKOS = "http://www.w3.org/2004/02/skos/core#"


@pytest.fixture(scope="module")
def home(kg: KnowledgeGraph) -> str:
    with TestClient(build_app(Settings(workers=1), kg)) as client:
        return client.get("/", headers={"Accept": BROWSER}).text


@pytest.fixture(scope="module")
def grown() -> Iterator[tuple[KnowledgeGraph, str]]:
    """The home page of the graph with one more activity, of 2004, from an extra file."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="escap-kg-charts-") as folder:
        extra = Path(folder) / "more.ttl"
        extra.write_text(EXTRA, encoding="utf-8")
        settings = Settings(workers=1, extra_files=(extra,))
        kg = KnowledgeGraph.load(settings)
        with TestClient(build_app(settings, kg)) as client:
            yield kg, client.get("/", headers={"Accept": BROWSER}).text


def chart(html: str, name: str) -> ET.Element:
    found = re.search(rf'<svg [^>]*class="picture chart chart-{name}".*?</svg>', html, re.DOTALL)
    assert found, f"no {name} chart on the page"
    return ET.fromstring(found.group(0))  # noqa: S314 - our own page


def years(svg: ET.Element) -> list[int]:
    return [int(t.text or 0) for t in svg.iter(f"{SVG}text") if "year-label" in t.get("class", "")]


def cells(svg: ET.Element) -> dict[str, ET.Element]:
    """Each cell's group by its title (``<row>, <year>: ...``), up to the colon."""
    found = {}
    for group in svg.iter(f"{SVG}g"):
        title = group.find(f"{SVG}title")
        if title is not None and group.find(f"{SVG}rect[@class]") is not None:
            head = (title.text or "").split(":", 1)[0]
            if re.search(r", \d{4}$", head):
                found[head] = group
    return found


def activity_years(kg: KnowledgeGraph) -> list[int]:
    rows = kg.query("SELECT DISTINCT ?start WHERE { ?a <https://schema.org/startDate> ?start }")
    assert isinstance(rows, ox.QuerySolutions)
    return sorted({int(row["start"].value[:4]) for row in rows})


@pytest.mark.parametrize("name", ["themes", "partners"])
def test_a_chart_is_an_image_with_a_title_a_description_and_a_table(home: str, name: str) -> None:
    svg = chart(home, name)
    assert svg.get("role") == "img"
    title, desc = svg.find(f"{SVG}title"), svg.find(f"{SVG}desc")
    assert title is not None
    assert title.text
    assert desc is not None
    assert desc.text
    assert "table" in desc.text
    labelled = (svg.get("aria-labelledby") or "").split()
    assert labelled == [title.get("id"), desc.get("id")]
    # The same numbers as a table, with headers for rows and columns.
    table = re.search(
        rf"<summary>{re.escape(title.text)}: the numbers as a table</summary>.*?</table>",
        home,
        re.DOTALL,
    )
    assert table, "no table of the chart's numbers"
    page = parse(table.group(0))
    assert any(tag == "th" and a.get("scope") == "col" for tag, a in page.tags)
    assert any(tag == "th" and a.get("scope") == "row" for tag, a in page.tags)


def test_the_years_are_those_of_the_activities(home: str, kg: KnowledgeGraph) -> None:
    found = activity_years(kg)
    expected = list(range(found[0], found[-1] + 1))
    assert years(chart(home, "themes")) == expected
    assert years(chart(home, "partners")) == expected


def test_each_partner_has_a_square_per_activity_and_role(home: str, kg: KnowledgeGraph) -> None:
    rows = kg.query(
        f"""SELECT ?label ?year (COUNT(DISTINCT ?a) AS ?n) WHERE {{
          ?a <{PROV}qualifiedAssociation> ?q . ?q <{PROV}agent> ?agent ; <{PROV}hadRole> ?role .
          ?a <https://schema.org/startDate> ?start BIND(SUBSTR(STR(?start), 1, 4) AS ?year)
          ?agent <{SKOS}altLabel>|<{SKOS}prefLabel> ?label
        }} GROUP BY ?label ?year"""
    )
    assert isinstance(rows, ox.QuerySolutions)
    expected = {(r["label"].value, r["year"].value): int(r["n"].value) for r in rows}
    found = cells(chart(home, "partners"))
    checked = 0
    for head, group in found.items():
        label, year = head.rsplit(", ", 1)
        chips = [r for r in group.iter(f"{SVG}rect") if "chip" in r.get("class", "")]
        assert len(chips) == expected.get((label, year), 0), head
        checked += len(chips)
    assert checked == sum(
        n for (label, _), n in expected.items() if any(h.startswith(label + ",") for h in found)
    )
    assert checked > 0


def test_adding_an_activity_changes_the_charts(
    home: str, grown: tuple[KnowledgeGraph, str]
) -> None:
    kg, page = grown
    assert years(chart(home, "themes"))[-1] < 2004
    assert years(chart(page, "themes")) == list(range(activity_years(kg)[0], 2005))
    assert years(chart(page, "partners"))[-1] == 2004
    before = cells(chart(home, "themes"))
    after = cells(chart(page, "themes"))
    assert "migration and development, 2004" not in before
    title = after["migration and development, 2004"].find(f"{SVG}title")
    assert title is not None
    assert title.text == "migration and development, 2004: 1 resource"
    partner = cells(chart(page, "partners"))["UNFPA, 2004"].find(f"{SVG}title")
    assert partner is not None
    assert "partner in cooperation of Workshop on remittances" in (partner.text or "")


def test_the_timeline_spans_the_years_of_the_data(
    home: str, grown: tuple[KnowledgeGraph, str]
) -> None:
    def timeline_years(html: str) -> list[int]:
        found = re.search(r'<svg [^>]*class="picture timeline".*?</svg>', html, re.DOTALL)
        assert found, "no timeline"
        return years(ET.fromstring(found.group(0)))  # noqa: S314 - our own page

    kg, page = grown
    assert timeline_years(home)[-1] == 2003
    assert timeline_years(page) == list(range(activity_years(kg)[0], 2005))


@pytest.mark.parametrize("width", [60.0, 120.0, 300.0])
def test_wrapped_lines_fit_and_keep_every_word(width: float) -> None:
    from escap_kg.pages.measure import text_width, wrap

    text = "Adequate, reliable and timely migration data are lacking: Supercalifragilistic"
    lines = wrap(text, width, 13)
    assert all(text_width(line, 13) <= width for line in lines), lines
    assert "".join("".join(lines).split()) == "".join(text.split())
