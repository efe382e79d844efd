"""Curation from a template: activities in a CSV or YAML file become canonical Turtle in data/.

Each row (CSV) or entry (YAML) is one activity: its kind, title, dates at the precision given,
place, organizers and partners (the column says the role), themes, findings, recommendations,
and the source of its statements (a document and its paragraph or page). Names of
organizations, places and themes are resolved by the reconciliation service's matching
(:mod:`escap_kg.reconcile`): only a sure match is taken; anything else stops the run with its
candidates. Statements go into one named graph per source, with its provenance, IRIs are minted
by the README's rules, and the result is validated (SHACL shapes and checks, over the existing
data plus the new statements) before anything is written. A second run of the same file
changes nothing.
"""

from __future__ import annotations

import asyncio
import csv
import difflib
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import rdflib
from rdflib import RDF, RDFS, XSD, Literal, URIRef
from rdflib.namespace import DCTERMS, PROV, SKOS

from escap_kg.export import canonical_turtle
from escap_kg.iris import SLUG, prefixes
from escap_kg.reconcile import (
    TYPES,
    LocalSource,
    Reconciler,
    ReconQuery,
    candidates,
)
from escap_kg.settings import DEFAULT_BASE_IRI, Settings
from escap_kg.store import DataError, KnowledgeGraph, source_files

BASE = DEFAULT_BASE_IRI
ID = f"{BASE}id/"
GRAPH = f"{BASE}graph/"
EKG = rdflib.Namespace("https://w3id.org/escap-kg/ontology#")
SCHEMA = rdflib.Namespace("https://schema.org/")

KINDS = {
    "conference": EKG.Conference,
    "expert-group-meeting": EKG.ExpertGroupMeeting,
    "seminar": EKG.Seminar,
    "activity": EKG.Activity,
}
#: The first word of a minted activity slug, by kind.
KIND_SLUGS = {
    "conference": "conference",
    "expert-group-meeting": "egm",
    "seminar": "seminar",
    "activity": "activity",
}
#: The columns of the template, and for lists, that they are lists.
COLUMNS = {
    "kind": False,
    "title": False,
    "slug": False,
    "other_names": True,
    "start": False,
    "end": False,
    "place": False,
    "organizers": True,
    "joint_organizers": True,
    "partners": True,
    "themes": True,
    "key_agenda_items": True,
    "key_issue": False,
    "ad_hoc": False,
    "findings": True,
    "recommendations": True,
    "plan_title": False,
    "plan_addressed_to": True,
    "document": False,
    "document_title": False,
    "paragraph": False,
    "page": False,
}
ROLES = {
    "organizers": ("organiser", "organizer"),
    "joint_organizers": ("joint-organiser", "joint organizer"),
    "partners": ("cooperation-partner", "partner in cooperation"),
}
T = {t.name: t.id for t in TYPES}
AGENT_TYPES = (T["Organization"], T["Actor group"])
STOP = frozenset({"a", "an", "and", "for", "in", "of", "on", "the", "to", "at", "with"})


class TemplateError(Exception):
    """Rows that cannot be added: one line per problem, each naming the file, the row (its
    line) and the column or field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class NotValidError(Exception):
    """The new statements would make the data invalid: the report's lines."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


# Reading the template ---------------------------------------------------------------------------


@dataclass
class Item:
    """A finding or recommendation of an entry: headline, statement, themes, own source."""

    headline: str
    statement: str
    themes: list[str] = field(default_factory=list)
    paragraph: str = ""
    page: str = ""
    line: int = 0


@dataclass
class Entry:
    """One activity of the template, with where each of its values was written."""

    file: Path
    line: int
    values: dict[str, Any]
    lines: dict[str, int]
    label: str  # "column" for CSV, "field" for YAML

    def where(self, name: str, line: int = 0) -> str:
        """``file:line: column "name"`` for messages."""
        return f'{self.file.name}:{line or self.lines.get(name, self.line)}: {self.label} "{name}"'

    def text(self, name: str) -> str:
        value = self.values.get(name)
        if value is None:
            return ""
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value).strip()

    def names(self, name: str) -> list[str]:
        value = self.values.get(name)
        if value is None or value == "":
            return []
        if isinstance(value, list):
            return [str(v).strip() for v in value if str(v).strip()]
        return [v.strip() for v in str(value).split(";") if v.strip()]


