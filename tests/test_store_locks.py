"""One writer at a time per store, and readers pinned to a version across the loads that swap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyoxigraph as ox
import pytest
from typer.testing import CliRunner

from escap_kg.cli import app as cli
from escap_kg.database import (
    RETIRED,
    StoreBusyError,
    load,
    lock_path,
    open_for_serving,
    pin,
    recover,
    remove_unpinned_retired,
    writer_lock,
)
from escap_kg.settings import Settings
from escap_kg.store import DataError
from tests.conftest import LiveServer

EXTRA = "https://w3id.org/escap-kg/graph/extra/"
TOKEN = "a-store-lock-test-token"
WAITING = "waiting for another writer of"
runner = CliRunner()

# A writer in another process: takes the lock, says so, holds it until stdin closes or it dies.
HOLDER = (
    "import sys; from pathlib import Path; from escap_kg.database import writer_lock; "
    "lock = writer_lock(Path(sys.argv[1]), wait=False); print('held', flush=True); "
    "sys.stdin.read()"
)


def turtle(path: Path, name: str, count: int) -> Path:
    """A small Turtle file of ``count`` triples about ``name``."""
    lines = ["@prefix ex: <http://example.org/> ."]
    lines += [f'ex:{name}{i} ex:value "{name} {i}" .' for i in range(count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def graphs(database: Path) -> dict[str, int]:
    """The named graphs of the store at ``database`` and their sizes."""
    store = ox.Store.read_only(str(database))
    return {
        graph.value: len(list(store.quads_for_pattern(None, None, None, graph)))
        for graph in store.named_graphs()
        if isinstance(graph, ox.NamedNode)
    }


def size(path: str | Path) -> int:
    """How many quads the store at ``path`` holds."""
    return len(ox.Store.read_only(str(path)))


def load_args(database: Path, *files: Path, options: tuple[str, ...] = ()) -> list[str]:
    """``escap-kg load`` of ``files`` alone (without our own data, to be quick)."""
    return ["load", "--no-embedded", *options, "--db", str(database), *map(str, files)]


def start_load(database: Path, log: Path, *files: Path) -> subprocess.Popen[bytes]:
    """``escap-kg load`` in a subprocess, its stderr in ``log``."""
    with log.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "escap_kg", *load_args(database, *files)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def waiting_lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if WAITING in line]


def assert_one_error_line(stderr: str, *needles: str) -> None:
    """One ``escap-kg: error:`` line holding ``needles``, no traceback, no RocksDB lock path."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("escap-kg: error:")]
    assert len(errors) == 1, stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert "/LOCK" not in stderr, stderr


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    """Starts writers in other processes; each is killed at the end of the test."""
    started: list[subprocess.Popen[str]] = []

    def start(database: Path) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(database)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held"
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


# The writer lock ------------------------------------------------------------------------------


def test_a_second_writer_is_refused_or_waits_and_is_told_once(tmp_path: Path) -> None:
    database = tmp_path / "db"
    told: list[int | None] = []
    acquired = threading.Event()

    def second() -> None:
        with writer_lock(database, wait=True, on_wait=told.append):
            acquired.set()

    with writer_lock(database, wait=False) as first:
        assert lock_path(database).read_text().strip() == str(os.getpid())
        with pytest.raises(StoreBusyError) as busy:
            writer_lock(database, wait=False)
        assert busy.value.pid == os.getpid()
        assert str(busy.value).startswith(f"{database}: another process (pid {os.getpid()})")
        assert "LOCK" not in str(busy.value)
        thread = threading.Thread(target=second)
        thread.start()
        wait_until(lambda: bool(told), "the second writer is told it waits")
        time.sleep(0.2)
        assert not acquired.is_set()
        first.release()
        thread.join(10)
    assert acquired.is_set()
    assert told == [os.getpid()]
    assert not lock_path(database).exists(), "the last holder removes the lock file"


def test_two_loads_at_once_run_one_after_the_other_and_both_land(tmp_path: Path) -> None:
    database = tmp_path / "db"
    alpha = turtle(tmp_path / "alpha.ttl", "alpha", 3)
    beta = turtle(tmp_path / "beta.ttl", "beta", 5)
    logs = [tmp_path / "alpha.log", tmp_path / "beta.log"]
    # Held here until both loads are waiting, so that they surely run at the same time.
    with writer_lock(database, wait=False):
        loads = [
            start_load(database, log, file) for log, file in zip(logs, (alpha, beta), strict=True)
        ]
        wait_until(lambda: all(waiting_lines(log) for log in logs), "both loads wait")
    assert [process.wait(120) for process in loads] == [0, 0], [log.read_text() for log in logs]
    for log in logs:
        assert waiting_lines(log) == [
            f"escap-kg: waiting for another writer of {database} (pid {os.getpid()}) to finish..."
        ]
    assert graphs(database) == {f"{EXTRA}alpha": 3, f"{EXTRA}beta": 5}
    assert not list(tmp_path.glob(f"db{RETIRED}*"))
    assert not lock_path(database).exists()


