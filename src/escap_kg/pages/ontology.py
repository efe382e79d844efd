"""The ontology documentation: every class and property of the ontology graph, and a diagram."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING

import pyoxigraph as ox
from markupsafe import Markup

from escap_kg.iris import ONTOLOGY_IRI
from escap_kg.pages.data import Node, Term, construct, graph_content_query, select
from escap_kg.pages.svg import FONT, link, num, svg_open, text_width
from escap_kg.pages.terms import (
    DCTERMS,
    EKG,
    OWL,
    RDF_TYPE,
    RDFS,
    SKOS,
    Paths,
    iri_ref,
    local_name,
    prefixed,
    safe_href,
    words,
)

if TYPE_CHECKING:
    from escap_kg.service import State

KINDS = {
    f"{OWL}Class": "class",
    f"{OWL}ObjectProperty": "object property",
    f"{OWL}DatatypeProperty": "datatype property",
    f"{OWL}AnnotationProperty": "annotation property",
}


@dataclass(frozen=True)
class Ref:
    """A term named on the page: ours (an anchor on this page) or another vocabulary's (a link
    when its IRI is safe to link, else text)."""

    text: str
    href: str | None
    iri: str
    ours: bool


@dataclass
class TermDoc:
    """One class or property with everything the page says about it."""

    iri: str
    anchor: str
    kind: str
    label: str
    definition: str
    comment: str
    parents: list[Ref] = field(default_factory=list)
    children: list[Ref] = field(default_factory=list)
    domain: list[Ref] = field(default_factory=list)
    range: list[Ref] = field(default_factory=list)
    disjoint: list[Ref] = field(default_factory=list)
    domain_of: list[Ref] = field(default_factory=list)
    range_of: list[Ref] = field(default_factory=list)
    instances: list[Node] = field(default_factory=list)
    usage: int = 0

    @property
    def instance_count(self) -> int:
        """How many instances the class has."""
        return len(self.instances)


@dataclass
class OntologyDoc:
    """The ontology page: its metadata, its terms and the overview diagram."""

    iri: str
    title: str
    description: str
    version: str
    version_iri: str
    license: str
    created: str
    creator: str
    see_also: list[str]
    classes: list[TermDoc]
    object_properties: list[TermDoc]
    datatype_properties: list[TermDoc]
    diagram: Markup
    nt: bytes

    @property
    def license_href(self) -> str | None:
        """The link to the licence, when its IRI is safe to link."""
        return safe_href(self.license)

    @property
    def see_also_links(self) -> list[tuple[str, str | None]]:
        """``(IRI, link or None)`` for each ``rdfs:seeAlso`` of the ontology."""
        return [(iri, safe_href(iri)) for iri in self.see_also]

    @property
    def terms(self) -> list[TermDoc]:
        """Every term of the page, classes first."""
        return [*self.classes, *self.object_properties, *self.datatype_properties]


def _instances_query(graph: str) -> str:
    return f"""SELECT ?c ?x ?label WHERE {{
  GRAPH {iri_ref(graph)} {{ ?c a owl:Class }}
  ?x a ?c .
  OPTIONAL {{ ?x rdfs:label ?label }}
}}"""


def _usage_query(graph: str) -> str:
    return f"""SELECT ?p (COUNT(*) AS ?n) WHERE {{
  {{ SELECT DISTINCT ?p WHERE {{ GRAPH {iri_ref(graph)} {{
     ?p a ?k FILTER(?k IN (owl:ObjectProperty, owl:DatatypeProperty)) }} }} }}
  ?s ?p ?o .
}} GROUP BY ?p"""


Objects = dict[str, dict[str, list[ox.NamedNode | ox.Literal]]]


async def ontology_doc(state: State, graph: str) -> OntologyDoc:
    """Read the ontology graph through the engine and document it."""
    body, triples = await construct(state, graph_content_query(graph))
    instance_rows = await select(state, _instances_query(graph))
    usage_rows = await select(state, _usage_query(graph))
    by_subject = _objects_by_subject(triples)
    own = _own_terms(by_subject)
    _relate(own, by_subject)
    _add_instances(own, instance_rows, Paths(state.settings.base_iri))
    for row in usage_rows:
        if row["p"].value in own:
            own[row["p"].value].usage = int(row["n"].value)
    return _document(own, by_subject, body)


def _objects_by_subject(triples: list[ox.Triple]) -> Objects:
    """The objects of the graph's statements, by subject IRI and predicate."""
    by_subject: Objects = defaultdict(lambda: defaultdict(list))
    for t in triples:
        if isinstance(t.subject, ox.NamedNode) and isinstance(t.object, ox.NamedNode | ox.Literal):
            by_subject[t.subject.value][t.predicate.value].append(t.object)
    return by_subject


