"""The query engine: Oxigraph in worker processes, off the event loop, with limits that kill.

The public face of three modules: :mod:`escap_kg.jobs` (what is asked and answered, shared with
the remote engine), :mod:`escap_kg.worker` (the zygote and the workers, in their own processes)
and :mod:`escap_kg.pool` (the pool, in the server); and :func:`build_engine`, which picks and
builds the engine a server runs on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from escap_kg.jobs import Answer, DumpJob, EngineError, ExportJob, QueryJob, UpdateJob
from escap_kg.pool import QueryEngine, available_memory_kib, default_query_memory
from escap_kg.settings import Settings
from escap_kg.store import DataError, KnowledgeGraph, rdf_format, source_files
from escap_kg.worker import StoreSource

if TYPE_CHECKING:
    from escap_kg.database import WriterLock
    from escap_kg.remote import RemoteEngine
    from escap_kg.validate import Report


class InvalidGraphError(Exception):
    """Our own graph does not validate: a server does not serve it. ``report`` says why."""

    def __init__(self, report: Report, kg: KnowledgeGraph) -> None:
        super().__init__(
            f"the graph's own data has {len(report.violations)} violation(s); "
            "not serving a graph that does not validate"
        )
        self.report = report
        self.kg = kg


@dataclass
class Built:
    """An engine built for a server, and what it serves.

    ``settings`` are those to serve with (an on-disk store pinned); ``loading`` the files the
    zygote still parses, which may yet fail (wait with ``engine.wait_launched()``); ``writer``
    the store's writer lock, held while updates are enabled: :meth:`release` it at the end.
    """

    engine: QueryEngine | RemoteEngine
    settings: Settings
    what: str
    loading: list[Path]
    writer: WriterLock | None = None
    #: Files the graph is read from, counting those the zygote still parses.
    files: int = 0

    def loaded(self, statements: int | None) -> str:
        """What is served once the zygote has loaded the files and counted ``statements``."""
        return f"{statements or 0:,} statements from {self.files} files, in memory"

    def release(self) -> None:
        """Give up the store's writer lock, if held."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None


def local_engine(
    settings: Settings, source: bytes | Path, extra: Sequence[tuple[Path, str]] = ()
) -> QueryEngine:
    """The worker pool over ``source`` (N-Quads in memory, or an on-disk store) as the settings
    say: its size, whether SERVICE may reach the network, the memory a query may take."""
    return QueryEngine(
        source,
        workers=settings.workers,
        max_workers=settings.max_workers,
        extra=extra,
        allow_service=bool(settings.service_allowlist),
        max_query_memory=settings.max_query_memory or default_query_memory(),
    )


def build_engine(
    settings: Settings,
    kg: KnowledgeGraph | None = None,
    *,
    upstream: str | None = None,
    upstream_union: bool = True,
    upstream_auth: Any = None,
    database: Path | None = None,
    launch: bool = False,
    check: bool = False,
) -> Built:
    """The engine a server runs on: in front of the SPARQL endpoint ``upstream``; over the
    on-disk store ``database`` (or ``settings.database``); else worker processes holding our
    graph (``kg``, loaded from the settings when not given) in memory, with any extra files of
    the settings, which the zygote alone parses (this process keeps no copy).

    ``launch``: start the workers at once, so that they load while this process goes on.
    ``check``: validate our graph (while the workers load it) and raise
    :class:`InvalidGraphError` if it does not conform. A server with updates enabled over an
    on-disk store holds its writer lock (:class:`escap_kg.database.StoreBusyError` if taken).
    """
    if upstream is not None:
        if database is not None or settings.extra_files or settings.update_token:
            raise ValueError(
                "--upstream serves a remote store: it takes no --db, --data or update token"
            )
        from escap_kg.remote import RemoteEngine

        remote = RemoteEngine(upstream, union_default_graph=upstream_union, auth=upstream_auth)
        return Built(remote, settings, f"in front of {upstream}", [])
    if database is not None or settings.database is not None:
        return _on_disk(settings, database, launch)
    return _in_memory(settings, kg, launch, check)


def _on_disk(settings: Settings, database: Path | None, launch: bool) -> Built:
    from escap_kg.database import open_for_serving, writer_lock

    if settings.extra_files:
        raise ValueError(
            "--data adds files to the in-memory graph; add them to a store with `load`"
        )
    writer = None
    if database is not None:
        if settings.update_token:
            # The only writer while it runs: loads wait, a second such server is refused.
            writer = writer_lock(database, wait=False)
        try:
            settings = replace(settings, database=open_for_serving(database))
        except BaseException:
            if writer is not None:
                writer.release()
            raise
    assert settings.database is not None  # noqa: S101 - one of the two was given
    engine = local_engine(settings, settings.database)
    if launch:
        engine.launch()
    return Built(engine, settings, f"the store in {database or settings.database}", [], writer)


def _in_memory(settings: Settings, kg: KnowledgeGraph | None, launch: bool, check: bool) -> Built:
    own = kg or KnowledgeGraph.load(replace(settings, extra_files=()))
    # Files added for a session are loaded by the zygote alone, which names the file and line
    # of a syntax error: this process neither parses them nor keeps a copy.
    extras = [sf for sf in source_files(settings) if sf.kind == "extra"] if kg is None else []
    for sf in extras:
        rdf_format(sf.path)
        if not sf.path.is_file():
            raise DataError(sf.path, "file not found")
    engine = local_engine(settings, own.nquads(), extra=[(sf.path, sf.graph) for sf in extras])
    if launch:
        engine.launch()
    if check:
        from escap_kg.validate import validate_once

        # The zygote loads the graph while this process validates it.
        try:
            report = validate_once(own)
        except BaseException:
            engine.kill()
            raise
        if not report.ok:
            engine.kill()
            raise InvalidGraphError(report, own)
    what = f"{len(own):,} triples in {len(own.files)} files, in memory"
    files = len(own.files) + len(extras)
    return Built(engine, settings, what, [sf.path for sf in extras], files=files)


__all__ = [
    "Answer",
    "Built",
    "DumpJob",
    "EngineError",
    "ExportJob",
    "InvalidGraphError",
    "QueryEngine",
    "QueryJob",
    "StoreSource",
    "UpdateJob",
    "available_memory_kib",
    "build_engine",
    "default_query_memory",
    "local_engine",
]
