"""Drive ``escap-kg serve`` with concurrent clients and report throughput, latency and memory.

``python -m tests.load.run [--clients 32] [--duration 60] [--url URL] [--slow-readers N]
[--update-every S [--token TOKEN]]``. Without ``--url`` it starts a server on 127.0.0.1 itself
(with a generated update token when updates are asked for). Slow readers ask for a huge answer
and read it at 1 KiB every 50 ms; each response must end within the server's time limit plus a
margin. The updater bumps a version number every S seconds while the fast clients read it back,
to check that no read is stale or diverging and no acknowledged update is lost. Exits 1 if a fast
request got a 5xx or lost its connection, or on any broken promise of the slow readers or the
updates.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlencode

import httpx

from tests.proc import memory_kib, process_tree

ROOT = Path(__file__).resolve().parents[2]
SPARQL = (
    "SELECT ?s ?p ?o WHERE { ?s ?p ?o } LIMIT 100",
    "SELECT (COUNT(*) AS ?n) WHERE { ?s a ?type }",
    "ASK { ?s ?p ?o }",
)
MAX_REQUESTS_PER_CLIENT = 100_000

#: Tens of MB as CSV on the embedded graph (every pair of triples), more than a slow reader
#: can take within the time limit.
HUGE = "SELECT ?s ?p ?o WHERE { ?s ?p ?o . ?x ?y ?z } LIMIT 2000000"
SLOW_READ_BYTES = 1024
SLOW_READ_PAUSE = 0.05
#: Seconds past the server's time limit a slow response may take to end, counted from the
#: request: the limit starts once a worker takes the query, and with 40 clients on a pool of
#: two a query may first wait a few seconds for one.
SLOW_MARGIN = 10.0
#: Seconds after the stop before the run gives up on threads still busy.
GIVE_UP_AFTER = 120.0

#: Bumps the version, replaces the stamp with a fresh STRUUID and adds the item of the new
#: version, all in one operation, so a read that sees version N sees N items and one stamp.
UPDATE = """\
DELETE {
  <urn:escap-kg:load> <urn:escap-kg:version> ?v .
  <urn:escap-kg:load> <urn:escap-kg:stamp> ?old .
}
INSERT {
  <urn:escap-kg:load> <urn:escap-kg:version> ?next .
  <urn:escap-kg:load> <urn:escap-kg:stamp> ?u .
  ?item <urn:escap-kg:n> ?next .
}
WHERE {
  OPTIONAL { <urn:escap-kg:load> <urn:escap-kg:version> ?v }
  OPTIONAL { <urn:escap-kg:load> <urn:escap-kg:stamp> ?old }
  BIND(COALESCE(?v, 0) + 1 AS ?next)
  BIND(STRUUID() AS ?u)
  BIND(IRI(CONCAT("urn:escap-kg:load:", STR(?next))) AS ?item)
}"""
#: One row: the number of items and, if set, the version and its stamp (more rows: more than
#: one version or stamp triple).
VERSION = """\
SELECT ?v ?u ?c WHERE {
  { SELECT (COUNT(*) AS ?c) WHERE { ?item <urn:escap-kg:n> ?n } }
  OPTIONAL { <urn:escap-kg:load> <urn:escap-kg:version> ?v ; <urn:escap-kg:stamp> ?u }
}"""


@dataclass
class VersionRead:
    """One read of the version: when it ran and what it saw."""

    started: float
    ended: float
    rows: int
    version: int
    stamp: str
    items: int


@dataclass
class Tally:
    """What the clients saw, shared under a lock."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    dropped: int = 0
    reads: list[VersionRead] = field(default_factory=list)
    unreadable: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class SlowTally:
    """What the slow readers saw, shared under a lock."""

    statuses: dict[int, int] = field(default_factory=dict)
    no_response: int = 0
    whole: int = 0
    cut_off: int = 0
    #: Seconds from the request to the end of the body as the client saw it.
    durations: list[float] = field(default_factory=list)
    #: Seconds from the request to the server's closing its side (FIN queued), when seen.
    server_closed: list[float] = field(default_factory=list)
    #: Responses still coming in at the limit plus the margin, and the most bytes then queued.
    overran: int = 0
    queued_at_cap: int = 0
    #: Of those, the ones the server had not closed yet (its socket still ESTABLISHED).
    open_at_cap: int = 0
    read_bytes: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class UpdateLog:
    """What the updater did: the acknowledged updates as (time of the 204, version made)."""

    base: int = 0
    sent: int = 0
    acks: list[tuple[float, int]] = field(default_factory=list)
    failed: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def catalogue_ids() -> list[str]:
    """The catalogue queries that run without parameters or network (not 17, the federated)."""
    ids = sorted(p.stem for p in (ROOT / "queries").glob("[0-9][0-9]-*.rq"))
    return [i for i in ids if not i.startswith("17-")]