def _first(by_subject: Objects, iri: str, predicate: str) -> str:
    """The first value (English preferred) of ``iri``'s ``predicate``, or ''."""
    values = by_subject.get(iri, {}).get(predicate, [])
    english = [v for v in values if isinstance(v, ox.Literal) and v.language in (None, "en")]
    chosen = english or values
    return chosen[0].value if chosen else ""


def _iris(by_subject: Objects, iri: str, predicate: str) -> list[str]:
    """The IRIs that are values of ``iri``'s ``predicate``, sorted."""
    return sorted(
        v.value for v in by_subject.get(iri, {}).get(predicate, []) if isinstance(v, ox.NamedNode)
    )


def _own_terms(by_subject: Objects) -> dict[str, TermDoc]:
    """Our own classes and properties, with their names and definitions."""
    own: dict[str, TermDoc] = {}
    for iri, props in by_subject.items():
        kinds = [KINDS[v.value] for v in props.get(RDF_TYPE, []) if v.value in KINDS]
        if not kinds or not iri.startswith(EKG):
            continue
        own[iri] = TermDoc(
            iri=iri,
            anchor=local_name(iri),
            kind=kinds[0],
            label=_first(by_subject, iri, f"{RDFS}label") or words(local_name(iri)),
            definition=_first(by_subject, iri, f"{SKOS}definition"),
            comment=_first(by_subject, iri, f"{RDFS}comment"),
        )
    return own


def _relate(own: dict[str, TermDoc], by_subject: Objects) -> None:
    """Each term's parents, domain, range and disjoint classes, and the other way round."""

    def ref(iri: str) -> Ref:
        if iri in own:
            return Ref(own[iri].anchor, f"#{own[iri].anchor}", iri, True)
        return Ref(prefixed(iri), safe_href(iri), iri, False)

    def refs(iri: str, predicate: str) -> list[Ref]:
        return [ref(p) for p in _iris(by_subject, iri, predicate)]

    for iri, doc in own.items():
        parent_property = f"{RDFS}subClassOf" if doc.kind == "class" else f"{RDFS}subPropertyOf"
        doc.parents = refs(iri, parent_property)
        doc.domain = refs(iri, f"{RDFS}domain")
        doc.range = refs(iri, f"{RDFS}range")
        doc.disjoint = refs(iri, f"{OWL}disjointWith")
    for iri, doc in own.items():
        for parents, inverse in (
            (doc.parents, "children"),
            (doc.domain, "domain_of"),
            (doc.range, "range_of"),
        ):
            for other in parents:
                if other.iri in own:
                    getattr(own[other.iri], inverse).append(ref(iri))
    for doc in own.values():
        doc.children.sort(key=lambda r: r.text)
        doc.domain_of.sort(key=lambda r: r.text)
        doc.range_of.sort(key=lambda r: r.text)


def _add_instances(own: dict[str, TermDoc], rows: list[dict[str, Term]], paths: Paths) -> None:
    """The instances of each of our classes, by name."""
    for row in rows:
        class_iri = row["c"].value
        if class_iri in own:
            doc = own[class_iri]
            x = row["x"].value
            label = row["label"].value if "label" in row else paths.slug_words(x)
            if all(n.iri != x for n in doc.instances):
                doc.instances.append(Node(x, label, paths.href(x), paths.kind(x) or "other"))
    for doc in own.values():
        doc.instances.sort(key=lambda n: n.label)