def read_template(path: Path) -> list[Entry]:
    """The entries of a CSV or YAML template; raises :class:`TemplateError` or
    :class:`~escap_kg.store.DataError` for a file that cannot be read."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(path, f"cannot read: {err}") from None
    if suffix == ".csv":
        return _read_csv(path, text)
    if suffix in (".yaml", ".yml"):
        return _read_yaml(path, text)
    raise DataError(path, "a template is a .csv or .yaml file")


def _read_csv(path: Path, text: str) -> list[Entry]:
    lines = text.splitlines(keepends=True)
    reader = csv.DictReader(lines)
    header = reader.fieldnames or []
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        known = ", ".join(COLUMNS)
        raise TemplateError(
            [
                f'{path.name}:1: column "{h}" is not a column of the template ({known})'
                for h in unknown
            ]
        )
    entries = []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise TemplateError([f"{path.name}:{reader.line_num}: {err}"]) from None
        if None in row:
            raise TemplateError([f"{path.name}:{start}: more cells than the header has columns"])
        values: dict[str, Any] = {k: v for k, v in row.items() if v is not None and v.strip()}
        if not values:
            continue
        for name in ("findings", "recommendations"):
            if name in values:
                values[name] = [_item(part) for part in values[name].splitlines() if part.strip()]
        entries.append(Entry(path, start, values, {}, "column"))
    return entries


def _item(text: str) -> dict[str, Any]:
    headline, _, statement = text.partition("|")
    return {"headline": headline.strip(), "statement": statement.strip()}


def _read_yaml(path: Path, text: str) -> list[Entry]:
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise TemplateError([f"{path.name}{line}: not YAML: {problem}"]) from None
    if not isinstance(data, dict) or not isinstance(data.get("activities"), list):
        raise TemplateError([f"{path.name}:1: a YAML template has a list under activities:"])
    nodes = dict((k.value, v) for k, v in root.value)["activities"].value
    entries = []
    for node, value in zip(nodes, data["activities"], strict=True):
        line = node.start_mark.line + 1
        if not isinstance(value, dict):
            raise TemplateError([f"{path.name}:{line}: an activity is a mapping of fields"])
        lines = {k.value: v.start_mark.line + 1 for k, v in node.value}
        unknown = [k for k in value if k not in COLUMNS]
        if unknown:
            raise TemplateError(
                [
                    f'{path.name}:{lines[k]}: field "{k}" is not a field of the template'
                    for k in unknown
                ]
            )
        for name in ("findings", "recommendations"):
            items = value.get(name)
            if isinstance(items, list):
                item_nodes = dict((k.value, v) for k, v in node.value)[name].value
                value[name] = [
                    {
                        **(i if isinstance(i, dict) else {"headline": i}),
                        "_line": n.start_mark.line + 1,
                    }
                    for i, n in zip(items, item_nodes, strict=True)
                ]
        entries.append(Entry(path, line, value, lines, "field"))
    return entries


# From entries to statements ---------------------------------------------------------------------


def slugify(text: str, words: int = 6) -> str:
    """A lowercase kebab-case slug of the first significant words of ``text``."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    parts = [w for w in re.split(r"[^a-z0-9]+", plain) if w and w not in STOP]
    return "-".join(parts[:words])


@dataclass
class Resolver:
    """Names to IRIs through the reconciliation matching, over the graph as it is."""

    service: Reconciler
    problems: list[str]

    def __call__(self, entry: Entry, column: str, name: str, types: tuple[str, ...]) -> URIRef:
        table = asyncio.run(self.service.table())
        iri = _expand(name)
        if iri is not None:
            entity = table.entities.get(iri)
            if entity is None or not entity.types & set(types):
                self.problems.append(f"{entry.where(column)}: {name!r} is not a known resource")
            return URIRef(iri)
        query = ReconQuery(name, types, limit=3)
        hits = asyncio.run(self.service.source.search(name, 20))
        found = candidates(query, table, hits)
        sure = [c for c in found if c.match]
        if len(sure) == 1:
            return URIRef(sure[0].entity.iri)
        exact = [c for c in found if c.features.get("name_exact")]
        shown = "; ".join(f"{c.entity.name} ({_short(c.entity.iri)})" for c in (exact or found))
        if len(exact) > 1:
            message = f"{name!r} is ambiguous; candidates: {shown}"
        else:
            message = f"{name!r} is not known; " + (
                f"candidates: {shown}" if found else "no candidates"
            )
        self.problems.append(f"{entry.where(column)}: {message}")
        return URIRef(f"{ID}unknown/{slugify(name) or 'x'}")