def read_version(http: httpx.Client, tally: Tally) -> httpx.Response:
    """GET the version, and note what it saw in the tally if it answered 200."""
    started = time.monotonic()
    response = http.get(
        "/sparql", params={"query": VERSION}, headers={"Accept": "application/sparql-results+json"}
    )
    ended = time.monotonic()
    if response.status_code != 200:
        return response
    try:
        rows = response.json()["results"]["bindings"]
        first = rows[0] if rows else {}
        read = VersionRead(
            started,
            ended,
            len(rows),
            int(first["v"]["value"]) if "v" in first else 0,
            first["u"]["value"] if "u" in first else "",
            int(first["c"]["value"]) if "c" in first else -1,
        )
    except (ValueError, KeyError, TypeError):
        with tally.lock:
            tally.unreadable += 1
        return response
    with tally.lock:
        tally.reads.append(read)
    return response


def client(
    url: str, index: int, ids: list[str], stop_at: float, tally: Tally, versions: bool
) -> None:
    """One client: catalogue queries round-robin, every fourth request a POST /sparql and, with
    ``versions``, one request in eight a read of the version in place of a catalogue query."""
    with httpx.Client(base_url=url, timeout=60) as http:
        for turn in range(index, index + MAX_REQUESTS_PER_CLIENT):
            if time.monotonic() >= stop_at:
                return
            started = time.monotonic()
            try:
                if versions and turn % 8 == 5:
                    response = read_version(http, tally)
                elif turn % 4 == 3:
                    response = http.post(
                        "/sparql",
                        content=SPARQL[turn % len(SPARQL)],
                        headers={"Content-Type": "application/sparql-query"},
                    )
                else:
                    response = http.get(f"/api/queries/{ids[turn % len(ids)]}")
            except httpx.TransportError:
                with tally.lock:
                    tally.dropped += 1
                continue
            elapsed = time.monotonic() - started
            with tally.lock:
                tally.latencies.append(elapsed)
                tally.statuses[response.status_code] = (
                    tally.statuses.get(response.status_code, 0) + 1
                )


class ChunkedBody:
    """Follows an HTTP/1.1 chunked body as it arrives; ``done`` once its last chunk came."""

    def __init__(self) -> None:
        self.buffer = b""
        self.left = 0
        self.after_data = False
        self.done = False

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while not self.done:
            if self.left:
                taken = min(self.left, len(self.buffer))
                self.buffer = self.buffer[taken:]
                self.left -= taken
                if self.left:
                    return
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
            if self.after_data:
                if line:
                    raise ValueError("no CRLF after a chunk")
                self.after_data = False
                continue
            size = int(line.split(b";", 1)[0], 16)
            if size == 0:
                self.done = True
                return
            self.left, self.after_data = size, True