def _document(own: dict[str, TermDoc], by_subject: Objects, body: bytes) -> OntologyDoc:
    """The page: the ontology's header, its terms by kind and the diagram."""
    ordered = sorted(own.values(), key=lambda d: d.anchor.lower())
    classes = [d for d in ordered if d.kind == "class"]
    object_properties = [d for d in ordered if d.kind == "object property"]
    meta = ONTOLOGY_IRI

    def first(predicate: str) -> str:
        return _first(by_subject, meta, predicate)

    return OntologyDoc(
        iri=meta,
        title=first(f"{DCTERMS}title") or first(f"{RDFS}label") or "Ontology",
        description=first(f"{DCTERMS}description"),
        version=first(f"{OWL}versionInfo"),
        version_iri=first(f"{OWL}versionIRI"),
        license=first(f"{DCTERMS}license"),
        created=first(f"{DCTERMS}created"),
        creator=first(f"{DCTERMS}creator"),
        see_also=_iris(by_subject, meta, f"{RDFS}seeAlso"),
        classes=classes,
        object_properties=object_properties,
        datatype_properties=[d for d in ordered if d.kind == "datatype property"],
        diagram=class_diagram(classes, object_properties),
        nt=body,
    )


# The overview diagram --------------------------------------------------------------------------

BOX_GAP = 16.0
PORT = 24.0


@dataclass
class _Box:
    ref: Ref
    note: str
    width: float
    children: list[_Box] = field(default_factory=list)
    x: float = 0.0
    y: float = 0.0
    extent: float = 0.0


def class_diagram(classes: list[TermDoc], properties: list[TermDoc], ident: str = "ont") -> Markup:
    """The classes in their subclass trees (above), the object properties from domain to range
    (below); every box and property name links to its entry on the page."""
    width = 960.0
    hierarchy, top_height = _hierarchy(classes, width, 40.0, ident)
    flows, flow_height = _flows(properties, width, top_height + 56.0, ident)
    height = top_height + 56.0 + flow_height + 10
    parts = svg_open(
        width, height, "Classes of the ontology and the properties between them", ident, "ontology"
    )
    parts.append(
        "<defs>"
        f'<marker id="{ident}-sub" viewBox="0 0 12 12" refX="11" refY="6" markerWidth="11" '
        'markerHeight="11" orient="auto"><path class="subclass-head" d="M1,1 L11,6 L1,11 z"/>'
        "</marker>"
        f'<marker id="{ident}-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto"><path class="arrowhead" d="M0,1 L9,5 L0,9 z"/></marker>'
        "</defs>"
    )
    parts.append(
        '<text class="panel-title" x="20" y="22">Classes, with the classes of other vocabularies '
        "each one refines; hollow arrows point to the superclass</text>"
    )
    parts.extend(hierarchy)
    parts.append(
        f'<text class="panel-title" x="20" y="{num(top_height + 38)}">Object properties, from '
        "the class of their subject (domain) to the class of their value (range)</text>"
    )
    parts.extend(flows)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text is escaped


def _class_box(box: _Box, height: float, ident: str) -> str:
    kind = "class-ours" if box.ref.ours else "class-external"
    x, y = box.x - box.width / 2, box.y
    text_y = y + (17 if box.note else height / 2 + 5)
    body = [
        f"<title>{escape(box.ref.iri)}</title>",
        f'<rect class="node {kind}" x="{num(x)}" y="{num(y)}" width="{num(box.width)}" '
        f'height="{num(height)}" rx="4"/>',
        f'<text class="node-text" x="{num(box.x)}" y="{num(text_y)}" text-anchor="middle">'
        f"{escape(box.ref.text)}</text>",
    ]
    if box.note:
        body.append(
            f'<text class="node-note" x="{num(box.x)}" y="{num(y + 33)}" text-anchor="middle">'
            f"{escape(box.note)}</text>"
        )
    del ident
    return link(box.ref.href, "".join(body), external=not box.ref.ours)


