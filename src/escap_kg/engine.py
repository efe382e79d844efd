"""The query engine: Oxigraph in worker processes, off the event loop, with limits that kill.

Each worker process holds the graph (in memory, or an on-disk store opened read-only) and runs
one job at a time on Oxigraph's native engine, writing the answer with Oxigraph's own serialisers
in chunks. The server hands a job to an idle worker and the event loop watches the worker's
socket, so it is never blocked; a large answer streams to the client as it is produced, with the
socket between the processes as back-pressure, so memory does not grow with the answer.

Workers are forked from a zygote process that has loaded the graph, so a new worker is ready in
milliseconds. A job that runs past its time limit has its worker killed (its CPU work ends at
once) and another is forked in its place. A job that merely runs long has its worker demoted to
the lowest CPU priority while the pool forks an extra worker, so short queries keep their own
workers and their usual speed whatever long ones are running."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing.connection
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyoxigraph as ox

RESULT_FORMATS: dict[str, ox.QueryResultsFormat] = {
    "json": ox.QueryResultsFormat.JSON,
    "xml": ox.QueryResultsFormat.XML,
    "csv": ox.QueryResultsFormat.CSV,
    "tsv": ox.QueryResultsFormat.TSV,
}
GRAPH_FORMATS: dict[str, ox.RdfFormat] = {
    "turtle": ox.RdfFormat.TURTLE,
    "nt": ox.RdfFormat.N_TRIPLES,
    "xml": ox.RdfFormat.RDF_XML,
    "jsonld": ox.RdfFormat.JSON_LD,
}
DUMP_FORMATS: dict[str, ox.RdfFormat] = {
    "nquads": ox.RdfFormat.N_QUADS,
    "trig": ox.RdfFormat.TRIG,
    "nt": ox.RdfFormat.N_TRIPLES,
}
CHUNK = 64 * 1024
#: An answer up to this size is sent whole, with a Content-Length; a larger one streams.
BUFFER = 1024 * 1024


@dataclass(frozen=True)
class QueryJob:
    """A query for a worker: its text, the result format, and the dataset to run it over.

    ``default_graphs``/``named_graphs`` set the dataset (None: not given). With neither and no
    FROM in the query, the default graph is the union of all graphs. ``bindings`` are values for
    variables, ``(name, (kind, value))`` with kind ``iri`` or ``literal``, bound as terms.
    """

    text: str
    result_format: str
    base_iri: str | None = None
    default_graphs: tuple[str, ...] | None = None
    named_graphs: tuple[str, ...] | None = None
    union_default_graph: bool = True
    max_bytes: int = 0
    bindings: tuple[tuple[str, tuple[str, str]], ...] = ()


@dataclass(frozen=True)
class UpdateJob:
    """A SPARQL update for every worker."""

    text: str
    base_iri: str | None = None


@dataclass(frozen=True)
class DumpJob:
    """The whole store in one RDF format (``nquads``, ``trig``, or ``nt`` for the union)."""

    result_format: str


class EngineError(Exception):
    """A job failed; ``status`` is the HTTP status that fits."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Answer:
    """A query's answer: its format, its first bytes, and the rest as a stream if it is large.

    ``rest`` is None when ``body`` is the whole answer. Otherwise the answer must be read to the
    end (or ``rest.aclose()`` called) to give the worker back.
    """

    result_format: str
    body: bytes
    rest: AsyncIterator[bytes] | None = None

    async def read(self) -> bytes:
        """The whole answer in memory (for small answers and tests)."""
        if self.rest is None:
            return self.body
        parts = [self.body]
        async for chunk in self.rest:
            parts.append(chunk)
        return b"".join(parts)


@dataclass(frozen=True)
class StoreSource:
    """Where workers get the graph: an on-disk store, or an N-Quads snapshot to load in memory
    plus other RDF files, each into its named graph (``extra``: path and graph IRI)."""

    snapshot: Path | None = None
    database: Path | None = None
    extra: tuple[tuple[Path, str], ...] = ()

    def args(self) -> list[str]:
        if self.database is not None:
            return ["--db", str(self.database)]
        if self.snapshot is not None:
            extra = [f"{path}\t{graph}" for path, graph in self.extra]
            return ["--snapshot", str(self.snapshot), *extra]
        raise ValueError("a store source needs a snapshot or a database")


# Messages between the processes ---------------------------------------------------------------
#
# Every message from a worker is one frame: b"D" + answer bytes; b"E" + the last answer bytes,
# which ends the answer (a small answer is a single frame); or b"C" + a pickled tuple:
# ("ready", pid), ("ok",) after an update or a close/reopen, or ("error", status, message) in
# place of either.

