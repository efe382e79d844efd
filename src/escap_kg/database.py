"""Persistent on-disk stores: bulk loads that are all or nothing, and opening them to serve."""

from __future__ import annotations

import gzip
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pyoxigraph as ox

from escap_kg.settings import DEFAULT_BASE_IRI, Settings
from escap_kg.store import DataError, SourceFile, parse_file, rdf_format, source_files

STAGING = ".loading-"
RETIRED = ".retired-"


@dataclass
class LoadReport:
    """What a load did."""

    database: Path
    files: list[tuple[Path, str, int]] = field(default_factory=list)  # path, graph, bytes
    quads: int = 0
    seconds: float = 0.0
    disk_bytes: int = 0


class _Counting:
    """A binary file whose reads are reported, for a progress bar."""

    def __init__(self, raw: IO[bytes], advance: Callable[[int], None]) -> None:
        self.raw = raw
        self.advance = advance

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.advance(len(data))
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        count = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        self.advance(count or 0)
        return int(count or 0)


def recover(database: Path) -> None:
    """Finish or undo a swap that a crash interrupted, so ``database`` is a whole store again."""
    if database.exists():
        for stale in database.parent.glob(f"{database.name}{RETIRED}*"):
            shutil.rmtree(stale, ignore_errors=True)
        return
    retired = sorted(database.parent.glob(f"{database.name}{RETIRED}*"))
    if retired:
        retired[-1].rename(database)


def is_store(path: Path) -> bool:
    """True when ``path`` is a folder holding an Oxigraph store."""
    return path.is_dir() and (path / "CURRENT").exists()