def _expand(name: str) -> str | None:
    if name.startswith(("http://", "https://")):
        return name
    prefix, sep, local = name.partition(":")
    table = prefixes(BASE)
    if sep and prefix in table and SLUG.match(local):
        return table[prefix] + local
    return None


def _short(iri: str) -> str:
    if iri.startswith(ID):
        kind, _, slug = iri[len(ID) :].partition("/")
        return f"{kind}:{slug}"
    return iri


def _date(entry: Entry, name: str) -> Literal | None:
    value = entry.values.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return Literal(value.isoformat(), datatype=XSD.date)
    text = str(value).strip()
    if re.fullmatch(r"\d{4}", text):
        return Literal(text, datatype=XSD.gYear)
    if re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text):
        return Literal(text, datatype=XSD.gYearMonth)
    if re.fullmatch(r"\d{4}-\d\d-\d\d", text):
        try:
            date.fromisoformat(text)
            return Literal(text, datatype=XSD.date)
        except ValueError:
            pass
    raise ValueError(
        f"{entry.where(name)}: {text!r} is not a date; write YYYY, YYYY-MM or YYYY-MM-DD "
        "at the precision the source gives"
    )


@dataclass
class Source:
    """Where statements come from: a document and its paragraph or page."""

    document: str  # the document's slug
    paragraph: int = 0
    page: str = ""

    @property
    def graph_stem(self) -> str:
        where = f"paragraph-{self.paragraph}" if self.paragraph else f"page-{slugify(self.page)}"
        return f"{self.document}-{where}"


@dataclass
class Plan:
    """What the entries add: statements per source, new documents, the graphs' provenance."""

    statements: dict[tuple[str, int, str], rdflib.Graph] = field(default_factory=dict)
    documents: dict[str, str] = field(default_factory=dict)  # slug -> title of new documents

    def graph(self, source: Source) -> rdflib.Graph:
        key = (source.document, source.paragraph, source.page)
        return self.statements.setdefault(key, rdflib.Graph())


def _source(
    entry: Entry,
    plan: Plan,
    known_docs: dict[str, str],
    problems: list[str],
    paragraph: str = "",
    page: str = "",
    line: int = 0,
) -> Source | None:
    document = entry.text("document")
    if not document:
        problems.append(f"{entry.where('document', line)}: give the source document of the row")
        return None
    slug = _expand(document)
    slug = slug[len(f"{ID}source/") :] if slug and slug.startswith(f"{ID}source/") else document
    if not SLUG.match(slug):
        problems.append(f"{entry.where('document')}: {document!r} is not a document slug or IRI")
        return None
    title = entry.text("document_title")
    if slug not in known_docs:
        if not title:
            problems.append(
                f"{entry.where('document')}: {document!r} is not a known source document; "
                "give its title in document_title to add it"
            )
            return None
        plan.documents.setdefault(slug, title)
    own = bool(paragraph or page)  # a finding's or recommendation's own source
    para = paragraph if own else entry.text("paragraph")
    pg = page if own else entry.text("page")
    column = "paragraph" if para else "page"
    if bool(para) == bool(pg):
        problems.append(
            f"{entry.where(column, line)}: give the paragraph or the page (one of them)"
        )
        return None
    if para and not para.isdigit():
        problems.append(f"{entry.where('paragraph', line)}: {para!r} is not a paragraph number")
        return None
    return Source(slug, int(para) if para else 0, pg)


