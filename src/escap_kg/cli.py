"""The ``escap-kg`` command: thin commands over the library."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urljoin

import pyoxigraph as ox
import typer
from rich import box
from rich.console import Console
from rich.table import Table
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from escap_kg import __version__
from escap_kg.iris import is_iri, prefixes, shorten
from escap_kg.queries import (
    Query,
    QueryError,
    bind,
    find_query,
    load_catalogue,
    run_as_served,
    serialize_result,
    to_table,
)
from escap_kg.settings import Settings
from escap_kg.store import DataError, KnowledgeGraph, iter_files

#: Words for the values of options in the help, in place of Python type names.
VALUE_WORDS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "path": "PATH", "Path": "PATH"}


class _Argument(TyperArgument):
    """An argument whose help shows its metavar only, never a Python type such as list[Path]."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


class _Option(TyperOption):
    """An option whose help names its value in words (its metavar, else TEXT, INTEGER...);
    a flag takes no value, so it shows none."""

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag:
            return None
        if self.metavar is not None:
            return self.metavar
        label = (super().display_type_rich(ctx) or "").strip("<>.").removesuffix(" range")
        return VALUE_WORDS.get(label, label.upper())


def _plain_help(params: Iterable[Any]) -> None:
    for param in params:
        if type(param) is TyperArgument:
            param.__class__ = _Argument
        elif type(param) is TyperOption:
            param.__class__ = _Option


class _Command(TyperCommand):
    """A command whose help names values in words (FILE, URL, NAME=VALUE), not Python types."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _plain_help(params)
        return params


class _Group(TyperGroup):
    """The command group, with the same help as its commands."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _plain_help(params)
        return params


app = typer.Typer(
    cls=_Group,
    name="escap-kg",
    help="A knowledge graph of ESCAP's work on international migration and development.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_OK, EXIT_INVALID, EXIT_INPUT = 0, 1, 2


def _console(err: bool = False) -> Console:
    return Console(stderr=err, soft_wrap=True, highlight=False)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn the library's input errors into one line on stderr and exit code 2."""
    try:
        yield
    except (DataError, QueryError, ValueError, _remote_error()) as err:
        _console(err=True).print(f"escap-kg: error: {err}", markup=False)
        raise typer.Exit(EXIT_INPUT) from None


def _remote_error() -> type[Exception]:
    from escap_kg.remote import RemoteError

    return RemoteError


def _settings(data: list[Path] | None = None) -> Settings:
    with _errors():
        return Settings.from_env(extra_files=tuple(data) if data else None)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"escap-kg {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """A knowledge graph of ESCAP's work on international migration and development."""


DataOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--data",
        metavar="FILE",
        help="Another RDF file to load beside the embedded graph (repeatable).",
    ),
]

AuthOption = Annotated[
    str,
    typer.Option(
        "--auth",
        metavar="SCHEME",
        help="How --user is sent: basic (the default: one request, taken by most stores; use it "
        "over https only) or digest (a challenge and a hashed answer; Virtuoso's "
        "/sparql-graph-crud-auth and /sparql-auth take nothing else). A 401 names the scheme "
        "the store asks for.",
    ),
]


def _http_auth(user: str | None, scheme: str, variable: str) -> Any:
    """``USER:PASSWORD`` (from the option or the environment variable) as ``httpx.Auth``."""
    from escap_kg.remote import AUTH_SCHEMES, credentials

    if scheme not in AUTH_SCHEMES:
        _fail(f"--auth {scheme!r}: use {' or '.join(AUTH_SCHEMES)}")
    value = user or os.environ.get(variable)
    if not value:
        if scheme != "basic":
            _fail(f"--auth {scheme} needs --user USER:PASSWORD (or {variable})")
        return None
    try:
        return credentials(value, scheme)
    except ValueError as err:
        _fail(f"--user (or {variable}): {err}")


