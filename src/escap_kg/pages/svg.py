"""Small SVG pictures drawn on the server: neighbourhoods, timelines and the partner network.

Labels are laid out from measured text (:mod:`escap_kg.pages.measure`): they wrap onto as many
lines as they need inside their boxes, sit where there is room, and carry their full text in a
``<title>`` that shows on hover; nothing is cut.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from html import escape

from markupsafe import Markup

from escap_kg.pages import measure
from escap_kg.pages.data import Activity, Edge, Node
from escap_kg.pages.terms import MONTHS, Period

FONT = 13.0
SMALL = 11.5
#: Line heights of text in ``FONT`` and in ``SMALL`` pixels.
LINE = 16.0
SMALL_LINE = 14.0
#: Neighbours drawn around a resource at most; the tables list them all.
NEIGHBOURS = 20
ROLE_CLASSES = ("joint-organiser", "organiser", "cooperation-partner", "associated")


def text_width(text: str, size: float = FONT, bold: bool = False) -> float:
    """How wide ``text`` is in the pictures' sans-serif font of ``size`` pixels."""
    return measure.text_width(text, size, bold)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def wrap(text: str, width: float, size: float = FONT, bold: bool = False) -> list[str]:
    """``text`` in lines no wider than ``width`` pixels (every word kept)."""
    return measure.wrap(text, width, size, bold)


def lines_markup(
    lines: Sequence[str], x: float, y: float, css: str, step: float, anchor: str = "start"
) -> str:
    """One ``<text>`` per line, the first baseline at ``y``."""
    return "".join(
        f'<text class="{css}" x="{num(x)}" y="{num(y + step * k)}" text-anchor="{anchor}">'
        f"{escape(line)}</text>"
        for k, line in enumerate(lines)
    )


def num(x: float) -> str:
    """A coordinate for SVG: at most one decimal, no trailing zero (``12``, ``12.5``, ``0``)."""
    text = f"{x:.1f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-", "-0") else text