def tcp_state(local_port: int, remote_port: int) -> tuple[str, int, int] | None:
    """The state, send queue and receive queue of a loopback TCP socket, from /proc."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if (
                int(fields[1].rsplit(":", 1)[1], 16) == local_port
                and int(fields[2].rsplit(":", 1)[1], 16) == remote_port
            ):
                tx, rx = fields[4].split(":")
                return fields[3], int(tx, 16), int(rx, 16)
    return None


def slow_request(host: str, port: int, limit: float, tally: SlowTally) -> int:
    """Ask for the huge answer and read it at 1 KiB every 50 ms; the status it got (0: none)."""
    request = (
        f"GET /sparql?{urlencode({'query': HUGE})} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Accept: text/csv\r\nConnection: close\r\n\r\n"
    ).encode()
    started = time.monotonic()
    cap = started + limit + SLOW_MARGIN
    try:
        sock = socket.create_connection((host, port), timeout=limit + SLOW_MARGIN)
    except OSError:
        with tally.lock:
            tally.no_response += 1
        return 0
    with sock:
        mine = sock.getsockname()[1]
        head = b""
        try:
            sock.sendall(request)
            while b"\r\n\r\n" not in head:
                data = sock.recv(SLOW_READ_BYTES)
                if not data:
                    raise ConnectionError("closed before the headers")
                head += data
        except OSError:
            with tally.lock:
                tally.no_response += 1
            return 0
        head, rest = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        with tally.lock:
            tally.statuses[status] = tally.statuses.get(status, 0) + 1
        if status != 200:
            return status
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        chunked = headers.get("transfer-encoding") == "chunked"
        length = int(headers.get("content-length", "-1"))
        body = ChunkedBody()
        received = 0
        server_closed: float | None = None
        probed = 0.0
        overran = False
        data = rest
        while True:
            received += len(data)
            try:
                if chunked:
                    body.feed(data)
                elif 0 <= length <= received:
                    body.done = True
            except ValueError:
                break
            if body.done:
                break
            now = time.monotonic()
            if server_closed is None and now - probed >= 0.5:
                probed = now
                state = tcp_state(port, mine)
                if state is None or state[0] != "01":  # no longer ESTABLISHED
                    server_closed = now - started
            if now >= cap:
                overran = True
                break
            time.sleep(SLOW_READ_PAUSE)
            sock.settimeout(max(cap - time.monotonic(), 0.01))
            try:
                data = sock.recv(SLOW_READ_BYTES)
            except TimeoutError:
                overran = True
                break
            except OSError:
                break
            if not data:
                break
        ended = time.monotonic() - started
        queued = 0
        still_open = False
        if overran:
            # Still coming in: see how much is queued toward us, then take it at full speed
            # to learn whether it ends whole or cut off.
            theirs, ours = tcp_state(port, mine), tcp_state(mine, port)
            queued = (theirs[1] if theirs else 0) + (ours[2] if ours else 0)
            still_open = theirs is not None and theirs[0] == "01"
            if server_closed is None and not still_open:
                server_closed = ended
            sock.settimeout(10)
            try:
                while not body.done and (data := sock.recv(1 << 16)):
                    received += len(data)
                    if chunked:
                        body.feed(data)
            except (OSError, ValueError):
                pass
            body.done = body.done or (not chunked and 0 <= length <= received)
    with tally.lock:
        tally.durations.append(ended)
        tally.read_bytes.append(received)
        if server_closed is not None:
            tally.server_closed.append(server_closed)
        if body.done:
            tally.whole += 1
        else:
            tally.cut_off += 1
        if overran:
            tally.overran += 1
            tally.queued_at_cap = max(tally.queued_at_cap, queued)
            tally.open_at_cap += still_open
    return status


def slow_reader(url: str, stop_at: float, limit: float, tally: SlowTally) -> None:
    """One slow reader: huge answers, read slowly, one after the other until the stop."""
    parts = httpx.URL(url)
    host, port = parts.host, parts.port or 80
    while time.monotonic() < stop_at:
        if slow_request(host, port, limit, tally) != 200:
            time.sleep(0.5)


def updater(
    url: str, token: str, every: float, stop_at: float, log: UpdateLog, tally: Tally
) -> None:
    """Every ``every`` seconds an update that bumps the version; each 204 is noted with the
    version it made, then the version is read back (that read must see it too)."""
    headers = {"Content-Type": "application/sparql-update", "Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=60) as http:
        next_at = time.monotonic() + every
        while next_at < stop_at:
            time.sleep(max(next_at - time.monotonic(), 0))
            next_at += every
            with log.lock:
                log.sent += 1
            started = time.monotonic()
            try:
                response = http.post("/sparql", content=UPDATE, headers=headers)
            except httpx.TransportError as err:
                with log.lock:
                    log.failed[type(err).__name__] = log.failed.get(type(err).__name__, 0) + 1
                continue
            acked = time.monotonic()
            if response.status_code != 204:
                with log.lock:
                    key = str(response.status_code)
                    log.failed[key] = log.failed.get(key, 0) + 1
                continue
            with log.lock:
                log.acks.append((acked, log.base + len(log.acks) + 1))
                log.latencies.append(acked - started)
            with contextlib.suppress(httpx.TransportError):
                read_version(http, tally)


def current_version(url: str) -> VersionRead:
    """The version, its stamp and the number of items, read once."""
    tally = Tally()
    with httpx.Client(base_url=url, timeout=60) as http:
        response = read_version(http, tally)
    if not tally.reads:
        raise SystemExit(f"cannot read the version: {response.status_code} {response.text[:200]}")
    return tally.reads[0]


@dataclass
class Consistency:
    """The version reads checked against the acknowledged updates."""

    versions: set[int]
    stale: list[tuple[VersionRead, int]]
    diverging: dict[int, set[str]]
    torn: list[VersionRead]
    backwards: int


def check_reads(reads: list[VersionRead], acks: list[tuple[float, int]]) -> Consistency:
    """Stale reads (older than an update acknowledged before the read started), diverging
    reads (one version, two stamps), torn reads (items, stamps or versions that do not match)
    and, for information, reads older than one that ended before they started."""
    ack_times = [t for t, _ in acks]
    stale = []
    stamps: dict[int, set[str]] = {}
    torn = []
    for read in reads:
        known = bisect.bisect_left(ack_times, read.started)
        if known and read.version < acks[known - 1][1]:
            stale.append((read, acks[known - 1][1]))
        stamps.setdefault(read.version, set()).add(read.stamp)
        if read.rows != 1 or read.items != read.version:
            torn.append(read)
    by_end = sorted(reads, key=lambda r: r.ended)
    ends = [r.ended for r in by_end]
    highest: list[int] = []
    for read in by_end:
        highest.append(max(highest[-1] if highest else 0, read.version))
    backwards = 0
    for read in reads:
        before = bisect.bisect_left(ends, read.started)
        if before and read.version < highest[before - 1]:
            backwards += 1
    return Consistency(
        set(stamps),
        stale,
        {v: s for v, s in stamps.items() if len(s) > 1},
        torn,
        backwards,
    )


def start_server(
    token: str, time_limit: float, log: IO[bytes]
) -> tuple[subprocess.Popen[bytes], str]:
    """``escap-kg serve`` on a free loopback port, ready; updates on if ``token`` is set."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "escap_kg", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env={
            **os.environ,
            "ESCAP_KG_UPDATE_TOKEN": token,
            "ESCAP_KG_QUERY_TIMEOUT": f"{time_limit:g}",
        },
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the server exited while starting")
        try:
            if httpx.get(f"{url}/sparql", params={"query": "ASK {}"}).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start in 60 s")


