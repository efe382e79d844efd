"""The engine's side in the server: a pool of query workers forked from a zygote.

The server hands a job to an idle worker and the event loop watches the worker's socket, so it
is never blocked. Once a worker has finished an answer it goes back to the pool at once: what the
client has not read yet waits in a spool (memory up to a bound, then an anonymous temporary
file), so a slow reader never holds a worker. The time limit bounds the whole response: the
job's run and the delivery of its last byte.

One store is authoritative: the zygote's (see :mod:`escap_kg.worker`). An update is evaluated
once, by the zygote's writer; workers of the older generation are then replaced (idle ones at
once, busy ones when their query ends, which finishes on the snapshot it started with). No lock
is held while busy workers finish.

A job that runs past its time limit has its worker killed (its CPU work ends at once) and another
is forked in its place. A job that merely runs long keeps its worker and its priority while
nothing else wants the CPU: on a quiet server a long query runs as fast as Oxigraph alone, and its
worker is reused afterwards (a worker that has run queries has already copied the pages of the
store it writes to, so it is faster than a new fork). Once long jobs hold every worker the pool
forks a spare ahead of need, and while short jobs wait for a worker or for a core, the long ones
drop to the lowest CPU priority: short queries keep their usual speed whatever long ones run.
Idle workers are taken most recently used first, so a lightly loaded server keeps using the
workers whose pages are already warm.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import multiprocessing.connection
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from escap_kg.jobs import (
    BUFFER,
    Answer,
    DumpJob,
    EngineError,
    ExportJob,
    QueryJob,
    SearchJob,
    UpdateJob,
)
from escap_kg.worker import StoreSource, decode

if TYPE_CHECKING:
    from escap_kg.database import Pin

log = logging.getLogger("escap_kg.engine")

#: A job that has held its worker this long (seconds) counts as long: while long jobs hold every
#: worker the pool forks a spare, and while short jobs compete with them, their CPU priority is
#: lowered, so that short queries never queue behind them.
LONG_AFTER = 0.1
#: Workers the pool may add beyond its size while long jobs hold workers (see ``max_workers``).
BURST = 4
#: Bytes of an answer a spool keeps in memory before it moves to a temporary file.
SPOOL_MEMORY = 2 * 1024 * 1024


def default_query_memory() -> int:
    """The default memory limit per query: a quarter of the machine's memory."""
    total = _proc_kib("/proc/meminfo", "MemTotal:")
    return max(512 * 2**20, total * 1024 // 4) if total else 4 * 2**30


# Processes -------------------------------------------------------------------------------------


class _Zygote:
    """The zygote, joined to the server by a socket pair.

    A plain subprocess at first (not multiprocessing's spawn, so the child never re-imports the
    server's ``__main__``); after an update in memory, the writer that took its place, known by
    its pid and a pidfd.
    """

    def __init__(self, source: StoreSource) -> None:
        parent, child = socket.socketpair()
        self.conn = multiprocessing.connection.Connection(parent.detach())
        child_fd = child.detach()
        self.guard: str | None = None
        #: Statements the zygote holds in memory (None on disk), once it is ready.
        self.size: int | None = None
        self.ready = False
        self.pidfd = -1
        try:
            self.process: subprocess.Popen[bytes] | None = subprocess.Popen(  # noqa: S603
                [
                    sys.executable,
                    "-m",
                    "escap_kg.worker",
                    "--zygote",
                    str(child_fd),
                    *source.args(),
                ],
                pass_fds=(child_fd,),
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(child_fd)
        self.pid = self.process.pid

    def wait_ready(self, timeout: float) -> None:
        if self.ready:
            return
        failure = "the query engine failed to start"
        try:
            if self.conn.poll(timeout):
                message = decode(self.conn.recv_bytes())
                if message[0] == "ready":
                    self.guard, self.size, self.ready = message[2], message[3], True
                    return
                if message[0] == "failed":
                    failure = message[1]
        except (EOFError, OSError):
            pass
        self.kill()
        raise StartError(503, failure)

    def receive_process(self) -> tuple[int, int]:
        """The pid and pidfd (-1 where there is none) of a process the zygote just forked."""
        if not self.conn.poll(10):
            raise OSError("the zygote did not answer")
        _, pid, has_pidfd = self.conn.recv()
        with socket.fromfd(self.conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as channel:
            _, fds, _, _ = socket.recv_fds(channel, 1, 1)
        if not has_pidfd:
            os.close(fds[0])
            return pid, -1
        return pid, fds[0]

    def fork(self) -> _Forked:
        """A new worker, forked from the zygote (call under the engine's zygote lock)."""
        parent, child = socket.socketpair()
        try:
            self.conn.send("fork")
            with socket.fromfd(self.conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as channel:
                socket.send_fds(channel, [b"F"], [child.fileno()])
            pid, pidfd = self.receive_process()
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        return _Forked(multiprocessing.connection.Connection(parent.detach()), pid, pidfd)

    def handed_over(self, pid: int, pidfd: int) -> None:
        """The writer with this pid has taken the zygote's place (the old one exits)."""
        if self.process is not None:
            process, self.process = self.process, None
            threading.Thread(target=process.wait, daemon=True).start()  # reap it
        if self.pidfd >= 0:
            os.close(self.pidfd)
        self.pid, self.pidfd = pid, pidfd

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            if self.pidfd >= 0:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
                os.close(self.pidfd)
                self.pidfd = -1
        if self.process is not None:
            with contextlib.suppress(Exception):
                self.process.kill()
                self.process.wait(5)
        with contextlib.suppress(Exception):
            self.conn.close()


class StartError(EngineError):
    """The engine could not start; the message says why (a data file's error names the file
    and the line)."""


def _settle(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


def _kill_by_pidfd(pidfd: int) -> None:
    with contextlib.suppress(OSError):
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)


def _close(fd: int) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)


class _Forked:
    """A worker process forked by the zygote: its socket, its pid, and a pidfd to kill it by
    (-1 where the system has none; the pid is used then)."""

    def __init__(self, conn: multiprocessing.connection.Connection, pid: int, pidfd: int) -> None:
        self.conn = conn
        self.pid = pid
        self.pidfd = pidfd
        self.generation = 0
        self.killed = False
        #: Jobs this worker has run: the pool keeps its most used workers (their pages are warm).
        self.jobs = 0
        #: Lowered to the lowest CPU priority (for good): retired once its job ends.
        self.demoted = False
        self._poll = select.poll()
        self._poll.register(conn.fileno(), select.POLLIN)

    def readable(self) -> bool:
        """Whether a frame (or the end of the connection) is there to read now."""
        return bool(self._poll.poll(0))

    def wait_ready(self, timeout: float) -> None:
        try:
            if self.conn.poll(timeout) and decode(self.conn.recv_bytes())[0] == "ready":
                return
        except (EOFError, OSError):
            pass
        self.kill()
        raise EngineError(503, "a query worker failed to start")

    def renice(self) -> None:
        """Lower the worker's CPU priority for good (it cannot be raised back): nice 19, and
        Linux's idle scheduling class, under which any ordinary process that wakes up takes the
        CPU from it at once."""
        self.demoted = True
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

        The event loop watches the socket itself: no thread hand-off on the hot path. Whether
        a frame is already there is one ``poll`` call (``Connection.poll`` builds a selector
        each time); the deadline is a timer on the loop, not a ``wait_for`` per frame.
        """
        conn = self.worker.conn
        if not self.worker.readable():
            remaining = None if self.deadline == float("inf") else self.deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            readable: asyncio.Future[bool] = self.loop.create_future()
            fd = conn.fileno()
            self.loop.add_reader(fd, _settle, readable, True)
            timer = (
                None
                if remaining is None
                else self.loop.call_later(remaining, _settle, readable, False)
            )
            try:
                if not await readable:
                    return None
            finally:
                if timer is not None:
                    timer.cancel()
                self.loop.remove_reader(fd)
                # Some event loops (uvloop) leave a watched descriptor non-blocking; a frame
                # larger than the socket buffer must then still be read whole.
                os.set_blocking(fd, True)
        # A frame is written whole by the worker; once its first bytes are here the rest follows.
        return conn.recv_bytes()

    def send(self, job: object) -> None:
        """Send a job (pickled as ``Connection.send`` does, without its per-call pickler)."""
        self.worker.conn.send_bytes(pickle.dumps(job, pickle.HIGHEST_PROTOCOL))

    def release(self) -> None:
        if not self.done:
            self.done = True
            self.engine._give_back(self.worker)

    def discard(self) -> None:
        if not self.done:
            self.done = True
            self.engine._remove(self.worker)


# Spooling ---------------------------------------------------------------------------------------


class _Spool:
    """An answer between the worker, which writes it as fast as it can, and the client, which
    reads it at its own pace: chunks in memory up to :data:`SPOOL_MEMORY`, the rest in an
    anonymous temporary file (unlinked from the start, so it is always removed)."""

    def __init__(self) -> None:
        self.memory: collections.deque[bytes] = collections.deque()
        self.in_memory = 0
        self.spilled: Any = None
        self.file: int = -1
        self.written = 0
        self.read_at = 0
        self.finished = False
        self.error: EngineError | None = None
        self.changed = asyncio.Event()

    def append(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.file < 0 and self.in_memory + len(chunk) <= SPOOL_MEMORY:
            self.memory.append(chunk)
            self.in_memory += len(chunk)
        else:
            if self.spilled is None:
                # Unlinked from the start (O_TMPFILE where the system has it): always removed.
                self.spilled = tempfile.TemporaryFile(buffering=0)  # noqa: SIM115
                self.file = self.spilled.fileno()
            os.pwrite(self.file, chunk, self.written)
            self.written += len(chunk)
        self.changed.set()

    def finish(self, error: EngineError | None = None) -> None:
        self.finished = True
        self.error = error
        self.changed.set()

    def take(self) -> bytes | None:
        """The next bytes the client has not had, or None if none are here yet."""
        if self.memory:
            chunk = self.memory.popleft()
            self.in_memory -= len(chunk)
            return chunk
        if self.read_at < self.written:
            chunk = os.pread(self.file, min(self.written - self.read_at, BUFFER), self.read_at)
            self.read_at += len(chunk)
            return chunk
        return None

    def close(self) -> None:
        self.memory.clear()
        if self.spilled is not None:
            self.spilled.close()
            self.spilled = None
        self.file = -1


# The pool ---------------------------------------------------------------------------------------


class QueryEngine:
    """A pool of Oxigraph worker processes over one store, forked from a zygote.

    The pool keeps ``workers`` workers. A job that holds its worker past :data:`LONG_AFTER` is
    long. While long jobs hold workers the pool keeps one worker more than the jobs waiting
    free, forking spares up to ``max_workers`` in all; while short jobs wait for a worker, or
    more jobs run than there are cores, the long jobs' workers drop to the lowest CPU priority
    (and are retired once their job ends). A long job that ran undisturbed gives its worker
    back like any other, and the pool shrinks back to ``workers``, retiring the least used.

    ``allow_service``: leave the kernel's network guard off (SERVICE to allowed endpoints);
    ``max_query_memory``: bytes each worker may add for a query (0: no limit).
    """

    def __init__(
        self,
        source: bytes | Path,
        workers: int | None = None,
        start_timeout: float = 120.0,
        extra: Sequence[tuple[Path, str]] = (),
        max_workers: int | None = None,
        allow_service: bool = False,
        max_query_memory: int = 0,
    ) -> None:
        """``source`` is N-Quads to hold in memory (plus ``extra`` files, each loaded by the
        zygote into its named graph), or the folder of an on-disk store."""
        cores = os.cpu_count() or 1
        self.size = max(1, workers or min(cores, max_workers or cores))
        self.max_size = max(self.size, max_workers or self.size + BURST)
        self.start_timeout = start_timeout
        self.max_query_memory = max_query_memory
        self._dir = tempfile.TemporaryDirectory(prefix="escap-kg-")
        options: dict[str, Any] = {"guard": not allow_service, "max_memory": max_query_memory}
        #: On disk: the version of the store each generation of workers reads (see ``_pins``).
        self._pins: dict[int, Pin] = {}
        if isinstance(source, Path):
            from escap_kg.database import pin

            self._pins[0] = pin(source)
            self._database = source
            self.source = StoreSource(database=Path(self._pins[0].path), **options)
        else:
            snapshot = Path(self._dir.name) / "snapshot.nq"
            snapshot.write_bytes(source)
            self.source = StoreSource(snapshot=snapshot, extra=tuple(extra), **options)
        self._idle: asyncio.LifoQueue[_Forked] | None = None
        #: Jobs waiting for an idle worker.
        self._waiting = 0
        self._cores = os.cpu_count() or 1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads = ThreadPoolExecutor(
            max_workers=self.max_size * 2 + 4, thread_name_prefix="query"
        )
        self._lock = threading.Lock()
        self._zygote_lock = threading.Lock()
        self._update_lock: asyncio.Lock | None = None
        self._zygote: _Zygote | None = None
        self._all: set[_Forked] = set()
        self._busy: dict[_Forked, _Lease] = {}
        self._long: set[_Forked] = set()
        self._starting = 0
        #: The version of the store: one more after each update.
        self.generation = 0
        self.killed = 0
        self.closed = False

    def launch(self) -> None:
        """Start the zygote now, without waiting for it.

        It imports Oxigraph and loads the graph while the server finishes starting;
        :meth:`start` then only waits for it and forks the workers.
        """
        if self._zygote is None:
            self._zygote = _Zygote(self.source)

    def wait_launched(self, timeout: float | None = None) -> int | None:
        """Wait until the launched zygote holds the graph (in a thread, or before the server
        runs); the number of statements it holds. Raises :class:`StartError`."""
        self.launch()
        assert self._zygote is not None  # noqa: S101 - launched above
        self._zygote.wait_ready(self.start_timeout if timeout is None else timeout)
        return self._zygote.size

    def kill(self) -> None:
        """Stop a zygote launched but never started (the server will not serve after all)."""
        self.closed = True
        if self._zygote is not None:
            self._zygote.kill()
        self._dir.cleanup()

    @property
    def on_disk(self) -> bool:
        """True when the workers share an on-disk store."""
        return self.source.database is not None

    @property
    def guard(self) -> str | None:
        """The kernel network guard: "on", "off: ...", "unavailable: ..." (None before start)."""
        return self._zygote.guard if self._zygote is not None else None

    async def start(self) -> None:
        """Start the zygote and the workers, and wait until each has opened the graph."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._idle = asyncio.LifoQueue()
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

    def _restart_zygote(self) -> _Zygote:
        """A new zygote from the latest snapshot (call under the zygote lock)."""
        if self._zygote is not None:
            self._zygote.kill()
        self._zygote = _Zygote(self.source)
        self._zygote.wait_ready(self.start_timeout)
        return self._zygote

    def _spawn(self) -> _Forked:
        """Fork a worker and wait until it is ready (in a thread: it blocks)."""
        if self.closed:
            raise EngineError(503, "the query engine is stopping")
        with self._zygote_lock:
            for attempt in range(2):
                try:
                    if self._zygote is None:
                        raise OSError("no zygote")
                    worker = self._zygote.fork()
                    break
                except (EOFError, OSError):
                    # The zygote died (killed, out of memory): start another from the snapshot.
                    if attempt or self.closed:
                        raise EngineError(503, "could not start a query worker") from None
                    self._restart_zygote()
            worker.generation = self.generation
        worker.wait_ready(self.start_timeout)
        return worker

    def _current(self, worker: _Forked) -> bool:
        return worker.generation == self.generation

    def _counted(self) -> int:
        """Workers that count toward ``max_size`` (an older generation's are on their way out)."""
        return sum(1 for w in self._all if self._current(w)) + self._starting

    def _free(self) -> int:
        """Idle workers, and those starting."""
        return (self._idle.qsize() if self._idle is not None else 0) + self._starting

    def _wanted(self) -> int:
        """Workers the pool needs now: ``size``; and while long jobs hold workers, enough for
        the jobs waiting and one spare besides (forked only once no worker is free)."""
        wanted = self.size
        if self._long:
            wanted = max(wanted, self._counted() - self._free() + self._waiting + 1)
        return min(wanted, self.max_size)

    def _kept(self) -> int:
        """Workers an idle one is retired beyond: ``size`` besides those long jobs hold (so a
        spare forked for a long job stays while it runs, and short jobs do not fork again)."""
        held = sum(1 for w in self._long if self._current(w))
        return min(self.size + held, self.max_size)

    def _top_up(self) -> None:
        """Fork workers until the pool has what it needs (:meth:`_wanted`)."""
        loop = self._loop
        if loop is None or self.closed:
            return
        while self._counted() < self._wanted():
            if self._counted() >= self.size and not self._memory_to_spare():
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
        if self.closed or not self._current(worker):
            # Forked before an update reached the zygote: it holds the old graph.
            worker.kill()
            self._top_up()
            return
        with self._lock:
            self._all.add(worker)
        self._give_back(worker)

    def _give_back(self, worker: _Forked) -> None:
        self._busy.pop(worker, None)
        self._long.discard(worker)
        if self._idle is None or self.closed:
            return
        if worker.demoted or not self._current(worker):
            self._remove(worker, killed=False)
            return
        self._idle.put_nowait(worker)
        self._trim()

    def _remove(self, worker: _Forked, killed: bool = True) -> None:
        """Kill a worker (its job's CPU work ends at once) and restore the pool's capacity."""
        worker.kill()
        with self._lock:
            self._all.discard(worker)
            self.killed += killed
        self._release_pins()
        self._busy.pop(worker, None)
        self._long.discard(worker)
        self._trim()
        self._top_up()

    def _trim(self) -> None:
        """Retire idle workers beyond what the pool needs now (the least used first), and any
        of an older store."""
        if self._idle is None:
            return
        idle = []
        while not self._idle.empty():
            idle.append(self._idle.get_nowait())
        idle.reverse()  # least recently used first, as the queue gives them last
        for worker in sorted(idle, key=lambda w: w.jobs):
            surplus = not self._waiting and self._counted() > self._kept()
            if not self._current(worker) or surplus:
                worker.kill()
                with self._lock:
                    self._all.discard(worker)
                idle.remove(worker)
        for worker in idle:
            self._idle.put_nowait(worker)

    def _went_long(self, lease: _Lease) -> None:
        if self.max_size == self.size:
            return  # a fixed pool: nothing to add, and no reason to demote the worker
        if self._busy.get(lease.worker) is lease and not lease.done:
            self._long.add(lease.worker)
            self._demote_if_contended()
            self._top_up()

    def _demote_if_contended(self) -> None:
        """Lower the priority of the long jobs' workers while short jobs compete with them: a
        job waits for a worker, or more jobs run than there are cores."""
        if not self._long or all(w.demoted for w in self._long):
            return
        short = self._waiting + sum(1 for w in self._busy if w not in self._long)
        if short and (self._waiting or len(self._busy) > self._cores):
            for worker in self._long:
                if not worker.demoted:
                    worker.renice()

    # Leasing ---------------------------------------------------------------------------------

    async def _lease(self, timeout: float) -> _Lease:
        """An idle worker of the current store, and the deadline of the job it runs.

        Waiting for a worker has its own bound (twice the time limit: long enough to outlast
        queries that are killed at the limit and their replacement's start); the job's time
        limit starts once it has a worker, so a queued query is stopped for its own run time.
        """
        if self._idle is None:
            raise EngineError(503, "the query engine is not running")
        await self.refresh()
        give_up = time.monotonic() + 2 * timeout + 5
        while True:
            if self._idle.empty():
                worker = await self._wait_for_worker(give_up)
            else:
                worker = self._idle.get_nowait()
            if self._current(worker) and not worker.killed:
                break
            self._remove(worker, killed=False)
        loop = asyncio.get_running_loop()
        lease = _Lease(worker, self, loop, time.monotonic() + timeout)
        self._busy[worker] = lease
        worker.jobs += 1
        if self._long:
            self._demote_if_contended()
        loop.call_later(LONG_AFTER, self._went_long, lease)
        return lease

    async def refresh(self) -> int:
        """The version of the store, after following a load swapped in on disk since the last
        request (one ``stat``): what caches of answers are keyed on."""
        if self._pins and self._pins[self.generation].changed():
            await self._follow_load()
        return self.generation

    async def _wait_for_worker(self, give_up: float) -> _Forked:
        """The next idle worker; while this job waits, long jobs are demoted and a spare forked."""
        assert self._idle is not None  # noqa: S101 - started
        self._waiting += 1
        try:
            if self._long:
                self._demote_if_contended()
                self._top_up()
            remaining = give_up - time.monotonic()
            try:
                return await asyncio.wait_for(self._idle.get(), max(remaining, 0.001))
            except TimeoutError:
                raise EngineError(503, "all query workers are busy; try again shortly") from None
        finally:
            self._waiting -= 1

    async def query(self, job: QueryJob, timeout: float) -> Answer:
        """Run a query on an idle worker; raise :class:`EngineError` on failure or timeout.

        ``timeout`` bounds the whole answer: a large one that the client has not read by then
        ends with an error from its stream.
        """
        return await self._run(job, job.result_format, timeout)

    async def dump(self, job: DumpJob, timeout: float) -> Answer:
        """The whole store in one format, streamed (for downloads of on-disk stores)."""
        return await self._run(job, job.result_format, timeout)

    async def export(self, job: ExportJob, timeout: float) -> bytes:
        """The whole store as :func:`escap_kg.export.export` writes it."""
        return await (await self._run(job, job.result_format, timeout)).read()

    async def search(self, job: SearchJob, timeout: float) -> bytes:
        """A full-text search's hits as JSON (see :mod:`escap_kg.search`)."""
        return await (await self._run(job, "json", timeout)).read()

    async def _run(self, job: object, result_format: str, timeout: float) -> Answer:
        lease = await self._lease(timeout)
        try:
            head, body, finished = await self._first(lease, job, timeout)
        except BaseException:
            lease.discard()
            raise
        fmt, media = head or (result_format, "")
        if finished:
            lease.release()
            return Answer(fmt, body, media_type=media, deadline=lease.deadline)
        spool = _Spool()
        pump = asyncio.ensure_future(self._pump(lease, spool, timeout))
        rest = self._rest(spool, pump, lease.deadline, timeout)
        return Answer(fmt, body, rest, media_type=media, deadline=lease.deadline)

    async def _first(
        self, lease: _Lease, job: object, timeout: float
    ) -> tuple[tuple[str, str] | None, bytes, bool]:
        """Send a job; read its head and the answer until it ends or :data:`BUFFER` bytes came."""
        try:
            lease.send(job)
        except OSError:
            raise _crashed(self.max_query_memory) from None
        head: tuple[str, str] | None = None
        parts: list[bytes] = []
        size = 0
        while True:
            message = await _next_message(lease, timeout, self.max_query_memory)
            if isinstance(message, bytes):
                parts.append(message)
                size += len(message)
                if size >= BUFFER:
                    return head, b"".join(parts), False
            elif message[0] == "head":
                head = (message[1], message[2])
            elif message[0] == "whole":
                return (message[1], message[2]), message[3], True
            elif message[0] == "end":
                parts.append(message[1])
                return head, b"".join(parts), True
            elif message[0] == "error":
                lease.release()
                raise EngineError(message[1], message[2])
            else:
                raise _crashed(self.max_query_memory)

    async def _pump(self, lease: _Lease, spool: _Spool, timeout: float) -> None:
        """Move the rest of an answer from the worker into the spool, then free the worker."""
        try:
            while True:
                message = await _next_message(lease, timeout, self.max_query_memory)
                if isinstance(message, bytes):
                    spool.append(message)
                elif message[0] == "end":
                    spool.append(message[1])
                    lease.release()
                    spool.finish()
                    return
                elif message[0] == "error":
                    lease.release()
                    spool.finish(EngineError(message[1], message[2]))
                    return
                else:
                    raise _crashed(self.max_query_memory)
        except EngineError as err:
            lease.discard()
            spool.finish(err)
        except BaseException:
            # An answer abandoned half way (client gone): its worker may still be writing, so
            # it is replaced rather than reused.
            lease.discard()
            spool.finish(EngineError(503, "the answer was abandoned"))
            raise

    async def _rest(
        self, spool: _Spool, pump: asyncio.Future[None], deadline: float, timeout: float
    ) -> AsyncIterator[bytes]:
        try:
            while True:
                chunk = spool.take()
                if chunk is not None:
                    yield chunk
                    continue
                if spool.finished:
                    if spool.error is not None:
                        raise spool.error
                    return
                spool.changed.clear()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _timed_out(timeout)
                try:
                    await asyncio.wait_for(spool.changed.wait(), remaining)
                except TimeoutError:
                    raise _timed_out(timeout) from None
        finally:
            if not pump.done():
                pump.cancel()
            spool.close()

    # Updates -----------------------------------------------------------------------------------

    async def update(self, job: UpdateJob, timeout: float) -> None:
        """Evaluate an update exactly once, by the store's single writer, then move every
        reader to the new version of the store.

        Queries go on meanwhile, on the version they started with; idle workers of the old
        version are replaced at once, busy ones when their query ends. The time limit bounds
        the update's evaluation; an update stopped at the limit, or refused, changes nothing.
        """
        if self._update_lock is None or self._idle is None:
            raise EngineError(503, "the query engine is not running")
        loop = asyncio.get_running_loop()
        async with self._update_lock:
            kind, payload = await loop.run_in_executor(
                self._threads, self._update_in_zygote, job, timeout
            )
            if kind == "timeout":
                raise EngineError(
                    503,
                    f"the update ran longer than the time limit of {timeout:g} s and was "
                    "stopped; nothing was changed",
                )
            if kind == "crashed":
                raise EngineError(
                    503,
                    "the update stopped unexpectedly (it may have needed more than the memory "
                    f"limit of {self.max_query_memory / 2**20:,.0f} MiB); nothing was changed",
                )
            if kind == "error":
                raise EngineError(*payload)
            # A new version: old idle workers go now, busy ones when their job ends. (On disk
            # the pinned folder is the same: the update was written into it.)
            if self._pins:
                self._pins[self.generation + 1] = self._pins.pop(self.generation)
            self.generation += 1
            self._trim()
            self._top_up()
            if not self.on_disk:
                await loop.run_in_executor(self._threads, self._save_snapshot)

    def _update_in_zygote(self, job: UpdateJob, timeout: float) -> tuple[str, Any]:
        """Send an update to the zygote and wait for its writer, killing it at the deadline."""
        with self._zygote_lock:
            zygote = self._zygote
            try:
                if zygote is None:
                    raise OSError("no zygote")
                zygote.conn.send(job)
                writer, pidfd = zygote.receive_process()
            except (EOFError, OSError):
                self._restart_zygote()
                return ("error", (503, "the query engine was restarted; send the update again"))
            try:
                reply = self._wait_for_writer(zygote, writer, pidfd, timeout)
                if reply[0] == "ok" and reply[1] == writer:
                    zygote.handed_over(writer, pidfd)
                    pidfd = -1
            finally:
                _close(pidfd)
            if reply[0] == "ok":
                return ("ok", None)
            if reply[0] in ("timeout", "crashed"):
                return (reply[0], None)
            if reply[0] == "stopped":
                return ("crashed", None)
            return ("error", (reply[1], reply[2]))

    def _wait_for_writer(
        self, zygote: _Zygote, writer: int, pidfd: int, timeout: float
    ) -> tuple[Any, ...]:
        """The zygote's reply about its writer; ("timeout",) if it had to be killed."""
        try:
            if zygote.conn.poll(timeout):
                return tuple(decode(zygote.conn.recv_bytes()))
            if pidfd >= 0:
                _kill_by_pidfd(pidfd)
            else:
                os.kill(writer, signal.SIGKILL)
            reply = decode(zygote.conn.recv_bytes()) if zygote.conn.poll(10) else None
            if reply != ("stopped",):
                # The writer was taking the zygote's place as it was killed: nothing of the
                # update is kept; a new zygote starts from the last snapshot.
                self._restart_zygote()
            return ("timeout",)
        except (EOFError, OSError):
            self._restart_zygote()
            return ("crashed",)

    def _save_snapshot(self) -> None:
        """Keep a copy of the updated graph on disk, so a zygote that dies can be started again
        from it; written by a fork of the zygote while the pool goes on."""
        path = Path(self._dir.name) / f"snapshot-{self.generation}.nq"
        with self._zygote_lock:
            zygote = self._zygote
            if zygote is None:
                return
            try:
                zygote.conn.send(("snapshot", str(path)))
                _, pidfd = zygote.receive_process()
            except (EOFError, OSError):
                return
        try:
            if pidfd >= 0:
                select.select([pidfd], [], [], self.start_timeout)
            else:
                for _ in range(int(self.start_timeout * 10)):
                    if path.exists():
                        break
                    time.sleep(0.1)
        finally:
            _close(pidfd)
        if not path.exists():
            log.warning(
                "could not save the updated graph; a query engine restarted after a crash "
                "would start from the graph before this update"
            )
            return
        old = self.source.snapshot
        self.source = replace(self.source, snapshot=path, extra=())
        if old is not None and old != path:
            old.unlink(missing_ok=True)

    # On-disk stores: following a load ----------------------------------------------------------

    async def _follow_load(self) -> None:
        """Move to the version of the store a load has swapped in, for all workers at once.

        The new version is pinned and the zygote told of it; idle workers are replaced now, busy
        ones when their query ends (it finishes on the version it started with, which stays
        pinned until the last of its workers is gone).
        """
        assert self._update_lock is not None  # noqa: S101 - started
        async with self._update_lock:
            current = self._pins[self.generation]
            if not current.changed():
                return  # another request has already followed it
            loop = asyncio.get_running_loop()
            fresh = await loop.run_in_executor(self._threads, self._repin)
            self._pins[self.generation + 1] = fresh
            self.generation += 1
            self._trim()
            self._top_up()
            self._release_pins()

    def _repin(self) -> Pin:
        """Pin the store's new version and point the zygote at it (in a thread: it blocks)."""
        from escap_kg.database import pin

        fresh = pin(self._database)
        with self._zygote_lock:
            self.source = replace(self.source, database=Path(fresh.path))
            if self._zygote is not None:
                try:
                    self._zygote.conn.send(("source", fresh.path))
                    reply = (
                        decode(self._zygote.conn.recv_bytes())
                        if self._zygote.conn.poll(10)
                        else None
                    )
                except (EOFError, OSError):
                    reply = None
                if reply is None or reply[0] != "ok":
                    self._restart_zygote()
        return fresh

    def _release_pins(self) -> None:
        """Let go of the versions no worker reads any more (a later load may then delete them)."""
        if len(self._pins) < 2:
            return
        with self._lock:
            in_use = {w.generation for w in self._all}
        for generation in [g for g in self._pins if g != self.generation and g not in in_use]:
            self._pins.pop(generation).close()
            from escap_kg.database import remove_unpinned_retired

            remove_unpinned_retired(self._database)

    # Introspection and shutdown ----------------------------------------------------------------

    def pids(self) -> list[int]:
        """The process ids of the live workers."""
        with self._lock:
            return sorted(w.pid for w in self._all)

    @property
    def zygote_pid(self) -> int | None:
        """The process id of the zygote (the store's writer), if it runs."""
        return self._zygote.pid if self._zygote is not None else None

    async def query_every_worker(self, job: QueryJob, timeout: float) -> list[bytes]:
        """Run one query on each idle worker of the current store (to check they agree)."""
        assert self._idle is not None  # noqa: S101 - started
        leases = []
        while not self._idle.empty():
            worker = self._idle.get_nowait()
            lease = _Lease(worker, self, asyncio.get_running_loop(), time.monotonic() + timeout)
            self._busy[worker] = lease
            leases.append(lease)
        answers = []
        for lease in leases:
            head, body, finished = await self._first(lease, job, timeout)
            del head
            if not finished:
                lease.discard()
                raise EngineError(413, "answer too large for a comparison")
            lease.release()
            answers.append(body)
        return answers

    async def close(self) -> None:
        """Stop every worker and the zygote, and remove the snapshots."""
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
        if self._pins:
            for held in self._pins.values():
                held.close()
            self._pins.clear()
            from escap_kg.database import remove_unpinned_retired

            remove_unpinned_retired(self._database)
        self._dir.cleanup()


def _timed_out(timeout: float) -> EngineError:
    return EngineError(503, f"the query ran longer than the time limit of {timeout:g} s")


def _crashed(limit: int) -> EngineError:
    reason = f" or needed more than the memory limit of {limit / 2**20:,.0f} MiB" if limit else ""
    return EngineError(
        503,
        f"the query worker stopped while running this query (it crashed{reason}); "
        "it has been replaced",
    )


async def _next_message(lease: _Lease, timeout: float, limit: int) -> Any:
    """The next decoded frame of a job; EngineError past the deadline or if the worker died."""
    try:
        raw = await lease.recv()
    except (EOFError, OSError):
        raise _crashed(limit) from None
    if raw is None:
        raise EngineError(
            503, f"the query ran longer than the time limit of {timeout:g} s and was stopped"
        )
    return decode(raw)


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


__all__: Sequence[str] = (
    "QueryEngine",
    "StartError",
    "available_memory_kib",
    "default_query_memory",
)