@app.command(cls=_Command)
def query(
    name: Annotated[
        str | None,
        typer.Argument(metavar="QUERY", help="Catalogue query (id, number or slug) or a .rq file."),
    ] = None,
    sparql: Annotated[
        str | None, typer.Option("--sparql", metavar="TEXT", help="SPARQL text to run.")
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            metavar="FORMAT",
            help="table, csv, tsv, json or xlsx (a table is plain tab-separated text when "
            "piped; xlsx, an Excel workbook, goes to a file or a pipe).",
        ),
    ] = "table",
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="NAME=VALUE",
            help="A value for a parameter the query declares (repeatable); an IRI may be given "
            "relative to the base, e.g. entity=id/activity/fifth-appc.",
        ),
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the catalogue.")] = False,
    data: DataOption = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            metavar="URL", help="Run it on this SPARQL 1.1 endpoint instead of the embedded graph."
        ),
    ] = None,
    allow_service: Annotated[
        list[str] | None,
        typer.Option(
            metavar="URL",
            help="A SPARQL endpoint the query may call with SERVICE (repeatable; none by "
            "default), e.g. https://query.wikidata.org/sparql.",
        ),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(
            help="USER:PASSWORD for the --endpoint (or the ESCAP_KG_ENDPOINT_USER variable).",
            show_default=False,
        ),
    ] = None,
    auth: AuthOption = "basic",
) -> None:
    """Run a catalogue query, a query file or SPARQL text over the graph."""
    settings = _settings(data)
    if fmt not in ("table", "csv", "tsv", "json", "xlsx"):
        _fail(f"unknown --format {fmt!r}; use table, csv, tsv, json or xlsx")
    if fmt == "xlsx" and sys.stdout.isatty():
        _fail("an Excel workbook is not for the terminal: redirect it, e.g. > answer.xlsx")
    with _errors():
        if list_:
            _print_catalogue(settings)
            return
        if (name is None) == (sparql is None):
            _fail("give a query name or file, or --sparql TEXT (one of them)")
        if sparql is not None:
            text, bindings = sparql, {}
            if param:
                _fail("--param works with catalogue queries, which declare their parameters")
        elif name is not None:
            chosen = find_query(name, settings)
            values = _with_base(chosen, _pairs(param or []), settings.base_iri)
            text, bindings = chosen.text, bind(chosen, values)
        if endpoint is not None:
            if data:
                _fail("--data loads files locally; it does not go with --endpoint")
            if fmt == "xlsx":
                _fail("--format xlsx works on the embedded graph, not with --endpoint")
            http_auth = _http_auth(user, auth, "ESCAP_KG_ENDPOINT_USER")
            _remote_query(endpoint, text, bindings, fmt, prefixes(settings.base_iri), http_auth)
            return
        if user is not None:
            _fail("--user goes with --endpoint")
        _check_services(text, tuple(allow_service or ()))
        result = run_as_served(settings, text, bindings)
        try:
            if fmt == "table":
                _print_table(result, prefixes(settings.base_iri))
            elif fmt == "xlsx":
                from escap_kg.xlsx import results_to_xlsx

                if isinstance(result, ox.QueryTriples):
                    _fail("--format xlsx holds the answer of a SELECT or ASK query, not a graph")
                sys.stdout.buffer.write(results_to_xlsx(serialize_result(result, "json")))
                sys.stdout.flush()
            else:
                body = serialize_result(result, fmt)
                if fmt == "json" and not body.endswith(b"\n"):
                    body += b"\n"
                sys.stdout.buffer.write(body)
                sys.stdout.flush()
        except (OSError, RuntimeError, ValueError) as err:
            # Oxigraph evaluates lazily: a SERVICE call fails while the rows are read.
            _fail(f"query failed: {err}")


