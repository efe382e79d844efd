"""Where a server's time and memory go, per process, read from Linux's /proc: what the report
gives as the profile behind each figure.

A server's process group is split by role: ``server`` (the process started: the web tier, or
the whole of an Oxigraph server), ``zygote`` (escap-kg's process holding the graph, which forks
the workers), ``worker`` (the forks that evaluate queries) and ``search index`` (the process
the zygote starts to index the graph at low priority, told apart by its niceness, 10).
"""

from __future__ import annotations

import subprocess
import sys
import time

from tests.proc import kib, stat_fields

#: Clock ticks per second of /proc's CPU times (``getconf CLK_TCK``; 100 on Linux).
TICKS = 100
ROLES = ("server", "zygote", "worker", "search index")
#: The niceness the search index's builder gives itself.
INDEX_NICE = 10


def roles(pids: list[int], pgid: int) -> dict[int, str]:
    """The role of each process of the group whose leader is ``pgid``."""
    found: dict[int, str] = {}
    parents: dict[int, int] = {}
    nice: dict[int, int] = {}
    for pid in pids:
        try:
            fields = stat_fields(pid)
        except OSError:
            continue
        parents[pid], nice[pid] = int(fields[1]), int(fields[16])
    for pid, parent in parents.items():
        if pid == pgid:
            found[pid] = "server"
        elif parent == pgid:
            found[pid] = "zygote"
        else:
            found[pid] = "search index" if nice[pid] == INDEX_NICE else "worker"
    return found


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """User and system CPU ticks each process has used so far."""
    ticks = {}
    for pid in pids:
        try:
            fields = stat_fields(pid)
        except OSError:
            continue
        ticks[pid] = int(fields[11]) + int(fields[12])
    return ticks


def cpu_by_role(
    before: dict[int, int], after: dict[int, int], role: dict[int, str]
) -> dict[str, float]:
    """CPU seconds each role used between two readings (a process started in between counts
    from zero; one that ended in between is missing: the pool keeps its workers, so few do)."""
    used: dict[str, float] = {}
    for pid, ticks in after.items():
        name = role.get(pid, "worker")
        used[name] = used.get(name, 0.0) + (ticks - before.get(pid, 0)) / TICKS
    return used


def memory_by_role(pids: list[int], role: dict[int, str]) -> dict[str, list[int]]:
    """Per role: [processes, RSS, PSS, private (clean and dirty)] in KiB."""
    found: dict[str, list[int]] = {}
    for pid in pids:
        rollup = f"/proc/{pid}/smaps_rollup"
        rss = kib(f"/proc/{pid}/status", "VmRSS:")
        if not rss:
            continue
        private = kib(rollup, "Private_Clean:") + kib(rollup, "Private_Dirty:")
        row = found.setdefault(role.get(pid, "worker"), [0, 0, 0, 0])
        for i, value in enumerate((1, rss, kib(rollup, "Pss:"), private)):
            row[i] += value
    return found


IMPORTS = {
    "interpreter": "pass",
    "command line": "import escap_kg.cli",
    "engine": "import escap_kg.cli, escap_kg.engine",
    "SPARQL endpoint (what serve needs to answer)": (
        "import escap_kg.cli, escap_kg.engine, uvicorn, escap_kg.boot"
    ),
    "whole web application (built while it answers)": (
        "import escap_kg.cli, escap_kg.engine, uvicorn, escap_kg.boot, escap_kg.server"
    ),
}


def _best(command: list[str], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd="/", capture_output=True, check=False)
        best = min(best, time.perf_counter() - started)
    return best


def start_profile(runs: int = 3) -> dict[str, float]:
    """Seconds (the best of ``runs``) for a fresh interpreter to import what ``serve`` needs,
    cumulatively, and to parse ``serve``'s arguments (to the error of a store that does not
    exist): the floor of its start before it opens a store or listens."""
    found = {name: _best([sys.executable, "-c", code], runs) for name, code in IMPORTS.items()}
    missing = "/nonexistent/escap-kg-store"
    found["arguments parsed (serve --db of a missing store, to its error)"] = _best(
        [sys.executable, "-m", "escap_kg", "serve", "--db", missing], runs
    )
    return found