DATA, CONTROL, LAST = b"D", b"C", b"E"


def _send_control(conn: multiprocessing.connection.Connection, *message: object) -> None:
    import pickle

    conn.send_bytes(CONTROL + pickle.dumps(message))


def _decode(raw: bytes) -> Any:
    """Answer bytes, or the control tuple of a frame."""
    import pickle

    if raw[:1] == DATA:
        return raw[1:]
    if raw[:1] == LAST:
        return ("end", raw[1:])
    return pickle.loads(raw[1:])  # noqa: S301 - frames from our own worker process


# The worker process ---------------------------------------------------------------------------


class _TooLargeError(Exception):
    pass


class _ChunkWriter:
    """A file-like sink for Oxigraph's serialisers that sends chunks to the server."""

    def __init__(self, conn: multiprocessing.connection.Connection, limit: int) -> None:
        self.conn = conn
        self.limit = limit
        self.buffer = bytearray()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.limit and self.size > self.limit:
            raise _TooLargeError
        self.buffer += data
        if len(self.buffer) >= CHUNK:
            self.conn.send_bytes(DATA + self.buffer)
            self.buffer = bytearray()
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        """Send what is left together with the end of the answer, in one frame."""
        self.conn.send_bytes(LAST + self.buffer)
        self.buffer = bytearray()


def _query_options(job: QueryJob) -> dict[str, Any]:
    options: dict[str, Any] = {"base_iri": job.base_iri}
    if job.default_graphs is not None or job.named_graphs is not None:
        options["default_graph"] = [ox.NamedNode(g) for g in job.default_graphs or ()]
        options["named_graphs"] = [ox.NamedNode(g) for g in job.named_graphs or ()]
    elif job.union_default_graph:
        options["use_default_graph_as_union"] = True
    if job.bindings:
        options["substitutions"] = {
            ox.Variable(name): ox.NamedNode(value) if kind == "iri" else ox.Literal(value)
            for name, (kind, value) in job.bindings
        }
    return options


class _Worker:
    """The loop of a worker process: one job at a time, answers sent as byte chunks.

    Messages to the server (see the frames above): ``ready``; an answer as data frames ending
    with a last frame; ``ok`` after an update; or ``error`` at any point.
    """

    def __init__(self, conn: multiprocessing.connection.Connection, source: StoreSource) -> None:
        self.conn = conn
        self.source = source
        self.store: ox.Store | None = None

    def open(self) -> None:
        if self.source.database is not None:
            self.store = ox.Store.read_only(str(self.source.database))
        else:
            from escap_kg.store import SourceFile, load_into

            store = ox.Store()
            if self.source.snapshot is not None:
                store.load(path=str(self.source.snapshot), format=ox.RdfFormat.N_QUADS)
            for path, graph in self.source.extra:
                load_into(store, SourceFile(path, graph, "extra"))
            self.store = store

    def serve(self, opened: bool = False) -> None:
        if not opened:
            self.open()
        _send_control(self.conn, "ready", os.getpid())
        while True:
            try:
                job = self.conn.recv()
            except (EOFError, OSError):
                return
            self.handle(job)

    def handle(self, job: object) -> None:
        limit = job.max_bytes if isinstance(job, QueryJob) else 0
        writer = _ChunkWriter(self.conn, limit)
        try:
            if isinstance(job, QueryJob):
                self.query(job, writer)
            elif isinstance(job, DumpJob):
                self.dump(job, writer)
            elif isinstance(job, UpdateJob):
                self.update(job)
                _send_control(self.conn, "ok")
                return
            elif job == "close":
                self.store = None
                _send_control(self.conn, "ok")
                return
            elif job == "reopen":
                self.open()
                _send_control(self.conn, "ok")
                return
            elif isinstance(job, tuple) and job[0] == "snapshot":
                assert self.store is not None  # noqa: S101 - opened before any job
                self.store.dump(str(job[1]), format=ox.RdfFormat.N_QUADS)
                _send_control(self.conn, "ok")
                return
            else:
                _send_control(self.conn, "error", 500, f"unknown job {job!r}")
                return
            writer.close()
        except _TooLargeError:
            message = f"the answer is larger than the limit of {limit:,} bytes; add LIMIT"
            _send_control(self.conn, "error", 413, message)
        except SyntaxError as err:
            _send_control(self.conn, "error", 400, f"malformed query: {_syntax_message(err)}")
        except (RuntimeError, ValueError, OSError) as err:
            _send_control(self.conn, "error", 400, f"query failed: {err}")

    def query(self, job: QueryJob, writer: _ChunkWriter) -> None:
        assert self.store is not None  # noqa: S101 - opened before any job
        result = self.store.query(job.text, **_query_options(job))
        if isinstance(result, ox.QueryTriples):
            ox.serialize(result, writer, format=GRAPH_FORMATS[job.result_format])  # type: ignore[arg-type]
        else:
            result.serialize(writer, format=RESULT_FORMATS[job.result_format])  # type: ignore[arg-type]

    def dump(self, job: DumpJob, writer: _ChunkWriter) -> None:
        assert self.store is not None  # noqa: S101 - opened before any job
        if job.result_format == "nt":
            triples = self.store.query(
                "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }", use_default_graph_as_union=True
            )
            ox.serialize(triples, writer, format=ox.RdfFormat.N_TRIPLES)  # type: ignore[arg-type]
        else:
            self.store.dump(writer, format=DUMP_FORMATS[job.result_format])  # type: ignore[arg-type]

    def update(self, job: UpdateJob) -> None:
        if self.source.database is None:
            assert self.store is not None  # noqa: S101 - opened before any job
            self.store.update(job.text, base_iri=job.base_iri)
            return
        # On disk the workers hold read-only instances, all closed by now: write through a
        # read-write instance of our own, closed again before the others reopen.
        self.store = None
        try:
            writable = ox.Store(str(self.source.database))
            writable.update(job.text, base_iri=job.base_iri)
            writable.flush()
            del writable
        finally:
            self.open()