def _check_services(text: str, allowed: tuple[str, ...]) -> None:
    """Stop, in one line, a query whose SERVICE calls an endpoint not allowed."""
    from escap_kg.inspection import RefusedError, check_services
    from escap_kg.sparql import SparqlTextError, scan

    try:
        info = scan(text)
        check_services(info, allowed)
    except SparqlTextError as err:
        _fail(f"malformed query: {err}")
    except RefusedError as err:
        targets = [t for t in dict.fromkeys(info.services) if t and t not in allowed]
        if not targets:
            _fail(err.message)
        flags = " ".join(f"--allow-service {t}" for t in targets)
        shown = ", ".join(targets)
        _fail(f"this query needs the network (SERVICE to {shown}): run it with {flags}")


def _remote_query(
    endpoint: str,
    text: str,
    bindings: dict[str, ox.NamedNode | ox.Literal],
    fmt: str,
    names: dict[str, str],
    auth: Any = None,
) -> None:
    from escap_kg.formats import RDF_FORMATS, RESULT_FORMATS, media_type
    from escap_kg.remote import remote_query
    from escap_kg.sparql import scan

    graph_form = scan(text).form in ("CONSTRUCT", "DESCRIBE")
    if graph_form:  # N-Triples, or JSON-LD for json
        accept = media_type(RDF_FORMATS["jsonld" if fmt == "json" else "nt"])
    else:  # SPARQL results: a table is read from the JSON results
        accept = media_type(RESULT_FORMATS["json" if fmt == "table" else fmt])
    _, body = remote_query(endpoint, text, accept=accept, bindings=bindings, auth=auth)
    if fmt != "table" or graph_form:
        if fmt == "json" and not body.endswith(b"\n"):
            body += b"\n"
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
        return
    import json

    data = json.loads(body)
    if "boolean" in data:
        _console().print("true" if data["boolean"] else "false")
        return
    variables = data["head"]["vars"]
    rows = []
    for row in data["results"]["bindings"]:
        cells = []
        for v in variables:
            cell = row.get(v)
            value = "" if cell is None else cell["value"]
            cells.append(shorten(value, names) if cell and cell["type"] == "uri" else value)
        rows.append(cells)
    print_rows(variables, rows, boxed=True)
    print_summary(f"{len(rows)} row(s)")


