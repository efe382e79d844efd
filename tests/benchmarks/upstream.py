"""Throughput of `escap-kg serve --upstream` in front of `oxigraph serve`, against Oxigraph alone.

``python -m tests.benchmarks.upstream [--size 100k] [--seconds 20] [--clients 8]``: loads the
seeded synthetic data of that size into an on-disk Oxigraph store, serves it with ``oxigraph
serve --union-default-graph``, and runs the selective partner lookup
(``queries/b1-partner-lookup.rq``) from ``--clients`` keep-alive clients for ``--seconds``, first
against Oxigraph's ``/query`` directly, then against our web tier's ``/sparql`` with Oxigraph as
its upstream store. Prints requests per second answered 200, errors, and the ratio as a Markdown
table. Everything runs on this machine: the clients, our server and Oxigraph share its cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.benchmarks.generate import parse_size
from tests.benchmarks.run import dataset, free_port, load_queries, oxigraph, throughput

QUERY = "b1-partner-lookup"


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Return once ``url`` answers ``ASK {}``; raise if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
            try:
                if client.get(url, params={"query": "ASK {}"}).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


def rows(url: str, text: str) -> int:
    """Solutions of one answer, to check both servers answer the same, non-empty."""
    answer = httpx.post(
        url, data={"query": text}, headers={"Accept": "application/sparql-results+json"}
    )
    answer.raise_for_status()
    return len(answer.json()["results"]["bindings"])


@contextmanager
def running(command: list[str], ready_url: str, log: Path) -> Iterator[None]:
    """A server process, ready, stopped (its whole process group) on the way out."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_ready(ready_url, process)
            yield
        finally:
            os.killpg(process.pid, 15)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()


def main(argv: list[str] | None = None) -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="100k", help="synthetic triples (10k, 100k, 1M)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20.0, help="per measurement")
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args(argv)

    query = next(q for q in load_queries(QUERY) if q.id == QUERY)
    data, triples = dataset(args.size, parse_size(args.size), args.seed)
    work = Path(tempfile.mkdtemp(prefix="escap-kg-upstream-"))
    try:
        store = work / "oxigraph"
        subprocess.run(
            [oxigraph(), "load", "--location", str(store), "--file", str(data)],
            check=True, capture_output=True,
        )  # fmt: skip
        oxi_port, our_port = free_port(), free_port()
        oxi_url = f"http://127.0.0.1:{oxi_port}/query"
        our_url = f"http://127.0.0.1:{our_port}/sparql"
        oxi_command = [oxigraph(), "serve", "--location", str(store), "--union-default-graph"]
        oxi_command += ["--bind", f"127.0.0.1:{oxi_port}"]
        ours = [sys.executable, "-m", "escap_kg", "serve", "--port", str(our_port)]
        ours += ["--upstream", oxi_url]
        with running(oxi_command, oxi_url, work / "oxigraph.log"):
            direct, direct_errors = throughput(oxi_url, query, args.clients, args.seconds)
            with running(ours, our_url, work / "escap-kg.log"):
                answered = rows(oxi_url, query.text), rows(our_url, query.text)
                if answered[0] == 0 or answered[0] != answered[1]:
                    raise SystemExit(f"{QUERY}: {answered[0]} rows direct, {answered[1]} via us")
                throughput(our_url, query, args.clients, 2.0)  # warm the connection pool
                front, front_errors = throughput(our_url, query, args.clients, args.seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"{QUERY} ({answered[0]} rows), {triples:,} triples, {args.clients} keep-alive clients, "
        f"{args.seconds:g} s each, {os.cpu_count()} cores shared by clients and servers\n"
    )
    print("| server | req/s | errors |")
    print("|---|---|---|")
    print(f"| oxigraph serve | {direct:,.0f} | {direct_errors} |")
    print(f"| escap-kg serve --upstream (in front of it) | {front:,.0f} | {front_errors} |")
    print(f"\nescap-kg --upstream answers {front / direct:.2f}x the requests of Oxigraph alone")


if __name__ == "__main__":
    main()
