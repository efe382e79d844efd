"""Faults: bad data, kill -9 of a load or of the server mid-update, a read-only or full disk."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyoxigraph as ox
import pytest

from escap_kg.database import open_for_serving
from tests.conftest import ROOT, free_port

BIG_TRIPLES = 300_000
TOKEN = "a-fault-injection-test-token"
EXTRA = "https://w3id.org/escap-kg/graph/extra/"


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``escap-kg ARGS`` to the end."""
    return subprocess.run(
        [sys.executable, "-m", "escap_kg", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_ntriples(path: Path, count: int, name: str) -> Path:
    """A file of ``count`` distinct triples about ``name``."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            out.write(
                f'<http://example.org/{name}/s{i}> <http://example.org/p{i % 50}> "v {i}" .\n'
            )
    return path


def quads(database: Path) -> set[ox.Quad]:
    """Every quad of the store, read as ``serve --db`` opens it (after any crash recovery)."""
    return set(ox.Store.read_only(str(open_for_serving(database))))


def assert_one_clean_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit code 2 and one plain ``escap-kg: error:`` line naming ``needles``, no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("escap-kg: error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 300k triples, 27 MB of N-Triples: a load of a few seconds."""
    return write_ntriples(tmp_path_factory.mktemp("big") / "big.nt", BIG_TRIPLES, "big")


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory, big_file: Path) -> Path:
    """A store holding our graph and the big file (built once; tests copy it)."""
    database = tmp_path_factory.mktemp("store") / "db"
    result = cli("load", "--db", str(database), str(big_file))
    assert result.returncode == 0, result.stderr
    return database


# Data that does not parse ---------------------------------------------------------------------


@pytest.mark.slow
def test_serve_refuses_a_data_folder_with_a_file_that_does_not_parse(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    broken = data / "source" / "broken.ttl"
    broken.write_text(
        '@prefix ex: <http://example.org/> .\nex:a ex:b ex:c .\nex:d ex:e "unterminated .\n',
        encoding="utf-8",
    )
    process = subprocess.run(
        [sys.executable, "-m", "escap_kg", "serve", "--port", str(free_port())],
        env={**os.environ, "ESCAP_KG_DATA_DIR": str(data)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert_one_clean_error(process, f"{broken}:3")
    assert "serving" not in process.stdout


# kill -9 of a load ----------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_9_during_a_load_leaves_the_store_as_it_was(tmp_path: Path, big_file: Path) -> None:
    database = tmp_path / "db"
    first = write_ntriples(tmp_path / "first.nt", 100, "first")
    assert cli("load", "--db", str(database), str(first)).returncode == 0
    before = quads(database)
    assert len(before) > 100

    process = subprocess.Popen(
        [sys.executable, "-m", "escap_kg", "load", "--db", str(database), str(big_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    staging = tmp_path / f"db.loading-{process.pid}"
    deadline = time.monotonic() + 60
    while not staging.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # well into the bulk load of the big file
    assert process.poll() is None, "the load finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    assert process.wait(10) == -signal.SIGKILL
    assert staging.exists(), "the kill should have left the half-built staging store behind"

    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("db")) == [
        "db",
        staging.name,
    ]
    assert quads(database) == before

    second = write_ntriples(tmp_path / "second.nt", 10, "second")
    result = cli("load", "--db", str(database), str(second))
    assert result.returncode == 0, result.stderr
    after = quads(database)
    assert before < after
    assert len(after) == len(before) + 10
    assert {q.graph_name for q in after - before} == {ox.NamedNode(f"{EXTRA}second")}
    assert not staging.exists(), "the next load removes the staging store of the killed one"


def test_a_swap_interrupted_by_a_crash_is_undone_on_open(tmp_path: Path) -> None:
    """A kill between the two renames of the swap leaves only the retired store: it is used."""
    database = tmp_path / "db"
    store = ox.Store(str(database))
    store.add(ox.Quad(ox.NamedNode("http://e/s"), ox.NamedNode("http://e/p"), ox.Literal("o")))
    store.flush()
    del store
    database.rename(tmp_path / "db.retired-12345")
    assert len(quads(database)) == 1
    assert not (tmp_path / "db.retired-12345").exists()


# kill -9 of the server during an update -------------------------------------------------------


class GroupServer:
    """``escap-kg serve`` in its own process group, so the server and its workers die together."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "escap_kg", "serve", "--port", str(self.port), *args],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the server exited early"
            try:
                response = httpx.get(f"{self.url}/sparql", params={"query": "ASK {}"})
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("the server did not start")

    def kill(self) -> None:
        """SIGKILL the whole process group (server and workers)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def group_server() -> Iterator[list[GroupServer]]:
    started: list[GroupServer] = []
    yield started
    for server in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(10)


@pytest.mark.slow
def test_kill_9_of_the_server_during_an_update_keeps_the_store_whole(
    tmp_path: Path, big_store: Path, group_server: list[GroupServer]
) -> None:
    database = tmp_path / "db"
    shutil.copytree(big_store, database)
    before = len(quads(database))
    server = GroupServer("--db", str(database), env={"ESCAP_KG_UPDATE_TOKEN": TOKEN})
    group_server.append(server)
    server.wait()

    # Copies the 300k triples of the big file into another graph: several seconds of writing.
    update = (
        "INSERT { GRAPH <urn:copy> { ?s ?p ?o } } "
        f"WHERE {{ GRAPH <{EXTRA}big> {{ ?s ?p ?o }} }}"
    )
    outcome: list[object] = []

    def send() -> None:
        try:
            outcome.append(
                httpx.post(
                    f"{server.url}/sparql",
                    content=update,
                    headers={
                        "Content-Type": "application/sparql-update",
                        "Authorization": f"Bearer {TOKEN}",
                    },
                    timeout=120,
                )
            )
        except httpx.TransportError as err:
            outcome.append(err)

    thread = threading.Thread(target=send)
    thread.start()
    time.sleep(1.0)
    assert not outcome, f"the update ended before the kill: {outcome}"
    server.kill()
    thread.join(30)
    assert outcome
    assert isinstance(outcome[0], httpx.TransportError)

    after = quads(database)
    assert len(after) in (before, before + BIG_TRIPLES), (before, len(after))
    copied = sum(1 for q in after if q.graph_name == ox.NamedNode("urn:copy"))
    assert copied in (0, BIG_TRIPLES)

    # The store still serves and takes updates.
    again = GroupServer("--db", str(database), env={"ESCAP_KG_UPDATE_TOKEN": TOKEN})
    group_server.append(again)
    again.wait()
    response = httpx.post(
        f"{again.url}/sparql",
        data={"update": "INSERT DATA { GRAPH <urn:after> { <urn:s> <urn:p> <urn:o> } }"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=60,
    )
    assert response.status_code in (200, 204), response.text
    count = httpx.get(
        f"{again.url}/sparql",
        params={"query": "SELECT (COUNT(*) AS ?n) WHERE { GRAPH <urn:after> { ?s ?p ?o } }"},
        headers={"Accept": "application/sparql-results+json"},
        timeout=60,
    ).json()["results"]["bindings"][0]["n"]["value"]
    assert count == "1"
    again.kill()


# A read-only or full disk ---------------------------------------------------------------------


@pytest.fixture
def mount_tmpfs(tmp_path: Path) -> Iterator[list[Path]]:
    """Mount small tmpfs file systems (root only); unmounted afterwards."""
    mounted: list[Path] = []
    yield mounted
    for point in mounted:
        subprocess.run(["umount", str(point)], check=False, capture_output=True)


def _mount(mounted: list[Path], point: Path, options: str) -> None:
    point.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command to make a small or read-only file system")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    mounted.append(point)


def test_load_into_a_read_only_file_system_is_one_clear_error(
    tmp_path: Path, mount_tmpfs: list[Path]
) -> None:
    # chmod does not stop root, so the folder is on a file system mounted read-only.
    point = tmp_path / "ro"
    _mount(mount_tmpfs, point, "size=1m,ro")
    small = write_ntriples(tmp_path / "small.nt", 10, "small")
    result = cli("load", "--db", str(point / "db"), str(small))
    assert_one_clean_error(result, str(point / "db"), "Read-only file system")


def test_load_where_a_folder_is_a_file_is_one_clear_error(tmp_path: Path) -> None:
    """Needs no root: the store's parent folder is a plain file."""
    small = write_ntriples(tmp_path / "small.nt", 10, "small")
    result = cli("load", "--db", str(small / "db"), str(small))
    assert_one_clean_error(result, str(small / "db"), "Not a directory")


@pytest.mark.slow
@pytest.mark.parametrize("size", ["1m", "12m"])
def test_load_onto_a_full_disk_is_one_clear_error_and_leaves_nothing(
    tmp_path: Path, mount_tmpfs: list[Path], big_file: Path, size: str
) -> None:
    """1 MiB fills while our own graph is written; 12 MiB during the bulk load of the big file."""
    point = tmp_path / "disk"
    _mount(mount_tmpfs, point, f"size={size}")
    result = cli("load", "--db", str(point / "db"), str(big_file))
    assert_one_clean_error(result, str(point / "db"), "No space left on device")
    assert list(point.iterdir()) == [], "the staging store is removed"