def _hierarchy(
    classes: list[TermDoc], width: float, top: float, ident: str
) -> tuple[list[str], float]:
    level, box_h = 70.0, 42.0
    boxes: dict[str, _Box] = {}
    for doc in classes:
        ref = Ref(doc.anchor, f"#{doc.anchor}", doc.iri, True)
        outside = [p.text for p in doc.parents if not p.ours]
        note = "\u2282 " + ", ".join(outside) if outside else ""
        w = max(text_width(doc.anchor, FONT), text_width(note, 11.5)) + 22
        boxes[doc.iri] = _Box(ref, note, w)
    parent_of: dict[str, str] = {}
    for doc in classes:
        for parent in doc.parents:
            if parent.iri in boxes and doc.iri not in parent_of:
                parent_of[doc.iri] = parent.iri
                boxes[parent.iri].children.append(boxes[doc.iri])

    def measure(box: _Box) -> float:
        box.children.sort(key=lambda b: b.ref.text)
        kids = sum(measure(c) for c in box.children) + BOX_GAP * max(len(box.children) - 1, 0)
        box.extent = max(box.width, kids)
        return box.extent

    def depth(box: _Box) -> int:
        return 1 + max((depth(c) for c in box.children), default=0)

    def place(box: _Box, x: float, y: float) -> None:
        box.x, box.y = x + box.extent / 2, y
        kids = sum(c.extent for c in box.children) + BOX_GAP * max(len(box.children) - 1, 0)
        cx = x + (box.extent - kids) / 2
        for child in box.children:
            place(child, cx, y + level)
            cx += child.extent + BOX_GAP

    roots = [b for iri, b in boxes.items() if iri not in parent_of]
    for root in roots:
        measure(root)
    roots.sort(key=lambda b: (-depth(b), -b.extent, b.ref.text))
    x, y, band = 20.0, top, 1
    for root in roots:
        if x + root.extent > width - 20 and x > 20:
            x, y = 20.0, y + level * band
            band = 1
        place(root, x, y)
        band = max(band, depth(root))
        x += root.extent + BOX_GAP * 1.5
    bottom = y + level * (band - 1) + box_h
    parts: list[str] = []
    for child_iri, parent_iri in parent_of.items():
        child, above = boxes[child_iri], boxes[parent_iri]
        parts.append(
            f'<line class="subclass" x1="{num(child.x)}" y1="{num(child.y)}" '
            f'x2="{num(above.x)}" y2="{num(above.y + box_h + 1)}" '
            f'marker-end="url(#{ident}-sub)"/>'
        )
    for box in boxes.values():
        parts.append(_class_box(box, box_h, ident))
    return parts, bottom


