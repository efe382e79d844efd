"""Drive ``escap-kg serve`` with concurrent clients and report throughput, latency and memory.

``python -m tests.load.run [--clients 32] [--duration 60] [--url URL]``. Without ``--url`` it
starts a server on 127.0.0.1 itself. Exits 1 if any request got a 5xx or lost its connection.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.proc import memory_kib, process_tree

ROOT = Path(__file__).resolve().parents[2]
SPARQL = (
    "SELECT ?s ?p ?o WHERE { ?s ?p ?o } LIMIT 100",
    "SELECT (COUNT(*) AS ?n) WHERE { ?s a ?type }",
    "ASK { ?s ?p ?o }",
)
MAX_REQUESTS_PER_CLIENT = 100_000


@dataclass
class Tally:
    """What the clients saw, shared under a lock."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    dropped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def catalogue_ids() -> list[str]:
    """The catalogue queries that run without parameters or network (not 17, the federated)."""
    ids = sorted(p.stem for p in (ROOT / "queries").glob("[0-9][0-9]-*.rq"))
    return [i for i in ids if not i.startswith("17-")]


def client(url: str, index: int, ids: list[str], stop_at: float, tally: Tally) -> None:
    """One client: catalogue queries round-robin, every fourth request a POST /sparql."""
    with httpx.Client(base_url=url, timeout=60) as http:
        for turn in range(index, index + MAX_REQUESTS_PER_CLIENT):
            if time.monotonic() >= stop_at:
                return
            started = time.monotonic()
            try:
                if turn % 4 == 3:
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


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    """``escap-kg serve`` on a free loopback port, ready."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "escap_kg", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "ESCAP_KG_UPDATE_TOKEN": ""},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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


def main(argv: list[str] | None = None) -> int:
    """Run the load and print the report; 1 on any 5xx or dropped connection."""
    parser = argparse.ArgumentParser(prog="python -m tests.load.run", description=__doc__)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--url", help="a running server (default: start one on 127.0.0.1)")
    args = parser.parse_args(argv)
    if args.url and not is_loopback(args.url):
        parser.error(f"--url {args.url}: the load test only sends traffic to this machine")
    if args.clients < 1 or not 0 < args.duration <= 600:
        parser.error("--clients must be at least 1 and --duration between 0 and 600 seconds")

    if args.url:
        try:
            httpx.get(f"{args.url.rstrip('/')}/sparql", params={"query": "ASK {}"}, timeout=10)
        except httpx.TransportError as err:
            parser.error(f"--url {args.url}: no server answers there ({err})")

    own, url = (None, args.url.rstrip("/")) if args.url else start_server()
    try:
        pid = server_pid(url, own)
        ids = catalogue_ids()
        tally = Tally()
        peak_rss = peak_pss = 0
        started = time.monotonic()
        stop_at = started + args.duration
        threads = [
            threading.Thread(target=client, args=(url, i, ids, stop_at, tally), daemon=True)
            for i in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            if pid is not None:
                rss, pss = memory_kib(process_tree(pid))
                peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            for thread in threads:
                thread.join(0.5 / len(threads))
            if time.monotonic() > stop_at + 120:
                print("clients still busy 120 s after the end; giving up", file=sys.stderr)
                break
        elapsed = time.monotonic() - started
    finally:
        if own is not None:
            own.terminate()
            try:
                own.wait(10)
            except subprocess.TimeoutExpired:
                own.kill()
                own.wait(5)

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
    return 1 if errors or tally.dropped else 0


if __name__ == "__main__":
    sys.exit(main())