def build(
    entries: list[Entry], resolve: Resolver, known_docs: dict[str, str], existing: dict[str, str]
) -> Plan:
    """The statements of every entry, or :class:`TemplateError` with every problem found.

    ``known_docs``: the slugs and titles of the source documents in the graph; ``existing``:
    the label of every activity already there, by IRI.
    """
    plan = Plan()
    problems = resolve.problems
    seen: dict[str, int] = {}
    for entry in entries:
        try:
            _entry(entry, plan, resolve, known_docs, existing, seen)
        except ValueError as err:
            problems.append(str(err))
    if problems:
        raise TemplateError(problems)
    return plan


def _lang(text: str) -> Literal:
    return Literal(text, lang="en")


def _entry(
    entry: Entry,
    plan: Plan,
    resolve: Resolver,
    known_docs: dict[str, str],
    existing: dict[str, str],
    seen: dict[str, int],
) -> None:
    problems = resolve.problems
    kind = entry.text("kind")
    title = entry.text("title")
    if kind not in KINDS:
        problems.append(f"{entry.where('kind')}: {kind!r} is not a kind; one of {', '.join(KINDS)}")
    if not title:
        problems.append(f"{entry.where('title')}: every activity needs its title")
    start = _date(entry, "start")
    end = _date(entry, "end")
    if start is None:
        problems.append(
            f"{entry.where('start')}: give the start date (YYYY, YYYY-MM or YYYY-MM-DD)"
        )
    if kind not in KINDS or not title or start is None:
        return
    slug = entry.text("slug") or f"{KIND_SLUGS[kind]}-{str(start)[:4]}-{slugify(title)}"
    if not SLUG.match(slug):
        raise ValueError(f"{entry.where('slug')}: {slug!r} is not a lowercase kebab-case slug")
    activity = URIRef(f"{ID}activity/{slug}")
    if str(activity) in seen:
        raise ValueError(
            f"{entry.where('title')}: activity:{slug} is also the activity of line "
            f"{seen[str(activity)]}"
        )
    seen[str(activity)] = entry.line
    if existing.get(str(activity), title) != title:
        raise ValueError(
            f"{entry.where('slug')}: activity:{slug} already exists as "
            f"{existing[str(activity)]!r}; give this one another slug"
        )
    source = _source(entry, plan, known_docs, problems)
    if source is None:
        return
    g = plan.graph(source)
    g.add((activity, RDF.type, KINDS[kind]))
    g.add((activity, RDFS.label, _lang(title)))
    g.add((activity, SCHEMA.name, _lang(title)))
    for other in entry.names("other_names"):
        g.add((activity, SKOS.altLabel, _lang(other)))
    g.add((activity, SCHEMA.startDate, start))
    if end is not None:
        g.add((activity, SCHEMA.endDate, end))
    place = entry.text("place")
    if place:
        g.add((activity, SCHEMA.location, resolve(entry, "place", place, (T["Place"],))))
    for name in entry.names("themes"):
        g.add((activity, DCTERMS.subject, resolve(entry, "themes", name, (T["Theme"],))))
    for name in entry.names("key_agenda_items"):
        theme = resolve(entry, "key_agenda_items", name, (T["Theme"],))
        g.add((activity, EKG.keyAgendaItem, theme))
    if entry.text("key_issue"):
        g.add((activity, EKG.keyIssue, _lang(entry.text("key_issue"))))
    if entry.text("ad_hoc"):
        flag = entry.text("ad_hoc").lower()
        if flag not in ("true", "false"):
            raise ValueError(f"{entry.where('ad_hoc')}: {flag!r} is not true or false")
        g.add((activity, EKG.isAdHoc, Literal(flag == "true", datatype=XSD.boolean)))
    table = asyncio.run(resolve.service.table())
    for column, (role, role_name) in ROLES.items():
        for name in entry.names(column):
            agent = resolve(entry, column, name, AGENT_TYPES)
            known = table.entities.get(str(agent))
            if known is None:
                continue
            agent_slug = str(agent).rsplit("/", 1)[-1]
            participation = URIRef(f"{ID}participation/{slug}-{agent_slug}")
            g.add((activity, PROV.qualifiedAssociation, participation))
            g.add((participation, RDF.type, EKG.Participation))
            g.add((participation, RDFS.label, _lang(f"{known.name} as {role_name} of {title}")))
            g.add((participation, PROV.agent, agent))
            g.add((participation, PROV.hadRole, URIRef(f"{ID}role/{role}")))
            if column == "partners":
                g.add((activity, EKG.partner, agent))
                g.add((activity, PROV.wasAssociatedWith, agent))
            else:
                g.add((activity, SCHEMA.organizer, agent))
    for position, item in enumerate(_items(entry, "findings"), start=1):
        finding = URIRef(f"{ID}finding/{slug}-{slugify(item.headline)}")
        fg = _item_graph(entry, plan, known_docs, problems, item, g)
        fg.add((activity, EKG.noted, finding))
        _describe_item(fg, finding, EKG.Finding, item, position, resolve, entry, "findings")
    recommendations = _items(entry, "recommendations")
    if recommendations:
        plan_iri = URIRef(f"{ID}plan/{slug}-plan-of-action")
        plan_title = entry.text("plan_title") or f"Plan of action of the {title}"
        g.add((plan_iri, RDF.type, EKG.PlanOfAction))
        g.add((plan_iri, RDFS.label, _lang(plan_title)))
        g.add((plan_iri, EKG.adoptedAt, activity))
        addressed = entry.names("plan_addressed_to")
        if not addressed:
            problems.append(
                f"{entry.where('plan_addressed_to')}: recommendations need the plan's addressees "
                "(e.g. Governments)"
            )
        for name in addressed:
            g.add(
                (plan_iri, EKG.addressedTo, resolve(entry, "plan_addressed_to", name, AGENT_TYPES))
            )
        for position, item in enumerate(recommendations, start=1):
            rec = URIRef(f"{ID}recommendation/{slug}-{slugify(item.headline)}")
            rg = _item_graph(entry, plan, known_docs, problems, item, g)
            rg.add((plan_iri, DCTERMS.hasPart, rec))
            rg.add((rec, DCTERMS.isPartOf, plan_iri))
            _describe_item(
                rg, rec, EKG.Recommendation, item, position, resolve, entry, "recommendations"
            )


