"""The engine's side in its own processes: the zygote that holds the store, and its workers.

The zygote loads the graph (or, on disk, nothing: each fork opens the store itself), installs
the kernel's network guard unless SERVICE is allowed, and then forks a worker for each request
of the pool. It is also the store's single writer: an update is evaluated exactly once, by a
fork of the zygote (so the update's time limit can stop it without touching the zygote), and in
memory that fork then takes the zygote's place holding the updated graph, so every worker
forked afterwards reads exactly the values the update produced (``UUID()``, ``NOW()``, blank
nodes...). Workers inspect each query themselves (its form, SERVICE, its size), so a hostile
text costs the server's event loop nothing.

Messages to the server are frames: ``D`` + answer bytes; ``E`` + the last answer bytes; ``H`` +
the format and media type of the answer that follows; ``W`` + the format and media type, a
newline and the whole answer (a small answer is this single frame); or ``C`` + a pickled
control tuple: ``("ready", pid, guard)``, ``("ok", ...)``, ``("error",
status, message)``.
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyoxigraph as ox

from escap_kg import entailment
from escap_kg.inspection import (
    RefusedError,
    inspect_query,
    inspect_update,
    plain_message,
    syntax_message,
    with_prologue,
)
from escap_kg.jobs import (
    CHUNK,
    DUMP_FORMATS,
    GRAPH_FORMATS,
    RESULT_FORMATS,
    DumpJob,
    ExportJob,
    QueryJob,
    SearchJob,
    UpdateJob,
)
from escap_kg.search import INDEX_BUILDING
from escap_kg.sparql import Scan

DATA, CONTROL, LAST, HEAD, WHOLE = b"D", b"C", b"E", b"H", b"W"


@dataclass(frozen=True)
class StoreSource:
    """Where workers get the graph: an on-disk store, or an N-Quads snapshot to load in memory
    plus other RDF files, each into its named graph (``extra``: path and graph IRI).

    ``guard``: install the kernel's network guard in the zygote (no SERVICE allowed);
    ``max_memory``: bytes of address space each worker may add for its queries (0: no limit).
    """

    snapshot: Path | None = None
    database: Path | None = None
    extra: tuple[tuple[Path, str], ...] = ()
    guard: bool = True
    max_memory: int = 0

    def args(self) -> list[str]:
        """The zygote's command-line arguments for this source."""
        options = ["--guard" if self.guard else "--no-guard", "--max-memory", str(self.max_memory)]
        if self.database is not None:
            return [*options, "--db", str(self.database)]
        if self.snapshot is not None:
            extra = [f"{path}\t{graph}" for path, graph in self.extra]
            return [*options, "--snapshot", str(self.snapshot), *extra]
        raise ValueError("a store source needs a snapshot or a database")


def send_control(conn: multiprocessing.connection.Connection, *message: object) -> None:
    """Send a control tuple to the other side."""
    conn.send_bytes(CONTROL + pickle.dumps(message))


def decode(raw: bytes) -> Any:
    """Answer bytes, ``("end", bytes)``, ``("head", format, media type)``, ``("whole", format,
    media type, bytes)`` or a control tuple."""
    kind = raw[:1]
    if kind == DATA:
        return raw[1:]
    if kind == LAST:
        return ("end", raw[1:])
    if kind == WHOLE:
        newline = raw.index(b"\n")
        fmt, _, media = raw[1:newline].decode().partition(" ")
        return ("whole", fmt, media, raw[newline + 1 :])
    if kind == HEAD:
        fmt, _, media = raw[1:].decode().partition(" ")
        return ("head", fmt, media)
    return pickle.loads(raw[1:])  # noqa: S301 - frames from our own processes


# The worker process ----------------------------------------------------------------------------


class _TooLargeError(Exception):
    pass


class _ChunkWriter:
    """A file-like sink for Oxigraph's serialisers that sends chunks to the server."""

    def __init__(self, conn: multiprocessing.connection.Connection, limit: int) -> None:
        self.conn = conn
        self.limit = limit
        self.buffer = bytearray()
        self.size = 0
        #: The format and media type of the answer, sent with its first bytes (see ``W``).
        self.head = b""

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.limit and self.size > self.limit:
            raise _TooLargeError
        self.buffer += data
        if len(self.buffer) >= CHUNK:
            if self.head:
                self.conn.send_bytes(HEAD + self.head)
                self.head = b""
            self.conn.send_bytes(DATA + self.buffer)
            self.buffer = bytearray()
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        """Send what is left together with the end of the answer (and its head, if it is all
        of it), in one frame."""
        if self.head:
            self.conn.send_bytes(WHOLE + self.head + b"\n" + self.buffer)
            self.head = b""
        else:
            self.conn.send_bytes(LAST + self.buffer)
        self.buffer = bytearray()


