"""The escap-kg command through Typer's CliRunner: output, exit codes and error messages."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
import rdflib
from rich.console import Console
from typer.testing import CliRunner

from escap_kg import __version__
from escap_kg.cli import app, print_rows, print_summary
from escap_kg.export import export
from escap_kg.links import list_links
from escap_kg.queries import load_catalogue
from escap_kg.settings import Settings
from escap_kg.stats import graph_stats
from escap_kg.store import KnowledgeGraph

runner = CliRunner()

ACTIVITIES = "SELECT ?a ?d WHERE { ?a <https://schema.org/startDate> ?d } ORDER BY STR(?d)"


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"escap-kg {__version__}"


def test_query_list_shows_the_catalogue() -> None:
    result = runner.invoke(app, ["query", "--list"])
    assert result.exit_code == 0, result.output
    assert "01-" in result.stdout
    assert "?" in result.stdout  # each summary is a question


def test_query_sparql_as_csv() -> None:
    result = runner.invoke(app, ["query", "--sparql", ACTIVITIES, "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["a", "d"]
    assert [r[1] for r in rows[1:]] == ["2001", "2002-10", "2002-12-11", "2003"]


def test_query_sparql_as_tsv_and_json() -> None:
    tsv = runner.invoke(app, ["query", "--sparql", ACTIVITIES, "-f", "tsv"])
    assert tsv.exit_code == 0
    assert tsv.stdout.splitlines()[0] == "?a\t?d"
    js = runner.invoke(app, ["query", "--sparql", ACTIVITIES, "-f", "json"])
    assert js.exit_code == 0
    data = json.loads(js.stdout)
    assert data["head"]["vars"] == ["a", "d"]
    assert len(data["results"]["bindings"]) == 4


def test_query_table_shortens_iris() -> None:
    result = runner.invoke(app, ["query", "--sparql", ACTIVITIES])
    assert result.exit_code == 0
    assert "activity:fifth-appc" in result.stdout
    assert result.stderr == "4 row(s)\n"


def test_piped_table_is_the_header_and_the_rows_only() -> None:
    # CliRunner's stdout is not a terminal: what `escap-kg query ... | cut -f2` would read.
    result = runner.invoke(app, ["query", "--sparql", ACTIVITIES])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "a\td"
    assert [line.split("\t")[1] for line in lines[1:]] == ["2001", "2002-10", "2002-12-11", "2003"]
    assert "activity:fifth-appc\t2002-12-11" in lines
    assert result.stdout.endswith("\n")
    assert "row(s)" not in result.stdout


def test_summary_stays_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=80, highlight=False, no_color=True)
    print_rows(["a"], [["x"]], console)
    print_summary("1 row(s)", console)
    assert screen.getvalue().splitlines()[-1] == "1 row(s)"
    assert capsys.readouterr().err == ""


def test_query_ask_and_construct() -> None:
    ask = runner.invoke(app, ["query", "--sparql", "ASK { ?s ?p ?o }"])
    assert ask.stdout.strip() == "true"
    construct = runner.invoke(
        app,
        ["query", "--sparql", "CONSTRUCT { ?s a ?c } WHERE { ?s a ?c } LIMIT 3", "-f", "csv"],
    )
    assert construct.exit_code == 0
    assert len(rdflib.Graph().parse(data=construct.stdout, format="nt")) == 3


def test_query_by_number_and_file() -> None:
    by_number = runner.invoke(app, ["query", "1", "-f", "csv"])
    assert by_number.exit_code == 0, by_number.output
    first = sorted(Path("queries").glob("01-*.rq"))[0]
    by_file = runner.invoke(app, ["query", str(first), "-f", "csv"])
    assert by_file.stdout == by_number.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query"], "give a query name or file, or --sparql TEXT"),
        (["query", "1", "--sparql", "ASK {}"], "one of them"),
        (["query", "no-such-query"], "no catalogue query named 'no-such-query'"),
        (["query", "missing.rq"], "missing.rq: query file not found"),
        (["query", "--sparql", "SELECT ?x WHERE { ?x ?p }"], "malformed query: line 1, column"),
        (["query", "--sparql", "ASK {}", "--format", "xls"], "unknown --format 'xls'"),
        (["query", "--sparql", "ASK {}", "--param", "a=b"], "--param works with catalogue"),
        (["query", "--sparql", "ASK {}", "--data", "nowhere.ttl"], "nowhere.ttl: file not found"),
        (["export", "--format", "csv"], "unknown --format 'csv'"),
        (
            ["query", "17"],
            "needs the network (SERVICE to https://query.wikidata.org/sparql): run it with "
            "--allow-service https://query.wikidata.org/sparql",
        ),
        (
            ["query", "--sparql", "SELECT * { SERVICE <http://127.0.0.1:9/> { ?s ?p ?o } }"],
            "run it with --allow-service http://127.0.0.1:9/",
        ),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.count("\n") == 1, "one line"
    assert "Traceback" not in result.output


def test_query_param_errors(tmp_path: Path) -> None:
    rq = tmp_path / "q.rq"
    rq.write_text(
        "#+ summary: What does ?entity say?\n#+ param: entity iri  a resource\n"
        "SELECT ?entity ?p ?o WHERE { ?entity ?p ?o } ORDER BY ?p ?o\n"
    )
    unknown = runner.invoke(app, ["query", str(rq), "--param", "other=x"])
    assert unknown.exit_code == 2
    assert "has no parameter 'other'" in unknown.stderr
    bad_iri = runner.invoke(app, ["query", str(rq), "--param", "entity=not an iri"])
    assert bad_iri.exit_code == 2
    assert "is not an absolute IRI" in bad_iri.stderr
    shape = runner.invoke(app, ["query", str(rq), "--param", "entity"])
    assert "write it as NAME=VALUE" in shape.stderr
    ok = runner.invoke(
        app,
        [
            "query",
            str(rq),
            "-f",
            "csv",
            "--param",
            "entity=https://w3id.org/escap-kg/id/country/sweden",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "http://www.w3.org/1999/02/22-rdf-syntax-ns#type" in ok.stdout
    assert "Sweden" in ok.stdout


def test_query_with_extra_data(tmp_path: Path) -> None:
    extra = tmp_path / "extra.nt"
    extra.write_text("<http://example.org/a> <http://example.org/b> <http://example.org/c> .\n")
    result = runner.invoke(
        app, ["query", "--sparql", "ASK { <http://example.org/a> ?p ?o }", "--data", str(extra)]
    )
    assert result.stdout.strip() == "true"


def test_export_to_stdout_and_file(kg: KnowledgeGraph, tmp_path: Path) -> None:
    out = runner.invoke(app, ["export", "--format", "nt"])
    assert out.exit_code == 0
    assert out.stdout_bytes == export(kg, "nt")
    target = tmp_path / "kg.ttl"
    written = runner.invoke(app, ["export", "--output", str(target)])
    assert written.exit_code == 0
    assert target.read_bytes() == export(kg, "turtle")
    assert not list(tmp_path.glob("*.part"))


def test_export_to_unwritable_place(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", "--output", str(tmp_path / "no" / "such" / "dir.ttl")])
    assert result.exit_code == 2
    assert "cannot write" in result.stderr


def test_stats() -> None:
    result = runner.invoke(app, ["stats"])
    assert result.exit_code == 0
    assert "data/source/paragraph-2.ttl" in result.stdout
    assert "ekg:Finding" in result.stdout
    assert "triples in" not in result.stdout
    assert re.fullmatch(r"[\d,]+ triples in 20 files\n", result.stderr)


def test_format_check_passes_on_the_repository() -> None:
    result = runner.invoke(app, ["format", "--check"])
    assert result.exit_code == 0, result.output


def test_format_check_finds_and_fixes_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ontology = tmp_path / "ontology"
    data = tmp_path / "data"
    ontology.mkdir()
    data.mkdir()
    for name in ("escap-kg.ttl", "vocabularies.ttl", "themes.ttl"):
        (ontology / name).write_text((Path("ontology") / name).read_text())
    messy = data / "messy.ttl"
    messy.write_text("<http://example.org/a>   <http://example.org/b> 1 .\n")
    monkeypatch.setenv("ESCAP_KG_ONTOLOGY_DIR", str(ontology))
    monkeypatch.setenv("ESCAP_KG_DATA_DIR", str(data))
    check = runner.invoke(app, ["format", "--check"])
    assert check.exit_code == 1
    assert f"not canonical: {messy}" in check.stdout
    fix = runner.invoke(app, ["format"])
    assert fix.exit_code == 0
    assert runner.invoke(app, ["format", "--check"]).exit_code == 0


# Output for people: whole identifiers, plain text when piped, help in words ---------------------

FIFTH_APPC = "https://w3id.org/escap-kg/id/activity/fifth-appc"
COMMANDS = ["query", "export", "validate", "stats", "links", "format", "load", "publish", "serve"]


def tab_separated(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.splitlines() if "\t" in line]


def column_text(output: str, header: str, headers: list[str]) -> str:
    """The text of one column of a table without borders, its wrapped lines joined."""
    lines = output.splitlines()
    top = next(i for i, line in enumerate(lines) if all(h in line for h in headers))
    start = lines[top].index(header)
    later = [lines[top].index(h) for h in headers if lines[top].index(h) > start]
    end = min(later, default=None)
    return "".join(line[start:end].strip() for line in lines[top + 1 :])


def test_query_list_piped_is_tab_separated_with_whole_ids(settings: Settings) -> None:
    result = runner.invoke(app, ["query", "--list"])
    assert result.exit_code == 0, result.output
    rows = tab_separated(result.stdout)
    assert rows[0] == ["id", "question", "parameters"]
    catalogue = load_catalogue(settings)
    assert [row[0] for row in rows[1:]] == [q.id for q in catalogue]
    assert [row[1] for row in rows[1:]] == [q.summary for q in catalogue]
    assert rows[1 + [q.id for q in catalogue].index("15-where-in-the-source")][2] == "entity (iri)"


def test_links_and_stats_piped_keep_every_iri_whole(kg: KnowledgeGraph) -> None:
    links = runner.invoke(app, ["links"])
    assert links.exit_code == 0, links.output
    rows = tab_separated(links.stdout)
    assert rows[0] == ["resource", "link", "target", "dataset", "confidence"]
    assert sorted(row[2] for row in rows[1:]) == sorted(link.target for link in list_links(kg))
    stats = runner.invoke(app, ["stats"])
    assert stats.exit_code == 0, stats.output
    rows = tab_separated(stats.stdout)
    assert rows[0] == ["file", "named graph", "triples"]
    graphs = {row[1] for row in rows if row[0].startswith(("data/", "ontology/"))}
    assert graphs == {f.graph for f in graph_stats(kg).files}
    assert all(graph.startswith("https://w3id.org/escap-kg/graph/") for graph in graphs)


def test_a_narrow_terminal_folds_ids_and_never_cuts_them(
    settings: Settings, kg: KnowledgeGraph
) -> None:
    catalogue = load_catalogue(settings)
    out = io.StringIO()
    console = Console(file=out, width=60, force_terminal=True, color_system=None)
    print_rows(
        ["id", "question", "parameters"],
        [[q.id, q.summary, ""] for q in catalogue],
        console,
    )
    text = out.getvalue()
    assert "\t" not in text
    assert max(len(line) for line in text.splitlines()) <= 60
    assert "…" not in text
    ids = column_text(text, "id", ["id", "question", "parameters"])
    assert ids == "".join(q.id for q in catalogue)
    # The long ids did not fit: they were folded over lines, and are whole once joined.
    assert "01-activities-in-time-order" not in text
    targets = [link.target for link in list_links(kg)]
    out = io.StringIO()
    console = Console(file=out, width=60, force_terminal=True, color_system=None)
    print_rows(["resource", "target"], [["r", target] for target in targets], console)
    assert column_text(out.getvalue(), "target", ["resource", "target"]) == "".join(targets)


def test_param_takes_an_iri_relative_to_the_base() -> None:
    for fmt in ("csv", "table"):
        absolute = runner.invoke(app, ["query", "15", "-f", fmt, "-p", f"entity={FIFTH_APPC}"])
        relative = runner.invoke(
            app, ["query", "15", "-f", fmt, "-p", "entity=id/activity/fifth-appc"]
        )
        assert absolute.exit_code == 0, absolute.output
        assert relative.exit_code == 0, relative.output
        assert relative.stdout == absolute.stdout
        if fmt == "csv":
            rows = list(csv.reader(io.StringIO(relative.stdout)))
            assert len(rows) > 10
            assert {row[0] for row in rows[1:]} == {FIFTH_APPC}


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_help_names_values_in_words_not_python_types(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for python_type in ("<list[", "<bool>", "<Path>", "<path>", "<str>", "<int", "<float>"):
        assert python_type not in result.stdout, (command, python_type)
    if command == ["query"]:
        assert "--param          -p      NAME=VALUE" in result.stdout
        assert "--data                   FILE" in result.stdout
        assert "--allow-service          URL" in result.stdout


def test_json_output_ends_with_a_newline() -> None:
    for args in (
        ["query", "1", "-f", "json"],
        ["query", "--sparql", "ASK { ?s ?p ?o }", "-f", "json"],
        ["links", "-f", "json"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert result.stdout.endswith("\n"), args
        json.loads(result.stdout)