def _syntax_message(err: SyntaxError) -> str:
    message = str(err.args[0]) if err.args else str(err)
    if message.startswith("error at ") and ": " in message:
        position, _, rest = message[len("error at ") :].partition(": ")
        line, _, column = position.partition(":")
        return f"line {line}, column {column}: {rest}"
    return message


def worker_main(argv: Sequence[str]) -> None:
    """Entry point of ``python -m escap_kg.engine --zygote FD (--snapshot FILE [EXTRA ...] |
    --db DIR)``: the pool's zygote (see :func:`zygote_main`), which forks the workers.

    Each EXTRA is a file path and a graph IRI separated by a tab. ``--zygote`` names the process
    in process lists, where its forks show the same command line.
    """
    _, fd, option, path, *extra = argv
    source = StoreSource(
        snapshot=Path(path) if option == "--snapshot" else None,
        database=Path(path) if option == "--db" else None,
        extra=tuple((Path(p), g) for p, _, g in (item.partition("\t") for item in extra)),
    )
    zygote_main(multiprocessing.connection.Connection(int(fd)), source)


def zygote_main(conn: multiprocessing.connection.Connection, source: StoreSource) -> None:
    """Hold the graph, and fork a ready worker for each ``"fork"`` request.

    A fork of a process that has already loaded the graph is ready in milliseconds, where a
    new process would take the time to start Python and load the graph again; the pool can
    then add a worker the moment a long query holds one. Each request carries the socket the
    new worker talks over; the reply is the worker's pid, then a pidfd for it, so the server can
    kill it without any risk of hitting a reused pid. In memory the zygote also applies every
    update, so later forks see it. On disk each fork opens the store itself (a store must not be
    shared across a fork). Forks are reaped by the kernel (SIGCHLD ignored).
    """
    import signal

    zygote = _Worker(conn, source)
    if source.database is None:
        zygote.open()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    _send_control(conn, "ready", os.getpid())
    with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as channel:
        while True:
            try:
                job = conn.recv()
            except (EOFError, OSError):
                return
            if job != "fork":
                zygote.handle(job)
                continue
            _, fds, _, _ = socket.recv_fds(channel, 1, 1)
            pid = os.fork()
            if pid == 0:  # the new worker
                code = 0
                try:
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    # Not the zygote's socket: the server must see it close if the zygote dies.
                    channel.close()
                    conn.close()
                    worker = _Worker(multiprocessing.connection.Connection(fds[0]), source)
                    worker.store = zygote.store
                    worker.serve(opened=source.database is None)
                except BaseException:  # never return into the zygote's loop
                    code = 1
                finally:
                    os._exit(code)
            os.close(fds[0])
            try:
                pidfd, has_pidfd = os.pidfd_open(pid), True
            except (AttributeError, OSError):  # not Linux >= 5.3, or it died at once
                pidfd, has_pidfd = os.open(os.devnull, os.O_RDONLY), False
            try:
                conn.send(("forked", pid, has_pidfd))
                socket.send_fds(channel, [b"P"], [pidfd])
            finally:
                os.close(pidfd)


