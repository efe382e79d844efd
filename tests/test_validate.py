"""Validation: the graph conforms, and every shape and check fires on an invalid fixture."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pyoxigraph as ox
import pytest
import rdflib
from rdflib.namespace import SH
from typer.testing import CliRunner

from escap_kg.cli import app
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph, load_into, source_files
from escap_kg.validate import report_lines, validate
from tests.conftest import FIXTURES

INVALID = sorted((FIXTURES / "invalid").glob("*.ttl"))
VALID = sorted((FIXTURES / "valid").glob("*.ttl"))
runner = CliRunner()


def expected_rules(path: Path) -> set[str]:
    rules = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"^# expect: (\S+)$", line):
            rules.add(match[1])
        elif not line.startswith("#"):
            break
    assert rules, f"{path} has no '# expect:' line"
    return rules


def with_fixture(kg: KnowledgeGraph, fixture: Path) -> KnowledgeGraph:
    """The graph plus one fixture, as ``escap-kg validate FIXTURE`` loads it, in a new store
    copied from the session's graph rather than parsed again from every file."""
    settings = replace(kg.settings, extra_files=(fixture,))
    files = source_files(settings)
    store = ox.Store()
    store.extend(kg.store)
    load_into(store, files[-1])
    return KnowledgeGraph(store, files, settings)


def test_a_fixture_added_to_the_shared_graph_is_the_graph_loaded_with_it(
    kg: KnowledgeGraph,
) -> None:
    fixture = FIXTURES / "invalid" / "activity-end-before-start.ttl"
    shared = with_fixture(kg, fixture)
    loaded = KnowledgeGraph.load(replace(kg.settings, extra_files=(fixture,)))
    assert shared.files == loaded.files
    assert shared.quads() == loaded.quads()
    assert len(shared) > len(kg)


def test_the_graph_is_valid(kg: KnowledgeGraph) -> None:
    report = validate(kg)
    assert report.ok, "\n".join(report_lines(report, kg))
    assert report.shapes_checked >= 20
    assert report.checks_run >= 6


@pytest.mark.slow
@pytest.mark.parametrize("fixture", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_fixture_fires_its_rule(kg: KnowledgeGraph, fixture: Path) -> None:
    graph = with_fixture(kg, fixture)
    report = validate(graph)
    assert report.rules == expected_rules(fixture), "\n".join(report_lines(report, graph))
    for violation in report.violations:
        assert violation.message.strip(), f"{violation.rule} fired without a message"
    lines = report_lines(report, graph)
    assert any(line.startswith(f"{fixture}:") for line in lines) or any(
        r.startswith("check:") for r in report.rules
    ), f"no violation names the fixture file and line: {lines}"


@pytest.mark.parametrize("fixture", VALID, ids=[p.stem for p in VALID])
def test_valid_fixture_keeps_the_graph_valid(kg: KnowledgeGraph, fixture: Path) -> None:
    assert expected_rules(fixture) == {"valid"}
    graph = with_fixture(kg, fixture)
    report = validate(graph)
    assert report.ok, "\n".join(report_lines(report, graph))


def test_every_shape_and_check_has_a_fixture(settings: Settings) -> None:
    shapes = rdflib.Graph().parse(settings.ontology_dir / "shapes.ttl")
    node_shapes = {
        "ekgsh:" + str(s).split("#", 1)[1] for s in shapes.subjects(rdflib.RDF.type, SH.NodeShape)
    }
    checks = {f"check:{p.stem}" for p in (settings.queries_dir / "checks").glob("*.rq")}
    covered = set().union(*(expected_rules(p) for p in INVALID))
    missing = (node_shapes | checks) - covered
    assert not missing, f"rules that no invalid fixture fires: {sorted(missing)}"
    assert len(node_shapes) >= 20


def test_cli_validate_exit_codes(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["validate"])
    assert ok.exit_code == 0, ok.output
    assert "valid" in ok.stderr
    fixture = FIXTURES / "invalid" / "activity-end-before-start.ttl"
    bad = runner.invoke(app, ["validate", str(fixture)])
    assert bad.exit_code == 1
    (line,) = bad.stdout.strip().splitlines()
    assert re.match(rf"^{re.escape(str(fixture))}:\d+: ekgsh:ActivityShape: activity:", line)
    assert "schema:endDate" in line
    assert "1 violation(s)" in bad.stderr
    broken = tmp_path / "broken.ttl"
    broken.write_text("@prefix ex: <http://example.org/> .\nex:a ex:b ex:c ;\n")
    unparsable = runner.invoke(app, ["validate", str(broken)])
    assert unparsable.exit_code == 2
    assert f"{broken}:" in unparsable.stderr
    assert "Traceback" not in unparsable.output
    folder = runner.invoke(app, ["validate", str(FIXTURES / "valid")])
    assert folder.exit_code == 0, folder.output