def _flows(
    properties: list[TermDoc], width: float, top: float, ident: str
) -> tuple[list[str], float]:
    any_class = Ref("any class", "#", "", False)
    edges: list[tuple[TermDoc, Ref, Ref]] = []
    for prop in properties:
        for domain in prop.domain or [any_class]:
            for rng in prop.range:
                edges.append((prop, domain, rng))
    domains: dict[str, list[tuple[TermDoc, Ref, Ref]]] = {}
    for edge in edges:
        domains.setdefault(edge[1].text, []).append(edge)
    domain_order = sorted(domains, key=lambda d: (d == "any class", -len(domains[d]), d))
    ranges: dict[str, Ref] = {edge[2].text: edge[2] for edge in edges}

    # Ranges in the order of the mean position of the edges that reach them (fewer crossings).
    position: dict[str, list[float]] = {}
    k = 0
    for name in domain_order:
        for edge in sorted(domains[name], key=lambda e: e[0].anchor):
            position.setdefault(edge[2].text, []).append(k)
            k += 1
    range_order = sorted(ranges, key=lambda r: (sum(position[r]) / len(position[r]), r))
    rank = {r: i for i, r in enumerate(range_order)}

    # Each domain box lists its properties, one row each, and their lines leave from its edge:
    # a property's name sits inside a box, where no line can run through it.
    names = [p.anchor for p in properties] + [r.text for r in ranges.values()]
    col_w = max(220.0, max((text_width(n, FONT) for n in names), default=0.0) + 28)
    left_x, right_x = 20.0, width - 20 - col_w
    parts: list[str] = []
    boxes: list[str] = []
    labels: list[str] = []
    ports: dict[tuple[str, str, str], tuple[float, float]] = {}
    y = top
    for name in domain_order:
        group = sorted(domains[name], key=lambda e: (rank[e[2].text], e[0].anchor))
        h = PORT * (len(group) + 1) + 8
        boxes.append(_side_box(group[0][1], left_x, y, col_w, h, header=True))
        for i, (prop, _, rng) in enumerate(group):
            port_y = y + PORT + 4 + PORT * i + PORT / 2
            ports[(prop.iri, name, rng.text)] = (left_x + col_w, port_y)
            labels.append(
                link(
                    f"#{prop.anchor}",
                    f"<title>{escape(prop.anchor)}: {escape(name)} \u2192 "
                    f"{escape(rng.text)}</title>"
                    f'<text class="property-name" x="{num(left_x + 24)}" '
                    f'y="{num(port_y + 4.5)}">{escape(prop.anchor)}</text>',
                )
            )
        y += h + BOX_GAP
    left_bottom = y
    y = top
    incoming: dict[str, list[tuple[TermDoc, str]]] = {}
    for name in domain_order:
        for prop, _, rng in domains[name]:
            incoming.setdefault(rng.text, []).append((prop, name))
    targets: dict[tuple[str, str, str], tuple[float, float]] = {}
    for name in range_order:
        arriving = sorted(incoming[name], key=lambda pn: ports[(pn[0].iri, pn[1], name)][1])
        h = max(PORT * len(arriving) + 12, 36.0)
        boxes.append(_side_box(ranges[name], right_x, y, col_w, h))
        for i, (prop, domain_name) in enumerate(arriving):
            step = (h - 12) / len(arriving)
            targets[(prop.iri, domain_name, name)] = (right_x, y + 6 + step * i + step / 2)
        y += h + BOX_GAP
    bottom = max(left_bottom, y)
    for key, (sx, sy) in ports.items():
        ex, ey = targets[key]
        prop = next(p for p in properties if p.iri == key[0])
        mid = (sx + ex) / 2
        parts.append(
            f'<path class="ont-property" d="M{num(sx)},{num(sy)} C{num(mid)},{num(sy)} '
            f'{num(mid)},{num(ey)} {num(ex - 1)},{num(ey)}" marker-end="url(#{ident}-arrow)">'
            f"<title>{escape(prop.anchor)}: {escape(key[1])} \u2192 {escape(key[2])}</title>"
            "</path>"
        )
    return [*parts, *boxes, *labels], bottom - top


def _side_box(ref: Ref, x: float, y: float, w: float, h: float, header: bool = False) -> str:
    """A class's box: its name in the middle, or at the top (``header``) over its properties."""
    kind = "class-ours" if ref.ours else "class-external"
    text_y = y + 17 if header else y + h / 2 + 5
    body = (
        f"<title>{escape(ref.iri or ref.text)}</title>"
        f'<rect class="node {kind}" x="{num(x)}" y="{num(y)}" width="{num(w)}" '
        f'height="{num(h)}" rx="4"/>'
        f'<text class="node-text" x="{num(x + 12)}" y="{num(text_y)}">{escape(ref.text)}</text>'
    )
    if not ref.iri:
        return f"<g>{body}</g>"
    return link(ref.href, body, external=not ref.ours)


__all__ = ["OntologyDoc", "Ref", "TermDoc", "class_diagram", "ontology_doc"]
