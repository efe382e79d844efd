"""The benchmark's data generator: the smallest size validates against our shapes, and a seed
always gives the same data."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph
from escap_kg.validate import validate
from tests.benchmarks.generate import generate, parse_size, write_file

SMALLEST = 10_000


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("bench") / "bench-10k.nt"
    return path, write_file(path, SMALLEST, seed=1)


def test_reaches_the_size_within_one_percent(generated: tuple[Path, int]) -> None:
    path, count = generated
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == count
    assert abs(count - SMALLEST) <= SMALLEST // 100


@pytest.mark.slow
def test_is_valid_beside_the_embedded_graph(generated: tuple[Path, int]) -> None:
    path, _ = generated
    report = validate(KnowledgeGraph.load(Settings(extra_files=(path,))))
    assert report.ok, "\n".join(v.line() for v in report.violations[:20])


def test_has_every_kind_of_resource(generated: tuple[Path, int]) -> None:
    text = generated[0].read_text(encoding="utf-8")
    for term in (
        "ontology#ExpertGroupMeeting>",
        "ontology#Conference>",
        "ontology#Seminar>",
        "ontology#Participation>",
        "ontology#Finding>",
        "ontology#PlanOfAction>",
        "ontology#Recommendation>",
        "ontology#Country>",
        "ontology#followUpOf>",
        "ontology#preparatoryTo>",
        "ontology#partner>",
        "XMLSchema#gYear>",
        "XMLSchema#gYearMonth>",
        "XMLSchema#date>",
        "/id/role/joint-organiser>",
        "/id/role/cooperation-partner>",
    ):
        assert term in text, term


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    first, again, other = io.StringIO(), io.StringIO(), io.StringIO()
    generate(first, 3_000, seed=7)
    generate(again, 3_000, seed=7)
    generate(other, 3_000, seed=8)
    assert first.getvalue() == again.getvalue()
    assert first.getvalue() != other.getvalue()


@pytest.mark.parametrize(("text", "value"), [("10k", 10_000), ("1M", 1_000_000), ("2500", 2_500)])
def test_sizes(text: str, value: int) -> None:
    assert parse_size(text) == value