def _query_options(job: QueryJob, info: Scan) -> dict[str, Any]:
    options: dict[str, Any] = {"base_iri": job.base_iri}
    if job.default_graphs is not None or job.named_graphs is not None:
        options["default_graph"] = [ox.NamedNode(g) for g in job.default_graphs or ()]
        options["named_graphs"] = [ox.NamedNode(g) for g in job.named_graphs or ()]
    elif job.union_default_graph and not info.has_dataset_clause:
        options["use_default_graph_as_union"] = True
    if job.bindings:
        options["substitutions"] = {
            ox.Variable(name): ox.NamedNode(value) if kind == "iri" else ox.Literal(value)
            for name, (kind, value) in job.bindings
        }
    return options


class Worker:
    """One job at a time over one store, answers sent as byte chunks (see the frames above)."""

    def __init__(self, conn: multiprocessing.connection.Connection, source: StoreSource) -> None:
        self.conn = conn
        self.source = source
        self.store: ox.Store | None = None
        #: The full-text index this process answers searches from (see :meth:`index_for_search`).
        self.index: Path | None = None
        self.previous_index: Path | None = None
        self._built = 0
        self._searcher: Any = None
        #: The extra files loaded, and their modification time and size when they were.
        self._loaded: dict[Path, tuple[int, int]] = {}

    def open(self) -> None:
        """Open the on-disk store read-only, or load the snapshot and extra files in memory."""
        if self.source.database is not None:
            self.store = ox.Store.read_only(str(self.source.database))
            return
        from escap_kg.store import SourceFile, load_into

        store = ox.Store()
        if self.source.snapshot is not None:
            store.load(path=str(self.source.snapshot), format=ox.RdfFormat.N_QUADS)
        for path, graph in self.source.extra:
            self._loaded[path] = _version(path)
            load_into(store, SourceFile(path, graph, "extra"))
        entailment.refresh(store)
        self.store = store

    def serve(self) -> None:
        """Answer jobs until the server closes the socket."""
        send_control(self.conn, "ready", os.getpid(), None)
        while True:
            try:
                job = self.conn.recv()
            except (EOFError, OSError):
                return
            self.handle(job)

    def handle(self, job: object) -> None:
        """Run one job and send its answer or its error."""
        limit = job.max_bytes if isinstance(job, QueryJob) else 0
        writer = _ChunkWriter(self.conn, limit)
        try:
            if isinstance(job, QueryJob):
                self.query(job, writer)
            elif isinstance(job, DumpJob):
                self.dump(job, writer)
            elif isinstance(job, ExportJob):
                self.export(job, writer)
            elif isinstance(job, SearchJob):
                self.search(job, writer)
            else:
                send_control(self.conn, "error", 500, f"unknown job {type(job).__name__}")
                return
            writer.close()
        except RefusedError as err:
            send_control(self.conn, "error", err.status, err.message)
        except _TooLargeError:
            message = f"the answer is larger than the limit of {limit:,} bytes; add LIMIT"
            send_control(self.conn, "error", 413, message)
        except SyntaxError as err:
            send_control(self.conn, "error", 400, f"malformed query: {syntax_message(err)}")
        except MemoryError:
            send_control(self.conn, "error", 503, _memory_message(self.source.max_memory))
        except (RuntimeError, ValueError, OSError) as err:
            send_control(self.conn, "error", 400, f"query failed: {plain_message(err)}")

    def query(self, job: QueryJob, writer: _ChunkWriter) -> None:
        info, fmt, media, prologue = inspect_query(job)
        assert self.store is not None  # noqa: S101 - opened before any job
        text = with_prologue(job.text, prologue)
        try:
            result = self.store.query(text, **_query_options(job, info))
        except SyntaxError as err:
            message = syntax_message(err, text, len(prologue))
            raise RefusedError(400, f"malformed query: {message}") from None
        writer.head = f"{fmt} {media}".encode()
        if isinstance(result, ox.QueryTriples):
            if fmt not in GRAPH_FORMATS:
                raise RefusedError(406, f"a graph cannot be written as {fmt!r}")
            ox.serialize(result, writer, format=GRAPH_FORMATS[fmt])  # type: ignore[arg-type]
        else:
            if fmt not in RESULT_FORMATS:
                raise RefusedError(406, f"solutions cannot be written as {fmt!r}")
            result.serialize(writer, format=RESULT_FORMATS[fmt])  # type: ignore[arg-type]

    def dump(self, job: DumpJob, writer: _ChunkWriter) -> None:
        """The stated data of the store, streamed: every graph but the entailed one, which is
        derived from the others and would otherwise be loaded back as if it were stated."""
        assert self.store is not None  # noqa: S101 - opened before any job
        entailed = ox.NamedNode(entailment.graph_of(self.store))
        if job.result_format == "nt":
            # The store's own default graph (where updates may have stated triples) and every
            # named graph but the entailed one; CONSTRUCT writes each triple once.
            triples = self.store.query(
                f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ {{ ?s ?p ?o }} UNION "
                f"{{ GRAPH ?g {{ ?s ?p ?o }} FILTER(?g != {entailed}) }} }}"
            )
            ox.serialize(triples, writer, format=ox.RdfFormat.N_TRIPLES)  # type: ignore[arg-type]
        else:
            # Quads come grouped by graph, so TriG still writes one block per graph.
            quads = (
                q
                for q in self.store.quads_for_pattern(None, None, None, None)
                if q.graph_name != entailed
            )
            ox.serialize(quads, writer, format=DUMP_FORMATS[job.result_format])  # type: ignore[arg-type]

    def export(self, job: ExportJob, writer: _ChunkWriter) -> None:
        """The stated data of the in-memory store, as :func:`escap_kg.export.export` writes it
        (the entailed graph left out, as in :meth:`dump`)."""
        from escap_kg.export import export
        from escap_kg.settings import Settings
        from escap_kg.store import KnowledgeGraph

        assert self.store is not None  # noqa: S101 - opened before any job
        entailed = ox.NamedNode(entailment.graph_of(self.store))
        stated = ox.Store()
        stated.extend(q for q in self.store if q.graph_name != entailed)
        kg = KnowledgeGraph(stated, [], Settings(base_iri=job.base_iri))
        writer.write(export(kg, job.result_format))

    def search(self, job: SearchJob, writer: _ChunkWriter) -> None:
        from escap_kg.search import INDEX_NAME, Index, SearchError, hits_json

        if self._searcher is None:
            path = self.index
            if self.source.database is not None:
                path = self.source.database / INDEX_NAME
            if path is None:
                raise RefusedError(503, "the search index could not be built; see the log")
            if self.source.database is None:
                _wait_for_index(path)  # built in the background since the start
            self._searcher = Index(path)
        try:
            hits = self._searcher.search(job.q, job.limit, job.kinds)
        except SearchError as err:
            raise RefusedError(err.status, err.message) from None
        writer.head = b"json application/json"
        writer.write(hits_json(hits))

    def index_for_search(self, store: ox.Store | None = None) -> None:
        """Index the store for full-text search, so that searches see what it holds now.

        In memory: into a new file beside the snapshot, which forks of this process search (the
        file before the previous one is removed: no worker reads it any more). On disk, after an
        update (``store`` open for writing): into the store's folder, replacing its index. A
        failure is logged and leaves searches answering 503, never the store unusable.
        """
        from escap_kg.search import INDEX_NAME, build_index

        try:
            if self.source.database is not None:
                if store is not None:
                    build_index(store, self.source.database / INDEX_NAME)
                return
            if self.store is None or self.source.snapshot is None:
                return
            self._built += 1
            path = self.source.snapshot.parent / f"search-{os.getpid()}-{self._built}.sqlite"
            build_index(self.store, path)
        except OSError as err:
            print(f"escap-kg: could not build the search index: {err}", file=sys.stderr)
            self.index = None
            return
        if self.previous_index is not None:
            self.previous_index.unlink(missing_ok=True)
        self.previous_index, self.index = self.index, path

    def index_in_background(self) -> None:
        """In memory: start indexing the graph for full-text search at low CPU priority, so
        that queries are answered meanwhile. Forks of this process find the index at
        :attr:`index` once it is written (see :func:`_wait_for_index`).

        From the files the store was loaded from, in a new interpreter (see
        :func:`index_main`); if one has changed since, from the store, in a fork.
        """
        if self.store is None or self.source.snapshot is None:
            return
        self._built += 1
        path = self.source.snapshot.parent / f"search-{os.getpid()}-{self._built}.sqlite"
        self.previous_index, self.index = self.index, path
        if self.files_unchanged():
            files = [str(self.source.snapshot), *(str(p) for p, _ in self.source.extra)]
            command = [sys.executable, "-m", "escap_kg.worker", "--index", str(os.getpid())]
            # Not a fork: a fork's allocations land on pages of this process's heap, each
            # copied on write (about 570 MiB at 1M statements, against 225 MiB at most in a
            # process of its own). No descriptor is inherited (the server must see this
            # process's socket close if it dies). Never waited for: reaped by the kernel.
            subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [*command, str(path), *files], stdin=subprocess.DEVNULL, close_fds=True
            )
            return
        if os.fork() != 0:
            return  # reaped by the kernel: the zygote ignores SIGCHLD
        code = 1
        try:
            os.nice(10)
            _build_index(self.store, path)
            code = 0
        finally:
            os._exit(code)

    def files_unchanged(self) -> bool:
        """Whether the files the store was loaded from are as they were then, so that the
        background index can be built from them rather than from the store, whose in-memory
        reads write to the pages they touch (a fork reading it copies about 310 MiB at 1M
        statements). The index is the same (see :func:`escap_kg.search.build_index`)."""
        return all(_version(path) == seen for path, seen in self._loaded.items())

    def update(self, job: UpdateJob) -> None:
        """Evaluate an update (the writer's side: see :func:`zygote_main`)."""
        text, shift = inspect_update(job)
        try:
            if self.source.database is None:
                assert self.store is not None  # noqa: S101 - opened before any job
                self.store.update(text, base_iri=job.base_iri)
                entailment.refresh(self.store)
                return
            writable = ox.Store(str(self.source.database))
            writable.update(text, base_iri=job.base_iri)
            entailment.refresh(writable)
        except SyntaxError as err:
            message = syntax_message(err, text, shift)
            raise RefusedError(400, f"malformed update: {message}") from None
        writable.flush()
        self.index_for_search(writable)
        del writable


