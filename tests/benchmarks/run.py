"""Benchmark escap-kg against ``oxigraph serve`` and plain rdflib-endpoint, and write a report.

``python -m tests.benchmarks.run [--sizes 10k,100k,1M] [--repeats 5] [--clients 8] [--duration 10]
[--out tests/benchmarks/results.md]``

For each size the generated data (cached in ``tests/benchmarks/.data/``) is loaded, beside our
embedded graph, into each server in turn, each started on a free port of 127.0.0.1 in its own
process group and always stopped at the end. Measured over HTTP: load and ready times, the median
latency of every query (our catalogue and ``tests/benchmarks/queries``), throughput of concurrent
clients on a selective query, and the peak memory of each server's process tree; the row counts of
the servers are compared, and a mismatch is shown in the report. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyoxigraph as ox

from tests.benchmarks.generate import parse_size, write_file
from tests.proc import memory_kib

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
BIN = Path(sys.executable).parent
GRAPH_BASE = "https://w3id.org/escap-kg/graph/extra/"
SELECT_TYPE = "application/sparql-results+json"
GRAPH_TYPE = "text/turtle"
ASK = "ASK {}"
# Servers, in the order they run; the first escap-kg one present is "escap-kg" in the ratios.
ESCAP_DB, ESCAP_MEM = "escap-kg-db", "escap-kg-mem"
OXI_DISK, OXI_MEM, RDFLIB = "oxigraph-disk", "oxigraph-mem", "rdflib-endpoint"
SCAN_KINDS = ("scan", "aggregate")


# Queries ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchQuery:
    """A query to time: its id, text, whether it builds a graph, and its kind for the report."""

    id: str
    text: str
    construct: bool
    kind: str  # "catalogue" or the "#+ bench:" line: selective, scan, aggregate, join, path...

    @property
    def scan_or_aggregate(self) -> bool:
        return self.kind in SCAN_KINDS


def _header(text: str, key: str) -> str:
    match = re.search(rf"^#\+\s*{key}:\s*(.+)$", text, re.M)
    return match[1].strip() if match else ""


def _is_construct(text: str) -> bool:
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return re.search(r"^\s*(CONSTRUCT|DESCRIBE)\b", body, re.M | re.I) is not None


def load_queries(pattern: str | None = None) -> list[BenchQuery]:
    """Our benchmark queries first (so a slow server still answers them), then the catalogue."""
    queries = []
    for path in sorted((HERE / "queries").glob("*.rq")):
        text = path.read_text(encoding="utf-8")
        queries.append(BenchQuery(path.stem, text, _is_construct(text), _header(text, "bench")))
    for path in sorted((ROOT / "queries").glob("*.rq")):
        text = path.read_text(encoding="utf-8")
        queries.append(BenchQuery(path.stem, text, _is_construct(text), "catalogue"))
    if pattern:
        queries = [q for q in queries if re.search(pattern, q.id)]
    return queries


# Processes and memory ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pids_in_group(pgid: int) -> list[int]:
    """Every live process whose process group is ``pgid`` (a server and all it started)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(name))
    return pids