def _pairs(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise QueryError(f"--param {item!r}: write it as NAME=VALUE")
        pairs[key] = value
    return pairs


def print_rows(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    console: Console | None = None,
    boxed: bool = False,
) -> None:
    """Rows for people: on a terminal, a table that fits its width, cells wrapped and identifiers
    folded, never cut; otherwise tab-separated text, header row first."""
    console = console or _console()
    if not console.is_terminal:
        for row in [headers, *rows]:
            console.file.write("\t".join(_tsv_cell(cell) for cell in row) + "\n")
        console.file.flush()
        return
    table = Table(box=box.HEAVY_HEAD if boxed else None)
    for header in headers:
        table.add_column(header, overflow="fold", no_wrap=False)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def print_summary(line: str, console: Console | None = None) -> None:
    """The line that follows rows: on stdout for a terminal, on stderr when stdout is piped, so
    that only the rows go down the pipe."""
    console = console or _console()
    (console if console.is_terminal else _console(err=True)).print(line, markup=False)


def _tsv_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _with_base(query: Query, values: dict[str, str], base: str) -> dict[str, str]:
    """IRI values resolved against the base, as the endpoint resolves relative IRIs."""
    kinds = {p.name: p.kind for p in query.params}
    resolved = {}
    for name, value in values.items():
        if kinds.get(name) == "iri" and value and not is_iri(value):
            joined = urljoin(base, value)
            # A value that does not resolve to an IRI is left as given, for the error to quote.
            value = joined if is_iri(joined) else value
        resolved[name] = value
    return resolved


def _print_catalogue(settings: Settings) -> None:
    print_rows(
        ["id", "question", "parameters"],
        [
            [q.id, q.summary, ", ".join(f"{p.name} ({p.kind})" for p in q.params)]
            for q in load_catalogue(settings)
        ],
    )


def _print_table(
    result: ox.QuerySolutions | ox.QueryBoolean | ox.QueryTriples, names: dict[str, str]
) -> None:
    console = _console()
    if isinstance(result, ox.QueryBoolean):
        console.print("true" if result else "false")
    elif isinstance(result, ox.QueryTriples):
        sys.stdout.buffer.write(serialize_result(result, "nt"))
    else:
        answer = to_table(result, names)
        print_rows(answer.variables, answer.rows, console, boxed=True)
        print_summary(f"{len(answer.rows)} row(s)", console)


def _fail(message: str) -> None:
    _console(err=True).print(f"escap-kg: error: {message}", markup=False)
    raise typer.Exit(EXIT_INPUT)


@app.command("export", cls=_Command)
def export_command(
    fmt: Annotated[
        str,
        typer.Option(
            "--format", "-f", metavar="FORMAT", help="turtle, nt, nquads, trig, jsonld or xml."
        ),
    ] = "turtle",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write to this file, not stdout."),
    ] = None,
    data: DataOption = None,
) -> None:
    """Write the ontology, themes and data together in one RDF format (same bytes every run)."""
    from escap_kg.export import EXPORT_FORMATS, export

    settings = _settings(data)
    if fmt not in EXPORT_FORMATS:
        _fail(f"unknown --format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    with _errors():
        body = export(KnowledgeGraph.load(settings), fmt)
        if output is None:
            sys.stdout.buffer.write(body)
            sys.stdout.flush()
            return
        try:
            tmp = output.with_name(output.name + ".part")
            tmp.write_bytes(body)
            tmp.replace(output)
        except OSError as err:
            raise DataError(output, f"cannot write: {err.strerror}") from None
        _console(err=True).print(f"wrote {len(body):,} bytes to {output}", markup=False)


@app.command("validate", cls=_Command)
def validate_command(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="FILE",
            help="RDF files (or folders) to validate together with the embedded graph.",
        ),
    ] = None,
) -> None:
    """Check the graph (plus FILES) against the SHACL shapes and the SPARQL checks.

    Exit code 0: valid; 1: some rule fired; 2: a file could not be read or parsed.
    """
    from escap_kg.validate import report_lines, validate

    settings = _settings(list(iter_files(files)) if files else None)
    with _errors():
        kg = KnowledgeGraph.load(settings)
        report = validate(kg)
    console = _console()
    for line in report_lines(report, kg):
        console.print(line, markup=False)
    summary = (
        f"{len(kg):,} triples, {report.shapes_checked} shapes, {report.checks_run} checks: "
        + ("valid" if report.ok else f"{len(report.violations)} violation(s)")
    )
    _console(err=True).print(summary, markup=False)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_INVALID)


@app.command(cls=_Command)
def stats(data: DataOption = None) -> None:
    """Triples per source file and instances per class."""
    from escap_kg.stats import graph_stats

    settings = _settings(data)
    with _errors():
        kg = KnowledgeGraph.load(settings)
        result = graph_stats(kg)
    console = _console()
    print_rows(
        ["file", "named graph", "triples"],
        [[row.path, row.graph, f"{row.triples:,}"] for row in result.files],
        console,
    )
    console.print()
    names = prefixes(settings.base_iri)
    print_rows(
        ["class", "instances"],
        [[shorten(cls, names), f"{count:,}"] for cls, count in result.classes],
        console,
    )
    print_summary(f"{result.triples:,} triples in {len(result.files)} files", console)


