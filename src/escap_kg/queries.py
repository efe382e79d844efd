"""The query catalogue: one competency question per ``queries/NN-slug.rq`` file; running it."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyoxigraph as ox

from escap_kg.formats import RESULT_FORMATS
from escap_kg.inspection import RefusedError, known_prefixes, syntax_message, with_prologue
from escap_kg.iris import is_iri, prefixes, shorten
from escap_kg.settings import Settings
from escap_kg.sparql import SparqlTextError, scan
from escap_kg.store import KnowledgeGraph

QUERY_FILE = re.compile(r"^(?P<number>\d{2})-(?P<slug>[a-z0-9]+(?:-[a-z0-9]+)*)\.rq$")
PARAM_LINE = re.compile(r"^#\+\s*param:\s*(?P<name>\w+)\s+(?P<kind>iri|literal)\b\s*(?P<doc>.*)$")

OutputFormat = Literal["table", "csv", "tsv", "json"]


class QueryError(Exception):
    """A query could not be found, parsed or bound; ``str()`` says what and where."""


@dataclass(frozen=True)
class Param:
    """A value a caller may bind to a variable of a catalogue query."""

    name: str
    kind: Literal["iri", "literal"]
    description: str


@dataclass(frozen=True)
class Query:
    """One catalogue query: its id (the file stem), the question it answers, and its text."""

    id: str
    summary: str
    text: str
    path: Path
    params: tuple[Param, ...] = ()
    #: Endpoints the query calls with SERVICE (``#+ federated: URL`` header lines).
    federated: tuple[str, ...] = ()

    @property
    def number(self) -> str:
        """The two-digit number of the query; empty for a file outside the catalogue."""
        match = QUERY_FILE.match(self.path.name)
        return match["number"] if match else ""


def parse_query_file(path: Path) -> Query:
    """Read a ``.rq`` file with its ``#+ summary:`` and ``#+ param:`` header lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QueryError(f"{path}: query file not found") from None
    except UnicodeDecodeError as err:
        raise QueryError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise QueryError(f"{path}: cannot read: {err.strerror}") from None
    summary = ""
    params: list[Param] = []
    federated: list[str] = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if line.startswith("#+ summary:"):
            summary = line.removeprefix("#+ summary:").strip()
        elif line.startswith("#+ federated:"):
            federated.append(line.removeprefix("#+ federated:").strip())
        elif match := PARAM_LINE.match(line):
            kind: Literal["iri", "literal"] = "iri" if match["kind"] == "iri" else "literal"
            params.append(Param(match["name"], kind, match["doc"].strip()))
    stem = path.name.removesuffix(".rq")
    return Query(
        id=stem,
        summary=summary,
        text=text,
        path=path,
        params=tuple(params),
        federated=tuple(federated),
    )


def load_catalogue(settings: Settings | None = None) -> list[Query]:
    """Every catalogue query, in number order; a file without a summary is an error."""
    settings = settings or Settings.from_env()
    queries = []
    for path in sorted(settings.queries_dir.glob("*.rq")):
        if not QUERY_FILE.match(path.name):
            raise QueryError(f"{path}: catalogue files are named NN-slug.rq")
        query = parse_query_file(path)
        if not query.summary:
            raise QueryError(f"{path}:1: the first line must be '#+ summary: <question>'")
        queries.append(query)
    return queries


def find_query(name: str, settings: Settings | None = None) -> Query:
    """A catalogue query by id, number or slug (``01-...``, ``1``, ``slug``), or a file."""
    settings = settings or Settings.from_env()
    if name.endswith(".rq") or "/" in name:
        return parse_query_file(Path(name))
    catalogue = load_catalogue(settings)
    for query in catalogue:
        slug = query.id.split("-", 1)[1]
        if name in (query.id, slug) or (name.isdigit() and int(name) == int(query.number)):
            return query
    ids = ", ".join(q.id for q in catalogue)
    raise QueryError(f"no catalogue query named {name!r}; known queries: {ids}")