# The pool ------------------------------------------------------------------------------------


class _Process:
    """The zygote process, joined to the server by a socket pair.

    A plain subprocess, not multiprocessing's spawn, so the child never re-imports the server's
    ``__main__`` (which breaks under ``python -c`` and some process managers).
    """

    def __init__(self, source: StoreSource) -> None:
        parent, child = socket.socketpair()
        self.conn = multiprocessing.connection.Connection(parent.detach())
        child_fd = child.detach()
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [
                    sys.executable,
                    "-m",
                    "escap_kg.engine",
                    "--zygote",
                    str(child_fd),
                    *source.args(),
                ],
                pass_fds=(child_fd,),
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(child_fd)

    def wait_ready(self, timeout: float) -> None:
        _wait_ready(self, timeout)

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
            self.process.wait(5)
        with contextlib.suppress(Exception):
            self.conn.close()

    def fork(self) -> _Forked:
        """A new worker, forked from the zygote (call under the engine's zygote lock)."""
        parent, child = socket.socketpair()
        try:
            self.conn.send("fork")
            with socket.fromfd(self.conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as channel:
                socket.send_fds(channel, [b"F"], [child.fileno()])
                if not self.conn.poll(10):
                    raise OSError("the zygote did not answer")
                _, pid, has_pidfd = self.conn.recv()
                _, fds, _, _ = socket.recv_fds(channel, 1, 1)
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        if not has_pidfd:
            os.close(fds[0])
            fds[0] = -1
        return _Forked(multiprocessing.connection.Connection(parent.detach()), pid, fds[0])

    def apply(self, job: object, timeout: float) -> bool:
        """Send an update (or a close/reopen) to the zygote; True if it says ok."""
        try:
            self.conn.send(job)
            if not self.conn.poll(timeout):
                return False
            message = _decode(self.conn.recv_bytes())
        except (EOFError, OSError):
            return False
        return bool(message[0] == "ok")


class _Forked:
    """A worker process forked by the zygote: its socket, its pid, and a pidfd to kill it by
    (-1 where the system has none; the pid is used then)."""

    def __init__(self, conn: multiprocessing.connection.Connection, pid: int, pidfd: int) -> None:
        self.conn = conn
        self.pid = pid
        self.pidfd = pidfd
        self.generation = 0
        self.killed = False

    def wait_ready(self, timeout: float) -> None:
        _wait_ready(self, timeout)

    def renice(self) -> None:
        """Lower the worker's CPU priority for good (it cannot be raised back): nice 19, and
        Linux's idle scheduling class, under which any ordinary process that wakes up takes the
        CPU from it at once."""
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, self.pid, 19)
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setscheduler(self.pid, os.SCHED_IDLE, os.sched_param(0))

    def kill(self) -> None:
        """SIGKILL through the pidfd: its CPU work ends now; the zygote reaps it."""
        if self.killed:
            return
        self.killed = True
        with contextlib.suppress(OSError):
            if self.pidfd < 0:
                os.kill(self.pid, signal.SIGKILL)
            else:
                try:
                    signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
                finally:
                    os.close(self.pidfd)
        self.pidfd = -1
        with contextlib.suppress(Exception):
            self.conn.close()


def _wait_ready(process: _Process | _Forked, timeout: float) -> None:
    try:
        if process.conn.poll(timeout):
            message = _decode(process.conn.recv_bytes())
            if message[0] == "ready":
                return
    except (EOFError, OSError):
        pass
    process.kill()
    raise EngineError(503, "a query worker failed to start")


_CRASHED = ("crashed",)


@dataclass
class _Lease:
    """A worker lent to one job, returned (or replaced) exactly once."""

    worker: _Forked
    engine: QueryEngine
    loop: asyncio.AbstractEventLoop
    deadline: float
    done: bool = field(default=False)

    async def recv(self) -> bytes | None:
        """The next frame, or None when the deadline passed; raises EOFError on a crash.

        The event loop watches the socket itself: no thread hand-off on the hot path.
        """
        conn = self.worker.conn
        if not conn.poll(0):
            remaining = None if self.deadline == float("inf") else self.deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            readable: asyncio.Future[None] = self.loop.create_future()
            fd = conn.fileno()

            def wake() -> None:
                if not readable.done():
                    readable.set_result(None)

            self.loop.add_reader(fd, wake)
            try:
                await asyncio.wait_for(readable, remaining)
            except TimeoutError:
                return None
            finally:
                self.loop.remove_reader(fd)
                # Some event loops (uvloop) leave a watched descriptor non-blocking; a frame
                # larger than the socket buffer must then still be read whole.
                os.set_blocking(fd, True)
        # A frame is written whole by the worker; once its first bytes are here the rest follows.
        return conn.recv_bytes()

    def release(self) -> None:
        if not self.done:
            self.done = True
            self.engine._give_back(self.worker)

    def discard(self) -> None:
        if not self.done:
            self.done = True
            self.engine._replace(self.worker, self.loop)