def _items(entry: Entry, name: str) -> list[Item]:
    raw = entry.values.get(name) or []
    items = []
    for value in raw if isinstance(raw, list) else []:
        line = value.get("_line", 0) if isinstance(value, dict) else 0
        if not isinstance(value, dict) or not str(value.get("headline", "")).strip():
            raise ValueError(f"{entry.where(name, line)}: each item needs a headline")
        headline = str(value["headline"]).strip()
        themes = value.get("themes") or []
        items.append(
            Item(
                headline,
                str(value.get("statement") or headline).strip(),
                [str(t) for t in themes] if isinstance(themes, list) else [str(themes)],
                str(value.get("paragraph") or ""),
                str(value.get("page") or ""),
                line,
            )
        )
    return items


def _item_graph(
    entry: Entry,
    plan: Plan,
    known_docs: dict[str, str],
    problems: list[str],
    item: Item,
    default: rdflib.Graph,
) -> rdflib.Graph:
    if not item.paragraph and not item.page:
        return default
    source = _source(entry, plan, known_docs, problems, item.paragraph, item.page, item.line)
    return plan.graph(source) if source is not None else default


def _describe_item(
    g: rdflib.Graph,
    iri: URIRef,
    cls: URIRef,
    item: Item,
    position: int,
    resolve: Resolver,
    entry: Entry,
    column: str,
) -> None:
    g.add((iri, RDF.type, cls))
    g.add((iri, RDFS.label, _lang(item.headline)))
    g.add((iri, EKG.statement, _lang(item.statement)))
    g.add((iri, SCHEMA.position, Literal(position)))
    for name in item.themes:
        theme = resolve(entry, column, name, (T["Theme"],))
        g.add((iri, DCTERMS.subject, theme))


# Files ------------------------------------------------------------------------------------------


@dataclass
class Change:
    """One file the run writes: its path, its text before (empty if new) and after."""

    path: Path
    before: str
    after: str

    def diff(self, root: Path) -> str:
        """A unified diff of the change, paths relative to ``root``'s parent."""
        name = self.path.relative_to(root.parent).as_posix()
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=f"a/{name}" if self.before else "/dev/null",
                tofile=f"b/{name}",
            )
        )


