"""A fast start: content that passed validation once is not validated again."""

from __future__ import annotations

from pathlib import Path

import pytest

import escap_kg.validate as module
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph
from escap_kg.validate import Report


def test_validation_is_remembered_per_content(
    kg: KnowledgeGraph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server validates its content once: the next start finds it passed, and other content
    (here another resource base) is validated again."""
    monkeypatch.setenv("ESCAP_KG_CACHE_DIR", str(tmp_path))
    assert module.validate_once(kg).ok
    assert len(list(tmp_path.glob("validated/*"))) == 1
    calls: list[KnowledgeGraph] = []

    def counted(graph: KnowledgeGraph) -> Report:
        calls.append(graph)
        return Report()

    monkeypatch.setattr(module, "validate", counted)
    assert module.validate_once(kg).ok
    assert calls == [], "the same content is not validated again"
    other = KnowledgeGraph(kg.store, kg.files, Settings(base_iri="https://example.org/kg/"))
    module.validate_once(other)
    assert calls == [other], "another base is other content"


def test_a_failing_validation_is_not_remembered(
    kg: KnowledgeGraph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from escap_kg.validate import Violation

    monkeypatch.setenv("ESCAP_KG_CACHE_DIR", str(tmp_path))
    failed = Report([Violation("rule", "focus", "", "", "message")])
    monkeypatch.setattr(module, "validate", lambda graph: failed)
    assert not module.validate_once(kg).ok
    assert not list(tmp_path.glob("validated/*"))
    assert not module.validate_once(kg).ok


def test_the_progress_bar_follows_a_process_reading_a_file(tmp_path: Path) -> None:
    """``serve --data`` shows how far the zygote has read each file from its read offset in
    /proc: here, this process reading a file part way."""
    import os

    from escap_kg.cli import _read_offsets

    data = tmp_path / "rows.nt"
    data.write_bytes(b"x" * 100_000)
    with data.open("rb") as stream:
        stream.read(40_000)
        found = dict(_read_offsets(os.getpid(), {str(data.resolve()): data}))
    assert found[str(data.resolve())] >= 40_000
    assert _read_offsets(None, {str(data.resolve()): data}) == []