#: Seconds a search waits for an index being built before it is answered 503.
INDEX_WAIT = 5.0


def _build_index(source: ox.Store | Iterator[ox.Triple | ox.Quad], path: Path) -> None:
    """Build the search index at ``path``; on failure, say why (the reason is left beside it
    for the searches that wait for it) and raise."""
    from escap_kg.search import build_index

    try:
        build_index(source, path)
    except BaseException as err:
        # Its folder gone, the server has stopped (and removed it): nothing to report.
        with contextlib.suppress(BaseException):
            if path.parent.is_dir():
                print(f"escap-kg: could not build the search index: {err}", file=sys.stderr)
                _failed(path).write_text(str(err))
        raise


def index_main(argv: Sequence[str]) -> None:
    """``python -m escap_kg.worker --index PARENT PATH FILE...``: the search index of these
    files (the snapshot of our graph and the files added to it), at low CPU priority, ended by
    the kernel if the zygote (``PARENT``) ends first, and under the network guard (it reads
    local files only)."""
    from escap_kg.sandbox import SandboxError, die_with_parent, install_network_guard
    from escap_kg.store import SourceFile, statements

    with contextlib.suppress(SandboxError):
        die_with_parent(int(argv[0]))
    with contextlib.suppress(SandboxError):
        install_network_guard()
    os.nice(10)
    path, files = Path(argv[1]), [Path(a) for a in argv[2:]]
    try:
        _build_index((s for f in files for s in statements(SourceFile(f, "", "extra"))), path)
    except BaseException:
        raise SystemExit(1) from None