@dataclass
class Result:
    """What ``add`` did (or, in a dry run, would do)."""

    changes: list[Change]
    activities: int
    triples: int


def _graph_files(kg: KnowledgeGraph) -> dict[str, Path]:
    return {sf.graph: sf.path for sf in kg.files if sf.kind == "data"}


def _files_of(kg: KnowledgeGraph, plan: Plan, data_dir: Path) -> dict[Path, rdflib.Graph]:
    """The statements to add to each file: the source graphs, documents and provenance."""
    files = _graph_files(kg)
    added: dict[Path, rdflib.Graph] = {}

    def into(path: Path) -> rdflib.Graph:
        return added.setdefault(path, rdflib.Graph())

    provenance = into(data_dir / "provenance.ttl")
    derived_from = _derived_from(kg)
    paragraphs = {
        row[0] for row in _rows(kg, f"SELECT ?p WHERE {{ ?p a <{EKG.SourceParagraph}> }}")
    }
    doc_files = _document_files(kg, files)
    for slug, title in plan.documents.items():
        doc = URIRef(f"{ID}source/{slug}")
        path = data_dir / "source" / f"{slug}.ttl"
        doc_files[str(doc)] = path
        d = into(path)
        d.add((doc, RDF.type, EKG.SourceDocument))
        d.add((doc, RDFS.label, _lang(title)))
        d.add((doc, DCTERMS.title, _lang(title)))
        graph = URIRef(f"{GRAPH}{slug}")
        provenance.add((graph, RDF.type, PROV.Entity))
        provenance.add((graph, RDFS.label, _lang(f"The source document {title}")))
        provenance.add((graph, PROV.wasDerivedFrom, doc))
        provenance.add((URIRef(f"{GRAPH}entailed"), PROV.wasDerivedFrom, graph))
    for (document, paragraph, page), statements in plan.statements.items():
        doc = URIRef(f"{ID}source/{document}")
        source = Source(document, paragraph, page)
        part = URIRef(f"{ID}paragraph/{document}-{paragraph}") if paragraph else doc
        graph_iri = derived_from.get(str(part)) if paragraph else None
        if graph_iri is None:
            graph_iri = f"{GRAPH}{source.graph_stem}"
        path = files.get(graph_iri) or data_dir / "source" / f"{graph_iri[len(GRAPH) :]}.ttl"
        target = into(path)
        for triple in statements:
            target.add(triple)
        if graph_iri not in files:
            graph = URIRef(graph_iri)
            title = plan.documents.get(document) or _title(kg, doc)
            where = f"paragraph {paragraph}" if paragraph else f"page {page}"
            provenance.add((graph, RDF.type, PROV.Entity))
            provenance.add((graph, RDFS.label, _lang(f"Statements of {where} of {title}")))
            provenance.add((graph, PROV.wasDerivedFrom, part))
            if page:
                provenance.add((graph, SCHEMA.pagination, Literal(page)))
            provenance.add((URIRef(f"{GRAPH}entailed"), PROV.wasDerivedFrom, graph))
        if paragraph and str(part) not in paragraphs:
            d = into(doc_files.get(str(doc), data_dir / "source" / f"{document}.ttl"))
            title = plan.documents.get(document) or _title(kg, doc)
            d.add((doc, DCTERMS.hasPart, part))
            d.add((part, RDF.type, EKG.SourceParagraph))
            d.add((part, RDFS.label, _lang(f"{title}, paragraph {paragraph}")))
            d.add((part, DCTERMS.isPartOf, doc))
            d.add((part, SCHEMA.position, Literal(paragraph)))
    return added


def _rows(kg: KnowledgeGraph, text: str) -> Iterator[list[str]]:
    import pyoxigraph as ox

    result = kg.query(text)
    assert isinstance(result, ox.QuerySolutions)  # noqa: S101 - our own SELECTs
    variables = [v.value for v in result.variables]
    for row in result:
        yield [row[v].value if row[v] is not None else "" for v in variables]


