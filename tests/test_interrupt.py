"""Ctrl-C at a terminal: the signal reaches the server and every process it started (one
process group), while the graph loads and while it serves. The server stops cleanly, no process
prints a traceback, and none is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.test_faults import write_ntriples


def start(*args: str) -> tuple[subprocess.Popen[str], int]:
    """``escap-kg serve ARGS`` as a terminal's foreground job: its own process group."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "escap_kg", "serve", "--port", str(port), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return process, port


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux's /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "children") as listed:
            found += [int(child) for child in listed.read().split()]
    return found


def control_c(process: subprocess.Popen[str]) -> tuple[int, str]:
    """Send SIGINT to the whole group, as the terminal does; the exit code and the output."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"the server did not stop within 30 s of Ctrl-C:\n{output}")
    return process.returncode, output


def assert_group_gone(pgid: int) -> None:
    """No process of the group remains (forks are reaped at once; allow them a moment)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    left = subprocess.run(["ps", "-o", "pid,args", "-g", str(pgid)], capture_output=True, text=True)
    pytest.fail(f"processes left after Ctrl-C:\n{left.stdout}")


@pytest.mark.slow
def test_control_c_while_serving_stops_every_process_without_a_traceback() -> None:
    process, port = start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/sparql", params={"query": "ASK {}"}).is_success:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("the server did not start")
    assert len(children(process.pid)) >= 1  # the engine's zygote (and its workers below it)
    code, output = control_c(process)
    assert code == 0, output
    assert "Traceback" not in output, output
    assert "KeyboardInterrupt" not in output, output
    assert "Application shutdown complete" in output
    assert_group_gone(process.pid)


@pytest.mark.slow
def test_control_c_while_the_graph_loads_stops_every_process_without_a_traceback(
    tmp_path: Path,
) -> None:
    big = write_ntriples(tmp_path / "big.nt", 600_000, "big")
    process, port = start("--data", str(big))
    # Wait until the zygote is reading the file: the load is under way, the server not yet up.
    deadline = time.monotonic() + 30
    reading = False
    while not reading and time.monotonic() < deadline:
        for child in children(process.pid):
            try:
                fds = list(Path(f"/proc/{child}/fd").iterdir())
                reading = any(os.readlink(fd) == str(big) for fd in fds)
            except OSError:
                continue
        time.sleep(0.02)
    assert reading, "the zygote never opened the file"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/sparql", params={"query": "ASK {}"})
    code, output = control_c(process)
    assert code == 130, output
    assert "Traceback" not in output, output
    assert "could not build the search index" not in output, output
    assert_group_gone(process.pid)