def server_pid(url: str, own: subprocess.Popen[bytes] | None) -> int | None:
    """The server's process id: our own child, or the process listening on the URL's port."""
    if own is not None:
        return own.pid
    port = httpx.URL(url).port
    if port is None:
        return None
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            for fd in fd_dir.iterdir():
                if os.readlink(fd).removeprefix("socket:[").rstrip("]") in inodes:
                    return int(fd_dir.parent.name)
        except OSError:
            continue
    return None


def is_loopback(url: str) -> bool:
    """True if the URL names this machine: localhost, 127.0.0.0/8 or ::1."""
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cut_off_reasons(log: Path) -> dict[str, int]:
    """Why the server says it cut answers off, from its log, and how often."""
    reasons: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        if "answer cut off" in line:
            reason = line.split("connection closed: ", 1)[-1].strip()
            reasons[reason] = reasons.get(reason, 0) + 1
    return reasons


def main(argv: list[str] | None = None) -> int:
    """Run the load and print the report; 1 on any 5xx, dropped connection or broken promise."""
    parser = argparse.ArgumentParser(prog="python -m tests.load.run", description=__doc__)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--url", help="a running server (default: start one on 127.0.0.1)")
    parser.add_argument(
        "--slow-readers", type=int, default=0, help="clients reading huge answers slowly"
    )
    parser.add_argument(
        "--update-every", type=float, default=0.0, help="seconds between updates (0: none)"
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("ESCAP_KG_UPDATE_TOKEN"),
        help="the server's update token (default: $ESCAP_KG_UPDATE_TOKEN; generated for a "
        "server started here)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=30.0,
        help="the server's query time limit in seconds (a server started here gets it)",
    )
    args = parser.parse_args(argv)
    if args.url and not is_loopback(args.url):
        parser.error(f"--url {args.url}: the load test only sends traffic to this machine")
    if args.clients < 1 or not 0 < args.duration <= 600:
        parser.error("--clients must be at least 1 and --duration between 0 and 600 seconds")
    if args.slow_readers < 0 or args.update_every < 0 or args.time_limit <= 0:
        parser.error("--slow-readers, --update-every and --time-limit cannot be negative")
    updating = args.update_every > 0
    if updating and args.url and not args.token:
        parser.error("--update-every with --url needs --token or ESCAP_KG_UPDATE_TOKEN")
    token = args.token or (secrets.token_urlsafe(24) if updating and not args.url else "")

    if args.url:
        try:
            httpx.get(f"{args.url.rstrip('/')}/sparql", params={"query": "ASK {}"}, timeout=10)
        except httpx.TransportError as err:
            parser.error(f"--url {args.url}: no server answers there ({err})")

    with tempfile.TemporaryDirectory(prefix="escap-kg-load-") as scratch:
        server_log = Path(scratch) / "server.log"
        with server_log.open("wb") as log_file:
            own, url = (
                (None, args.url.rstrip("/"))
                if args.url
                else start_server(token if updating else "", args.time_limit, log_file)
            )
            try:
                pid = server_pid(url, own)
                ids = catalogue_ids()
                tally, slow, updates = Tally(), SlowTally(), UpdateLog()
                if updating:
                    updates.base = current_version(url).version
                peak_rss = peak_pss = 0
                started = time.monotonic()
                stop_at = started + args.duration
                threads = [
                    threading.Thread(
                        target=client, args=(url, i, ids, stop_at, tally, updating), daemon=True
                    )
                    for i in range(args.clients)
                ]
                threads += [
                    threading.Thread(
                        target=slow_reader, args=(url, stop_at, args.time_limit, slow), daemon=True
                    )
                    for _ in range(args.slow_readers)
                ]
                if updating:
                    threads.append(
                        threading.Thread(
                            target=updater,
                            args=(url, token, args.update_every, stop_at, updates, tally),
                            daemon=True,
                        )
                    )
                for thread in threads:
                    thread.start()
                fast_done = 0.0
                give_up = max(GIVE_UP_AFTER, args.time_limit + SLOW_MARGIN + 60)
                while any(thread.is_alive() for thread in threads):
                    if pid is not None:
                        rss, pss = memory_kib(process_tree(pid))
                        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
                    for thread in threads:
                        thread.join(0.5 / len(threads))
                    if not fast_done and not any(t.is_alive() for t in threads[: args.clients]):
                        fast_done = time.monotonic() - started
                    if time.monotonic() > stop_at + give_up:
                        print(
                            f"clients still busy {give_up:.0f} s after the end; giving up",
                            file=sys.stderr,
                        )
                        break
                elapsed = fast_done or time.monotonic() - started
                final = current_version(url) if updating else None
            finally:
                if own is not None:
                    own.terminate()
                    try:
                        own.wait(10)
                    except subprocess.TimeoutExpired:
                        own.kill()
                        own.wait(5)
        reasons = cut_off_reasons(server_log) if own is not None else {}

    latencies = sorted(tally.latencies)
    total = len(latencies) + tally.dropped
    errors = sum(n for status, n in tally.statuses.items() if status >= 500)
    p99 = statistics.quantiles(latencies, n=100)[-1] if len(latencies) > 1 else 0.0
    print(f"server        {url}{' (started here)' if own else ''}")
    print(f"clients       {args.clients} for {elapsed:.1f} s")
    print(f"requests      {total} ({total / elapsed:.1f}/s)")
    print(f"statuses      {dict(sorted(tally.statuses.items()))}")
    if latencies:
        print(
            f"latency       p50 {statistics.median(latencies) * 1000:.1f} ms, "
            f"p99 {p99 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms"
        )
    print(f"5xx           {errors}")
    print(f"dropped       {tally.dropped}")
    if pid:
        print(f"peak memory   RSS {peak_rss / 1024:.1f} MiB, PSS {peak_pss / 1024:.1f} MiB")
    else:
        print("peak memory   unknown (no pid)")
    failed = bool(errors or tally.dropped)
    if args.slow_readers:
        failed |= report_slow(args.slow_readers, args.time_limit, slow, reasons)
    if updating and final is not None:
        failed |= report_updates(args.update_every, updates, tally, final)
    return 1 if failed else 0


