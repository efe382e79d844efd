"""Processes and their memory, read from Linux's /proc (for tests, the load script and the
benchmark)."""

from __future__ import annotations

from pathlib import Path


def stat_fields(pid: int | str) -> list[str]:
    """The fields of /proc/PID/stat after the command name: state, parent, group, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def parents() -> dict[int, int]:
    """Every live process and its parent."""
    found: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            found[int(stat.parent.name)] = int(stat_fields(stat.parent.name)[1])
        except (OSError, ValueError, IndexError):
            continue
    return found


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    return sorted(child for child, parent in parents().items() if parent == pid)


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    links = parents()
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in links.items() if parent in frontier]
        tree += frontier
    return tree


def kib(path: str, key: str) -> int:
    """The value in KiB of one line of a /proc file, such as ``VmRSS:`` (0 if gone)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def memory_kib(pids: list[int]) -> tuple[int, int]:
    """RSS and PSS of these processes together, in KiB.

    The query workers are forks sharing the graph's pages with their zygote: a sum of RSS counts
    a shared page once per process, PSS shares it out among them, so PSS is the memory really
    used.
    """
    rss = sum(kib(f"/proc/{pid}/status", "VmRSS:") for pid in pids)
    pss = sum(kib(f"/proc/{pid}/smaps_rollup", "Pss:") for pid in pids)
    return rss, pss
