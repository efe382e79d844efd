"""Persistent on-disk stores: bulk loads that are all or nothing, and opening them to serve."""

from __future__ import annotations

import contextlib
import errno
import fcntl
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

from escap_kg import entailment
from escap_kg.search import INDEX_NAME, build_index
from escap_kg.settings import DEFAULT_BASE_IRI, Settings
from escap_kg.store import (
    DataError,
    SourceFile,
    file_stem,
    parse_file,
    rdf_format,
    source_files,
)

STAGING = ".loading-"
RETIRED = ".retired-"


class StoreBusyError(DataError):
    """Another process (a load, or a server with updates on) is writing the store."""

    def __init__(self, database: Path, pid: int | None) -> None:
        self.pid = pid
        who = f"another process (pid {pid})" if pid is not None else "another process"
        super().__init__(
            database,
            f"{who} is writing to this store (a load, or a server with updates enabled); "
            "try again when it has finished",
        )


def lock_path(database: Path) -> Path:
    """The writer lock file of ``database``: beside the folder, which loads swap."""
    database = database.resolve()
    return database.parent / f".{database.name}.lock"


# (store, thread) pairs whose writer lock this process holds, so that recovery run under the
# lock does not wait for itself.
_HELD: set[tuple[Path, int]] = set()


class WriterLock:
    """The exclusive writer lock of one store, held until :meth:`release` (or process death).

    An ``flock`` on ``.<name>.lock`` beside the store folder, holding the owner's pid. The
    kernel drops it when the process dies, even by ``kill -9``; the stale file is reused.
    """

    def __init__(
        self,
        database: Path,
        *,
        wait: bool,
        on_wait: Callable[[int | None], None] | None = None,
    ) -> None:
        self.database = database.resolve()
        self.path = lock_path(self.database)
        self.fd = -1
        told = False
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as err:
                raise DataError(self.database, f"cannot lock the store: {_plain(err)}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    pid = _holder(fd)
                    os.close(fd)
                    raise StoreBusyError(self.database, pid) from None
                if not told and on_wait is not None:
                    on_wait(_holder(fd))
                told = True
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
            # The last holder removes the file on release: a lock taken on a file that is no
            # longer the one at the path excludes nobody, so take it again.
            if _same_file(fd, self.path):
                break
            os.close(fd)
        self.fd = fd
        self.owner = os.getpid()
        # On a full disk the lock holds all the same; its messages just lack the pid.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD.add((self.database, threading.get_ident()))

    @property
    def held(self) -> bool:
        """True until :meth:`release`."""
        return self.fd >= 0

    def release(self) -> None:
        """Give the lock up and remove its file (both idempotent)."""
        if self.fd < 0:
            return
        if os.getpid() == self.owner:
            _HELD.discard((self.database, threading.get_ident()))
            if _same_file(self.fd, self.path):
                with contextlib.suppress(OSError):
                    self.path.unlink()
            # Unlock explicitly: forked children may hold copies of the descriptor.
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        # In a forked child, only its copy of the descriptor goes: the lock stays its parent's.
        os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def writer_lock(
    database: Path, *, wait: bool, on_wait: Callable[[int | None], None] | None = None
) -> WriterLock:
    """Take the exclusive writer lock of the store ``database``; use it with ``with``.

    Loads and servers with updates enabled take it; readers never do. If another process holds
    it: with ``wait``, call ``on_wait(pid)`` once (``pid`` is None if it is not known yet) and
    block until it is free; without, raise :class:`StoreBusyError` naming that process.
    """
    return WriterLock(database, wait=wait, on_wait=on_wait)


def _holder(fd: int) -> int | None:
    """The pid written in a lock file. A new holder may not have written its own yet (the file
    is empty, or names a holder that died), so look again for a little while."""
    for _ in range(20):
        try:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        except OSError:
            return None
        if text.isdigit() and _alive(int(text)):
            return int(text)
        time.sleep(0.01)
    return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _holds_lock(database: Path) -> bool:
    return (database, threading.get_ident()) in _HELD


class Pin:
    """One version of a store held open for readers, across loads that swap in another.

    Holds the folder open with a shared ``flock``, which keeps loads from deleting it once
    they have renamed it away. :attr:`path` opens exactly this version (e.g. with
    ``pyoxigraph.Store.read_only``) from any process of the same user, also children that closed
    their copies of the descriptor, for as long as the pin is open and its process alive.
    """

    def __init__(self, database: Path, fd: int) -> None:
        self.database = database
        self.fd = fd
        info = os.fstat(fd)
        self.version: tuple[int, int] = (info.st_dev, info.st_ino)
        self.owner = os.getpid()
        self.path = f"/proc/{self.owner}/fd/{fd}"

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self.fd < 0

    def changed(self) -> bool:
        """True when the store's folder is now another version than this one (one ``stat``).

        False while the folder is missing: that is a load between its two renames.
        """
        try:
            info = os.stat(self.database)
        except OSError:
            return False
        return (info.st_dev, info.st_ino) != self.version

    def close(self) -> None:
        """Release the version (idempotent) once no reader uses :attr:`path` any more.

        In a forked child this only closes the child's copy of the descriptor: the pin stays.
        """
        if self.fd < 0:
            return
        if os.getpid() == self.owner:
            # Unlock explicitly: forked children may hold copies of the descriptor.
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> Pin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else self.path
        return f"Pin({str(self.database)!r}, {state})"


def pin(database: Path) -> Pin:
    """Pin the version of the store now at ``database``; see :class:`Pin`."""
    database = database.resolve()
    for attempt in range(200):
        try:
            fd = os.open(database, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            if attempt < 199 and _retired(database):
                time.sleep(0.01)  # a load between its two renames
                continue
            raise DataError(
                database, "not an escap-kg store; create it with `escap-kg load --db DIR`"
            ) from None
        except OSError as err:
            raise DataError(database, f"cannot open the store: {_plain(err)}") from None
        # Blocks only while a load or a cleanup deletes this very folder, a short while.
        fcntl.flock(fd, fcntl.LOCK_SH)
        if _same_file(fd, database):
            if not os.path.exists(f"/proc/self/fd/{fd}/CURRENT"):
                os.close(fd)
                raise DataError(
                    database, "not an escap-kg store; create it with `escap-kg load --db DIR`"
                )
            return Pin(database, fd)
        # Swapped out between the open and the lock: let it go (and be deleted), pin the new one.
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        remove_unpinned_retired(database)
    raise DataError(database, "the store changes too often to be opened; try again")


def _retired(database: Path) -> list[Path]:
    """The retired versions of ``database``, oldest first."""

    def stamp(path: Path) -> tuple[int, str]:
        first = path.name.rsplit(RETIRED, 1)[-1].split("-", 1)[0]
        return (int(first) if first.isdigit() else 0, path.name)

    return sorted(database.parent.glob(f"{database.name}{RETIRED}*"), key=stamp)


def _remove_if_unpinned(folder: Path, database: Path) -> bool:
    """Delete the retired version ``folder`` unless a reader pins it; True if deleted."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False  # gone already
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False  # pinned
            raise
        # Only while the store itself is in place: without it a retired folder may be the only
        # whole version left (a crash between the renames), which recover() puts back.
        try:
            current = os.stat(database)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        if (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
            return False
        if not _same_file(fd, folder):
            return False
        shutil.rmtree(folder, ignore_errors=True)
        return True
    finally:
        os.close(fd)


def remove_unpinned_retired(database: Path) -> list[Path]:
    """Delete every retired version of ``database`` that no reader pins; return those deleted.

    Does nothing while ``database`` itself is missing (see :func:`recover`). Safe to run at any
    time, from any process, also while a load runs.
    """
    database = database.resolve()
    return [folder for folder in _retired(database) if _remove_if_unpinned(folder, database)]


@dataclass
class LoadReport:
    """What a load did."""

    database: Path
    files: list[tuple[Path, str, int]] = field(default_factory=list)  # path, graph, bytes
    quads: int = 0
    seconds: float = 0.0
    disk_bytes: int = 0
    #: Seconds of each step that took any: the bulk load of the files, the entailed graph, the
    #: search index (the rest is the copy of the current store, our own files and the swap).
    steps: dict[str, float] = field(default_factory=dict)


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
    """Finish or undo a swap that a crash interrupted, so ``database`` is a whole store again.

    Puts the newest retired version back if ``database`` is missing (under the writer lock,
    waiting for a load that is swapping), then deletes the retired versions no reader pins.
    """
    database = database.resolve()
    if not database.exists() and _retired(database):
        if _holds_lock(database):
            _restore(database)
        else:
            with writer_lock(database, wait=True):
                _restore(database)
    remove_unpinned_retired(database)


def _restore(database: Path) -> None:
    retired = _retired(database)
    if retired and not database.exists():
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
    wait: bool = True,
    on_wait: Callable[[int | None], None] | None = None,
) -> LoadReport:
    """Bulk-load RDF files into the on-disk store at ``database``, all or nothing.

    Each file goes into its own named graph (``<base>graph/<file stem>``; our own files into the
    graphs they always have). The load is built in a staging folder beside ``database``, from a
    copy of the current store unless ``replace``, and swapped in only once every file has
    loaded: a file that does not parse, a full disk or a kill leaves ``database`` as it was.
    ``progress(path, size)`` returns a callback told of each block read from that file.

    Loads hold the store's writer lock (see :func:`writer_lock`, which ``wait`` and ``on_wait``
    are passed to), so loads of one store run one after the other. The version they replace is
    deleted unless a server still pins it (see :func:`pin`).
    """
    started = time.monotonic()
    database = database.resolve()
    sources = source_files(settings) if include_embedded else []
    if include_embedded:
        sources = [sf for sf in sources if sf.kind != "extra"]
    extra = [
        SourceFile(Path(p), f"{settings.graph_base}extra/{file_stem(Path(p))}", "extra")
        for p in files
    ]
    _check_names(sources + extra)
    for sf in extra:
        rdf_format(sf.path)
        if not sf.path.is_file():
            raise DataError(sf.path, "file not found")
    try:
        if not database.parent.exists():
            database.parent.mkdir(parents=True)
    except OSError as err:
        raise DataError(database, f"cannot use this folder: {_plain(err)}") from None
    with writer_lock(database, wait=wait, on_wait=on_wait):
        report = _load_locked(database, sources, extra, settings.base_iri, replace, progress)
        report.disk_bytes = sum(p.stat().st_size for p in database.rglob("*") if p.is_file())
    report.seconds = time.monotonic() - started
    return report


def _load_locked(
    database: Path,
    sources: list[SourceFile],
    extra: list[SourceFile],
    base_iri: str,
    replace: bool,
    progress: Callable[[Path, int], Callable[[int], None]] | None,
) -> LoadReport:
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

    staging = database.parent / f"{database.name}{STAGING}{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    report = LoadReport(database)
    try:
        if database.exists() and not replace:
            ox.Store.read_only(str(database)).backup(str(staging))
        store = ox.Store(str(staging))
        # Our own files are small and may need their IRIs moved to another base: parsed here.
        for sf in sources:
            quads = parse_file(sf, base_iri)
            store.extend(quads)
            report.files.append((sf.path, sf.graph, sf.path.stat().st_size))
        step = time.monotonic()
        for sf in extra:
            size = sf.path.stat().st_size
            advance = progress(sf.path, size) if progress else None
            _bulk_load(store, sf, advance, staging)
            report.files.append((sf.path, sf.graph, size))
        step = _timed(report, "bulk load", step)
        entailment.refresh(store, entailment.entailed_graph(base_iri))
        store.flush()
        report.quads = len(store)
        step = _timed(report, "entailment", step)
        build_index(store, staging / INDEX_NAME)  # swapped and pinned with the store
        _timed(report, "search index", step)
        del store
        _swap(staging, database)
    except OSError as err:
        # A full disk, a read-only folder, a file where a folder should be: one plain line.
        shutil.rmtree(staging, ignore_errors=True)
        raise DataError(database, f"cannot write the store: {_plain(err)}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _timed(report: LoadReport, step: str, since: float) -> float:
    """Note the seconds ``step`` took since ``since``; the time now."""
    now = time.monotonic()
    report.steps[step] = now - since
    return now


def _plain(err: OSError) -> str:
    """The operating system's reason in an OSError, without Oxigraph's "IO error: ... : path"."""
    if err.strerror:
        return str(err.strerror)
    return str(err).rsplit(": ", 1)[-1] or type(err).__name__


def _remove_stale_staging(database: Path) -> None:
    """Remove the staging folders of loads killed half way (run under the writer lock, which
    every load holds: any staging folder found then is stale, even if its pid is in use again)."""
    for stale in database.parent.glob(f"{database.name}{STAGING}*"):
        shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


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
    """Put the staged store in place; a crash in between is undone by :func:`recover`.

    The replaced version is deleted at once unless a server pins it: then it stays until
    :func:`remove_unpinned_retired` finds it unpinned.
    """
    if database.exists():
        # Named by time, so that recovery can tell the newest from versions kept for readers.
        retired = database.parent / f"{database.name}{RETIRED}{time.time_ns()}-{os.getpid()}"
        database.rename(retired)
        staging.rename(database)
        _remove_if_unpinned(retired, database)
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


__all__ = [
    "DEFAULT_BASE_IRI",
    "LoadReport",
    "Pin",
    "StoreBusyError",
    "WriterLock",
    "is_store",
    "load",
    "lock_path",
    "open_for_serving",
    "pin",
    "recover",
    "remove_unpinned_retired",
    "writer_lock",
]