def report_slow(readers: int, limit: float, slow: SlowTally, reasons: dict[str, int]) -> bool:
    """Print the slow readers' lines; True if a response did not end within limit + margin."""
    slow_5xx = {s: n for s, n in sorted(slow.statuses.items()) if s >= 500}
    cap = limit + SLOW_MARGIN
    print(
        f"slow readers  {readers}: {sum(slow.statuses.values())} responses started "
        f"{dict(sorted(slow.statuses.items()))}, {slow.cut_off} cut off, {slow.whole} whole, "
        f"{slow.no_response} without a response"
    )
    print(f"slow 5xx      {sum(slow_5xx.values())} at the start {slow_5xx or ''}".rstrip())
    print(
        f"slow duration max {max(slow.durations, default=0.0):.1f} s from request to end of body "
        f"(limit {limit:g} s + {SLOW_MARGIN:g} s); still receiving at {cap:g} s: {slow.overran}"
        + (
            f" (up to {slow.queued_at_cap / 2**20:.1f} MiB queued toward the reader, "
            f"{slow.open_at_cap} not closed by the server yet)"
            if slow.overran
            else ""
        )
    )
    closed = slow.server_closed
    print(
        f"slow closes   the server closed its side (seen by {cap:g} s) in {len(closed)}"
        + (
            f" after max {max(closed):.1f} s, median {statistics.median(closed):.1f} s"
            if closed
            else ""
        )
        + f"; bytes per response max {max(slow.read_bytes, default=0) / 2**20:.1f} MiB"
    )
    if reasons:
        print(f"slow reasons  {reasons} (server log)")
    return slow.overran > 0


