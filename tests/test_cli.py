"""The escap-kg command through Typer's CliRunner: output, exit codes and error messages."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import rdflib
from typer.testing import CliRunner

from escap_kg import __version__
from escap_kg.cli import app
from escap_kg.export import export
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
    assert "4 row(s)" in result.stdout


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
    assert "triples in 15 files" in result.stdout


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