def svg_open(width: float, height: float, title: str, ident: str, css: str) -> list[str]:
    """The opening of an inline SVG picture, with its accessible title."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="picture {css}" '
        f'viewBox="0 0 {num(width)} {num(height)}" width="{num(width)}" height="{num(height)}" '
        f'role="group" aria-labelledby="{ident}-title">',
        f'<title id="{ident}-title">{escape(title)}</title>',
    ]


def _markers(ident: str) -> str:
    return (
        "<defs>"
        f'<marker id="{ident}-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse">'
        '<path class="arrowhead" d="M0,1 L9,5 L0,9 z"/></marker>'
        "</defs>"
    )


def link(href: str | None, body: str, external: bool = False) -> str:
    """SVG markup wrapped in a link (an outgoing one opens in a new tab), or in a group."""
    if not href:
        return f"<g>{body}</g>"
    rel = ' rel="external noopener" target="_blank"' if external else ""
    return f'<a href="{escape(href)}"{rel}>{body}</a>'


# The neighbourhood of one resource ------------------------------------------------------------


def neighbourhood(label: str, edges: Sequence[Edge], ident: str, limit: int = NEIGHBOURS) -> Markup:
    """The resource in the middle, what links to it on the left, what it links to on the right.

    Each neighbour is a box that links to its page, with the name of the link above the
    neighbour's name, both wrapped onto as many lines as they need; the lines carry no labels,
    so no label can sit on a line.
    """
    ordered = sorted(edges, key=lambda e: (not e.outgoing, e.label, e.node.label))[:limit]
    right = [e for e in ordered if e.outgoing]
    left = [e for e in ordered if not e.outgoing]
    per_side = max(10, (len(ordered) + 1) // 2)
    while len(right) > per_side and len(left) < per_side:
        left.insert(0, right.pop())
    while len(left) > per_side and len(right) < per_side:
        right.append(left.pop(0))
    width, margin, box_w, gap = 960.0, 8.0, 250.0, 10.0
    inner = box_w - 20

    def measured(edge: Edge) -> tuple[list[str], list[str], float]:
        relation = wrap(edge.label, inner, SMALL)
        name = wrap(edge.node.label, inner, FONT)
        return relation, name, 10 + SMALL_LINE * len(relation) + LINE * len(name) + 4

    columns = {
        side: [measured(e) for e in column] for side, column in (("right", right), ("left", left))
    }
    tall = max(
        (sum(m[2] for m in column) + gap * max(len(column) - 1, 0) for column in columns.values()),
        default=0.0,
    )
    centre_lines = wrap(label, 220, FONT + 1, bold=True)
    cw = max(measure.widest(centre_lines, FONT + 1, bold=True) + 28, 150)
    ch = 19.0 * len(centre_lines) + 18
    height = max(tall + 2 * margin, ch + 2 * margin, 120.0)
    cx, cy = width / 2, height / 2
    parts = svg_open(width, height, f"Links of {label}", ident, "neighbourhood")
    parts.append(_markers(ident))
    boxes: list[str] = []
    for side, column in (("right", right), ("left", left)):
        sizes = columns[side]
        used = sum(m[2] for m in sizes) + gap * max(len(sizes) - 1, 0)
        top = cy - used / 2
        for edge, (relation, name, h) in zip(column, sizes, strict=True):
            y = top + h / 2
            x1 = width - margin - box_w if side == "right" else margin
            near = x1 if side == "right" else x1 + box_w
            centre_side = cx + cw / 2 if side == "right" else cx - cw / 2
            sy = cy + max(min((y - cy) * 0.35, ch / 2 - 4), -(ch / 2 - 4))
            ends = ((centre_side, sy), (near, y))
            start, end = ends if edge.outgoing else ends[::-1]
            mid = (centre_side + near) / 2
            parts.append(
                f'<path class="edge edge-{"out" if edge.outgoing else "in"}" '
                f'd="M{num(start[0])},{num(start[1])} C{num(mid)},{num(start[1])} '
                f'{num(mid)},{num(end[1])} {num(end[0])},{num(end[1])}" '
                f'marker-end="url(#{ident}-arrow)"/>'
            )
            node = edge.node
            text_y = top + 6 + SMALL
            body = (
                f"<title>{escape(edge.label)}: {escape(node.label)}</title>"
                f'<rect class="node node-{escape(node.kind)}" x="{num(x1)}" y="{num(top)}" '
                f'width="{num(box_w)}" height="{num(h)}" rx="6"/>'
                + lines_markup(relation, x1 + 10, text_y, "edge-label", SMALL_LINE)
                + lines_markup(
                    name, x1 + 10, text_y + SMALL_LINE * len(relation) + 3, "node-text", LINE
                )
            )
            boxes.append(link(node.href, body, external=node.kind == "external"))
            top += h + gap
    parts.extend(boxes)
    parts.append(
        f'<g><title>{escape(label)}</title><rect class="node node-centre" x="{num(cx - cw / 2)}" '
        f'y="{num(cy - ch / 2)}" width="{num(cw)}" height="{num(ch)}" rx="8"/>'
        + lines_markup(centre_lines, cx, cy - ch / 2 + 23, "centre-text", 19, "middle")
        + "</g>"
    )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped


# Timelines -----------------------------------------------------------------------------------


def years_of(activities: Sequence[Activity]) -> tuple[int, int]:
    """The first and last year the dated activities cover (this year's when none is dated)."""
    dated = [a.when for a in activities if a.when is not None]
    if not dated:
        today = date.today().year
        return today, today
    return min(w.first.year for w in dated), max(w.last.year for w in dated)


def year_span(activities: Sequence[Activity]) -> str:
    """``2001-2003`` (with an en dash), or ``2002`` when the activities fall in one year."""
    first, last = years_of(activities)
    return str(first) if first == last else f"{first}\u2013{last}"


@dataclass(frozen=True)
class _Axis:
    """Days onto x: from 1 January of the first year to 1 January after the last."""

    start: date
    end: date
    left: float
    width: float

    def x(self, day: date) -> float:
        total = (self.end - self.start).days
        return self.left + (day - self.start).days / total * self.width

    def bar(self, when: Period) -> tuple[float, float]:
        first = max(when.first, self.start)
        last = min(when.last + timedelta(days=1), self.end)
        x1, x2 = self.x(first), self.x(last)
        if x2 - x1 < 4:
            middle = (x1 + x2) / 2
            x1, x2 = middle - 2, middle + 2
        return x1, x2


def _agents_text(activity: Activity, role_labels: dict[str, str]) -> str:
    groups: dict[str, list[str]] = {}
    for node, role in activity.agents:
        key = (
            "organized by"
            if role in ("organiser", "joint-organiser")
            else ("with" if role == "cooperation-partner" else "associated")
        )
        groups.setdefault(key, []).append(node.label)
    parts: list[str] = []
    for key in ("organized by", "with", "associated"):
        if key in groups and not (key == "associated" and len(parts) > 0):
            parts.append(f"{key} {', '.join(dict.fromkeys(groups[key]))}")
    return "; ".join(parts)


def _place(
    texts: Sequence[tuple[str, float, bool]], x1: float, x2: float, left: float, right: float
) -> tuple[float, str, list[list[str]]]:
    """Where the texts over and under a bar go: after its start when they fit there on one
    line each, else ending at its end, else moved left as far as they must to fit on one line,
    else wrapped on the side with more room."""
    after, before = right - x1, x2 - left
    if all(text_width(t, size, bold) <= after for t, size, bold in texts):
        return x1, "start", [[t] for t, _, _ in texts]
    if all(text_width(t, size, bold) <= before for t, size, bold in texts):
        return x2, "end", [[t] for t, _, _ in texts]
    longest = max(text_width(t, size, bold) for t, size, bold in texts)
    if longest <= right - left:
        return min(x1, right - longest), "start", [[t] for t, _, _ in texts]
    x, anchor, room = (x1, "start", after) if after >= before else (x2, "end", before)
    return x, anchor, [wrap(t, room, size, bold) for t, size, bold in texts]


def timeline(
    activities: Sequence[Activity],
    ident: str,
    role_labels: dict[str, str],
    highlight: Iterable[str] = (),
    title: str = "",
) -> Markup:
    """Activities as bars on a time axis from the first to the last year any is dated in; a bar
    covers the year, month or days it is known to. Names and notes wrap where they must."""
    marked = set(highlight)
    width, left, right = 960.0, 16.0, 16.0
    first_year, last_year = years_of(activities)
    axis = _Axis(date(first_year, 1, 1), date(last_year + 1, 1, 1), left, width - left - right)
    top = 44.0
    dated = [a for a in activities if a.when is not None]
    rows: list[tuple[Activity, float, float, float, float, str, list[list[str]]]] = []
    y = top
    for activity in dated:
        assert activity.when is not None  # noqa: S101 - filtered above
        x1, x2 = axis.bar(activity.when)
        sub = activity.date_text
        agents = _agents_text(activity, role_labels)
        if agents:
            sub = f"{sub} \u00b7 {agents}"
        tx, anchor, texts = _place(
            [(activity.short, FONT, True), (sub, SMALL, False)], x1, x2, left, width - right
        )
        h = 10 + LINE * len(texts[0]) + 18 + SMALL_LINE * len(texts[1]) + 6
        rows.append((activity, y, x1, x2, tx, anchor, texts))
        y += h
    height = y + 44 if dated else top + 100
    parts = svg_open(
        width, height, title or f"Activities in time, {year_span(activities)}", ident, "timeline"
    )
    for year in range(first_year, last_year + 2):
        x = axis.x(date(year, 1, 1))
        parts.append(
            f'<line class="grid-year" x1="{num(x)}" y1="{num(top - 16)}" x2="{num(x)}" '
            f'y2="{num(height - 40)}"/>'
        )
        if year <= last_year:
            mid = axis.x(date(year, 7, 1))
            parts.append(
                f'<text class="year-label" x="{num(mid)}" y="{num(top - 22)}" '
                f'text-anchor="middle">{year}</text>'
            )
            for month in range(2, 13):
                mx = axis.x(date(year, month, 1))
                parts.append(
                    f'<line class="grid-month" x1="{num(mx)}" y1="{num(top - 12)}" '
                    f'x2="{num(mx)}" y2="{num(top - 6)}">'
                    f"<title>{MONTHS[month]} {year}</title></line>"
                )
    parts.append(
        f'<line class="axis" x1="{num(left)}" y1="{num(top - 6)}" x2="{num(width - right)}" '
        f'y2="{num(top - 6)}"/>'
    )
    if not dated:
        parts.append(
            f'<text class="note" x="{num(width / 2)}" y="{num(top + 30)}" text-anchor="middle">'
            "No dated activities.</text>"
        )
    for activity, y, x1, x2, tx, anchor, (name, note) in rows:
        assert activity.when is not None  # noqa: S101 - filtered above
        state = " marked" if activity.iri in marked else ""
        bar_y = y + 10 + LINE * len(name) - 4
        body = (
            f"<title>{escape(activity.label)} ({escape(activity.date_text)})</title>"
            f'<rect class="bar bar-{escape(activity.when.precision)}{state}" x="{num(x1)}" '
            f'y="{num(bar_y)}" width="{num(x2 - x1)}" height="12" rx="3"/>'
            + lines_markup(name, tx, y + 10 + FONT - 4, f"bar-label{state}", LINE, anchor)
            + lines_markup(note, tx, bar_y + 12 + 4 + SMALL, "bar-note", SMALL_LINE, anchor)
        )
        parts.append(link(activity.href, body))
    legend_y = height - 16
    x = left
    for precision, text in (
        ("day", "dates known to the day"),
        ("month", "known to the month"),
        ("year", "known to the year"),
    ):
        parts.append(
            f'<rect class="bar bar-{precision}" x="{num(x)}" y="{num(legend_y - 10)}" '
            f'width="22" height="10" rx="2"/>'
            f'<text class="legend" x="{num(x + 28)}" y="{num(legend_y)}">{text}</text>'
        )
        x += 28 + text_width(text, SMALL) + 24
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped


# The partner network -------------------------------------------------------------------------


def network(activities: Sequence[Activity], ident: str, role_labels: dict[str, str]) -> Markup:
    """Activities on the left, the organisations and countries on the right, linked by role."""
    agents: dict[str, Node] = {}
    for activity in activities:
        for node, _ in activity.agents:
            agents.setdefault(node.iri, node)
    agent_list = sorted(
        agents.values(),
        key=lambda n: (-sum(1 for a in activities for m, _ in a.agents if m.iri == n.iri), n.label),
    )
    width = 960.0
    left_w, right_w = 380.0, 250.0
    names = {a.iri: wrap(a.short, left_w - 24, FONT) for a in activities}
    notes = {a.iri: wrap(f"{a.date_text} \u00b7 {a.type}", left_w - 24, SMALL) for a in activities}
    agent_names = {n.iri: wrap(n.label, right_w - 28, FONT) for n in agent_list}
    box_h = {
        a.iri: LINE * len(names[a.iri]) + SMALL_LINE * len(notes[a.iri]) + 14 for a in activities
    }
    pill_h = {n.iri: max(LINE * len(agent_names[n.iri]) + 12, 32.0) for n in agent_list}
    tallest = max([*box_h.values(), *pill_h.values(), 0.0])
    row = max(70.0, tallest + 14)
    rows = max(len(activities), len(agent_list), 1)
    top = 20.0
    legend_h = 40.0
    height = top + rows * row + legend_h
    parts = svg_open(
        width, height, "Who worked on which activity, and in which role", ident, "network"
    )

    def y_of(index: int, count: int) -> float:
        block = rows * row
        step = block / max(count, 1)
        return top + step * index + step / 2

    a_pos = {a.iri: y_of(i, len(activities)) for i, a in enumerate(activities)}
    g_pos = {n.iri: y_of(i, len(agent_list)) for i, n in enumerate(agent_list)}
    ax2 = 16 + left_w
    gx1 = width - 16 - right_w
    for activity in activities:
        for node, role in activity.agents:
            y1, y2 = a_pos[activity.iri], g_pos[node.iri]
            cx1, cx2 = ax2 + (gx1 - ax2) * 0.45, ax2 + (gx1 - ax2) * 0.55
            role_class = role if role in ROLE_CLASSES else "associated"
            parts.append(
                f'<path class="edge-role role-{role_class}" d="M{num(ax2)},{num(y1)} '
                f'C{num(cx1)},{num(y1)} {num(cx2)},{num(y2)} {num(gx1)},{num(y2)}">'
                f"<title>{escape(node.label)}: {escape(role_labels.get(role, role))} of "
                f"{escape(activity.short)}</title></path>"
            )
    for activity in activities:
        y = a_pos[activity.iri]
        h = box_h[activity.iri]
        lines = names[activity.iri]
        body = (
            f"<title>{escape(activity.label)}</title>"
            f'<rect class="node node-activity" x="16" y="{num(y - h / 2)}" width="{num(left_w)}" '
            f'height="{num(h)}" rx="6"/>'
            + lines_markup(lines, 28, y - h / 2 + 6 + FONT - 1, "node-text", LINE)
            + lines_markup(
                notes[activity.iri],
                28,
                y - h / 2 + 6 + LINE * len(lines) + SMALL - 1,
                "node-note",
                SMALL_LINE,
            )
        )
        parts.append(link(activity.href, body))
    for node in agent_list:
        y = g_pos[node.iri]
        h = pill_h[node.iri]
        lines = agent_names[node.iri]
        agent_body = (
            f"<title>{escape(node.label)}</title>"
            f'<rect class="node node-{escape(node.kind)}" x="{num(gx1)}" y="{num(y - h / 2)}" '
            f'width="{num(right_w)}" height="{num(h)}" rx="16"/>'
            + lines_markup(
                lines,
                gx1 + right_w / 2,
                y - LINE * len(lines) / 2 + FONT - 1.5,
                "node-text",
                LINE,
                "middle",
            )
        )
        parts.append(link(node.href, agent_body))
    x = 16.0
    legend_y = height - 14
    for role in ROLE_CLASSES:
        if not any(r == role for a in activities for _, r in a.agents):
            continue
        text = role_labels.get(role, role)
        parts.append(
            f'<line class="edge-role role-{role}" x1="{num(x)}" y1="{num(legend_y - 4)}" '
            f'x2="{num(x + 34)}" y2="{num(legend_y - 4)}"/>'
            f'<text class="legend" x="{num(x + 40)}" y="{num(legend_y)}">{escape(text)}</text>'
        )
        x += 40 + text_width(text, SMALL) + 28
    for kind, text in (("organization", "organization"), ("country", "country")):
        if any(n.kind == kind for n in agent_list):
            parts.append(
                f'<rect class="node node-{kind}" x="{num(x)}" y="{num(legend_y - 11)}" '
                f'width="26" height="14" rx="7"/>'
                f'<text class="legend" x="{num(x + 32)}" y="{num(legend_y)}">{text}</text>'
            )
            x += 32 + text_width(text, SMALL) + 24
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped


__all__ = [
    "clip",
    "link",
    "neighbourhood",
    "network",
    "num",
    "svg_open",
    "text_width",
    "timeline",
    "wrap",
]