def _version(path: Path) -> tuple[int, int]:
    """A file's modification time and size, to tell whether it changed (gone: (-1, -1))."""
    try:
        info = path.stat()
    except OSError:
        return -1, -1
    return info.st_mtime_ns, info.st_size


def _failed(index: Path) -> Path:
    """The file that tells, instead of ``index``, why building it failed."""
    return index.with_name(f"{index.name}.failed")


def _wait_for_index(path: Path) -> None:
    """Return once the index at ``path`` is written; refuse if its build failed, or is still
    running after :data:`INDEX_WAIT` seconds."""
    deadline = time.monotonic() + INDEX_WAIT
    while not path.is_file():
        if _failed(path).is_file():
            raise RefusedError(503, "the search index could not be built; see the log")
        if time.monotonic() > deadline:
            raise RefusedError(503, f"{INDEX_BUILDING}; try again in a few seconds")
        time.sleep(0.05)


def _memory_message(limit: int) -> str:
    return (
        f"the query needed more than the memory limit of {limit / 2**20:,.0f} MiB per query "
        "(--max-query-memory) and was stopped"
    )


def limit_memory(extra: int) -> None:
    """Let this process's address space grow by at most ``extra`` bytes from now on."""
    if extra <= 0:
        return
    import resource

    size = 0
    try:
        with open("/proc/self/status") as lines:
            for line in lines:
                if line.startswith("VmSize:"):
                    size = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return
    if size:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        soft = size + extra
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# The zygote ------------------------------------------------------------------------------------