def bind(query: Query, values: Mapping[str, str]) -> dict[str, ox.NamedNode | ox.Literal]:
    """Turn ``name=value`` strings into RDF terms for the query's declared parameters.

    Values are bound as terms (SEP-0007 substitution), never pasted into the query text.
    """
    declared = {p.name: p for p in query.params}
    bound: dict[str, ox.NamedNode | ox.Literal] = {}
    for name, value in values.items():
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise QueryError(f"query {query.id} has no parameter {name!r} (parameters: {known})")
        if declared[name].kind == "iri":
            if not is_iri(value):
                raise QueryError(f"parameter {name!r}: {value!r} is not an absolute IRI")
            bound[name] = ox.NamedNode(value)
        else:
            bound[name] = ox.Literal(value)
    return bound


def run(
    kg: KnowledgeGraph, text: str, bindings: Mapping[str, ox.NamedNode | ox.Literal] | None = None
) -> ox.QuerySolutions | ox.QueryBoolean | ox.QueryTriples:
    """Run SPARQL text over the union graph; a syntax error becomes a :class:`QueryError`.

    The prefixes everyone knows (:func:`escap_kg.iris.prefixes`) need no declaration, as on the
    endpoint.
    """
    try:
        prologue = known_prefixes(text, scan(text), prefixes(kg.settings.base_iri))
    except SparqlTextError as err:
        raise QueryError(f"malformed query: {err}") from None
    except RefusedError as err:
        raise QueryError(err.message) from None
    full = with_prologue(text, prologue)
    try:
        return kg.query(full, dict(bindings or {}))
    except SyntaxError as err:
        raise QueryError(f"malformed query: {syntax_message(err, full, len(prologue))}") from None
    except (ValueError, OSError, RuntimeError) as err:
        raise QueryError(f"query failed: {err}") from None


def run_as_served(
    settings: Settings, text: str, bindings: Mapping[str, ox.NamedNode | ox.Literal] | None = None
) -> ox.QuerySolutions | ox.QueryBoolean | ox.QueryTriples:
    """Run SPARQL text over the graph of ``settings`` as the server serves it: loaded, with its
    entailed graph (so a query for a class finds the instances of its subclasses too)."""
    from escap_kg import entailment

    kg = KnowledgeGraph.load(settings)
    entailment.refresh(kg.store, entailment.entailed_graph(settings.base_iri))
    return run(kg, text, bindings)


@dataclass
class Table:
    """A SELECT answer as plain strings, for printing and comparing."""

    variables: list[str]
    rows: list[list[str]]


def to_table(result: ox.QuerySolutions, prefixes: Mapping[str, str] | None = None) -> Table:
    """Rows of a SELECT answer as strings, IRIs shortened with ``prefixes`` when given."""
    variables = [v.value for v in result.variables]
    rows = [[_show(solution[v], prefixes) for v in variables] for solution in result]
    return Table(variables, rows)


def _show(term: object, prefixes: Mapping[str, str] | None) -> str:
    if term is None:
        return ""
    if isinstance(term, ox.NamedNode):
        return shorten(term.value, dict(prefixes)) if prefixes else term.value
    if isinstance(term, ox.Literal | ox.BlankNode):
        return term.value if isinstance(term, ox.Literal) else f"_:{term.value}"
    return str(term)


def serialize_result(
    result: ox.QuerySolutions | ox.QueryBoolean | ox.QueryTriples, fmt: str
) -> bytes:
    """Write an answer as SPARQL CSV, TSV or JSON results (or N-Triples/JSON-LD for graphs)."""
    if isinstance(result, ox.QueryTriples):
        rdf = ox.RdfFormat.JSON_LD if fmt == "json" else ox.RdfFormat.N_TRIPLES
        return ox.serialize(sorted(result, key=str), format=rdf) or b""
    if isinstance(result, ox.QueryBoolean) and fmt in ("csv", "tsv"):
        # SPARQL CSV/TSV define no boolean form; write a one-cell table like Jena and rdflib do.
        out = io.StringIO()
        csv.writer(out, delimiter="," if fmt == "csv" else "\t", lineterminator="\r\n").writerows(
            [["boolean"], [str(bool(result)).lower()]]
        )
        return out.getvalue().encode()
    if isinstance(result, ox.QueryBoolean):
        return json.dumps({"head": {}, "boolean": bool(result)}).encode()
    return result.serialize(format=RESULT_FORMATS[fmt]) or b""