#: A job that has held its worker this long (seconds) counts as long: its worker's CPU priority
#: is lowered, and the pool starts another worker so that short queries never queue behind it.
LONG_AFTER = 0.1
#: Workers the pool may add beyond its size while long jobs hold workers (see ``max_workers``).
BURST = 4


class QueryEngine:
    """A pool of Oxigraph worker processes over one store, forked from a zygote.

    The pool keeps ``workers`` workers free for short queries. A job that holds its worker
    past :data:`LONG_AFTER` is long: its worker drops to the lowest CPU priority and a new
    worker is forked in its place, up to ``max_workers`` in all. So a few runaway queries cannot
    make ordinary ones wait, and do not slow them down much while they run. Once a long job ends
    its worker is retired, and the pool shrinks back.
    """

    def __init__(
        self,
        source: bytes | Path,
        workers: int | None = None,
        start_timeout: float = 120.0,
        extra: Sequence[tuple[Path, str]] = (),
        max_workers: int | None = None,
    ) -> None:
        """``source`` is N-Quads to hold in memory (plus ``extra`` files, each loaded by every
        worker into its named graph), or the folder of an on-disk store."""
        cores = os.cpu_count() or 1
        self.size = max(1, workers or min(cores, max_workers or cores))
        self.max_size = max(self.size, max_workers or self.size + BURST)
        self.start_timeout = start_timeout
        self._dir = tempfile.TemporaryDirectory(prefix="escap-kg-")
        if isinstance(source, Path):
            self.source = StoreSource(database=source)
        else:
            snapshot = Path(self._dir.name) / "snapshot.nq"
            snapshot.write_bytes(source)
            self.source = StoreSource(snapshot=snapshot, extra=tuple(extra))
        self._idle: asyncio.Queue[_Forked] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads = ThreadPoolExecutor(
            max_workers=self.max_size * 2 + 4, thread_name_prefix="query"
        )
        self._lock = threading.Lock()
        self._zygote_lock = threading.Lock()
        self._update_lock: asyncio.Lock | None = None
        self._zygote: _Process | None = None
        self._all: set[_Forked] = set()
        self._busy: dict[_Forked, _Lease] = {}
        self._long: set[_Forked] = set()
        self._starting = 0
        self._generation = 0
        self.killed = 0
        self.closed = False

    def launch(self) -> None:
        """Start the zygote now, without waiting for it.

        It imports Oxigraph and loads the graph while the server finishes starting;
        :meth:`start` then only waits for it and forks the workers.
        """
        if self._zygote is None:
            self._zygote = _Process(self.source)

    @property
    def on_disk(self) -> bool:
        """True when the workers share an on-disk store."""
        return self.source.database is not None

    async def start(self) -> None:
        """Start the zygote and the workers, and wait until each has opened the graph."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._idle = asyncio.Queue()
        self._update_lock = asyncio.Lock()
        self.launch()
        zygote = self._zygote
        assert zygote is not None  # noqa: S101 - launched above
        await loop.run_in_executor(self._threads, zygote.wait_ready, self.start_timeout)
        workers = await asyncio.gather(
            *(loop.run_in_executor(self._threads, self._spawn) for _ in range(self.size))
        )
        for worker in workers:
            self._arrived(worker, counted=False)

    # Growing and shrinking (on the event loop, except _spawn) ---------------------------------

    def _spawn(self) -> _Forked:
        """Fork a worker and wait until it is ready (in a thread: it blocks)."""
        if self.closed:
            raise EngineError(503, "the query engine is stopping")
        with self._zygote_lock:
            for attempt in range(2):
                zygote = self._zygote
                try:
                    if zygote is None:
                        raise OSError("no zygote")
                    worker = zygote.fork()
                    break
                except (EOFError, OSError):
                    # The zygote died (killed, out of memory): start another from the snapshot.
                    if zygote is not None:
                        zygote.kill()
                    if attempt or self.closed:
                        raise EngineError(503, "could not start a query worker") from None
                    self._zygote = _Process(self.source)
                    self._zygote.wait_ready(self.start_timeout)
            worker.generation = self._generation
        worker.wait_ready(self.start_timeout)
        return worker

    def _capacity(self) -> int:
        """Workers live or starting that no long job holds."""
        return len(self._all) + self._starting - len(self._long)

    def _top_up(self) -> None:
        """Fork workers until ``size`` are free of long jobs, within ``max_size`` in all."""
        loop = self._loop
        if loop is None or self.closed:
            return
        while self._capacity() < self.size and len(self._all) + self._starting < self.max_size:
            if len(self._all) + self._starting >= self.size and not self._memory_to_spare():
                return
            self._starting += 1

            def spawn() -> None:
                try:
                    worker = self._spawn()
                except EngineError:
                    loop.call_soon_threadsafe(self._failed_start)
                    return
                loop.call_soon_threadsafe(self._arrived, worker)

            self._threads.submit(spawn)

    def _memory_to_spare(self) -> bool:
        """True if the machine could hold one more copy of the graph.

        An added worker shares the zygote's pages at first, but Oxigraph's reads write to the
        pages they use, so in time it may copy all of them: a worker beyond ``size`` is only
        added while the available memory is over twice the zygote's resident size.
        """
        zygote = self._zygote
        available = available_memory_kib()
        if zygote is None or available is None:
            return available is None  # no /proc/meminfo (not Linux): no way to tell
        return available > 2 * _proc_kib(f"/proc/{zygote.pid}/status", "VmRSS:")

    def _failed_start(self) -> None:
        self._starting -= 1

    def _arrived(self, worker: _Forked, counted: bool = True) -> None:
        if counted:
            self._starting -= 1
        if self.closed or worker.generation != self._generation:
            # Forked before an update reached the zygote: it holds the old graph.
            worker.kill()
            self._top_up()
            return
        with self._lock:
            self._all.add(worker)
        self._give_back(worker)

    def _give_back(self, worker: _Forked) -> None:
        self._busy.pop(worker, None)
        if self._idle is None or self.closed:
            return
        if worker in self._long or self._capacity() > self.size:
            self._remove(worker, killed=False)
            return
        self._idle.put_nowait(worker)

    def _remove(self, worker: _Forked, killed: bool = True) -> None:
        """Kill a worker (its job's CPU work ends at once) and restore the pool's capacity."""
        worker.kill()
        with self._lock:
            self._all.discard(worker)
            self.killed += killed
        self._busy.pop(worker, None)
        self._long.discard(worker)
        self._trim()
        self._top_up()

    def _trim(self) -> None:
        """Retire idle workers beyond what the pool needs now."""
        while self._idle is not None and self._capacity() > self.size and not self._idle.empty():
            worker = self._idle.get_nowait()
            worker.kill()
            with self._lock:
                self._all.discard(worker)

    def _went_long(self, lease: _Lease) -> None:
        if self.max_size == self.size:
            return  # a fixed pool: nothing to add, and no reason to demote the worker
        if self._busy.get(lease.worker) is lease and not lease.done:
            self._long.add(lease.worker)
            lease.worker.renice()
            self._top_up()

    def _replace(self, dead: _Forked, loop: asyncio.AbstractEventLoop) -> None:
        """Kill a worker whose job failed or ran too long; the pool forks a successor."""
        del loop
        self._remove(dead)

    # Leasing ---------------------------------------------------------------------------------

    async def _acquire(self, deadline: float) -> _Forked:
        if self._idle is None:
            raise EngineError(503, "the query engine is not running")
        remaining = deadline - time.monotonic()
        try:
            return await asyncio.wait_for(self._idle.get(), max(remaining, 0.001))
        except TimeoutError:
            raise EngineError(503, "all query workers are busy; try again shortly") from None

    async def _lease(self, timeout: float) -> _Lease:
        """An idle worker, and the deadline of the job it runs.

        Waiting for a worker has its own bound (twice the time limit: long enough to outlast
        queries that are killed at the limit and their replacement's start); the job's time
        limit starts once it has a worker, so a queued query is stopped for its own run time.
        """
        if self._update_lock is not None and self._update_lock.locked():
            async with self._update_lock:
                pass
        worker = await self._acquire(time.monotonic() + 2 * timeout + 5)
        loop = asyncio.get_running_loop()
        lease = _Lease(worker, self, loop, time.monotonic() + timeout)
        self._busy[worker] = lease
        loop.call_later(LONG_AFTER, self._went_long, lease)
        return lease

    async def query(self, job: QueryJob, timeout: float) -> Answer:
        """Run a query on an idle worker; raise :class:`EngineError` on failure or timeout."""
        return await self._run(job, job.result_format, timeout)

    async def dump(self, job: DumpJob, timeout: float) -> Answer:
        """The whole store in one format, streamed (for downloads of on-disk stores)."""
        return await self._run(job, job.result_format, timeout)

    async def _run(self, job: object, result_format: str, timeout: float) -> Answer:
        lease = await self._lease(timeout)
        try:
            first = await _send_and_read(lease, job)
        except BaseException:
            lease.discard()
            raise
        kind, payload = first
        if kind == "timeout":
            lease.discard()
            raise EngineError(
                503, f"the query ran longer than the time limit of {timeout:g} s and was stopped"
            )
        if kind == "crashed":
            lease.discard()
            raise EngineError(500, "the query worker stopped unexpectedly")
        if kind == "error":
            lease.release()
            status, message = payload
            raise EngineError(status, message)
        body, finished = payload
        if finished:
            lease.release()
            return Answer(result_format, body)
        return Answer(result_format, body, self._rest(lease, timeout))

    async def _rest(self, lease: _Lease, timeout: float) -> AsyncIterator[bytes]:
        try:
            while True:
                kind, payload = await _read_more(lease)
                if kind == "chunk":
                    yield payload
                elif kind == "end":
                    lease.release()
                    if payload:
                        yield payload
                    return
                elif kind == "timeout":
                    raise EngineError(
                        503, f"the query ran longer than the time limit of {timeout:g} s"
                    )
                elif kind == "error":
                    raise EngineError(*payload)
                else:
                    raise EngineError(500, "the query worker stopped unexpectedly")
        finally:
            # An answer abandoned half way (client gone, error, limit): its worker may still be
            # writing, so it is replaced rather than reused.
            lease.discard()

    async def update(
        self,
        job: UpdateJob,
        timeout: float,
        after_first: Callable[[], bytes | None] | None = None,
    ) -> None:
        """Apply an update to every worker, all or nothing.

        Every worker is taken out of service first, so no query sees a half-updated pool. The
        update runs on one worker under the time limit; only when it succeeds is it applied to
        the others (in memory) or do the others reopen the store (on disk). Oxigraph applies an
        update atomically, so a failed or killed one changes nothing. ``after_first`` runs once
        the update has succeeded (the server applies it to its own copy there) and may return the
        new content for workers started later.
        """
        if self._update_lock is None or self._idle is None:
            raise EngineError(503, "the query engine is not running")
        loop = asyncio.get_running_loop()
        async with self._update_lock:
            deadline = time.monotonic() + timeout
            taken: list[_Forked] = []
            reopened = not self.on_disk
            try:
                # Every live worker, and any still starting; a long job's worker leaves the
                # pool when its job ends, so look again every so often rather than wait on it.
                while self._starting or any(w not in taken for w in self._all):
                    if time.monotonic() > deadline + self.start_timeout:
                        raise EngineError(503, "the query workers did not become free in time")
                    with contextlib.suppress(EngineError):
                        taken.append(await self._acquire(time.monotonic() + 0.05))
                if self.on_disk:
                    await self._broadcast(taken, "close", loop)
                first, *rest = taken
                lease = _Lease(first, self, loop, deadline)
                kind, payload = await _send_and_read(lease, job)
                if kind in ("timeout", "crashed"):
                    taken.remove(first)
                    self._replace(first, loop)
                    if kind == "timeout":
                        raise EngineError(
                            503,
                            f"the update ran longer than the time limit of {timeout:g} s and was "
                            "stopped; nothing was changed",
                        )
                    raise EngineError(500, "the update worker stopped; nothing was changed")
                if kind == "error":
                    status, message = payload
                    raise EngineError(status, message.replace("query failed", "update failed"))
                snapshot = None
                if after_first is not None:
                    snapshot = await loop.run_in_executor(self._threads, after_first)
                if self.source.snapshot is not None:
                    await self._new_snapshot(first, snapshot, loop)
                    await loop.run_in_executor(self._threads, self._update_zygote, job)
                await self._broadcast(rest, "reopen" if self.on_disk else job, loop)
                reopened = True
            finally:
                if not reopened:
                    await self._broadcast(taken, "reopen", loop)
                for worker in taken:
                    self._give_back(worker)

    def _update_zygote(self, job: UpdateJob) -> None:
        """Apply an update to the zygote too, so later forks hold the updated graph.

        If it fails the zygote is replaced by one that loads the updated snapshot. Workers
        forked before this point are of an older generation and are not taken into the pool.
        """
        with self._zygote_lock:
            zygote = self._zygote
            if zygote is None or not zygote.apply(job, self.start_timeout):
                if zygote is not None:
                    zygote.kill()
                self._zygote = _Process(self.source)
                self._zygote.wait_ready(self.start_timeout)
            self._generation += 1

    async def _new_snapshot(
        self, updated: _Forked, content: bytes | None, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Workers started from now on load the updated graph."""
        path = Path(self._dir.name) / f"snapshot-{time.monotonic_ns()}.nq"
        if content is not None and not self.source.extra:
            path.write_bytes(content)
        else:
            # The server holds no copy of the whole graph: the updated worker writes it.
            lease = _Lease(updated, self, loop, float("inf"))
            kind, _ = await _send_and_read(lease, ("snapshot", str(path)))
            if kind != "done":
                raise EngineError(500, "could not save the updated graph for new workers")
        old = self.source.snapshot
        self.source = StoreSource(snapshot=path)
        if old is not None:
            old.unlink(missing_ok=True)

    async def _broadcast(
        self, workers: list[_Forked], job: object, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Send one job to several workers; a worker that does not say ok is replaced."""
        leases = [_Lease(w, self, loop, float("inf")) for w in workers]
        replies = await asyncio.gather(*(_send_and_read(lease, job) for lease in leases))
        for worker, (kind, _) in zip(list(workers), replies, strict=True):
            if kind != "done":
                workers.remove(worker)
                self._replace(worker, loop)

    def pids(self) -> list[int]:
        """The process ids of the live workers."""
        with self._lock:
            return sorted(w.pid for w in self._all)

    async def close(self) -> None:
        """Stop every worker and remove the snapshot."""
        self.closed = True
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            worker.kill()
        with self._zygote_lock:
            if self._zygote is not None:
                self._zygote.kill()
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._dir.cleanup()


def _proc_kib(path: str, key: str) -> int:
    """A value in KiB from a /proc file (``VmRSS:`` of a status file...), 0 if not there."""
    try:
        with open(path) as lines:
            for line in lines:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def available_memory_kib() -> int | None:
    """The memory the system can still give (MemAvailable), or None where it cannot say."""
    return _proc_kib("/proc/meminfo", "MemAvailable:") or None


async def _send_and_read(lease: _Lease, job: object) -> tuple[str, Any]:
    """Send a job and read until the answer is complete or ``BUFFER`` bytes have come."""
    try:
        lease.worker.conn.send(job)
        parts: list[bytes] = []
        size = 0
        while True:
            raw = await lease.recv()
            if raw is None:
                return ("timeout", None)
            message = _decode(raw)
            if isinstance(message, bytes):
                parts.append(message)
                size += len(message)
                if size >= BUFFER:
                    return ("ok", (b"".join(parts), False))
            elif message[0] == "error":
                return ("error", (message[1], message[2]))
            elif message[0] == "end":
                if len(message) > 1:
                    parts.append(message[1])
                return ("ok", (b"".join(parts), True))
            elif message[0] == "ok":
                return ("done", None)
    except (EOFError, OSError):
        return ("crashed", None)


async def _read_more(lease: _Lease) -> tuple[str, Any]:
    try:
        raw = await lease.recv()
    except (EOFError, OSError):
        return ("crashed", None)
    if raw is None:
        return ("timeout", None)
    message = _decode(raw)
    if isinstance(message, bytes):
        return ("chunk", message)
    if message[0] == "end":
        return ("end", message[1] if len(message) > 1 else b"")
    if message[0] == "error":
        return ("error", (message[1], message[2]))
    return ("crashed", None)


def snapshot_of(store: ox.Store) -> bytes:
    """The store's quads as N-Quads, for workers to load."""
    return ox.serialize(store, format=ox.RdfFormat.N_QUADS) or b""


__all__: Sequence[str] = (
    "Answer",
    "DumpJob",
    "EngineError",
    "QueryEngine",
    "QueryJob",
    "StoreSource",
    "UpdateJob",
)


if __name__ == "__main__":
    # Run as ``python -m escap_kg.engine``: use the importable module's classes, so that jobs
    # unpickle to the same types the server sent.
    from escap_kg.engine import worker_main as main

    main(sys.argv[1:])