def _pidfd(pid: int) -> tuple[int, bool]:
    try:
        return os.pidfd_open(pid), True
    except (AttributeError, OSError):  # not Linux >= 5.3, or it died at once
        return os.open(os.devnull, os.O_RDONLY), False


def _send_process(
    conn: multiprocessing.connection.Connection, channel: socket.socket, kind: str, pid: int
) -> None:
    """Tell the server of a new process: its pid, then a pidfd to wait on or kill it by."""
    pidfd, has_pidfd = _pidfd(pid)
    try:
        conn.send((kind, pid, has_pidfd))
        socket.send_fds(channel, [b"P"], [pidfd])
    finally:
        os.close(pidfd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_all(fd: int) -> bytes:
    parts = []
    while chunk := os.read(fd, 65536):
        parts.append(chunk)
    return b"".join(parts)


class Zygote:
    """The loop of the zygote process (see the module's docstring)."""

    def __init__(self, conn: multiprocessing.connection.Connection, source: StoreSource) -> None:
        self.conn = conn
        self.source = source
        self.holder = Worker(conn, source)
        self.channel = socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)

    def run(self, guard: str | None) -> None:
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forks are reaped by the kernel
        size = len(self.holder.store) if self.holder.store is not None else None
        send_control(self.conn, "ready", os.getpid(), guard, size)
        self.loop()

    def loop(self) -> None:
        while True:
            try:
                job = self.conn.recv()
            except (EOFError, OSError):
                return
            if job == "fork":
                self.fork_worker()
            elif isinstance(job, UpdateJob):
                if self.update(job):
                    return  # this process has handed over to its fork, the new zygote
            elif isinstance(job, tuple) and job[0] == "snapshot":
                self.snapshot(Path(job[1]))
            elif isinstance(job, tuple) and job[0] == "source" and self.source.database:
                # On disk: a load has swapped in a new version; forks from now on open it.
                self.source = replace(self.source, database=Path(job[1]))
                self.holder.source = self.source
                send_control(self.conn, "ok", os.getpid())
            else:
                send_control(self.conn, "error", 500, f"unknown request {job!r}")

    def fork_worker(self) -> None:
        _, fds, _, _ = socket.recv_fds(self.channel, 1, 1)
        pid = os.fork()
        if pid == 0:  # the new worker
            code = 0
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                # Not the zygote's socket: the server must see it close if the zygote dies.
                self.channel.close()
                self.conn.close()
                worker = Worker(multiprocessing.connection.Connection(fds[0]), self.source)
                worker.store = self.holder.store
                worker.index = self.holder.index
                if self.source.database is not None:
                    worker.open()
                limit_memory(self.source.max_memory)
                worker.serve()
            except BaseException:  # never return into the zygote's loop
                code = 1
            finally:
                os._exit(code)
        os.close(fds[0])
        _send_process(self.conn, self.channel, "forked", pid)

    def update(self, job: UpdateJob) -> bool:
        """Evaluate an update once, in a fork the server can stop at the time limit.

        In memory, a fork that succeeded becomes the zygote (this process then exits), so the
        zygote holds the updated graph without a second evaluation. On disk the fork commits to
        the store and exits. The server hears ``("writer", pid)`` and a pidfd first, then
        ``("ok", zygote pid)``, ``("error", status, message)``, or ``("stopped",)`` if the fork
        was killed. Returns True in the process that must leave the loop.
        """
        read_end, write_end = os.pipe()
        go_read, go_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the writer
            try:
                os.close(read_end)
                os.close(go_write)
                limit_memory(self.source.max_memory)
                outcome = self._evaluate(job)
                if outcome[0] == "ok" and self.source.database is None:
                    self.holder.index_for_search()
                    # Speak on the server's socket only once the zygote has said who we are.
                    os.read(go_read, 1)
                    os.close(go_read)
                    _write_all(write_end, b"H")  # handing over: the old zygote exits
                    os.close(write_end)
                    send_control(self.conn, "ok", os.getpid())
                    return False  # this process goes on as the zygote
                _write_all(write_end, pickle.dumps(outcome))
            except BaseException:  # noqa: S110 - never return into the loop by mistake
                pass
            os._exit(0)
        os.close(write_end)
        os.close(go_read)
        _send_process(self.conn, self.channel, "writer", pid)
        os.close(go_write)  # the writer may speak now
        result = _read_all(read_end)
        os.close(read_end)
        if result == b"H":
            return True  # the writer is the zygote now, holding the updated graph
        if result:
            outcome = pickle.loads(result)  # noqa: S301 - from our own fork
            if outcome[0] == "ok":
                send_control(self.conn, "ok", os.getpid())
            else:
                send_control(self.conn, *outcome)
        else:
            send_control(self.conn, "stopped")
        return False

    def _evaluate(self, job: UpdateJob) -> tuple[object, ...]:
        try:
            self.holder.update(job)
        except RefusedError as err:
            return ("error", err.status, err.message)
        except SyntaxError as err:
            return ("error", 400, f"malformed update: {syntax_message(err)}")
        except MemoryError:
            return ("error", 503, _memory_message(self.source.max_memory))
        except (RuntimeError, ValueError, OSError) as err:
            return ("error", 400, f"update failed: {plain_message(err)}")
        return ("ok",)

    def snapshot(self, path: Path) -> None:
        """Write the graph to ``path`` as N-Quads, in a fork (the zygote stays free to fork
        workers); the server waits on the fork's pidfd and then finds the file or not."""
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                if self.holder.store is not None:
                    partial = path.with_suffix(".partial")
                    self.holder.store.dump(str(partial), format=ox.RdfFormat.N_QUADS)
                    partial.rename(path)
                    code = 0
            except BaseException:  # noqa: S110 - the missing file tells the server
                pass
            finally:
                os._exit(code)
        _send_process(self.conn, self.channel, "dumping", pid)


