"""Time from ``escap-kg serve`` to its first answer, for the embedded graph and larger ``--data``.

``python -m tests.benchmarks.start [--sizes 100k,1M] [--runs 3]``: each case starts a server on a
free loopback port, asks ``ASK {}`` every 20 ms until it answers, and stops it. The first run of
the embedded graph validates it (pySHACL); later runs find the content validated before, as a
server does on every start after the first. Prints a Markdown table of the medians.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.benchmarks.generate import parse_size, write_file


def first_answer(args: list[str], env: dict[str, str], limit: float = 600) -> float:
    """Seconds from starting ``escap-kg serve ARGS`` to its first answer to ``ASK {}``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "escap_kg", "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(timeout=2) as client:
            while time.monotonic() - started < limit:
                if process.poll() is not None:
                    raise SystemExit(f"serve {' '.join(args)} exited with {process.returncode}")
                try:
                    answer = client.get(
                        f"http://127.0.0.1:{port}/sparql", params={"query": "ASK {}"}
                    )
                    if answer.status_code == 200:
                        return time.monotonic() - started
                except httpx.TransportError:
                    pass
                time.sleep(0.02)
        raise SystemExit(f"serve {' '.join(args)} did not answer within {limit:g} s")
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def main(argv: list[str] | None = None) -> int:
    """Run the cases and print the table."""
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.start", description=__doc__)
    parser.add_argument("--sizes", default="100k", help="sizes of --data to time (e.g. 100k,1M)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="escap-kg-start-") as folder:
        env = {**os.environ, "ESCAP_KG_CACHE_DIR": str(Path(folder) / "cache")}
        rows = []
        cold = first_answer([], env)
        warm = [first_answer([], env) for _ in range(args.runs)]
        rows.append(("embedded graph, first start (validates)", [cold]))
        rows.append(("embedded graph, later starts", warm))
        for size in sizes:
            data = Path(folder) / f"data-{size}.nt"
            write_file(data, size, seed=1)
            rows.append(
                (
                    f"`--data` {size:,} triples",
                    [first_answer(["--data", str(data)], env) for _ in range(args.runs)],
                )
            )
    print("| case | start to first answer (median) | runs |")
    print("|---|---|---|")
    for name, times in rows:
        shown = ", ".join(f"{t:.2f}" for t in times)
        print(f"| {name} | {statistics.median(times):.2f} s | {shown} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