def test_a_load_waits_for_a_load_in_another_process_and_names_it(
    tmp_path: Path, holder: Callable[[Path], subprocess.Popen[str]]
) -> None:
    database = tmp_path / "db"
    alpha = turtle(tmp_path / "alpha.ttl", "alpha", 3)
    writer = holder(database)
    log = tmp_path / "alpha.log"
    waiting = start_load(database, log, alpha)
    wait_until(lambda: bool(waiting_lines(log)), "the load waits")
    assert f"(pid {writer.pid})" in waiting_lines(log)[0]
    assert waiting.poll() is None
    assert writer.stdin is not None
    writer.stdin.close()  # the other writer finishes
    assert waiting.wait(120) == 0, log.read_text()
    assert graphs(database) == {f"{EXTRA}alpha": 3}


def test_no_wait_fails_at_once_in_one_line(
    tmp_path: Path, holder: Callable[[Path], subprocess.Popen[str]], settings: Settings
) -> None:
    database = tmp_path / "db"
    load(database, [turtle(tmp_path / "alpha.ttl", "alpha", 3)], settings, include_embedded=False)
    writer = holder(database)
    beta = turtle(tmp_path / "beta.ttl", "beta", 5)
    result = runner.invoke(cli, load_args(database, beta, options=("--no-wait",)))
    assert result.exit_code == 2, result.output
    assert_one_error_line(result.stderr, str(database), f"(pid {writer.pid})")
    assert WAITING not in result.stderr
    assert graphs(database) == {f"{EXTRA}alpha": 3}


def test_a_writer_killed_with_sigkill_frees_the_lock(
    tmp_path: Path, holder: Callable[[Path], subprocess.Popen[str]]
) -> None:
    database = tmp_path / "db"
    writer = holder(database)
    with pytest.raises(StoreBusyError):
        writer_lock(database, wait=False)
    log = tmp_path / "alpha.log"
    waiting = start_load(database, log, turtle(tmp_path / "alpha.ttl", "alpha", 3))
    wait_until(lambda: bool(waiting_lines(log)), "the load waits")
    writer.send_signal(signal.SIGKILL)
    assert writer.wait(10) == -signal.SIGKILL
    assert waiting.wait(120) == 0, log.read_text()
    assert graphs(database) == {f"{EXTRA}alpha": 3}
    with writer_lock(database, wait=False):
        pass


def test_serve_with_updates_is_refused_while_another_writer_holds_the_store(
    tmp_path: Path, holder: Callable[[Path], subprocess.Popen[str]], settings: Settings
) -> None:
    database = tmp_path / "db"
    load(database, [turtle(tmp_path / "alpha.ttl", "alpha", 3)], settings, include_embedded=False)
    writer = holder(database)
    result = runner.invoke(
        cli,
        ["serve", "--db", str(database), "--port", "1"],
        env={"ESCAP_KG_UPDATE_TOKEN": TOKEN},
    )
    assert result.exit_code == 2, result.output
    assert_one_error_line(result.stderr, str(database), f"(pid {writer.pid})")
    assert "serving" not in result.stdout


def test_a_server_with_updates_is_the_only_writer_while_it_runs(
    tmp_path: Path, settings: Settings
) -> None:
    database = tmp_path / "db"
    load(database, [turtle(tmp_path / "alpha.ttl", "alpha", 3)], settings, include_embedded=False)
    server = LiveServer("--db", str(database), env={"ESCAP_KG_UPDATE_TOKEN": TOKEN}).wait()
    try:
        second = runner.invoke(
            cli,
            ["serve", "--db", str(database), "--port", "1"],
            env={"ESCAP_KG_UPDATE_TOKEN": TOKEN},
        )
        assert second.exit_code == 2, second.output
        assert_one_error_line(second.stderr, str(database), f"(pid {server.process.pid})")
        beta = turtle(tmp_path / "beta.ttl", "beta", 5)
        refused = runner.invoke(cli, load_args(database, beta, options=("--no-wait",)))
        assert refused.exit_code == 2, refused.output
        assert_one_error_line(refused.stderr, str(database), f"(pid {server.process.pid})")
    finally:
        server.stop()
    with writer_lock(database, wait=False):
        pass