def zygote_main(conn: multiprocessing.connection.Connection, source: StoreSource) -> None:
    """Hold the graph, then fork workers and evaluate updates at the pool's request.

    The network guard is installed once the graph is loaded and before any fork, so no process
    that evaluates SPARQL can open a network connection unless SERVICE is allowed.
    """
    zygote = Zygote(conn, source)
    if source.database is None:
        from escap_kg.store import DataError

        try:
            zygote.holder.open()
        except DataError as err:
            send_control(conn, "failed", str(err))  # names the file and the line
            return
        # Searches wait for the index; queries need not.
        zygote.holder.index_in_background()
    guard = "off: SERVICE is allowed"
    if source.guard:
        from escap_kg.sandbox import SandboxError, install_network_guard

        try:
            install_network_guard()
            guard = "on"
        except SandboxError as err:
            guard = f"unavailable: {err}"
    zygote.run(guard)


def main(argv: Sequence[str]) -> None:
    """Entry point of ``python -m escap_kg.worker --zygote FD (--guard|--no-guard) --max-memory
    N (--snapshot FILE [EXTRA ...] | --db DIR)``, and of the search index's builder (``--index``:
    see :func:`index_main`).

    Each EXTRA is a file path and a graph IRI separated by a tab. ``--zygote`` names the process
    in process lists, where its forks show the same command line.
    """
    # Ctrl-C at a terminal reaches the whole foreground process group: the server stops the
    # engine, which ends these processes, so they do not die of it mid-job with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if argv[0] == "--index":
        index_main(argv[1:])
        return
    _, fd, guard, _, max_memory, option, path, *extra = argv
    source = StoreSource(
        snapshot=Path(path) if option == "--snapshot" else None,
        database=Path(path) if option == "--db" else None,
        extra=tuple((Path(p), g) for p, _, g in (item.partition("\t") for item in extra)),
        guard=guard == "--guard",
        max_memory=int(max_memory),
    )
    try:
        zygote_main(multiprocessing.connection.Connection(int(fd)), source)
    except (BrokenPipeError, ConnectionResetError):
        return  # the server is gone (stopped while the graph loaded): nothing to answer


if __name__ == "__main__":
    # Run as ``python -m escap_kg.worker``: use the importable module's classes, so that jobs
    # unpickle to the same types the server sent.
    from escap_kg.worker import main as entry

    entry(sys.argv[1:])