@app.command(cls=_Command)
def links(
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            metavar="FORMAT",
            help="table, csv or json (a table is plain tab-separated text when piped).",
        ),
    ] = "table",
    check: Annotated[
        bool,
        typer.Option("--check", help="Exit 1 if a link has no known form, confidence or source."),
    ] = False,
) -> None:
    """Every link to another dataset (Wikidata, UNBIS, SDG, M49) with its confidence and source."""
    import csv
    import dataclasses
    import json

    from escap_kg.links import link_problems, list_links

    if fmt not in ("table", "csv", "json"):
        _fail(f"unknown --format {fmt!r}; use table, csv or json")
    settings = _settings()
    with _errors():
        found = list_links(KnowledgeGraph.load(settings))
    names = prefixes(settings.base_iri)
    if fmt == "json":
        typer.echo(json.dumps([dataclasses.asdict(link) for link in found], indent=2))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([f.name for f in dataclasses.fields(found[0])] if found else [])
        writer.writerows(dataclasses.astuple(link) for link in found)
    else:
        print_rows(
            ["resource", "link", "target", "dataset", "confidence"],
            [
                [
                    shorten(link.resource, names),
                    shorten(link.property, names),
                    link.target,
                    link.dataset or "?",
                    link.confidence or "?",
                ]
                for link in found
            ],
        )
        print_summary(f"{len(found)} link(s)")
    problems = link_problems(found)
    for problem in problems:
        _console(err=True).print(f"escap-kg: link: {problem}", markup=False)
    if check and problems:
        raise typer.Exit(EXIT_INVALID)


@app.command("format", cls=_Command)
def format_command(
    check: Annotated[
        bool, typer.Option("--check", help="Only report files that are not canonical (exit 1).")
    ] = False,
) -> None:
    """Rewrite the ontology and data Turtle files in canonical form."""
    from escap_kg.export import format_files

    settings = _settings()
    with _errors():
        changed = format_files(settings, write=not check)
    verb = "not canonical" if check else "reformatted"
    for path in changed:
        _console().print(f"{verb}: {path}", markup=False)
    if check and changed:
        _console(err=True).print("run `escap-kg format` to fix", markup=False)
        raise typer.Exit(EXIT_INVALID)


@app.command("add", cls=_Command)
def add_command(
    template: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="A CSV or YAML file of activities (docs/templates/)."),
    ],
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", metavar="DIR", help="The data folder to add to (the project's data/)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would change, as a diff; write nothing.")
    ] = False,
) -> None:
    """Add activities from a template to the data, as canonical Turtle with provenance.

    Names are resolved by reconciliation (an unknown or ambiguous one stops the run with its
    candidates); the result is validated before anything is written. Exit code 0: added (or
    nothing to add); 1: the result would not validate; 2: a row is wrong.
    """
    from escap_kg.curate import NotValidError, TemplateError, add

    settings = _settings() if data_dir is None else _with_data_dir(data_dir)
    try:
        with _errors():
            result = add(template, settings, dry_run=dry_run)
    except TemplateError as err:
        for problem in err.problems:
            _console(err=True).print(f"escap-kg: error: {problem}", markup=False)
        _fail(f"nothing was added: {len(err.problems)} problem(s) in {template}")
    except NotValidError as err:
        for line in err.lines:
            _console(err=True).print(f"escap-kg: invalid: {line}", markup=False)
        _console(err=True).print(
            f"escap-kg: error: the result would not validate ({len(err.lines)} violation(s)); "
            "nothing was added",
            markup=False,
        )
        raise typer.Exit(EXIT_INVALID) from None
    if dry_run:
        for change in result.changes:
            sys.stdout.write(change.diff(settings.data_dir))
        sys.stdout.flush()
    verb = "would add" if dry_run else "added"
    summary = (
        f"{result.activities} activit{'y' if result.activities == 1 else 'ies'}: {verb} "
        f"{result.triples} triple(s) in {len(result.changes)} file(s)"
        if result.changes
        else "nothing to add: the data already holds every statement of the template"
    )
    _console(err=True).print(summary, markup=False)


def _with_data_dir(data_dir: Path) -> Settings:
    with _errors():
        if not data_dir.is_dir():
            raise DataError(data_dir, "data folder not found")
        return Settings.from_env(data_dir=data_dir)


