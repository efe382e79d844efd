"""build_engine: the one place that picks and builds the engine a server runs on."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from escap_kg.engine import InvalidGraphError, QueryEngine, build_engine
from escap_kg.remote import RemoteEngine
from escap_kg.settings import Settings
from escap_kg.store import DataError, KnowledgeGraph
from tests.conftest import FIXTURES, ROOT


def test_an_upstream_store_takes_no_local_data(tmp_path: Path) -> None:
    built = build_engine(Settings(), upstream="http://127.0.0.1:1/sparql")
    assert isinstance(built.engine, RemoteEngine)
    assert built.what == "in front of http://127.0.0.1:1/sparql"
    with pytest.raises(ValueError, match="--upstream serves a remote store"):
        build_engine(Settings(), upstream="http://127.0.0.1:1/sparql", database=tmp_path)
    extra = Settings(extra_files=(tmp_path / "more.ttl",))
    with pytest.raises(ValueError, match="it takes no --db, --data"):
        build_engine(extra, upstream="http://127.0.0.1:1/sparql")


def test_an_on_disk_store_takes_no_extra_files_and_must_be_a_store(tmp_path: Path) -> None:
    extra = Settings(extra_files=(tmp_path / "more.ttl",))
    with pytest.raises(ValueError, match="add them to a store with `load`"):
        build_engine(extra, database=tmp_path)
    with pytest.raises(DataError, match="not an escap-kg store"):
        build_engine(Settings(), database=tmp_path)


def test_extra_files_are_left_to_the_zygote(kg: KnowledgeGraph, tmp_path: Path) -> None:
    extra = tmp_path / "more.nt"
    extra.write_text('<http://example.org/a> <http://example.org/b> "c" .\n', encoding="utf-8")
    built = build_engine(replace(kg.settings, extra_files=(extra,)))
    assert isinstance(built.engine, QueryEngine)
    assert built.loading == [extra]
    assert built.files == len(kg.files) + 1
    assert built.loaded(1234) == f"1,234 statements from {len(kg.files) + 1} files, in memory"
    missing = replace(kg.settings, extra_files=(tmp_path / "absent.nt",))
    with pytest.raises(DataError, match="file not found"):
        build_engine(missing)


def test_a_given_graph_is_served_as_it_is(kg: KnowledgeGraph) -> None:
    built = build_engine(kg.settings, kg)
    assert built.loading == []
    assert built.what == f"{len(kg):,} triples in {len(kg.files)} files, in memory"


@pytest.mark.slow
def test_our_graph_must_validate(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    shutil.copy(FIXTURES / "invalid" / "activity-missing-start-date.ttl", data / "broken.ttl")
    settings = replace(Settings(), data_dir=data)
    with pytest.raises(
        InvalidGraphError, match="not serving a graph that does not validate"
    ) as err:
        build_engine(settings, check=True)
    assert "shape" in " ".join(err.value.report.rules).lower() or err.value.report.rules