def tree_memory(pgid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB summed over the process group."""
    return memory_kib(pids_in_group(pgid))


class MemorySampler(threading.Thread):
    """Polls a process group's RSS and PSS and keeps the peaks (since the last reset)."""

    def __init__(self, pgid: Callable[[], int | None], interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pgid = pgid
        self.interval = interval
        self.peak_rss = self.peak_pss = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        pgid = self.pgid()
        if pgid is None:
            return
        rss, pss = tree_memory(pgid)
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)

    def reset(self) -> None:
        self.peak_rss = self.peak_pss = 0
        self.sample()

    def stop(self) -> None:
        self._stop_event.set()


class Server:
    """A server command in its own process group, its output in a log file."""

    def __init__(self, command: list[str], log: Path) -> None:
        self.command = command
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start it; return the monotonic start time."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            log.write(f"\n$ {' '.join(self.command)}\n".encode())
            log.flush()
            started = time.perf_counter()
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return started

    @property
    def pgid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the whole process group: TERM, then KILL whatever is left."""
        if self.process is None:
            return
        pgid = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        deadline = time.monotonic() + 5
        while pids_in_group(pgid) and time.monotonic() < deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            time.sleep(0.1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        self.process = None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# Measuring --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One request: how long it took, and the answer's size or what went wrong."""

    seconds: float
    rows: int | None = None
    error: str | None = None
    timed_out: bool = False


def count_rows(query: BenchQuery, response: httpx.Response) -> int:
    """Rows of a SELECT, 1 for an ASK, distinct triples of a CONSTRUCT."""
    if query.construct:
        triples = ox.parse(response.content, format=ox.RdfFormat.TURTLE)
        return len({str(t) for t in triples})
    answer = json.loads(response.content)
    if "boolean" in answer:
        return 1
    return len(answer["results"]["bindings"])


def send(client: httpx.Client, url: str, query: BenchQuery, timeout: float) -> Outcome:
    """POST the query as a form, as the SPARQL protocol allows, and time the full answer."""
    accept = GRAPH_TYPE if query.construct else SELECT_TYPE
    started = time.perf_counter()
    try:
        response = client.post(
            url, data={"query": query.text}, headers={"Accept": accept}, timeout=timeout + 10
        )
    except httpx.TimeoutException:
        return Outcome(time.perf_counter() - started, timed_out=True)
    except httpx.HTTPError as err:
        return Outcome(time.perf_counter() - started, error=f"{type(err).__name__}: {err}")
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        text = response.text.strip().replace("\n", " ")[:160]
        timed_out = seconds >= timeout * 0.95 or "time limit" in text or "timeout" in text.lower()
        return Outcome(seconds, error=f"HTTP {response.status_code}: {text}", timed_out=timed_out)
    try:
        return Outcome(seconds, rows=count_rows(query, response))
    except (ValueError, KeyError, SyntaxError) as err:
        # oxigraph serve streams its answer: at its time limit it cuts the body short after a 200.
        timed_out = seconds >= timeout * 0.95
        return Outcome(seconds, error=f"unreadable answer: {err}", timed_out=timed_out)


@dataclass
class QueryResult:
    """The timings of one query on one server."""

    median_ms: float | None = None
    runs: int = 0
    rows: int | None = None
    timed_out: bool = False
    error: str | None = None
    skipped: bool = False


@dataclass
class ServerResult:
    """What one server did at one size."""

    key: str
    label: str
    load_s: float | None = None
    load_note: str = ""
    ready_s: float | None = None
    queries: dict[str, QueryResult] = field(default_factory=dict)
    throughput_rps: float | None = None
    throughput_errors: int = 0
    peak_rss_kib: int = 0
    peak_pss_kib: int = 0
    restarts: int = 0
    error: str | None = None


@dataclass
class Config:
    """The run's settings."""

    repeats: int
    clients: int
    duration: float
    timeout: float
    query_budget: float
    server_budget: float
    ready_timeout: float


def wait_ready(server: Server, url: str, started: float, timeout: float) -> float:
    """Seconds from ``started`` until the server answers ``ASK {}``."""
    deadline = time.perf_counter() + timeout
    with httpx.Client(timeout=5) as client:
        while time.perf_counter() < deadline:
            if not server.alive():
                raise RuntimeError(f"the server stopped while starting:\n{server.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                response = client.post(url, data={"query": ASK}, headers={"Accept": SELECT_TYPE})
                if response.status_code == 200:
                    return time.perf_counter() - started
            time.sleep(0.02)
    raise RuntimeError(f"the server was not ready after {timeout:g} s:\n{server.tail()}")


class _Connection:
    """A minimal HTTP/1.1 keep-alive client: one POST at a time, the answer read in full.

    The throughput test runs on the same two cores as the server, so its client must cost as
    little as possible; httpx spends several times more CPU per request than this.
    """

    def __init__(self, host: str, port: int, request: bytes) -> None:
        self.host, self.port, self.request = host, port, request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self) -> int:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(self.request)
        reader = self.reader
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("connection closed")
        status = int(status_line.split()[1])
        length, chunked, close = None, False, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "connection" and value == "close":
                close = True
        if chunked:
            while (size := int((await reader.readline()).split(b";")[0], 16)) > 0:
                await reader.readexactly(size + 2)
            while await reader.readline() not in (b"\r\n", b""):
                pass
        elif length is not None:
            await reader.readexactly(length)
        else:
            await reader.read()
            close = True
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _request(url: str, query: BenchQuery) -> tuple[str, int, bytes]:
    parsed = httpx.URL(url)
    body = str(httpx.QueryParams({"query": query.text})).encode()
    head = (
        f"POST {parsed.raw_path.decode()} HTTP/1.1\r\nHost: {parsed.host}:{parsed.port}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nAccept: {SELECT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return parsed.host, parsed.port or 80, head.encode() + body


async def _throughput(
    url: str, query: BenchQuery, clients: int, duration: float
) -> tuple[int, int, float]:
    host, port, request = _request(url, query)
    ok = errors = 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + duration

    async def one_client() -> None:
        nonlocal ok, errors
        connection = _Connection(host, port, request)
        try:
            while loop.time() < deadline:
                try:
                    status = await connection.post()
                except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
                    connection.close()
                    errors += 1
                    await asyncio.sleep(0.01)
                    continue
                if loop.time() > deadline:
                    return
                if status == 200:
                    ok += 1
                else:
                    errors += 1
        finally:
            connection.close()

    tasks = [asyncio.create_task(one_client()) for _ in range(clients)]
    await asyncio.wait(tasks, timeout=duration + 2)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return ok, errors, duration


def throughput(url: str, query: BenchQuery, clients: int, duration: float) -> tuple[float, int]:
    """Requests per second answered 200 for ``clients`` concurrent clients over ``duration`` s.

    Requests still running at the end are abandoned (the server is stopped right after).
    """
    ok, errors, elapsed = asyncio.run(_throughput(url, query, clients, duration))
    return ok / elapsed, errors


# The servers ------------------------------------------------------------------------------------


@dataclass
class ServerSpec:
    """How to load and start one server."""

    key: str
    label: str
    load: list[list[str]]  # commands run (and timed) before the server starts
    serve: Callable[[int], list[str]]
    http_load: list[tuple[str, Path, str]] = field(default_factory=list)
    restart_on_timeout: bool = False
    path: str = "/sparql"


def escap_kg() -> str:
    return str(BIN / "escap-kg") if (BIN / "escap-kg").exists() else "escap-kg"


def oxigraph() -> str:
    return str(BIN / "oxigraph") if (BIN / "oxigraph").exists() else "oxigraph"


def escap_has_db() -> bool:
    """Whether ``escap-kg load --db`` and ``escap-kg serve --db`` exist (yet)."""
    try:
        load = subprocess.run(
            [escap_kg(), "load", "--help"], capture_output=True, text=True, timeout=60
        )
        serve = subprocess.run(
            [escap_kg(), "serve", "--help"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return load.returncode == 0 and "--db" in load.stdout and "--db" in serve.stdout


def server_specs(
    data: Path, graph: str, embedded: Path, work: Path, timeout: float, with_db: bool
) -> list[ServerSpec]:
    """The servers to compare, with their load and serve commands."""
    specs = []
    t = f"{timeout:g}"
    if with_db:
        db = work / "escap-kg-db"
        specs.append(
            ServerSpec(
                ESCAP_DB,
                "escap-kg serve --db (on disk)",
                [[escap_kg(), "load", "--db", str(db), str(data)]],
                lambda port: [
                    escap_kg(),
                    "serve",
                    "--db",
                    str(db),
                    "--port",
                    str(port),
                    "--query-timeout",
                    t,
                ],
            )
        )
    specs.append(
        ServerSpec(
            ESCAP_MEM,
            "escap-kg serve --data (in memory)",
            [],
            lambda port: [
                escap_kg(),
                "serve",
                "--data",
                str(data),
                "--port",
                str(port),
                "--query-timeout",
                t,
            ],
        )
    )
    location = work / "oxigraph-db"
    specs.append(
        ServerSpec(
            OXI_DISK,
            "oxigraph serve --location (on disk)",
            [
                [oxigraph(), "load", "--location", str(location), "--file", str(embedded)],
                [
                    oxigraph(),
                    "load",
                    "--location",
                    str(location),
                    "--file",
                    str(data),
                    "--graph",
                    graph,
                ],
            ],
            lambda port: [
                oxigraph(),
                "serve",
                "--location",
                str(location),
                "--bind",
                f"127.0.0.1:{port}",
                "--union-default-graph",
                "--timeout-s",
                t,
            ],
            path="/query",
        )
    )
    specs.append(
        ServerSpec(
            OXI_MEM,
            "oxigraph serve (in memory, loaded over HTTP)",
            [],
            lambda port: [
                oxigraph(),
                "serve",
                "--bind",
                f"127.0.0.1:{port}",
                "--union-default-graph",
                "--timeout-s",
                t,
            ],
            http_load=[
                ("/store", embedded, "application/n-quads"),
                (f"/store?graph={graph}", data, "application/n-triples"),
            ],
            path="/query",
        )
    )
    specs.append(
        ServerSpec(
            RDFLIB,
            "rdflib-endpoint (rdflib Dataset in memory)",
            [],
            lambda port: [
                sys.executable,
                "-m",
                "tests.benchmarks.rdflib_endpoint_server",
                "--embedded",
                str(embedded),
                "--data",
                str(data),
                "--graph",
                graph,
                "--port",
                str(port),
            ],
            restart_on_timeout=True,
        )
    )
    return specs


def _start(spec: ServerSpec, log: Path, cfg: Config) -> tuple[Server, str, float, float]:
    """Start a server and wait for it; return it, its URL, seconds to ready and to loaded."""
    port = free_port()
    server = Server(spec.serve(port), log)
    started = server.start()
    base = f"http://127.0.0.1:{port}"
    url = base + spec.path
    try:
        ready = wait_ready(server, url, started, cfg.ready_timeout)
        with httpx.Client(timeout=cfg.ready_timeout) as client:
            for path, file, media in spec.http_load:
                with file.open("rb") as body:
                    response = client.post(
                        base + path, content=body, headers={"Content-Type": media}
                    )
                if response.status_code >= 300:
                    raise RuntimeError(f"loading {file} failed: HTTP {response.status_code}")
    except BaseException:
        server.stop()
        raise
    return server, url, ready, time.perf_counter() - started


def measure_server(
    spec: ServerSpec, queries: list[BenchQuery], selective: BenchQuery, cfg: Config, logs: Path
) -> ServerResult:
    """Load, start, time every query, run the throughput test, and stop the server."""
    result = ServerResult(spec.key, spec.label)
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{spec.key}.log"
    log.unlink(missing_ok=True)
    started = time.perf_counter()
    for command in spec.load:
        done = subprocess.run(
            command, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        with log.open("a") as out:
            out.write(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}")
        if done.returncode != 0:
            result.error = f"load failed ({done.returncode}): {done.stderr.strip()[-300:]}"
            return result
    if spec.load:
        result.load_s = time.perf_counter() - started
        result.load_note = "load command(s)"
    server: Server | None = None
    sampler = MemorySampler(lambda: server.pgid if server is not None else None)
    sampler.start()
    try:
        server, url, ready, loaded = _start(spec, log, cfg)
        result.ready_s = ready
        if not spec.load:
            result.load_s = loaded
            result.load_note = "start until loaded" if spec.http_load else "start until first ASK"
        sampler.reset()
        budget_end = time.perf_counter() + cfg.server_budget
        with httpx.Client() as client:
            for query in queries:
                if time.perf_counter() > budget_end:
                    result.queries[query.id] = QueryResult(skipped=True)
                    continue
                qr = _time_query(client, url, query, cfg)
                result.queries[query.id] = qr
                if qr.timed_out and spec.restart_on_timeout:
                    # rdflib-endpoint cannot stop a query: restart it so the next one is not
                    # queued behind the abandoned one.
                    server.stop()
                    server, url, _, _ = _start(spec, log, cfg)
                    result.restarts += 1
        result.throughput_rps, result.throughput_errors = throughput(
            url, selective, cfg.clients, cfg.duration
        )
        sampler.sample()
        result.peak_rss_kib, result.peak_pss_kib = sampler.peak_rss, sampler.peak_pss
    except RuntimeError as err:
        result.error = str(err)
    finally:
        sampler.stop()
        if server is not None:
            server.stop()
    return result


def _time_query(client: httpx.Client, url: str, query: BenchQuery, cfg: Config) -> QueryResult:
    warm = send(client, url, query, cfg.timeout)
    if warm.timed_out:
        return QueryResult(timed_out=True, error=warm.error)
    if warm.error is not None:
        return QueryResult(error=warm.error)
    times: list[float] = []
    spent_until = time.perf_counter() + cfg.query_budget
    for _ in range(cfg.repeats):
        outcome = send(client, url, query, cfg.timeout)
        if outcome.error is not None or outcome.timed_out:
            break
        times.append(outcome.seconds)
        if time.perf_counter() > spent_until:
            break
    if not times:  # the warm-up succeeded but a timed run did not: report the warm-up
        times.append(warm.seconds)
    return QueryResult(statistics.median(times) * 1000, len(times), warm.rows)


# Baselines --------------------------------------------------------------------------------------

BASELINE_MEMORY = """
import json, sys, time
from pathlib import Path
import pyoxigraph as ox
embedded, data, graph = sys.argv[1:4]
started = time.perf_counter()
store = ox.Store()
store.bulk_load(path=embedded, format=ox.RdfFormat.N_QUADS)
store.bulk_load(path=data, format=ox.RdfFormat.N_TRIPLES, to_graph=ox.NamedNode(graph))
seconds = time.perf_counter() - started
def kib(path, key):
    for line in Path(path).read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0
print(json.dumps({"seconds": seconds, "quads": len(store),
    "rss_kib": kib("/proc/self/status", "VmRSS:"), "hwm_kib": kib("/proc/self/status", "VmHWM:"),
    "pss_kib": kib("/proc/self/smaps_rollup", "Pss:")}))
"""

BASELINE_BULK = """
import json, sys, time
import pyoxigraph as ox
location, data, graph = sys.argv[1:4]
started = time.perf_counter()
store = ox.Store(location)
store.bulk_load(path=data, format=ox.RdfFormat.N_TRIPLES, to_graph=ox.NamedNode(graph))
store.flush()
print(json.dumps({"seconds": time.perf_counter() - started, "quads": len(store)}))
"""


def baselines(data: Path, graph: str, embedded: Path, work: Path) -> dict[str, Any]:
    """pyoxigraph's own in-memory store (its RSS) and its on-disk bulk loader (its time)."""
    memory = subprocess.run(
        [sys.executable, "-c", BASELINE_MEMORY, str(embedded), str(data), graph],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    location = work / "pyoxigraph-bulk"
    shutil.rmtree(location, ignore_errors=True)
    started = time.perf_counter()
    bulk = subprocess.run(
        [sys.executable, "-c", BASELINE_BULK, str(location), str(data), graph],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    shutil.rmtree(location, ignore_errors=True)
    return {"memory": json.loads(memory.stdout), "bulk": json.loads(bulk.stdout) | {"wall": wall}}


# One size ---------------------------------------------------------------------------------------


@dataclass
class SizeResult:
    """Everything measured at one size."""

    size: str
    triples: int
    seconds: float = 0.0
    servers: list[ServerResult] = field(default_factory=list)
    baseline: dict[str, Any] = field(default_factory=dict)
    timeout: float = 0.0


def dataset(size: str, triples: int, seed: int) -> tuple[Path, int]:
    """The cached data file for a size and seed, generated if missing."""
    path = DATA / f"bench-{size.lower()}-seed{seed}.nt"
    if not path.exists():
        write_file(path, triples, seed)
    with path.open("rb") as f:
        count = sum(1 for _ in f)
    return path, count


def export_embedded() -> Path:
    """Our embedded graph (ontology, themes, data) as N-Quads, one named graph per file."""
    path = DATA / "embedded.nq"
    subprocess.run(
        [escap_kg(), "export", "--format", "nquads", "--output", str(path)],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    return path


def run_size(
    size: str,
    seed: int,
    queries: list[BenchQuery],
    cfg: Config,
    only: set[str] | None,
    with_db: bool,
) -> SizeResult:
    started = time.perf_counter()
    data, count = dataset(size, parse_size(size), seed)
    graph = GRAPH_BASE + data.name.rsplit(".", 1)[0]
    embedded = export_embedded()
    result = SizeResult(size, count, timeout=cfg.timeout)
    selective = next(q for q in queries if q.kind == "selective")
    with tempfile.TemporaryDirectory(prefix="escap-kg-bench-", dir=DATA) as tmp:
        work = Path(tmp)
        print(f"[{size}] baselines", file=sys.stderr, flush=True)
        result.baseline = baselines(data, graph, embedded, work)
        for spec in server_specs(data, graph, embedded, work, cfg.timeout, with_db):
            if only and spec.key not in only:
                continue
            print(f"[{size}] {spec.key}", file=sys.stderr, flush=True)
            t = time.perf_counter()
            server_result = measure_server(spec, queries, selective, cfg, DATA / "logs" / size)
            result.servers.append(server_result)
            note = f" error: {server_result.error}" if server_result.error else ""
            print(
                f"[{size}] {spec.key} took {time.perf_counter() - t:.0f} s{note}", file=sys.stderr
            )
    result.seconds = time.perf_counter() - started
    return result


# The report -------------------------------------------------------------------------------------


def geomean(values: list[float]) -> float | None:
    values = [v for v in values if v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def _fmt_ms(qr: QueryResult | None, timeout: float) -> str:
    if qr is None:
        return "-"
    if qr.skipped:
        return "skipped"
    if qr.timed_out:
        return f">{timeout:g} s"
    if qr.error is not None:
        return "error"
    assert qr.median_ms is not None
    return f"{qr.median_ms:.1f}" if qr.median_ms < 1000 else f"{qr.median_ms:,.0f}"


def ratio(mine: QueryResult | None, other: QueryResult | None, timeout: float) -> str:
    """escap-kg / other as text: a number, a bound when one side timed out, or '-'."""
    if mine is None or other is None:
        return "-"
    if mine.median_ms is not None and other.median_ms is not None:
        return f"{mine.median_ms / other.median_ms:.2f}"
    if mine.median_ms is not None and other.timed_out:
        return f"<{mine.median_ms / (timeout * 1000):.3f}"
    if mine.timed_out and other.median_ms is not None:
        return f">{timeout * 1000 / other.median_ms:.1f}"
    return "-"


def _ratio_value(mine: QueryResult | None, other: QueryResult | None) -> float | None:
    if mine is None or other is None or mine.median_ms is None or other.median_ms is None:
        return None
    return mine.median_ms / other.median_ms


def _by_key(sr: SizeResult) -> dict[str, ServerResult]:
    return {s.key: s for s in sr.servers}


def primary(sr: SizeResult) -> ServerResult | None:
    servers = _by_key(sr)
    return servers.get(ESCAP_DB) or servers.get(ESCAP_MEM)


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB" if kib else "-"


@dataclass
class Target:
    name: str
    verdict: str  # PASS, FAIL, NOT RUN, N/A
    detail: str


def targets(results: list[SizeResult], queries: list[BenchQuery]) -> list[Target]:
    by_size = {r.size.lower(): r for r in results}
    out = []

    def latency(size: str) -> Target:
        name = f"latency geomean <= 1.0x oxigraph serve (on disk) at {size}"
        sr = by_size.get(size.lower())
        if sr is None:
            return Target(name, "NOT RUN", f"size {size} was not run")
        mine, oxi = primary(sr), _by_key(sr).get(OXI_DISK)
        if mine is None or oxi is None:
            return Target(name, "NOT RUN", "a server is missing")
        ratios = [_ratio_value(mine.queries.get(q.id), oxi.queries.get(q.id)) for q in queries]
        g = geomean([r for r in ratios if r is not None])
        if g is None:
            return Target(name, "NOT RUN", "no query answered by both")
        excluded = sum(r is None for r in ratios)
        note = f"; {excluded} queries without a time on both left out" if excluded else ""
        return Target(name, "PASS" if g <= 1.0 else "FAIL", f"{g:.2f}x{note}")

    out += [latency("100k"), latency("1M")]

    name = ">= 10x faster than rdflib-endpoint on scan/aggregate queries (every size run)"
    worst: list[str] = []
    verdict = "PASS"
    for sr in results:
        mine, rdf = primary(sr), _by_key(sr).get(RDFLIB)
        if mine is None or rdf is None:
            continue
        for q in queries:
            if not q.scan_or_aggregate:
                continue
            a, b = mine.queries.get(q.id), rdf.queries.get(q.id)
            if a is None or b is None or a.median_ms is None:
                verdict = "FAIL"
                worst.append(f"{sr.size} {q.id}: no time")
                continue
            limit = b.median_ms if b.median_ms is not None else (sr.timeout * 1000)
            if b.median_ms is None and not b.timed_out:
                continue
            r = a.median_ms / limit
            worst.append(f"{sr.size} {q.id} {'<' if b.timed_out else ''}{r:.3f}")
            if r > 0.1:
                verdict = "FAIL"
    out.append(Target(name, verdict if worst else "NOT RUN", "; ".join(worst) or "-"))

    def tput(size: str, need: float) -> Target:
        name = f"{{c}}-client throughput >= {need:g}x oxigraph at {size}"
        sr = by_size.get(size.lower())
        if sr is None:
            return Target(name, "NOT RUN", f"size {size} was not run")
        mine, oxi = primary(sr), _by_key(sr).get(OXI_DISK)
        if not mine or not oxi or not mine.throughput_rps or not oxi.throughput_rps:
            return Target(name, "NOT RUN", "no throughput")
        r = mine.throughput_rps / oxi.throughput_rps
        detail = f"{mine.throughput_rps:.0f} vs {oxi.throughput_rps:.0f} req/s = {r:.2f}x"
        return Target(name, "PASS" if r >= need else "FAIL", detail)

    out += [tput("1M", 1.0), tput("10k", 0.5)]

    sr = by_size.get("1m")
    name = "load 1M triples in <= 1.2x pyoxigraph's bulk loader"
    if sr is None:
        out.append(Target(name, "NOT RUN", "size 1M was not run"))
    else:
        mine = primary(sr)
        bulk = sr.baseline.get("bulk", {}).get("seconds")
        if mine is None or mine.load_s is None or not bulk:
            out.append(Target(name, "NOT RUN", "no load time"))
        else:
            r = mine.load_s / bulk
            detail = f"{mine.load_s:.1f} s ({mine.load_note}) vs {bulk:.1f} s = {r:.2f}x"
            out.append(Target(name, "PASS" if r <= 1.2 else "FAIL", detail))

    name = "serve --db ready < 1 s at 1M"
    if sr is None:
        out.append(Target(name, "NOT RUN", "size 1M was not run"))
    else:
        db = _by_key(sr).get(ESCAP_DB)
        if db is None or db.ready_s is None:
            out.append(Target(name, "NOT RUN", "escap-kg serve --db is not available"))
        else:
            verdict = "PASS" if db.ready_s < 1 else "FAIL"
            out.append(Target(name, verdict, f"{db.ready_s:.2f} s"))

    name = "peak RSS serving 1M in memory <= 1.5x pyoxigraph's in-memory store (judged on PSS)"
    if sr is None:
        out.append(Target(name, "NOT RUN", "size 1M was not run"))
    else:
        mem = _by_key(sr).get(ESCAP_MEM)
        base = sr.baseline.get("memory", {})
        if mem is None or not mem.peak_pss_kib or not base.get("pss_kib"):
            out.append(Target(name, "NOT RUN", "no memory figures"))
        else:
            r_pss = mem.peak_pss_kib / base["pss_kib"]
            r_rss = mem.peak_rss_kib / base["rss_kib"]
            detail = (
                f"PSS {_mib(mem.peak_pss_kib)} vs {_mib(base['pss_kib'])} = {r_pss:.2f}x; "
                f"RSS {_mib(mem.peak_rss_kib)} vs {_mib(base['rss_kib'])} = {r_rss:.2f}x"
            )
            out.append(Target(name, "PASS" if r_pss <= 1.5 else "FAIL", detail))
    return out


def render(results: list[SizeResult], queries: list[BenchQuery], args: argparse.Namespace) -> str:
    """The Markdown report."""
    lines = ["# escap-kg benchmark", ""]
    lines.append(
        f"Run on {time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} cores, "
        f"escap-kg at {args.revision}, with "
        f"`python -m tests.benchmarks.run --sizes {args.sizes} --repeats {args.repeats} "
        f"--clients {args.clients} --duration {args.duration:g} --seed {args.seed}`"
        f"{' --queries ' + args.queries if args.queries else ''}."
    )
    lines += ["", "## Targets", "", "| target | result | detail |", "|---|---|---|"]
    for t in targets(results, queries):
        lines.append(f"| {t.name.replace('{c}', str(args.clients))} | {t.verdict} | {t.detail} |")
    lines += [
        "",
        'Ratios are escap-kg / other: below 1 escap-kg is faster. "escap-kg" is `serve --db` '
        "when that command exists, else `serve --data` (in memory). Scan/aggregate queries: "
        + ", ".join(q.id for q in queries if q.scan_or_aggregate)
        + ".",
    ]
    for sr in results:
        lines += _render_size(sr, queries, args)
    return "\n".join(lines) + "\n"


def _render_size(sr: SizeResult, queries: list[BenchQuery], args: argparse.Namespace) -> list[str]:
    servers = sr.servers
    mine = primary(sr)
    oxi, rdf = _by_key(sr).get(OXI_DISK), _by_key(sr).get(RDFLIB)
    t = sr.timeout
    out = [
        "",
        f"## {sr.size}: {sr.triples:,} generated triples plus the embedded graph",
        "",
        f"The whole size took {sr.seconds / 60:.1f} min. Medians in ms of up to {args.repeats} "
        f"runs after one warm-up (fewer for queries slower than {args.query_budget:g} s); "
        f"client and server time limit {t:g} s.",
        "",
    ]
    head = ["query", "kind", "rows"] + [s.key for s in servers]
    head += ["escap-kg / oxigraph", "escap-kg / rdflib"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    ratios_oxi: list[float] = []
    ratios_rdf: list[float] = []
    scan: list[str] = []
    mismatches = []
    for q in queries:
        results = [s.queries.get(q.id) for s in servers]
        counts = Counter(r.rows for r in results if r is not None and r.rows is not None)
        reference = counts.most_common(1)[0][0] if counts else None
        cells = []
        for s, r in zip(servers, results, strict=True):
            cell = _fmt_ms(r, t)
            if r is not None and r.rows is not None and r.rows != reference:
                cell += f" **({r.rows} rows!)**"
                mismatches.append(f"{q.id} on {s.key}: {r.rows} rows, others {reference}")
            cells.append(cell)
        a = mine.queries.get(q.id) if mine else None
        b = oxi.queries.get(q.id) if oxi else None
        c = rdf.queries.get(q.id) if rdf else None
        if (v := _ratio_value(a, b)) is not None:
            ratios_oxi.append(v)
        if (v := _ratio_value(a, c)) is not None:
            ratios_rdf.append(v)
        if q.scan_or_aggregate:
            scan.append(f"{q.id}: {ratio(a, b, t)} vs oxigraph, {ratio(a, c, t)} vs rdflib")
        row = [q.id, q.kind, "-" if reference is None else str(reference), *cells]
        row += [ratio(a, b, t), ratio(a, c, t)]
        out.append("| " + " | ".join(row) + " |")
    g_oxi, g_rdf = geomean(ratios_oxi), geomean(ratios_rdf)
    out += [
        "",
        f"- Geometric mean of escap-kg / oxigraph (on disk): "
        f"{'-' if g_oxi is None else f'{g_oxi:.2f}x'} over {len(ratios_oxi)} queries; "
        f"escap-kg / rdflib-endpoint: {'-' if g_rdf is None else f'{g_rdf:.3f}x'} over "
        f"{len(ratios_rdf)} queries (queries without a time on both sides left out).",
        "- Scan/aggregate: " + ("; ".join(scan) or "-") + ".",
        "- Row counts: "
        + ("; ".join(mismatches) if mismatches else "all servers agree on every answered query")
        + ".",
        "",
        "| server | load | ready | throughput, "
        f"{args.clients} clients, {args.duration:g} s (req/s) | peak RSS serving | "
        "peak PSS serving | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in servers:
        notes = []
        if s.load_note:
            notes.append(f"load = {s.load_note}")
        if s.restarts:
            notes.append(f"restarted {s.restarts}x after timeouts")
        if s.throughput_errors:
            notes.append(f"{s.throughput_errors} failed requests in the throughput test")
        errors = [f"{k}: {r.error}" for k, r in s.queries.items() if r.error and not r.timed_out]
        notes += errors[:3]
        if s.error:
            notes.append(f"error: {s.error.splitlines()[0]}")
        out.append(
            f"| {s.key}: {s.label} | {_secs(s.load_s)} | {_secs(s.ready_s)} | "
            f"{'-' if s.throughput_rps is None else f'{s.throughput_rps:,.1f}'} | "
            f"{_mib(s.peak_rss_kib)} | {_mib(s.peak_pss_kib)} | {'; '.join(notes)} |"
        )
    mem, bulk = sr.baseline.get("memory", {}), sr.baseline.get("bulk", {})
    if mem:
        out.append(
            f"| pyoxigraph `Store().bulk_load` (in memory, baseline) | {_secs(mem['seconds'])} | "
            f"- | - | {_mib(mem['rss_kib'])} | {_mib(mem['pss_kib'])} | "
            f"{mem['quads']:,} quads; VmHWM {_mib(mem['hwm_kib'])} |"
        )
    if bulk:
        out.append(
            f"| pyoxigraph `Store(path).bulk_load` (on disk, load baseline) | "
            f"{_secs(bulk['seconds'])} | - | - | - | - | data file only; "
            f"{_secs(bulk['wall'])} with interpreter start |"
        )
    return out


def _revision() -> str:
    """The checked-out commit, and whether src/ has changes not committed."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "an unknown revision"
    return f"`{head}`" + (" with uncommitted changes in src/" if dirty else "")


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


# The command line -------------------------------------------------------------------------------


def from_json(path: Path) -> list[SizeResult]:
    """Results saved by an earlier run (``tests/benchmarks/.data/results.json``)."""
    sizes = []
    for item in json.loads(path.read_text()):
        servers = []
        for s in item.pop("servers"):
            queries = {k: QueryResult(**v) for k, v in s.pop("queries").items()}
            servers.append(ServerResult(**s, queries=queries))
        sizes.append(SizeResult(**item, servers=servers))
    return sizes


def _sizes(text: str) -> list[str]:
    sizes = [s.strip() for s in text.split(",") if s.strip()]
    for s in sizes:
        parse_size(s)
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sizes", default="10k,100k", help="comma-separated: 10k,100k,1M")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0, help="throughput test, seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--timeout",
        type=float,
        help="per-query time limit, seconds (default: 60, or 120 from 1M triples)",
    )
    parser.add_argument(
        "--query-budget", type=float, default=10.0, help="stop repeating a query after this long"
    )
    parser.add_argument(
        "--server-budget",
        type=float,
        default=900.0,
        help="seconds of queries per server and size; later queries are skipped",
    )
    parser.add_argument("--queries", help="only queries whose id matches this regular expression")
    parser.add_argument("--servers", help=f"only these, comma-separated: {ESCAP_DB},{ESCAP_MEM},"
                        f"{OXI_DISK},{OXI_MEM},{RDFLIB}")  # fmt: skip
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    parser.add_argument(
        "--render",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="only write the report of results saved by earlier runs (their sizes in order)",
    )
    args = parser.parse_args(argv)
    sizes = _sizes(args.sizes)
    args.revision = _revision()
    if args.render:
        saved = [r for path in args.render for r in from_json(path)]
        args.sizes = ",".join(r.size for r in saved)
        args.revision += " (report rendered from saved results)"
        args.out.write_text(render(saved, load_queries(args.queries), args), encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
        return 0
    queries = load_queries(args.queries)
    if not any(q.kind == "selective" for q in queries):
        queries = [q for q in load_queries() if q.kind == "selective"] + queries
    DATA.mkdir(parents=True, exist_ok=True)
    with_db = escap_has_db()
    print(f"escap-kg load/serve --db available: {with_db}", file=sys.stderr)
    only = set(args.servers.split(",")) if args.servers else None
    results = []
    raw = DATA / "results.json"
    for size in sizes:
        triples = parse_size(size)
        timeout = args.timeout or (120.0 if triples >= 1_000_000 else 60.0)
        cfg = Config(
            args.repeats,
            args.clients,
            args.duration,
            timeout,
            args.query_budget,
            args.server_budget,
            ready_timeout=max(120.0, triples / 2000),
        )
        results.append(run_size(size, args.seed, queries, cfg, only, with_db))
        raw.write_text(json.dumps([asdict(r) for r in results], indent=1))
        args.out.write_text(render(results, queries, args), encoding="utf-8")
        print(f"[{size}] done in {results[-1].seconds / 60:.1f} min", file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _iter_stray() -> Iterator[str]:
    """Command lines of benchmark servers still running (there should be none)."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                cmd = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                if int(name) != os.getpid() and str(DATA) in cmd:
                    yield cmd


if __name__ == "__main__":
    code = main()
    for stray in _iter_stray():
        print(f"still running: {stray}", file=sys.stderr)
    raise SystemExit(code)