@app.command(cls=_Command)
def load(
    files: Annotated[
        list[Path] | None,
        typer.Argument(metavar="FILE", help="RDF files to load, each into its own named graph."),
    ] = None,
    db: Annotated[
        Path, typer.Option("--db", metavar="DIR", help="Folder of the on-disk store.")
    ] = Path("escap-kg.db"),
    embedded: Annotated[
        bool, typer.Option(help="Also load our ontology, themes and data (validated first).")
    ] = True,
    replace_store: Annotated[
        bool, typer.Option("--replace", help="Start from an empty store, not the current one.")
    ] = False,
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait",
            help="Fail at once if another load (or a server with updates) is writing the store, "
            "instead of waiting for it.",
        ),
    ] = False,
) -> None:
    """Bulk-load RDF files into a persistent on-disk store, all or nothing.

    Turtle, N-Triples, N-Quads, TriG, RDF/XML and JSON-LD, each optionally gzipped. Serve the
    store with `escap-kg serve --db DIR`. Loads of one store run one after the other.
    """
    from escap_kg.validate import report_lines, validate

    settings = _settings()
    with _errors():
        if embedded:
            own = KnowledgeGraph.load(settings)
            report = validate(own)
            if not report.ok:
                for line in report_lines(report, own):
                    _console(err=True).print(f"escap-kg: invalid: {line}", markup=False)
                _fail("the embedded data does not validate; nothing was loaded")
    result = _load_with_progress(
        db,
        files or [],
        settings,
        include_embedded=embedded,
        replace=replace_store,
        wait=not no_wait,
    )
    table = Table("file", "named graph", "bytes", box=None)
    for path, graph, size in result.files:
        table.add_row(str(path), graph, f"{size:,}")
    console = _console()
    console.print(table)
    steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.steps.items())
    console.print(
        f"loaded {len(result.files)} file(s) into {result.database}: {result.quads:,} quads, "
        f"{result.seconds:.1f} s ({steps}), {result.disk_bytes / 2**20:,.1f} MiB on disk",
        markup=False,
    )


@app.command(cls=_Command)
def publish(
    endpoint: Annotated[
        str,
        typer.Option(
            help="The store's Graph Store Protocol URL, e.g. http://HOST:7878/store (Oxigraph)."
        ),
    ],
    graph: Annotated[
        str | None,
        typer.Option(help="Put everything in this one named graph (default: one per file)."),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(
            help="USER:PASSWORD for the store (or the ESCAP_KG_PUBLISH_USER variable).",
            show_default=False,
        ),
    ] = None,
    auth: AuthOption = "basic",
    data: DataOption = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each request.")] = 60.0,
) -> None:
    """Push the graph to a SPARQL 1.1 store through the Graph Store HTTP Protocol.

    Idempotent: each named graph is replaced, never added to. Works with Oxigraph server, Jena
    Fuseki, Virtuoso, GraphDB and Amazon Neptune (see the README for their URLs).
    """
    from escap_kg.remote import publish as publish_graph

    http_auth = _http_auth(user, auth, "ESCAP_KG_PUBLISH_USER")
    settings = _settings(data)
    with _errors():
        kg = KnowledgeGraph.load(settings)
        report = publish_graph(kg, endpoint, graph=graph, auth=http_auth, timeout=timeout)
    table = Table("named graph", "triples", box=None)
    for name, count in report.graphs.items():
        table.add_row(name, f"{count:,}")
    console = _console()
    console.print(table)
    console.print(
        f"published {report.triples:,} triples in {len(report.graphs)} graph(s) to {endpoint}",
        markup=False,
    )


