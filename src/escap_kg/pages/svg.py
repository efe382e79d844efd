"""Small SVG pictures drawn on the server: neighbourhoods, timelines and the partner network."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from html import escape

from markupsafe import Markup

from escap_kg.pages.data import Activity, Edge, Node
from escap_kg.pages.terms import MONTHS, Period

FONT = 13.0
SMALL = 11.5
TIMELINE_START = date(2001, 1, 1)
TIMELINE_END = date(2004, 1, 1)  # exclusive
#: Neighbours drawn around a resource at most; the tables list them all.
NEIGHBOURS = 20
ROLE_CLASSES = ("joint-organiser", "organiser", "cooperation-partner", "associated")


def text_width(text: str, size: float = FONT) -> float:
    """About how wide ``text`` is in a sans-serif font of ``size`` pixels."""
    wide = sum(1 for c in text if c.isupper() or c in "mw")
    narrow = sum(1 for c in text if c in "iljtf.,:;' ")
    return (len(text) + 0.25 * wide - 0.35 * narrow) * size * 0.62


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def wrap(text: str, limit: int, lines: int = 2) -> list[str]:
    """``text`` in at most ``lines`` lines of about ``limit`` characters, the last one clipped."""
    out: list[str] = []
    rest = text.split()
    while rest and len(out) < lines:
        line = rest.pop(0)
        while rest and len(line) + 1 + len(rest[0]) <= limit:
            line += " " + rest.pop(0)
        out.append(line)
    if rest:
        out[-1] = clip(out[-1] + " " + " ".join(rest), limit)
    return [clip(line, limit) for line in out]


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

    Each neighbour is a box that links to its page; each line carries the name of the link.
    """
    ordered = sorted(edges, key=lambda e: (not e.outgoing, e.label, e.node.label))[:limit]
    right = [e for e in ordered if e.outgoing]
    left = [e for e in ordered if not e.outgoing]
    per_side = max(10, (len(ordered) + 1) // 2)
    while len(right) > per_side and len(left) < per_side:
        left.insert(0, right.pop())
    while len(left) > per_side and len(right) < per_side:
        right.append(left.pop(0))
    rows = max(len(left), len(right), 1)
    step = 38.0
    width = 960.0
    height = max(rows * step + 24, 120.0)
    cx, cy = width / 2, height / 2
    parts = svg_open(width, height, f"Links of {label}", ident, "neighbourhood")
    parts.append(_markers(ident))

    centre_lines = wrap(label, 24, 3)
    cw = max(max(text_width(line, FONT + 1) for line in centre_lines) + 28, 150)
    ch = 19.0 * len(centre_lines) + 18
    box_w = 230.0
    boxes: list[str] = []
    for side, column in (("right", right), ("left", left)):
        top = cy - step * len(column) / 2
        for i, edge in enumerate(column):
            y = top + step * i + step / 2
            text = clip(edge.node.label, 28)
            w = min(box_w, text_width(text) + 20)
            if side == "right":
                x1 = width - 8 - box_w
                sx, ex = cx + cw / 2, x1
                label_x, anchor = x1 - 8, "end"
                room = label_x - (cx + cw / 2 + 10)
            else:
                x1 = 8 + box_w - w
                sx, ex = cx - cw / 2, x1 + w
                label_x, anchor = ex + 8, "start"
                room = (cx - cw / 2 - 10) - label_x
            sy = cy + max(min((y - cy) * 0.35, ch / 2 - 4), -(ch / 2 - 4))
            start, end = ((sx, sy), (ex, y)) if edge.outgoing else ((ex, y), (sx, sy))
            direction = "out" if edge.outgoing else "in"
            mid = (sx + ex) / 2
            parts.append(
                f'<path class="edge edge-{direction}" d="M{num(start[0])},{num(start[1])} '
                f"C{num(mid)},{num(start[1])} {num(mid)},{num(end[1])} "
                f'{num(end[0])},{num(end[1])}" marker-end="url(#{ident}-arrow)"/>'
            )
            parts.append(
                f'<text class="edge-label" x="{num(label_x)}" y="{num(y - 5)}" '
                f'text-anchor="{anchor}"><title>{escape(edge.label)}</title>'
                f"{escape(clip(edge.label, max(int(room / (SMALL * 0.62)), 8)))}</text>"
            )
            node = edge.node
            body = (
                f"<title>{escape(node.label)}</title>"
                f'<rect class="node node-{escape(node.kind)}" x="{num(x1)}" y="{num(y - 13)}" '
                f'width="{num(w)}" height="26" rx="6"/>'
                f'<text class="node-text" x="{num(x1 + w / 2)}" y="{num(y + 4.5)}" '
                f'text-anchor="middle">{escape(text)}</text>'
            )
            boxes.append(link(node.href, body, external=node.kind == "external"))
    parts.extend(boxes)
    parts.append(
        f'<rect class="node node-centre" x="{num(cx - cw / 2)}" y="{num(cy - ch / 2)}" '
        f'width="{num(cw)}" height="{num(ch)}" rx="8"/>'
    )
    for k, line in enumerate(centre_lines):
        ty = cy - ch / 2 + 9 + 19 * k + 14
        parts.append(
            f'<text class="centre-text" x="{num(cx)}" y="{num(ty)}" text-anchor="middle">'
            f"{escape(line)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped


# Timelines -----------------------------------------------------------------------------------


def _x(day: date, left: float, span_width: float) -> float:
    total = (TIMELINE_END - TIMELINE_START).days
    return left + (day - TIMELINE_START).days / total * span_width


def _bar_range(when: Period, left: float, span_width: float) -> tuple[float, float]:
    first = max(when.first, TIMELINE_START)
    last = min(when.last + timedelta(days=1), TIMELINE_END)
    x1, x2 = _x(first, left, span_width), _x(last, left, span_width)
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


def timeline(
    activities: Sequence[Activity],
    ident: str,
    role_labels: dict[str, str],
    highlight: Iterable[str] = (),
    title: str = "Activities in time, 2001-2003",
) -> Markup:
    """Activities as bars on a 2001-2003 axis; a bar covers the year, month or days it is known."""
    marked = set(highlight)
    width, left, right = 960.0, 16.0, 16.0
    span_width = width - left - right
    top, row_height = 44.0, 58.0
    dated = [a for a in activities if a.when is not None]
    height = top + row_height * max(len(dated), 1) + 44
    parts = svg_open(width, height, title, ident, "timeline")

    for year in range(TIMELINE_START.year, TIMELINE_END.year + 1):
        x = _x(date(year, 1, 1), left, span_width)
        parts.append(
            f'<line class="grid-year" x1="{num(x)}" y1="{num(top - 16)}" x2="{num(x)}" '
            f'y2="{num(height - 40)}"/>'
        )
        if year < TIMELINE_END.year:
            mid = _x(date(year, 7, 1), left, span_width)
            parts.append(
                f'<text class="year-label" x="{num(mid)}" y="{num(top - 22)}" '
                f'text-anchor="middle">{year}</text>'
            )
            for month in range(2, 13):
                mx = _x(date(year, month, 1), left, span_width)
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
    for i, activity in enumerate(dated):
        assert activity.when is not None  # noqa: S101 - filtered above
        y = top + row_height * i
        x1, x2 = _bar_range(activity.when, left, span_width)
        state = " marked" if activity.iri in marked else ""
        bar = (
            f'<rect class="bar bar-{escape(activity.when.precision)}{state}" x="{num(x1)}" '
            f'y="{num(y + 20)}" width="{num(x2 - x1)}" height="12" rx="3"/>'
        )
        name = clip(activity.short, 70)
        label_width = text_width(name, FONT)
        sub = activity.date_text
        agents = _agents_text(activity, role_labels)
        if agents:
            sub = f"{sub} \u00b7 {agents}"
        sub = clip(sub, 110)
        needed = max(label_width, text_width(sub, SMALL))
        if x1 + needed <= width - right:
            tx, anchor = x1, "start"
        else:
            tx, anchor = min(x2, width - right), "end"
        body = (
            f"<title>{escape(activity.label)} ({escape(activity.date_text)})</title>"
            + bar
            + f'<text class="bar-label{state}" x="{num(tx)}" y="{num(y + 14)}" '
            f'text-anchor="{anchor}">{escape(name)}</text>'
            + f'<text class="bar-note" x="{num(tx)}" y="{num(y + 47)}" text-anchor="{anchor}">'
            f"{escape(sub)}</text>"
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
    row = 70.0
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
        lines = wrap(activity.short, 52, 2)
        h = 16.0 * len(lines) + 22
        body = [
            f"<title>{escape(activity.label)}</title>",
            f'<rect class="node node-activity" x="16" y="{num(y - h / 2)}" width="{num(left_w)}" '
            f'height="{num(h)}" rx="6"/>',
        ]
        for k, line in enumerate(lines):
            body.append(
                f'<text class="node-text" x="28" y="{num(y - h / 2 + 18 + 16 * k)}">'
                f"{escape(line)}</text>"
            )
        body.append(
            f'<text class="node-note" x="28" y="{num(y + h / 2 - 7)}">'
            f"{escape(activity.date_text)} \u00b7 {escape(activity.type)}</text>"
        )
        parts.append(link(activity.href, "".join(body)))
    for node in agent_list:
        y = g_pos[node.iri]
        agent_body = (
            f"<title>{escape(node.label)}</title>"
            f'<rect class="node node-{escape(node.kind)}" x="{num(gx1)}" y="{num(y - 16)}" '
            f'width="{num(right_w)}" height="32" rx="16"/>'
            f'<text class="node-text" x="{num(gx1 + right_w / 2)}" y="{num(y + 5)}" '
            f'text-anchor="middle">{escape(clip(node.label, 32))}</text>'
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