def _derived_from(kg: KnowledgeGraph) -> dict[str, str]:
    """The named graph whose statements come from each source paragraph."""
    return {
        part: graph
        for graph, part in _rows(
            kg,
            f"SELECT ?g ?part WHERE {{ ?g <{PROV.wasDerivedFrom}> ?part . "
            f"?part a <{EKG.SourceParagraph}> }}",
        )
    }


def _document_files(kg: KnowledgeGraph, files: dict[str, Path]) -> dict[str, Path]:
    """The file that describes each source document."""
    found = {}
    for doc, graph in _rows(
        kg, f"SELECT ?doc ?g WHERE {{ GRAPH ?g {{ ?doc a <{EKG.SourceDocument}> }} }}"
    ):
        if graph in files:
            found[doc] = files[graph]
    return found


def _title(kg: KnowledgeGraph, doc: URIRef) -> str:
    rows = list(_rows(kg, f"SELECT ?t WHERE {{ <{doc}> <{RDFS.label}> ?t }}"))
    return rows[0][0] if rows else str(doc)


def known_documents(kg: KnowledgeGraph) -> dict[str, str]:
    """The source documents of the graph: slug -> title."""
    prefix = f"{ID}source/"
    return {
        doc[len(prefix) :]: title
        for doc, title in _rows(
            kg,
            f"SELECT ?doc ?t WHERE {{ ?doc a <{EKG.SourceDocument}> ; <{RDFS.label}> ?t }}",
        )
        if doc.startswith(prefix)
    }


def _activities(kg: KnowledgeGraph) -> dict[str, str]:
    return dict(
        _rows(
            kg,
            f"SELECT ?a ?l WHERE {{ ?a a/<{RDFS.subClassOf}>* <{EKG.Activity}> ; "
            f"<{RDFS.label}> ?l }}",
        )
    )


def add(template: Path, settings: Settings, dry_run: bool = False) -> Result:
    """Add the activities of ``template`` to the data in ``settings.data_dir``.

    Raises :class:`TemplateError` (bad rows, unknown or ambiguous names: nothing written),
    :class:`NotValidError` (the result would not validate: nothing written) or
    :class:`~escap_kg.store.DataError`. With ``dry_run``, nothing is written either way.
    """
    from escap_kg.validate import report_lines, validate

    settings = replace(settings, base_iri=BASE, extra_files=())
    entries = read_template(template)
    kg = KnowledgeGraph.load(settings)
    source = LocalSource(kg)
    try:
        resolve = Resolver(Reconciler(source, id_base=ID), [])
        plan = build(entries, resolve, known_documents(kg), _activities(kg))
    finally:
        source.close()
    names = prefixes(BASE)
    changes = []
    added = 0
    for path, statements in sorted(_files_of(kg, plan, settings.data_dir).items()):
        before = path.read_text(encoding="utf-8") if path.exists() else ""
        graph = rdflib.Graph()
        if before:
            graph.parse(data=before, format="turtle")
        size = len(graph)
        graph += statements
        added += len(graph) - size
        after = canonical_turtle(graph, names)
        if after != before:
            changes.append(Change(path, before, after))
    if changes:
        with tempfile.TemporaryDirectory(prefix="escap-kg-add-") as folder:
            copy = Path(folder) / settings.data_dir.name
            shutil.copytree(settings.data_dir, copy)
            for change in changes:
                target = copy / change.path.relative_to(settings.data_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(change.after, encoding="utf-8")
            trial = KnowledgeGraph.from_files(
                source_files(replace(settings, data_dir=copy)), settings
            )
            report = validate(trial)
            if not report.ok:
                lines = [
                    line.replace(str(copy), str(settings.data_dir))
                    for line in report_lines(report, trial)
                ]
                raise NotValidError(lines)
        if not dry_run:
            for change in changes:
                change.path.parent.mkdir(parents=True, exist_ok=True)
                partial = change.path.with_name(change.path.name + ".part")
                partial.write_text(change.after, encoding="utf-8")
                partial.replace(change.path)
    return Result(changes, len(entries), added)


__all__ = [
    "Change",
    "NotValidError",
    "Result",
    "TemplateError",
    "add",
    "read_template",
    "slugify",
]