@app.command(cls=_Command)
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    data: DataOption = None,
    query_timeout: Annotated[
        float | None, typer.Option(help="Seconds a query may run before it is stopped (30).")
    ] = None,
    max_result_bytes: Annotated[
        int | None, typer.Option(help="Largest answer, in bytes (100 MiB).")
    ] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(help="Largest request body, in bytes (1 MiB).")
    ] = None,
    max_query_memory: Annotated[
        int | None,
        typer.Option(help="Memory one query may take, in bytes (a quarter of the machine's)."),
    ] = None,
    send_timeout: Annotated[
        float | None,
        typer.Option(help="Seconds a client may go without reading an answer (20)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Query worker processes kept for short queries (one per core)."),
    ] = None,
    max_workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes in all, counting those added while long queries run "
            "(workers + 4).",
        ),
    ] = None,
    update_token: Annotated[
        str | None,
        typer.Option(
            help="Enable SPARQL Update for requests bearing this token "
            "(prefer the ESCAP_KG_UPDATE_TOKEN variable: options show in process lists).",
            show_default=False,
        ),
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db", metavar="DIR", help="Serve this on-disk store (made by `escap-kg load`)."
        ),
    ] = None,
    upstream: Annotated[
        str | None,
        typer.Option(
            metavar="URL", help="Serve in front of this SPARQL endpoint instead of a local store."
        ),
    ] = None,
    upstream_union: Annotated[
        bool,
        typer.Option(help="The upstream store's default graph is already the union of its graphs."),
    ] = True,
    upstream_auth: Annotated[
        str,
        typer.Option(
            metavar="SCHEME",
            help="basic or digest: how the ESCAP_KG_UPSTREAM_USER variable (USER:PASSWORD) is "
            "sent to the --upstream store (see `publish --auth`).",
        ),
    ] = "basic",
    allow_service: Annotated[
        list[str] | None,
        typer.Option(
            metavar="URL",
            help="A SPARQL endpoint that queries may call with SERVICE (repeatable; none by "
            "default), e.g. https://query.wikidata.org/sparql.",
        ),
    ] = None,
    header_timeout: Annotated[
        float | None, typer.Option(help="Seconds a client has to send a request head (10).")
    ] = None,
    body_timeout: Annotated[
        float | None,
        typer.Option(help="Seconds a request body may pause before the connection closes (10)."),
    ] = None,
    max_connections: Annotated[
        int | None, typer.Option(help="Connections served at once; past them, 503 (1000).")
    ] = None,
    cache_bytes: Annotated[
        int | None,
        typer.Option(help="Bytes of answers kept for repeated queries; 0 turns it off (64 MiB)."),
    ] = None,
) -> None:
    """Serve the graph: SPARQL endpoint, query UI, catalogue API and downloads."""
    with _errors():
        settings = Settings.from_env(
            extra_files=tuple(data) if data else None,
            query_timeout=query_timeout,
            max_result_bytes=max_result_bytes,
            max_body_bytes=max_body_bytes,
            max_query_memory=max_query_memory,
            send_timeout=send_timeout,
            workers=workers,
            max_workers=max_workers,
            update_token=update_token,
            service_allowlist=tuple(allow_service) if allow_service else None,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            max_connections=max_connections,
            cache_bytes=cache_bytes,
        )
    from escap_kg.engine import InvalidGraphError, build_engine

    try:
        with _errors():
            built = build_engine(
                settings,
                upstream=upstream,
                upstream_union=upstream_union,
                upstream_auth=_http_auth(None, upstream_auth, "ESCAP_KG_UPSTREAM_USER"),
                database=db,
                launch=True,
                check=True,
            )
    except InvalidGraphError as err:
        from escap_kg.validate import report_lines

        console = _console(err=True)
        for line in report_lines(err.report, err.kg):
            console.print(f"escap-kg: invalid: {line}", markup=False)
        console.print(f"escap-kg: error: {err}", markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    try:
        what = built.what
        if built.loading:
            # Extra files may not parse: wait for the zygote to load them before serving, so an
            # error ends the start naming the file. Our own graph has parsed already.
            what = built.loaded(_wait_for_loads(built.engine, built.loading))
        _run_server(built.settings, built.engine, host, port, what)
    finally:
        built.release()


def _wait_for_loads(engine: Any, files: list[Path]) -> int | None:
    """Wait for the zygote to hold the graph, with a progress bar over the files it reads
    (followed from its read offsets in /proc); exit 2 naming the file and line of an error."""
    import threading

    from escap_kg.pool import StartError

    outcome: list[int | StartError | None] = []

    def wait() -> None:
        try:
            outcome.append(engine.wait_launched())
        except StartError as err:
            outcome.append(err)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    if files:
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        paths = {str(p.resolve()): p for p in files}
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=_console(err=True),
            transient=True,
        ) as bar:
            tasks = {k: bar.add_task(p.name, total=p.stat().st_size) for k, p in paths.items()}
            while waiter.is_alive():
                for path, position in _read_offsets(engine.zygote_pid, paths):
                    bar.update(tasks[path], completed=position)
                waiter.join(0.25)
    waiter.join()
    result = outcome[0] if outcome else None
    if isinstance(result, StartError):
        engine.kill()
        _fail(result.message)
        return None
    return result