def load(
    database: Path,
    files: Sequence[Path],
    settings: Settings,
    *,
    include_embedded: bool = True,
    replace: bool = False,
    progress: Callable[[Path, int], Callable[[int], None]] | None = None,
) -> LoadReport:
    """Bulk-load RDF files into the on-disk store at ``database``, all or nothing.

    Each file goes into its own named graph (``<base>graph/<file stem>``; our own files into the
    graphs they always have). The load is built in a staging folder beside ``database``, from a
    copy of the current store unless ``replace``, and swapped in only once every file has
    loaded: a file that does not parse, a full disk or a kill leaves ``database`` as it was.
    ``progress(path, size)`` returns a callback told of each block read from that file.
    """
    started = time.monotonic()
    database = database.resolve()
    try:
        recover(database)
        _remove_stale_staging(database)
        if database.exists() and not is_store(database):
            if any(database.iterdir()):
                raise DataError(
                    database, "exists and is not an escap-kg store; choose another folder"
                )
            database.rmdir()
    except OSError as err:
        raise DataError(database, f"cannot use this folder: {_plain(err)}") from None
    sources = source_files(settings) if include_embedded else []
    if include_embedded:
        sources = [sf for sf in sources if sf.kind != "extra"]
    extra = [
        SourceFile(Path(p), f"{settings.graph_base}extra/{_stem(Path(p))}", "extra") for p in files
    ]
    _check_names(sources + extra)
    for sf in extra:
        rdf_format(sf.path)
        if not sf.path.is_file():
            raise DataError(sf.path, "file not found")

    staging = database.parent / f"{database.name}{STAGING}{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    report = LoadReport(database)
    try:
        if database.exists() and not replace:
            ox.Store.read_only(str(database)).backup(str(staging))
        store = ox.Store(str(staging))
        # Our own files are small and may need their IRIs moved to another base: parsed here.
        for sf in sources:
            quads = parse_file(sf, settings.base_iri)
            store.extend(quads)
            report.files.append((sf.path, sf.graph, sf.path.stat().st_size))
        for sf in extra:
            size = sf.path.stat().st_size
            advance = progress(sf.path, size) if progress else None
            _bulk_load(store, sf, advance, staging)
            report.files.append((sf.path, sf.graph, size))
        store.flush()
        report.quads = len(store)
        del store
        _swap(staging, database)
    except OSError as err:
        # A full disk, a read-only folder, a file where a folder should be: one plain line.
        shutil.rmtree(staging, ignore_errors=True)
        raise DataError(database, f"cannot write the store: {_plain(err)}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report.seconds = time.monotonic() - started
    report.disk_bytes = sum(p.stat().st_size for p in database.rglob("*") if p.is_file())
    return report


def _plain(err: OSError) -> str:
    """The operating system's reason in an OSError, without Oxigraph's "IO error: ... : path"."""
    if err.strerror:
        return str(err.strerror)
    return str(err).rsplit(": ", 1)[-1] or type(err).__name__


def _remove_stale_staging(database: Path) -> None:
    """Remove the staging folders of loads whose process is gone (killed half way)."""
    for stale in database.parent.glob(f"{database.name}{STAGING}*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _stem(path: Path) -> str:
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    return name.rsplit(".", 1)[0]


def _check_names(files: Sequence[SourceFile]) -> None:
    seen: dict[str, Path] = {}
    for sf in files:
        if sf.graph in seen:
            raise DataError(
                sf.path, f"named graph <{sf.graph}> is already taken by {seen[sf.graph]}"
            )
        seen[sf.graph] = sf.path


def _bulk_load(
    store: ox.Store, sf: SourceFile, advance: Callable[[int], None] | None, staging: Path
) -> None:
    fmt = rdf_format(sf.path)
    options: dict[str, Any] = {
        "format": fmt,
        "base_iri": sf.path.resolve().as_uri(),
        "to_graph": ox.NamedNode(sf.graph),
    }
    try:
        if sf.path.name.lower().endswith(".gz"):
            with open(sf.path, "rb") as raw:
                counted: Any = _Counting(raw, advance) if advance else raw
                store.bulk_load(gzip.GzipFile(fileobj=counted), **options)  # type: ignore[arg-type]
        else:
            # Oxigraph reads the file itself, much faster than through a Python file object;
            # the progress bar follows its read offset.
            with _FollowReads(sf.path, advance):
                store.bulk_load(path=str(sf.path), **options)
    except SyntaxError as err:
        message = str(err.args[0]) if err.args else str(err)
        if message.startswith("Parser error") and ": " in message:
            message = message.split(": ", 1)[1]
        raise DataError(sf.path, message, err.lineno, err.offset) from None
    except OSError as err:
        if str(staging) in str(err):
            raise  # writing the store failed, not reading the file: reported by load()
        raise DataError(sf.path, f"cannot load: {err}") from None
    except (EOFError, ValueError) as err:
        raise DataError(sf.path, f"cannot load: {err}") from None


class _FollowReads:
    """Reports how far this process has read a file, from /proc (Linux); silent elsewhere."""

    def __init__(self, path: Path, advance: Callable[[int], None] | None) -> None:
        self.path = str(path.resolve())
        self.advance = advance
        self.done = threading.Event()
        self.reported = 0
        self.thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> _FollowReads:
        if self.advance is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        if self.advance is not None:
            self.thread.join()
            if exc[0] is None:
                self._report(Path(self.path).stat().st_size)

    def _report(self, position: int) -> None:
        if self.advance is not None and position > self.reported:
            self.advance(position - self.reported)
            self.reported = position

    def _follow(self) -> None:
        fd_dir = Path("/proc/self/fd")
        while not self.done.wait(0.25):
            try:
                for fd in fd_dir.iterdir():
                    if os.readlink(fd) == self.path:
                        info = Path(f"/proc/self/fdinfo/{fd.name}").read_text()
                        position = int(info.split("pos:", 1)[1].split()[0])
                        self._report(position)
                        break
            except (OSError, ValueError, IndexError):
                continue


def _swap(staging: Path, database: Path) -> None:
    """Put the staged store in place; a crash in between is undone by :func:`recover`."""
    if database.exists():
        retired = database.parent / f"{database.name}{RETIRED}{os.getpid()}"
        database.rename(retired)
        staging.rename(database)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(database)


def open_for_serving(database: Path) -> Path:
    """Check that ``database`` is a store that can be served, after any crash recovery."""
    database = database.resolve()
    recover(database)
    if not is_store(database):
        raise DataError(database, "not an escap-kg store; create it with `escap-kg load --db DIR`")
    try:
        ox.Store.read_only(str(database))
    except OSError as err:
        raise DataError(database, f"cannot open the store: {err}") from None
    return database


__all__ = ["DEFAULT_BASE_IRI", "LoadReport", "is_store", "load", "open_for_serving", "recover"]
