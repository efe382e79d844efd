"""The query engine: Oxigraph in worker processes, off the event loop, with limits that kill.

Each worker process holds the graph and runs one query at a time on Oxigraph's native engine,
writing the answer with Oxigraph's own serialisers. The server hands a query to an idle worker
and waits for its answer in a thread, so the event loop is never blocked. A query that runs past
its time limit has its worker killed (its CPU work ends at once) and a fresh worker is started in
its place, so the pool stays full.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing.connection
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
CHUNK = 64 * 1024


@dataclass(frozen=True)
class QueryJob:
    """A query for a worker: its text, the result format, and the dataset to run it over.

    ``default_graphs``/``named_graphs`` set the dataset (None: not given). With neither and no
    FROM in the query, the default graph is the union of all graphs.
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


class EngineError(Exception):
    """A query or update failed; ``status`` is the HTTP status that fits."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Answer:
    """A query's answer: the serialisation format name and the bytes."""

    result_format: str
    body: bytes


# The worker process ---------------------------------------------------------------------------


class _LimitedWriter:
    """Collects serialised output, refusing to grow past a byte limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.limit and self.size > self.limit:
            raise _TooLargeError
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None


class _TooLargeError(Exception):
    pass


def _run_query(store: ox.Store, job: QueryJob) -> Answer:
    kwargs: dict[str, Any] = {"base_iri": job.base_iri}
    if job.bindings:
        kwargs["substitutions"] = {
            ox.Variable(name): ox.NamedNode(value) if kind == "iri" else ox.Literal(value)
            for name, (kind, value) in job.bindings
        }
    if job.default_graphs is not None or job.named_graphs is not None:
        kwargs["default_graph"] = [ox.NamedNode(g) for g in job.default_graphs or ()]
        kwargs["named_graphs"] = [ox.NamedNode(g) for g in job.named_graphs or ()]
    elif job.union_default_graph:
        kwargs["use_default_graph_as_union"] = True
    result = store.query(job.text, **kwargs)
    writer = _LimitedWriter(job.max_bytes)
    if isinstance(result, ox.QueryTriples):
        rdf = GRAPH_FORMATS[job.result_format]
        ox.serialize(result, writer, format=rdf)  # type: ignore[arg-type]
    else:
        result.serialize(writer, format=RESULT_FORMATS[job.result_format])  # type: ignore[arg-type]
    return Answer(job.result_format, b"".join(writer.parts))


def _worker_main(conn: multiprocessing.connection.Connection, snapshot: str) -> None:
    """Load the snapshot, say ready, then answer jobs until the pipe closes."""
    store = ox.Store()
    store.load(path=snapshot, format=ox.RdfFormat.N_QUADS)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if isinstance(job, QueryJob):
                conn.send(("ok", _run_query(store, job)))
            elif isinstance(job, UpdateJob):
                store.update(job.text, base_iri=job.base_iri)
                conn.send(("ok", None))
        except _TooLargeError:
            limit = job.max_bytes if isinstance(job, QueryJob) else 0
            message = f"the answer is larger than the limit of {limit:,} bytes; add LIMIT"
            conn.send(("error", 413, message))
        except SyntaxError as err:
            conn.send(("error", 400, f"malformed query: {_syntax_message(err)}"))
        except (RuntimeError, ValueError, OSError) as err:
            conn.send(("error", 400, f"query failed: {err}"))


def _syntax_message(err: SyntaxError) -> str:
    message = str(err.args[0]) if err.args else str(err)
    if message.startswith("error at ") and ": " in message:
        position, _, rest = message[len("error at ") :].partition(": ")
        line, _, column = position.partition(":")
        return f"line {line}, column {column}: {rest}"
    return message


# The pool ------------------------------------------------------------------------------------


class _Worker:
    """One worker: a ``python -m escap_kg.engine`` process joined to us by a socket pair.

    A plain subprocess, not multiprocessing's spawn, so the child never re-imports the parent's
    ``__main__`` (which breaks under ``python -c`` and some servers).
    """

    def __init__(self, snapshot: Path) -> None:
        parent, child = socket.socketpair()
        self.conn = multiprocessing.connection.Connection(parent.detach())
        child_fd = child.detach()
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "escap_kg.engine", str(child_fd), str(snapshot)],
                pass_fds=(child_fd,),
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(child_fd)

    def wait_ready(self, timeout: float) -> None:
        try:
            if self.conn.poll(timeout):
                message = self.conn.recv()
                if message[0] == "ready":
                    return
        except (EOFError, OSError):
            pass
        self.kill()
        raise EngineError(503, "a query worker failed to start")

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
            self.process.wait(5)
        with contextlib.suppress(Exception):
            self.conn.close()


class QueryEngine:
    """A fixed pool of Oxigraph worker processes over one dataset."""

    def __init__(
        self, quads: bytes, workers: int | None = None, start_timeout: float = 60.0
    ) -> None:
        self.size = max(1, workers or os.cpu_count() or 1)
        self.start_timeout = start_timeout
        self._dir = tempfile.TemporaryDirectory(prefix="escap-kg-")
        self._snapshot = Path(self._dir.name) / "snapshot.nq"
        self._snapshot.write_bytes(quads)
        self._idle: asyncio.Queue[_Worker] | None = None
        self._threads = ThreadPoolExecutor(
            max_workers=self.size * 2 + 2, thread_name_prefix="query"
        )
        self._lock = threading.Lock()
        self._update_lock: asyncio.Lock | None = None
        self._all: set[_Worker] = set()
        self.killed = 0
        self.closed = False

    async def start(self) -> None:
        """Start the workers and wait until each has loaded the graph."""
        loop = asyncio.get_running_loop()
        self._idle = asyncio.Queue()
        self._update_lock = asyncio.Lock()
        workers = await asyncio.gather(
            *(loop.run_in_executor(self._threads, self._spawn) for _ in range(self.size))
        )
        for worker in workers:
            self._idle.put_nowait(worker)

    def _spawn(self) -> _Worker:
        if self.closed:
            raise EngineError(503, "the query engine is stopping")
        worker = _Worker(self._snapshot)
        worker.wait_ready(self.start_timeout)
        with self._lock:
            self._all.add(worker)
        return worker

    def _replace(self, dead: _Worker, loop: asyncio.AbstractEventLoop) -> None:
        """Kill a worker and start its successor in the background."""
        dead.kill()
        with self._lock:
            self._all.discard(dead)
            self.killed += 1
        if self.closed:
            return

        def spawn() -> None:
            try:
                worker = self._spawn()
            except EngineError:
                return
            if self._idle is not None and not self.closed:
                loop.call_soon_threadsafe(self._idle.put_nowait, worker)

        self._threads.submit(spawn)

    async def _acquire(self, deadline: float) -> _Worker:
        if self._idle is None:
            raise EngineError(503, "the query engine is not running")
        remaining = deadline - time.monotonic()
        try:
            return await asyncio.wait_for(self._idle.get(), max(remaining, 0.001))
        except TimeoutError:
            raise EngineError(503, "all query workers are busy; try again shortly") from None

    @staticmethod
    def _exchange(worker: _Worker, job: object, deadline: float) -> tuple[Any, ...] | None:
        """Send a job and wait for its answer until the deadline; None when time ran out."""
        try:
            worker.conn.send(job)
            remaining = None if deadline == float("inf") else max(deadline - time.monotonic(), 0)
            if not worker.conn.poll(remaining):
                return None
            reply: tuple[Any, ...] = worker.conn.recv()
            return reply
        except (EOFError, OSError, BrokenPipeError):
            return ("crashed",)

    async def query(self, job: QueryJob, timeout: float) -> Answer:
        """Run a query on an idle worker; raise :class:`EngineError` on failure or timeout."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        worker = await self._acquire(deadline)
        reply = await loop.run_in_executor(self._threads, self._exchange, worker, job, deadline)
        return self._finish(worker, reply, loop, timeout)

    def _finish(
        self,
        worker: _Worker,
        reply: tuple[Any, ...] | None,
        loop: asyncio.AbstractEventLoop,
        timeout: float,
    ) -> Answer:
        if reply is None:
            self._replace(worker, loop)
            raise EngineError(
                503, f"the query ran longer than the time limit of {timeout:g} s and was stopped"
            )
        if reply[0] == "crashed":
            self._replace(worker, loop)
            raise EngineError(500, "the query worker stopped unexpectedly")
        assert self._idle is not None  # noqa: S101 - set in start()
        self._idle.put_nowait(worker)
        if reply[0] == "error":
            raise EngineError(reply[1], reply[2])
        answer: Answer = reply[1]
        return answer

    async def update(
        self,
        job: UpdateJob,
        timeout: float,
        after_first: Callable[[], bytes] | None = None,
    ) -> None:
        """Apply an update to every worker, all or nothing.

        Every worker is taken out of service first, so no query sees a half-updated pool. The
        update runs on one worker under the time limit; only when it succeeds is it applied to
        the others. Oxigraph applies an update atomically, so a failed one changes nothing.
        ``after_first`` runs once the update has succeeded on the first worker (the server applies
        it to its own copy there) and returns the new content for workers started later.
        """
        if self._update_lock is None or self._idle is None:
            raise EngineError(503, "the query engine is not running")
        loop = asyncio.get_running_loop()
        async with self._update_lock:
            deadline = time.monotonic() + timeout
            taken: list[_Worker] = []
            try:
                while len(taken) < self.size:
                    taken.append(await self._acquire(deadline + self.start_timeout))
                first, *rest = taken
                reply = await loop.run_in_executor(
                    self._threads, self._exchange, first, job, deadline
                )
                if reply is None or reply[0] == "crashed":
                    taken.remove(first)
                    self._replace(first, loop)
                    raise EngineError(
                        503 if reply is None else 500,
                        f"the update ran longer than the time limit of {timeout:g} s "
                        "and was stopped; nothing was changed"
                        if reply is None
                        else "the update worker stopped unexpectedly; nothing was changed",
                    )
                if reply[0] == "error":
                    raise EngineError(reply[1], reply[2].replace("query failed", "update failed"))
                if after_first is not None:
                    snapshot = await loop.run_in_executor(self._threads, after_first)
                    self._snapshot.write_bytes(snapshot)
                replies = await asyncio.gather(
                    *(
                        loop.run_in_executor(self._threads, self._exchange, w, job, float("inf"))
                        for w in rest
                    )
                )
                for worker, other in zip(rest, replies, strict=True):
                    if other is None or other[0] != "ok":
                        taken.remove(worker)
                        self._replace(worker, loop)
            finally:
                for worker in taken:
                    self._idle.put_nowait(worker)

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
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._dir.cleanup()


def snapshot_of(store: ox.Store) -> bytes:
    """The store's quads as N-Quads, for workers to load."""
    return ox.serialize(store, format=ox.RdfFormat.N_QUADS) or b""


__all__: Sequence[str] = ("Answer", "EngineError", "QueryEngine", "QueryJob", "UpdateJob")


if __name__ == "__main__":
    # Run as ``python -m escap_kg.engine``: use the importable module's classes, so that jobs
    # unpickle to the same types the parent sent.
    from escap_kg.engine import _worker_main as worker_main

    worker_main(multiprocessing.connection.Connection(int(sys.argv[1])), sys.argv[2])