def _read_offsets(pid: int | None, paths: dict[str, Path]) -> list[tuple[str, int]]:
    """How far process ``pid`` has read each of ``paths`` (Linux's /proc; nothing elsewhere)."""
    found = []
    with contextlib.suppress(OSError, ValueError, IndexError, TypeError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target in paths:
                info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
                found.append((target, int(info.split("pos:", 1)[1].split()[0])))
    return found


def _load_with_progress(
    db: Path,
    files: list[Path],
    settings: Settings,
    *,
    include_embedded: bool,
    replace: bool,
    wait: bool = True,
) -> Any:
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from escap_kg.database import load as load_store

    with (
        _errors(),
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=_console(err=True),
        ) as bar,
    ):

        def progress(path: Path, size: int) -> Callable[[int], None]:
            task = bar.add_task(path.name, total=size)
            return lambda n: bar.advance(task, n)

        def waiting(pid: int | None) -> None:
            holder = f" (pid {pid})" if pid is not None else ""
            bar.console.print(
                f"escap-kg: waiting for another writer of {db}{holder} to finish...", markup=False
            )

        return load_store(
            db,
            files,
            settings,
            include_embedded=include_embedded,
            replace=replace,
            progress=progress,
            wait=wait,
            on_wait=waiting,
        )


def _run_server(settings: Settings, engine: Any, host: str, port: int, what: str) -> None:
    """Serve over ``engine``: SPARQL as soon as it is up, the rest once the web application is
    built (see :mod:`escap_kg.boot`)."""
    import uvicorn

    from escap_kg.boot import Boot
    from escap_kg.endpoint import new_state
    from escap_kg.http import EndpointProtocol

    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    console = _console()

    def announce() -> None:
        """The URLs, once the engine is up and the server about to listen."""
        console.print(f"escap-kg {__version__}: serving {what}", markup=False)
        for label, path in (
            ("home page", "/"),
            ("SPARQL endpoint and query UI", "/sparql"),
            ("query catalogue API", "/api/queries"),
            ("reconciliation (OpenRefine)", "/reconcile"),
            ("API documentation", "/docs"),
            ("download (Turtle)", "/download/escap-kg.ttl"),
            ("dataset description", "/.well-known/void"),
            ("ontology documentation", "/ontology"),
        ):
            console.print(f"  {label:<30} {base}{path}", markup=False)
        if settings.update_token:
            console.print(
                "  SPARQL Update is enabled (Authorization: Bearer <token>)", markup=False
            )

    def build(state: Any) -> Any:
        from escap_kg.server import create_app

        return create_app(state=state)

    application = Boot(new_state(settings, engine), build, on_ready=announce)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    # The format uses none of these: not looking them up for every record (a line per request)
    # spares a fifth of the cost of the access log (the logging HOWTO's "Optimization").
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    # Our own access log replaces uvicorn's, which would print each GET's query text.
    # No WebSocket protocol: an Upgrade request is served as the HTTP/1.1 request it also is.
    # uvicorn counts the connection asking in its limit, hence the one added.
    uvicorn.run(
        application,
        host=host,
        port=port,
        http=EndpointProtocol.configured(settings.header_timeout, settings.body_timeout),
        ws="none",
        limit_concurrency=settings.max_connections + 1,
        log_level="info",
        access_log=False,
        server_header=False,
        date_header=True,
    )


def main() -> None:
    """Entry point of the console script."""
    app()
