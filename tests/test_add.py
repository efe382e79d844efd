"""`escap-kg add`: activities from a CSV or YAML template into canonical, validated Turtle, on
a temporary copy of the data (the shipped data holds the source's facts only)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from escap_kg.cli import app
from escap_kg.curate import read_template

from .conftest import FIXTURES, ROOT

runner = CliRunner()
ADD = FIXTURES / "add"
TEMPLATES = ROOT / "docs" / "templates"
ID = "https://w3id.org/escap-kg/id/"
SEMINAR = f"{ID}activity/seminar-2004-test-seminar-migration-data-exchange"
MEETING = f"{ID}activity/egm-2004-test-expert-group-meeting-remittances"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(ROOT / "data", copy)
    return copy


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def add(template: Path, data: Path, *more: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["add", str(template), "--data-dir", str(data), *more])
    return result.exit_code, result.stdout, result.stderr


def test_every_bad_row_is_named_and_nothing_is_written(data: Path) -> None:
    before = fingerprint(data)
    code, _out, err = add(ADD / "bad.csv", data)
    assert code == 2, err
    expected = [
        "bad.csv:2: column \"start\": '2004-13' is not a date; write YYYY, YYYY-MM or YYYY-MM-DD",
        "bad.csv:3: column \"kind\": 'workshop' is not a kind; one of conference, "
        "expert-group-meeting, seminar, activity",
        "bad.csv:4: column \"place\": 'Bangkk' is not known; candidates: Bangkok (place:bangkok)",
        "bad.csv:5: column \"themes\": 'Safe migrations' is not known; candidates: safe migration "
        "(theme:safe-migration)",
        "bad.csv:5: column \"organizers\": 'UN Population Fund' is not known; candidates: UNFPA "
        "(organization:unfpa)",
        'bad.csv:6: column "title": every activity needs its title',
    ]
    for line in expected:
        assert f"escap-kg: error: {line}" in err, err
    assert "Traceback" not in err
    assert fingerprint(data) == before


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("activities: [", "bad.yaml:1: not YAML"),
        ("rows: []\n", "bad.yaml:1: a YAML template has a list under activities:"),
        (
            "activities:\n  - kind: seminar\n    colour: red\n",
            'bad.yaml:3: field "colour" is not a field of the template',
        ),
        (
            "activities:\n  - kind: seminar\n    title: Test\n    start: 2004\n"
            "    organizers: [ESCAP]\n    document: no-such-report\n    paragraph: 1\n",
            "bad.yaml:6: field \"document\": 'no-such-report' is not a known source document; "
            "give its title in document_title",
        ),
        (
            "activities:\n  - kind: seminar\n    title: Test\n    start: 2004\n"
            "    document: escap-migration-activities\n    paragraph: 1\n    page: '2'\n",
            'bad.yaml:6: field "paragraph": give the paragraph or the page (one of them)',
        ),
        (
            "activities:\n  - kind: seminar\n    title: Test\n    start: 2004\n"
            "    findings:\n      - statement: no headline\n"
            "    document: escap-migration-activities\n    paragraph: 1\n",
            'bad.yaml:6: field "findings": each item needs a headline',
        ),
    ],
)
def test_bad_yaml_is_refused_with_its_line(
    data: Path, tmp_path: Path, text: str, says: str
) -> None:
    template = tmp_path / "bad.yaml"
    template.write_text(text, encoding="utf-8")
    code, _out, err = add(template, data)
    assert code == 2, err
    assert says in err


def test_an_ambiguous_name_lists_its_candidates(data: Path, tmp_path: Path) -> None:
    (data / "namesake.ttl").write_text(
        "PREFIX org: <http://www.w3.org/ns/org#>\n"
        "PREFIX prov: <http://www.w3.org/ns/prov#>\n"
        "PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>\n"
        "PREFIX skos: <http://www.w3.org/2004/02/skos/core#>\n"
        f"<{ID}organization/test-namesake> a org:FormalOrganization, prov:Organization ;\n"
        '  rdfs:label "Test namesake"@en ; skos:altLabel "UNFPA"@en .\n',
        encoding="utf-8",
    )
    template = tmp_path / "one.csv"
    template.write_text(
        "kind,title,start,organizers,key_issue,document,paragraph\n"
        "seminar,Test Seminar,2004,UNFPA,Test,escap-migration-activities,1\n",
        encoding="utf-8",
    )
    before = fingerprint(data)
    code, _out, err = add(template, data)
    assert code == 2
    assert "one.csv:2: column \"organizers\": 'UNFPA' is ambiguous; candidates: " in err
    assert "(organization:unfpa)" in err
    assert "(organization:test-namesake)" in err
    assert fingerprint(data) == before


def test_a_result_that_would_not_validate_is_not_written(data: Path, tmp_path: Path) -> None:
    template = tmp_path / "conference.csv"
    # A conference must name its key agenda items (ConferenceShape): the shapes say so.
    template.write_text(
        "kind,title,start,organizers,document,paragraph\n"
        "conference,Test Conference on Migration,2004,ESCAP,escap-migration-activities,1\n",
        encoding="utf-8",
    )
    before = fingerprint(data)
    code, _out, err = add(template, data)
    assert code == 1, err
    assert "escap-kg: invalid: " in err
    assert "ekgsh:ConferenceShape" in err
    assert "nothing was added" in err
    assert fingerprint(data) == before


def test_dry_run_prints_a_diff_and_writes_nothing(data: Path) -> None:
    before = fingerprint(data)
    code, out, err = add(ADD / "activity.yaml", data, "--dry-run")
    assert code == 0, err
    assert "+++ b/data/source/test-report-of-activities-paragraph-1.ttl" in out
    assert "+activity:seminar-2004-test-seminar-migration-data-exchange" in out
    assert '+    schema:startDate "2004-03"^^xsd:gYearMonth ;' in out
    assert "--- a/data/provenance.ttl" in out
    assert "would add" in err
    assert fingerprint(data) == before


def test_template_round_trip_add_export_validate_query(data: Path) -> None:
    code, _out, err = add(ADD / "activity.yaml", data)
    assert code == 0, err
    assert "added" in err
    code, _out, err = add(ADD / "activity.csv", data)
    assert code == 0, err
    after = fingerprint(data)
    # A second run of the same files changes nothing.
    for template in (ADD / "activity.yaml", ADD / "activity.csv"):
        code, _out, err = add(template, data)
        assert code == 0
        assert "nothing to add" in err
    assert fingerprint(data) == after
    # One named graph per source, each with its provenance.
    assert (data / "source" / "test-report-of-activities-paragraph-1.ttl").is_file()
    assert (data / "source" / "test-report-of-activities-page-7.ttl").is_file()
    provenance = (data / "provenance.ttl").read_text(encoding="utf-8")
    assert "graph:test-report-of-activities-page-7" in provenance
    env = {"ESCAP_KG_DATA_DIR": str(data)}
    exported = runner.invoke(app, ["export", "--format", "nt"], env=env)
    assert exported.exit_code == 0
    assert f"<{SEMINAR}>" in exported.stdout
    assert f'<{MEETING}> <https://schema.org/startDate> "2004-06-01"' in exported.stdout
    validated = runner.invoke(app, ["validate"], env=env)
    assert validated.exit_code == 0, validated.output
    formatted = runner.invoke(app, ["format", "--check"], env=env)
    assert formatted.exit_code == 0, formatted.output
    answer = runner.invoke(app, ["query", "01-activities-in-time-order", "-f", "csv"], env=env)
    assert answer.exit_code == 0
    rows = {line.split(",")[0]: line for line in answer.stdout.splitlines()}
    assert SEMINAR in rows
    assert "2004-03" in rows[SEMINAR]
    assert MEETING in rows
    where = runner.invoke(
        app, ["query", "where-in-the-source", "--param", f"entity={SEMINAR}", "-f", "csv"], env=env
    )
    assert where.exit_code == 0


def test_the_shipped_templates_work(data: Path) -> None:
    for template in (TEMPLATES / "activities.yaml", TEMPLATES / "activities.csv"):
        assert len(read_template(template)) == 1
        before = fingerprint(data)
        code, out, err = add(template, data, "--dry-run")
        assert code == 0, err
        assert "+activity:seminar-2004-example-seminar-migration-statistics" in out
        assert fingerprint(data) == before


def test_a_missing_template_or_data_folder(data: Path, tmp_path: Path) -> None:
    code, _out, err = add(tmp_path / "none.csv", data)
    assert code == 2
    assert "none.csv: file not found" in err
    code, _out, err = add(ADD / "activity.csv", tmp_path / "nowhere")
    assert code == 2
    assert "data folder not found" in err
    (tmp_path / "x.txt").write_text("x", encoding="utf-8")
    code, _out, err = add(tmp_path / "x.txt", data)
    assert code == 2
    assert "a template is a .csv or .yaml file" in err
