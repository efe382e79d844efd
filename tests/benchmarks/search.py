"""Benchmark full-text search: index build time, and search latency direct and over HTTP.

``python -m tests.benchmarks.search [--triples 1000000] [--searches 50]``

Generates the data (cached in ``tests/benchmarks/.data/``), loads it beside the embedded graph,
builds the index and times searches of common and rare words (median and p90): straight against
the index, then through ``/api/search`` of ``escap-kg serve --data FILE`` on a free local port.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pyoxigraph as ox

from escap_kg.search import Index, build_index
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph
from tests.benchmarks.generate import write_file
from tests.benchmarks.run import DATA, Server, free_port


def words(index: Path, count: int) -> tuple[list[str], list[str]]:
    """The most common words of the index, and words found in only a few resources."""
    conn = sqlite3.connect(index)
    try:
        conn.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, texts, 'row')")
        common = [
            w
            for (w,) in conn.execute(
                "SELECT term FROM temp.vocab WHERE length(term) > 3 ORDER BY doc DESC LIMIT ?",
                (count,),
            )
        ]
        rare = [
            w
            for (w,) in conn.execute(
                "SELECT term FROM temp.vocab WHERE doc <= 3 AND term GLOB '[a-z]*' "
                "AND length(term) > 3 ORDER BY term LIMIT ?",
                (count,),
            )
        ]
    finally:
        conn.close()
    return common, rare


def summary(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return f"{name:<28} median {statistics.median(ms):7.2f} ms   p90 {p90:7.2f} ms   (n={len(ms)})"


def main() -> None:
    """Run the benchmark and print its results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--triples", type=int, default=1_000_000)
    parser.add_argument("--searches", type=int, default=50)
    args = parser.parse_args()
    data = DATA / f"bench-{args.triples}-seed1.nt"
    if not data.exists():
        print(f"generating {args.triples:,} triples into {data}", flush=True)
        write_file(data, args.triples, seed=1)
    settings = Settings(extra_files=(data,))
    started = time.perf_counter()
    kg = KnowledgeGraph.load(settings)
    store: ox.Store = kg.store
    print(f"loaded {len(store):,} quads in {time.perf_counter() - started:.1f} s", flush=True)
    half = args.searches // 2
    with tempfile.TemporaryDirectory(prefix="escap-kg-search-") as folder:
        index_path = Path(folder) / "index.sqlite"
        seconds = build_index(store, index_path)
        size = index_path.stat().st_size / 2**20
        print(f"index built in {seconds:.2f} s ({size:.1f} MiB)")
        del kg, store
        common, rare = words(index_path, half)
        print(f"common words: {', '.join(common[:8])}...; rare words: {', '.join(rare[:8])}...")
        index = Index(index_path)
        for name, chosen in (("direct, common words", common), ("direct, rare words", rare)):
            times = []
            for word in chosen:
                t = time.perf_counter()
                index.search(word, 20)
                times.append(time.perf_counter() - t)
            print(summary(name, times))
        index.close()

        port = free_port()
        command = [sys.executable, "-m", "escap_kg", "serve", "--port", str(port)]
        server = Server([*command, "--data", str(data)], Path(folder) / "server.log")
        url = f"http://127.0.0.1:{port}"
        started = server.start()
        try:
            with httpx.Client(timeout=60) as client:
                while True:
                    try:
                        if client.get(f"{url}/api/search", params={"q": "migration"}).is_success:
                            break
                    except httpx.TransportError:
                        pass
                    if not server.alive() or time.perf_counter() - started > 600:
                        raise SystemExit(f"the server did not start:\n{server.tail()}")
                    time.sleep(0.5)
                print(f"server ready (with its index) in {time.perf_counter() - started:.1f} s")
                for name, chosen in (("HTTP, common words", common), ("HTTP, rare words", rare)):
                    times = []
                    for word in chosen:
                        t = time.perf_counter()
                        response = client.get(f"{url}/api/search", params={"q": word})
                        times.append(time.perf_counter() - t)
                        response.raise_for_status()
                    print(summary(name, times))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