def report_updates(every: float, log: UpdateLog, tally: Tally, final: VersionRead) -> bool:
    """Print the updates' lines; True on any unacknowledged update, stale, diverging or torn
    read, or lost data."""
    check = check_reads(tally.reads, log.acks)
    acked = len(log.acks)
    unacked = log.sent - acked
    expected = log.base + acked
    # An update without its 204 may or may not have been applied.
    lost = max(expected - final.version, expected - final.items, 0)
    extra = final.version - expected if final.version > expected + unacked else 0
    final_ok = final.rows == 1 and final.items == final.version and not lost and not extra
    slowest = max(log.latencies, default=0.0)
    print(
        f"updates       every {every:g} s: {log.sent} sent, {acked} acknowledged "
        f"(max {slowest * 1000:.0f} ms){f', failed {log.failed}' if log.failed else ''}"
    )
    seen = sorted(check.versions)
    print(
        f"versions      {len(tally.reads)} reads saw {len(seen)} versions "
        f"({seen[0] if seen else '-'}..{seen[-1] if seen else '-'}); "
        f"final {final.version} with {final.items} items (expected {expected}); "
        f"went back after a newer read {check.backwards} (not promised)"
    )
    print(
        f"consistency   diverging {len(check.diverging)}, stale {len(check.stale)}, "
        f"torn {len(check.torn)}, unreadable {tally.unreadable}, lost updates {lost}"
        f"{f', unexplained extra {extra}' if extra else ''}"
    )
    for version, stamps in sorted(check.diverging.items())[:5]:
        print(f"  diverging   version {version} with stamps {sorted(stamps)}")
    for read, wanted in check.stale[:5]:
        print(f"  stale       saw version {read.version}, {wanted} acknowledged before the read")
    for read in check.torn[:5]:
        print(f"  torn        {read.rows} rows, version {read.version}, {read.items} items")
    return bool(
        unacked or check.stale or check.diverging or check.torn or tally.unreadable or not final_ok
    )


if __name__ == "__main__":
    sys.exit(main())
