"""A load into a store that is being served becomes visible to every worker at once.

The server pins the version of the store its workers read. When a load swaps in a new version,
the next request moves the pool to it: idle workers are replaced at once, busy ones when their
query ends (on the version it started with), so no request that starts after another has seen
the new version sees the old one, and a graph is never seen half (ASK true but COUNT 0).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from escap_kg.database import load
from escap_kg.settings import Settings
from tests.conftest import LiveServer

pytestmark = pytest.mark.slow

EXTRA = "https://w3id.org/escap-kg/graph/extra/"


@dataclass
class Read:
    started: float
    ended: float
    count: int


def many_triples(path: Path, count: int, tag: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for i in range(count):
            out.write(f'<http://example.org/{tag}/{i}> <http://example.org/v> "{i}" .\n')
    return path


def reader(url: str, graph: str, stop: threading.Event, reads: list[Read]) -> None:
    query = f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}"
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            started = time.monotonic()
            response = client.get(
                f"{url}/sparql", params={"query": query}, headers={"Accept": "text/csv"}
            )
            assert response.status_code == 200, response.text
            reads.append(Read(started, time.monotonic(), int(response.text.split()[1])))


def start_readers(
    url: str, count: int
) -> tuple[threading.Event, list[Read], list[threading.Thread]]:
    """``count`` readers of the graph ``rows``, until the event is set."""
    stop = threading.Event()
    reads: list[Read] = []
    threads = [
        threading.Thread(target=reader, args=(url, f"{EXTRA}rows", stop, reads))
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    return stop, reads, threads


def assert_switched_at_once(reads: list[Read], old: int, new: int) -> None:
    """Every read saw the old or the new count, and none started after a read that saw the
    new one had ended yet saw the old one."""
    assert {r.count for r in reads} <= {old, new}, {r.count for r in reads}
    first_new_end = min((r.ended for r in reads if r.count == new), default=None)
    assert first_new_end is not None, "no read saw the load"
    stale = [r for r in reads if r.count == old and r.started > first_new_end]
    assert not stale, f"{len(stale)} reads saw the old version after another saw the new one"


def test_a_load_during_serving_is_seen_by_all_workers_at_once(tmp_path: Path) -> None:
    db = tmp_path / "store"
    first = many_triples(tmp_path / "rows.nt", 2_000, "a")
    load(db, [first], Settings())
    server = LiveServer("--db", str(db), "--workers", "3").wait()
    try:
        stop, reads, threads = start_readers(server.url, 4)
        time.sleep(0.5)
        # The same graph, replaced with more rows: the count tells the versions apart.
        bigger = many_triples(tmp_path / "next" / "rows.nt", 5_000, "b")
        done = subprocess.run(
            [sys.executable, "-m", "escap_kg", "load", "--db", str(db), str(bigger)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join(30)
        # The load adds to the graph of the same name: 2,000 rows of "a" plus 5,000 of "b".
        assert_switched_at_once(reads, 2_000, 7_000)
        assert reads[-1].count == 7_000
        print(f"{len(reads)} reads, {sum(r.count == 7_000 for r in reads)} after the switch")
    finally:
        server.stop()
    assert not list(tmp_path.glob("store.retired-*")), "the old version was removed once free"


def test_serving_during_a_load(tmp_path: Path) -> None:
    """A server started while a load runs serves the version before it, then moves to the new
    one as a whole once the load has swapped it in."""
    db = tmp_path / "store"
    load(db, [many_triples(tmp_path / "rows.nt", 1_000, "a")], Settings())
    bigger = many_triples(tmp_path / "next" / "rows.nt", 300_000, "b")
    loading = subprocess.Popen(
        [sys.executable, "-m", "escap_kg", "load", "--db", str(db), str(bigger)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = LiveServer("--db", str(db), "--workers", "2")
    try:
        server.wait(timeout=120)
        stop, reads, threads = start_readers(server.url, 3)
        assert loading.wait(180) == 0, loading.stderr.read() if loading.stderr else ""
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join(30)
        counts = {r.count for r in reads}
        assert 301_000 in counts
        if 1_000 in counts:
            assert_switched_at_once(reads, 1_000, 301_000)
        assert reads[-1].count == 301_000
    finally:
        server.stop()
        if loading.poll() is None:
            loading.kill()