# Pinned versions ------------------------------------------------------------------------------


def test_a_pinned_version_survives_a_load(tmp_path: Path, settings: Settings) -> None:
    database = tmp_path / "db"
    load(database, [turtle(tmp_path / "alpha.ttl", "alpha", 3)], settings, include_embedded=False)
    with pin(database) as pinned:
        before = ox.Store.read_only(pinned.path)
        assert len(before) == 3
        assert not pinned.changed()

        load(database, [turtle(tmp_path / "beta.ttl", "beta", 5)], settings, include_embedded=False)
        assert pinned.changed()
        assert size(database) == 8
        assert len(before) == 3, "a store opened before the load still answers"
        assert size(pinned.path) == 3, "and the pin still opens the old version"
        # From another process too, as the pool's workers do.
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import pyoxigraph as ox; print(len(ox.Store.read_only({pinned.path!r})))",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert child.stdout.strip() == "3"
        (retired,) = tmp_path.glob(f"db{RETIRED}*")
        assert remove_unpinned_retired(database) == []
        recover(database)
        assert retired.exists(), "recovery keeps a version a reader pins"
        with pin(database) as fresh:
            assert not fresh.changed()
            assert size(fresh.path) == 8
        del before
    assert pinned.closed
    assert remove_unpinned_retired(database) == [retired]
    assert not retired.exists()
    assert size(database) == 8


def test_a_load_deletes_the_version_it_replaces_when_nobody_pins_it(
    tmp_path: Path, settings: Settings
) -> None:
    database = tmp_path / "db"
    load(database, [turtle(tmp_path / "alpha.ttl", "alpha", 3)], settings, include_embedded=False)
    with pin(database):
        pass
    load(database, [turtle(tmp_path / "beta.ttl", "beta", 5)], settings, include_embedded=False)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("db")) == ["db"]


def test_a_crash_between_the_renames_restores_the_newest_version_and_keeps_pinned_ones(
    tmp_path: Path, settings: Settings
) -> None:
    database = tmp_path / "db"
    load(database, [turtle(tmp_path / "alpha.ttl", "alpha", 3)], settings, include_embedded=False)
    pinned = pin(database)
    load(database, [turtle(tmp_path / "beta.ttl", "beta", 5)], settings, include_embedded=False)
    (kept,) = tmp_path.glob(f"db{RETIRED}*")
    # A load killed after it renamed the store away and before it put the new one in place.
    crashed = tmp_path / f"db{RETIRED}{time.time_ns()}-99999"
    database.rename(crashed)
    assert open_for_serving(database) == database.resolve()
    assert size(database) == 8, "the newest version is put back"
    assert not crashed.exists()
    assert kept.exists()
    assert size(pinned.path) == 3
    pinned.close()
    recover(database)
    assert not kept.exists()


def test_pin_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError) as missing:
        pin(tmp_path / "nowhere")
    assert str(missing.value) == (
        f"{tmp_path / 'nowhere'}: not an escap-kg store; create it with `escap-kg load --db DIR`"
    )
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="not an escap-kg store"):
        pin(tmp_path / "plain")


def test_a_load_removes_staging_left_by_a_killed_load_even_if_its_pid_is_in_use_again(
    tmp_path: Path, settings: Settings
) -> None:
    database = tmp_path / "db"
    stale = tmp_path / "db.loading-1"  # pid 1 is always alive
    stale.mkdir()
    (stale / "000001.sst").write_bytes(b"half written")
    load(database, [turtle(tmp_path / "alpha.ttl", "alpha", 3)], settings, include_embedded=False)
    assert not stale.exists()
    assert graphs(database) == {f"{EXTRA}alpha": 3}


def test_closing_a_pin_in_a_forked_child_keeps_it_pinned(
    tmp_path: Path, settings: Settings
) -> None:
    database = tmp_path / "db"
    load(database, [turtle(tmp_path / "alpha.ttl", "alpha", 3)], settings, include_embedded=False)
    pinned = pin(database)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's own exit code is the result
        pinned.close()
        os._exit(0)
    assert os.waitpid(child, 0)[1] == 0
    load(database, [turtle(tmp_path / "beta.ttl", "beta", 5)], settings, include_embedded=False)
    assert size(pinned.path) == 3
    pinned.close()
    assert len(remove_unpinned_retired(database)) == 1
