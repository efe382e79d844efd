"""Validation: SHACL shapes for each class, and SPARQL checks for the rules that span the graph."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyoxigraph as ox
import rdflib
from rdflib.namespace import SH
from rdflib.plugins.sparql.algebra import translateQuery
from rdflib.plugins.sparql.parser import parseQuery
from rdflib.plugins.sparql.processor import SPARQLProcessor

from escap_kg.iris import prefixes, shorten
from escap_kg.queries import QueryError, parse_query_file
from escap_kg.store import DataError, KnowledgeGraph


@dataclass(frozen=True, order=True)
class Violation:
    """One broken rule: which rule, on which resource and property, and what is wrong."""

    rule: str
    focus: str
    path: str
    value: str
    message: str

    def line(self, names: Mapping[str, str] | None = None) -> str:
        """One readable line: ``rule: resource property = value: message``."""
        table = dict(names or {})

        def short(iri: str) -> str:
            return shorten(iri, table)

        where = short(self.focus)
        if self.path:
            where += f" {short(self.path)}"
        if self.value:
            where += f" = {short(self.value)}"
        return f"{self.rule}: {where}: {self.message}"


@dataclass
class Report:
    """What validation found; ``ok`` when nothing."""

    violations: list[Violation] = field(default_factory=list)
    shapes_checked: int = 0
    checks_run: int = 0

    @property
    def ok(self) -> bool:
        """True when no shape and no check fired."""
        return not self.violations

    @property
    def rules(self) -> set[str]:
        """The names of the rules that fired."""
        return {v.rule for v in self.violations}


def shapes_path(kg: KnowledgeGraph) -> Path:
    """The SHACL shapes file of the configured ontology folder."""
    return kg.settings.ontology_dir / "shapes.ttl"


def checks_dir(kg: KnowledgeGraph) -> Path:
    """The folder of the SPARQL quality checks."""
    return kg.settings.queries_dir / "checks"


def run_shapes(kg: KnowledgeGraph, shapes: Path) -> tuple[list[Violation], int]:
    """Validate the union graph against the SHACL shapes; one violation per result."""
    from pyshacl import validate as shacl_validate  # slow to import; only needed here

    shapes_graph = _shapes_graph(shapes)
    with _prepared_query_cache():
        _conforms, results, _text = shacl_validate(
            data_graph=kg.union,
            shacl_graph=shapes_graph,
            inference="none",
            advanced=True,
            allow_warnings=True,
        )
    owners = {prop: node for node, prop in shapes_graph.subject_objects(SH.property)}
    violations = []
    for result in results.subjects(rdflib.RDF.type, SH.ValidationResult):
        source = results.value(result, SH.sourceShape)
        node_shape = owners.get(source, source)
        path = results.value(result, SH.resultPath)
        value = results.value(result, SH.value)
        message = results.value(result, SH.resultMessage)
        violations.append(
            Violation(
                rule=_name(node_shape),
                focus=str(results.value(result, SH.focusNode)),
                path=str(path) if isinstance(path, rdflib.URIRef) else "",
                value="" if value is None else str(value),
                message=str(message) if message is not None else "constraint not met",
            )
        )
    node_shapes = set(shapes_graph.subjects(rdflib.RDF.type, SH.NodeShape))
    return violations, len(node_shapes)


#: Shapes graphs read, by file and its size and time of change: validating again (as the tests do,
#: once per fixture) parses the shapes once. pySHACL only reads the shapes graph.
_SHAPES: dict[tuple[Path, int, int], rdflib.Graph] = {}


def _shapes_graph(shapes: Path) -> rdflib.Graph:
    try:
        info = shapes.stat()
    except FileNotFoundError:
        raise DataError(shapes, "shapes file not found") from None
    key = (shapes.resolve(), info.st_size, info.st_mtime_ns)
    if key not in _SHAPES:
        graph = rdflib.Graph()
        try:
            graph.parse(shapes, format="turtle")
        except FileNotFoundError:
            raise DataError(shapes, "shapes file not found") from None
        except Exception as err:  # rdflib raises many kinds of parse error
            raise DataError(shapes, f"cannot parse shapes: {err}") from None
        _SHAPES.clear()
        _SHAPES[key] = graph
    return _SHAPES[key]


# Kept for the life of the process, so that validating again (as the tests do, once per fixture)
# parses nothing: the shapes hold only a handful of distinct constraint texts.
_PREPARED: dict[tuple[str, str | None, tuple[tuple[str, str], ...]], Any] = {}


@contextmanager
def _prepared_query_cache() -> Iterator[None]:
    """Parse each SHACL-SPARQL constraint once instead of once per focus node.

    pySHACL hands rdflib the same query text for every focus node, with ``$this`` as an initial
    binding, and rdflib parses it each time: four fifths of validation time went to parsing. A
    prepared query is rdflib's own reusable form, so we prepare each text once.
    """
    original = SPARQLProcessor.query
    prepared = _PREPARED

    def query(
        self: SPARQLProcessor,
        str_or_query: Any,
        initBindings: Any = None,  # noqa: N803 - rdflib's parameter names
        initNs: Any = None,  # noqa: N803
        base: str | None = None,
        DEBUG: bool = False,  # noqa: N803
    ) -> Any:
        if isinstance(str_or_query, str):
            key = (
                str_or_query,
                base,
                tuple(sorted((k, str(v)) for k, v in (initNs or {}).items())),
            )
            if key not in prepared:
                prepared[key] = translateQuery(parseQuery(str_or_query), base, initNs)
            str_or_query = prepared[key]
        return original(self, str_or_query, initBindings, initNs, base, DEBUG)

    SPARQLProcessor.query = query  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        SPARQLProcessor.query = original  # type: ignore[method-assign]


def _name(shape: object) -> str:
    text = str(shape)
    return "ekgsh:" + text.split("#", 1)[1] if "#" in text else text


def run_checks(kg: KnowledgeGraph, folder: Path) -> tuple[list[Violation], int]:
    """Run every ``checks/*.rq``; each returned row is a violation named ``check:<file stem>``."""
    files = sorted(folder.glob("*.rq"))
    violations = []
    for path in files:
        check = parse_query_file(path)
        try:
            result = kg.query(check.text)
        except SyntaxError as err:
            raise QueryError(f"{path}: malformed check: {err}") from None
        if not isinstance(result, ox.QuerySolutions):
            raise QueryError(f"{path}: a check must be a SELECT query")
        for row in result:
            violations.append(
                Violation(
                    rule=f"check:{check.id}",
                    focus=_value(row["entity"]),
                    path=_value(row["property"]),
                    value=_value(row["value"]),
                    message=_value(row["message"]) or check.summary,
                )
            )
    return violations, len(files)


def _value(term: object) -> str:
    return "" if term is None else str(getattr(term, "value", term))


def validate(kg: KnowledgeGraph) -> Report:
    """Check the graph against the shapes and the checks of its configured folders."""
    shape_violations, shapes = run_shapes(kg, shapes_path(kg))
    check_violations, checks = run_checks(kg, checks_dir(kg))
    return Report(sorted(shape_violations + check_violations), shapes, checks)


def content_key(kg: KnowledgeGraph) -> str:
    """A hash of everything validation depends on: the package version, the resource base, the
    graph's files, the shapes and the checks. Equal keys give equal reports."""
    import hashlib

    from escap_kg import __version__

    digest = hashlib.sha256(f"{__version__}\n{kg.settings.base_iri}\n".encode())
    checks = sorted(checks_dir(kg).glob("*.rq")) if checks_dir(kg).is_dir() else []
    for path in [*(sf.path for sf in kg.files), shapes_path(kg), *checks]:
        digest.update(f"{path.name}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def validation_cache() -> Path:
    """Where the keys of content that passed validation are kept (``ESCAP_KG_CACHE_DIR``, else
    the user's cache folder)."""
    import os

    root = os.environ.get("ESCAP_KG_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    base = Path(root) if root else Path.home() / ".cache"
    return (base if os.environ.get("ESCAP_KG_CACHE_DIR") else base / "escap-kg") / "validated"


def validate_once(kg: KnowledgeGraph) -> Report:
    """:func:`validate`, or nothing to do when this very content has passed before.

    Validation takes a second or more (pySHACL), and the content of a release does not change
    between starts: a passing result is remembered by :func:`content_key`, so a server starts
    without it. A failing one is never remembered; a cache that cannot be written is skipped.
    """
    try:
        marker = validation_cache() / content_key(kg)
        if marker.exists():
            return Report()
    except OSError:
        return validate(kg)
    report = validate(kg)
    if report.ok:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(f"{report.shapes_checked} shapes, {report.checks_run} checks\n")
        except OSError:
            pass
    return report


def report_lines(report: Report, kg: KnowledgeGraph) -> list[str]:
    """One line per violation, ``file:line: rule: resource property = value: message``."""
    names = prefixes(kg.settings.base_iri)
    where = Locator(kg, names)
    return [f"{where(v.focus)}{v.line(names)}" for v in report.violations]


class Locator:
    """Finds the file and line where a resource is described, for error messages."""

    def __init__(self, kg: KnowledgeGraph, names: Mapping[str, str]) -> None:
        self.kg = kg
        self.names = dict(names)
        self._texts: dict[Path, list[str]] = {}

    def __call__(self, iri: str) -> str:
        if not iri.startswith(("http://", "https://", "urn:")):
            return ""
        node = ox.NamedNode(iri)
        graphs = {
            q.graph_name.value
            for q in self.kg.store.quads_for_pattern(node, None, None)
            if isinstance(q.graph_name, ox.NamedNode)
        }
        for source in self.kg.files:
            if source.graph in graphs:
                return f"{source.path}:{self._line(source.path, iri)}: "
        return ""

    def _line(self, path: Path, iri: str) -> int:
        if path not in self._texts:
            try:
                self._texts[path] = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                self._texts[path] = []
        forms = {f"<{iri}>", shorten(iri, self.names)}
        for number, line in enumerate(self._texts[path], start=1):
            head = line.split(maxsplit=1)[0] if line.strip() else ""
            if head in forms:
                return number
        return 1
