"""Charts of the home page, from SPARQL through the engine: themes by year and partners by year.

Each is a matrix (a row per theme or partner, a column per year from the first to the last year
an activity starts in) drawn server-side as SVG with a title and a description for assistive
technology, and the same numbers as a table for those who would rather read.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING

from markupsafe import Markup

from escap_kg.pages.data import PREFIXES
from escap_kg.pages.measure import text_width, widest, wrap
from escap_kg.pages.svg import num
from escap_kg.pages.terms import Paths
from escap_kg.service import select_rows

if TYPE_CHECKING:
    from escap_kg.service import State

FONT = 13.0
SMALL = 11.5
LINE = 16.0
#: Widths of the picture: the whole, the most a row's name takes, a year's column at most.
WIDTH = 960.0
NAME_WIDTH = 320.0
COLUMN_WIDTH = 150.0
ROLE_KEYS = ("joint-organiser", "organiser", "cooperation-partner")
ACTIVITIES = """SELECT DISTINCT ?a ?start ?label ?alt WHERE {
  ?a a ?class . ?class rdfs:subClassOf* ekg:Activity .
  ?a schema:startDate ?start FILTER(REGEX(STR(?start), "^[0-9]{4}"))
  OPTIONAL { ?a rdfs:label ?label } OPTIONAL { ?a skos:altLabel ?alt }
}"""
SUBJECT = "dcterms:subject|ekg:focus|ekg:keyAgendaItem"
# An activity takes up a theme when it, or what came out of it (findings it noted, plans
# adopted at it and their recommendations, work it planned, documents it produced), has the
# theme as a subject.
THEMES = f"""SELECT DISTINCT ?a ?x ?theme ?label WHERE {{
  ?a a ?class . ?class rdfs:subClassOf* ekg:Activity .
  {{ ?a {SUBJECT} ?theme BIND(?a AS ?x) }}
  UNION {{ ?a prov:generated|ekg:noted|ekg:plannedWork ?x . ?x {SUBJECT} ?theme }}
  UNION {{ ?x prov:wasGeneratedBy|ekg:adoptedAt ?a . ?x {SUBJECT} ?theme }}
  UNION {{ ?x dcterms:isPartOf ?plan . ?plan ekg:adoptedAt ?a . ?x {SUBJECT} ?theme }}
  OPTIONAL {{ ?theme skos:prefLabel ?label }}
}}"""
PARTNERS = """SELECT DISTINCT ?a ?agent ?role ?roleLabel ?label ?alt WHERE {
  ?a prov:qualifiedAssociation ?q . ?q prov:agent ?agent ; prov:hadRole ?role .
  OPTIONAL { ?role skos:prefLabel ?roleLabel }
  OPTIONAL { ?agent skos:prefLabel ?label }
  OPTIONAL { ?agent skos:altLabel ?alt }
}"""


@dataclass
class Cell:
    """One row's value in one year: the activities (or resources) counted, and their roles."""

    items: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many there are."""
        return len(self.items)


@dataclass
class Row:
    """A theme or a partner: its name, its page, and a cell per year."""

    label: str
    href: str | None
    cells: dict[int, Cell] = field(default_factory=lambda: defaultdict(Cell))

    @property
    def total(self) -> int:
        """Its count over every year."""
        return sum(cell.count for cell in self.cells.values())


@dataclass
class Chart:
    """A matrix of rows by years, with what its cells count."""

    ident: str
    title: str
    row_header: str
    counts: str  # what a number counts, in words: "resources about the theme"
    years: list[int]
    rows: list[Row]
    role_labels: dict[str, str] = field(default_factory=dict)

    @property
    def desc(self) -> str:
        """The text alternative: what the chart shows and its largest values."""
        if not self.rows:
            return f"{self.title}: there are no dated activities to show."
        span = f"{self.years[0]} to {self.years[-1]}"
        top = sorted(self.rows, key=lambda r: -r.total)[:3]
        most = "; ".join(f"{r.label} {r.total}" for r in top)
        return (
            f"{self.title}, {span}: {len(self.rows)} rows, one per {self.row_header}, and a column"
            f" per year; each cell counts {self.counts}. The largest totals: {most}. The same "
            "numbers are in the table that follows."
        )

    def text(self, row: Row, year: int) -> str:
        """A cell in words, for the table: a number, or the activities with the roles."""
        cell = row.cells.get(year)
        if cell is None or not cell.count:
            return "" if self.role_labels else "0"
        if not self.role_labels:
            return str(cell.count)
        return "; ".join(
            f"{self.role_labels.get(role, role)} of {name}"
            for name, role in zip(cell.items, cell.roles, strict=True)
        )

    def svg(self) -> Markup:
        """The chart as SVG."""
        return draw(self)


def _year(value: str) -> int:
    return int(value[:4])


def _short(label: str, alts: set[str]) -> str:
    """The label, or its shortest other name when the label is long."""
    return min(alts, key=lambda a: (len(a), a)) if len(label) > 40 and alts else label


def _years(found: list[int]) -> list[int]:
    return list(range(min(found), max(found) + 1)) if found else []


async def _activities(state: State) -> dict[str, tuple[int, str]]:
    """Every dated activity: the year it starts in and its (short) name."""
    names: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    years: dict[str, int] = {}
    for row in await select_rows(state, PREFIXES + ACTIVITIES):
        year = _year(row["start"])
        years[row["a"]] = min(year, years.get(row["a"], year))
        for key in ("label", "alt"):
            if key in row:
                names[row["a"]][key].add(row[key])
    result = {}
    for iri, year in years.items():
        label = min(names[iri]["label"], default=iri.rsplit("/", 1)[-1])
        result[iri] = (year, _short(label, names[iri]["alt"]))
    return result


async def themes_by_year(state: State, paths: Paths) -> Chart:
    """For each theme and year: how many resources about the theme came from that year's
    activities (the activity itself, its findings, recommendations and planned work)."""
    activities = await _activities(state)
    rows: dict[str, Row] = {}
    seen: set[tuple[str, str, str]] = set()
    for row in await select_rows(state, PREFIXES + THEMES):
        if row["a"] not in activities or (row["a"], row["x"], row["theme"]) in seen:
            continue
        seen.add((row["a"], row["x"], row["theme"]))
        theme = row["theme"]
        label = row.get("label") or paths.slug_words(theme)
        item = rows.setdefault(theme, Row(label, paths.href(theme)))
        year, _ = activities[row["a"]]
        item.cells[year].items.append(row["x"])
    return Chart(
        ident="chart-themes",
        title="Themes by year",
        row_header="theme",
        counts="the activities of that year, and their findings, recommendations and planned "
        "work, that have the theme as a subject",
        years=_years([year for year, _ in activities.values()]),
        rows=sorted(rows.values(), key=lambda r: (-r.total, r.label.lower())),
    )


async def partners_by_year(state: State, paths: Paths) -> Chart:
    """For each organisation or country and year: the activities it took part in, each with
    the role the qualified association gives it."""
    activities = await _activities(state)
    agents: dict[str, Row] = {}
    names: dict[str, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    roles: dict[tuple[str, str], str] = {}
    role_labels: dict[str, str] = {}
    rows = await select_rows(state, PREFIXES + PARTNERS)
    for row in rows:
        agent = row["agent"]
        for key, index in (("label", 0), ("alt", 1)):
            if key in row:
                names[agent][index].add(row[key])
        role = row["role"].rsplit("/", 1)[-1]
        role_labels[role] = row.get("roleLabel") or role.replace("-", " ")
        if row["a"] in activities:
            roles[(agent, row["a"])] = role
    for (agent, activity), role in sorted(roles.items()):
        labels, alts = names[agent]
        label = _short(min(labels, default=paths.slug_words(agent)), alts)
        item = agents.setdefault(agent, Row(label, paths.href(agent)))
        year, name = activities[activity]
        cell = item.cells[year]
        cell.items.append(name)
        cell.roles.append(role)
    return Chart(
        ident="chart-partners",
        title="Partners by year",
        row_header="organisation or country",
        counts="the activities it took part in that year, by its role",
        years=_years([year for year, _ in activities.values()]),
        rows=sorted(agents.values(), key=lambda r: (-r.total, r.label.lower())),
        role_labels=role_labels,
    )


# Drawing ----------------------------------------------------------------------------------------


def _level(count: int, most: int) -> int:
    """The shade of a cell, 0 (none) to 4 (the most)."""
    if count <= 0:
        return 0
    return 1 + math.floor(3 * (count - 1) / max(most - 1, 1))


def _role_key(role: str) -> str:
    return role if role in ROLE_KEYS else "associated"


def draw(chart: Chart) -> Markup:
    """The matrix: names on the left (wrapped to fit), a column per year, a legend below."""
    pad, header = 12.0, 30.0
    names = [wrap(row.label, NAME_WIDTH - 12, FONT) for row in chart.rows]
    name_w = min(max((widest(lines, FONT) for lines in names), default=60.0) + 12, NAME_WIDTH)
    columns = max(len(chart.years), 1)
    col_w = min(max((WIDTH - 2 * pad - name_w) / columns, 64.0), COLUMN_WIDTH)
    chips = chart.role_labels != {}
    heights = [max(len(lines) * LINE + 8, 26.0) for lines in names]
    if chips:
        per_line = max(int((col_w - 12) // 16), 1)
        heights = [
            max(
                h,
                10
                + 16 * math.ceil(max((c.count for c in row.cells.values()), default=0) / per_line),
            )
            for h, row in zip(heights, chart.rows, strict=True)
        ]
    width = 2 * pad + name_w + col_w * columns
    body_h = sum(heights)
    legend_y = header + body_h + 28
    height = legend_y + 14
    ident = chart.ident
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="picture chart {ident}" '
        f'viewBox="0 0 {num(width)} {num(height)}" width="{num(width)}" '
        f'height="{num(height)}" role="img" aria-labelledby="{ident}-title {ident}-desc">',
        f'<title id="{ident}-title">{escape(chart.title)}</title>',
        f'<desc id="{ident}-desc">{escape(chart.desc)}</desc>',
    ]
    x0 = pad + name_w
    for i, year in enumerate(chart.years):
        parts.append(
            f'<text class="year-label" x="{num(x0 + col_w * i + col_w / 2)}" y="{num(header - 10)}"'
            f' text-anchor="middle">{year}</text>'
        )
    most = max((c.count for row in chart.rows for c in row.cells.values()), default=0)
    y = header
    for row, lines, h in zip(chart.rows, names, heights, strict=True):
        top = y + (h - len(lines) * LINE) / 2 + FONT - 1
        label = "".join(
            f'<text class="row-label" x="{num(pad)}" y="{num(top + LINE * k)}">'
            f"{escape(line)}</text>"
            for k, line in enumerate(lines)
        )
        parts.append(f"<g><title>{escape(row.label)}</title>{label}</g>")
        for i, year in enumerate(chart.years):
            cell = row.cells.get(year, Cell())
            cx = x0 + col_w * i
            parts.append(_cell(chart, row, year, cell, cx, y, col_w, h, most))
        y += h
    parts.extend(_legend(chart, pad, legend_y, most))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped


def _cell(
    chart: Chart, row: Row, year: int, cell: Cell, x: float, y: float, w: float, h: float, most: int
) -> str:
    if chart.role_labels:
        what = "; ".join(
            f"{chart.role_labels.get(role, role)} of {name}"
            for name, role in zip(cell.items, cell.roles, strict=True)
        )
        title = f"{row.label}, {year}: {what or 'no activity'}"
        marks = []
        per_line = max(int((w - 12) // 16), 1)
        for k, role in enumerate(cell.roles):
            mx = x + 8 + 16 * (k % per_line)
            my = y + 6 + 16 * (k // per_line)
            marks.append(
                f'<rect class="chip role-chip-{_role_key(role)}" x="{num(mx)}" y="{num(my)}" '
                'width="12" height="12" rx="3"/>'
            )
        return (
            f"<g><title>{escape(title)}</title>"
            f'<rect class="cell level-0" x="{num(x)}" y="{num(y)}" width="{num(w)}" '
            f'height="{num(h)}"/>{"".join(marks)}</g>'
        )
    level = _level(cell.count, most)
    n = cell.count
    title = f"{row.label}, {year}: {n} {'resource' if n == 1 else 'resources'}"
    number = (
        f'<text class="cell-number level-{level}" x="{num(x + w / 2)}" '
        f'y="{num(y + h / 2 + 4.5)}" text-anchor="middle">{n}</text>'
        if n
        else ""
    )
    return (
        f"<g><title>{escape(title)}</title>"
        f'<rect class="cell level-{level}" x="{num(x)}" y="{num(y)}" width="{num(w)}" '
        f'height="{num(h)}"/>{number}</g>'
    )


def _legend(chart: Chart, x: float, y: float, most: int) -> list[str]:
    parts = []
    if chart.role_labels:
        present = dict.fromkeys(
            _role_key(r) for row in chart.rows for c in row.cells.values() for r in c.roles
        )
        for key in (*ROLE_KEYS, "associated"):
            if key not in present:
                continue
            text = chart.role_labels.get(key, key.replace("-", " "))
            parts.append(
                f'<rect class="chip role-chip-{key}" x="{num(x)}" y="{num(y - 10)}" '
                f'width="12" height="12" rx="3"/>'
                f'<text class="legend" x="{num(x + 18)}" y="{num(y)}">{escape(text)}</text>'
            )
            x += 18 + text_width(text, SMALL) + 20
        return parts
    seen: dict[int, list[int]] = defaultdict(list)
    for n in range(1, most + 1):
        seen[_level(n, most)].append(n)
    text = "Resources in a cell:"
    parts.append(f'<text class="legend" x="{num(x)}" y="{num(y)}">{text}</text>')
    x += text_width(text, SMALL) + 10
    for level, values in sorted(seen.items()):
        words = str(values[0]) if len(values) == 1 else f"{values[0]}\u2013{values[-1]}"
        parts.append(
            f'<rect class="cell level-{level}" x="{num(x)}" y="{num(y - 11)}" width="22" '
            f'height="14"/><text class="legend" x="{num(x + 28)}" y="{num(y)}">{words}</text>'
        )
        x += 28 + text_width(words, SMALL) + 16
    return parts


__all__ = ["Cell", "Chart", "Row", "draw", "partners_by_year", "themes_by_year"]
