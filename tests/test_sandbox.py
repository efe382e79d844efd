"""The network guard: once installed, the process and its forks cannot create a socket.

A seccomp filter can never be removed, so every guarded test runs in a fresh interpreter.
"""

from __future__ import annotations

import platform
import select
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pyoxigraph as ox
import pytest

from escap_kg.sandbox import SandboxError, _arch_for, guard_supported, install_network_guard

UNSUPPORTED = guard_supported()
guarded = pytest.mark.skipif(
    UNSUPPORTED is not None, reason=f"no network guard here: {UNSUPPORTED}"
)

TRIPLES = "<http://example.org/a> <http://example.org/p> <http://example.org/b> .\n"


def run(code: str, *args: str, guard: bool = True) -> list[str]:
    """Run ``code`` in a new interpreter (guarded first if ``guard``); its output lines.

    ``main(*args)`` is called with the arguments, after the guard is installed; ``TRIPLES`` is
    defined.
    """
    body = f"TRIPLES = {TRIPLES!r}\n" + textwrap.dedent(code)
    if guard:
        body += "\nfrom escap_kg.sandbox import install_network_guard\ninstall_network_guard()\n"
    body += "main(*sys.argv[1:])\n"
    done = subprocess.run(
        [sys.executable, "-c", "import sys\n" + body, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout.splitlines()


@guarded
def test_no_new_socket_of_any_family_but_open_sockets_and_files_work(tmp_path: Path) -> None:
    lines = run(
        """
        import socket
        from pathlib import Path

        pair = socket.socketpair()

        def main(folder):
            for family in ("AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"):
                try:
                    socket.socket(getattr(socket, family)).close()
                    print(family, "created")
                except PermissionError as error:
                    print(family, "refused", error.errno)
            pair[0].sendall(b"ping")
            print("pair", pair[1].recv(4).decode())
            pair[1].sendall(b"pong")
            print("pair", pair[0].recv(4).decode())
            # What the zygote does with its socket to the server: wrap it, pass descriptors.
            channel = socket.fromfd(pair[0].fileno(), socket.AF_UNIX, socket.SOCK_STREAM)
            socket.send_fds(channel, [b"F"], [0])
            message, fds, _, _ = socket.recv_fds(pair[1], 1, 1)
            print("fd passed", message.decode(), len(fds))
            note = Path(folder) / "note.txt"
            note.write_text("written")
            print("file", note.read_text())
        """,
        str(tmp_path),
    )
    eacces = 13
    assert lines == [
        f"AF_INET refused {eacces}",
        f"AF_INET6 refused {eacces}",
        f"AF_UNIX refused {eacces}",
        f"AF_NETLINK refused {eacces}",
        "pair ping",
        "pair pong",
        "fd passed F 1",
        "file written",
    ]


@guarded
def test_io_uring_and_x32_system_calls_are_refused() -> None:
    lines = run(
        """
        import ctypes, platform

        libc = ctypes.CDLL(None, use_errno=True)

        def call(number, *args):
            if libc.syscall(ctypes.c_long(number), *args) < 0:
                return ctypes.get_errno()
            return 0

        def main():
            params = ctypes.create_string_buffer(120)
            print("io_uring_setup", call(425, ctypes.c_uint(1), params))
            if platform.machine() == "x86_64":
                print("x32 getpid", call(0x40000000 | 39))
            else:
                print("x32 getpid", 13)
        """
    )
    assert lines == ["io_uring_setup 13", "x32 getpid 13"]


@guarded
def test_a_thread_started_before_the_guard_is_guarded_too() -> None:
    lines = run(
        """
        import socket, threading

        go, outcome = threading.Event(), []

        def later():
            go.wait()
            try:
                socket.socket().close()
                outcome.append("created")
            except PermissionError:
                outcome.append("refused")

        thread = threading.Thread(target=later)
        thread.start()

        def main():
            go.set()
            thread.join()
            print("thread", *outcome)
        """
    )
    assert lines == ["thread refused"]


@guarded
def test_a_fork_of_a_guarded_process_is_guarded() -> None:
    lines = run(
        """
        import os, socket

        def main():
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    socket.socket().close()
                    os.write(write, b"created")
                except PermissionError:
                    os.write(write, b"refused")
                os._exit(0)
            os.close(write)
            _, status = os.waitpid(pid, 0)
            print("child", os.read(read, 16).decode(), os.waitstatus_to_exitcode(status))
        """
    )
    assert lines == ["child refused 0"]


class Listener:
    """A TCP listener on 127.0.0.1 that records the first bytes of every connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if select.select([self.sock], [], [], 0.05)[0]:
                client, _ = self.sock.accept()
                with client:
                    client.settimeout(2)
                    try:
                        self.received.append(client.recv(4096))
                    except OSError:
                        self.received.append(b"")

    def close(self) -> list[bytes]:
        """Stop listening; what was received."""
        self._stop.set()
        self._thread.join()
        self.sock.close()
        return self.received


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


REMOTE = """
    import pyoxigraph as ox

    store = ox.Store()
    store.load(TRIPLES, format=ox.RdfFormat.N_TRIPLES)

    def main(port, load):
        try:
            rows = list(store.query(
                f"SELECT * WHERE {{ SERVICE <http://127.0.0.1:{port}/sparql> {{ ?s ?p ?o }} }}"
            ))
            print("service answered", len(rows))
        except OSError as error:
            print("service failed:", type(error).__name__, error)
        if load == "load":
            try:
                store.update(f"LOAD <http://127.0.0.1:{port}/x.ttl>")
                print("load answered")
            except OSError as error:
                print("load failed:", type(error).__name__, error)
"""


@guarded
def test_service_and_load_cannot_reach_the_network(listener: Listener) -> None:
    lines = run(REMOTE, str(listener.port), "load")
    print(*lines, sep="\n")
    assert [line.split(":")[0] for line in lines] == ["service failed", "load failed"]
    assert all("Permission" in line for line in lines), lines
    assert listener.close() == []


def test_without_the_guard_service_does_reach_the_listener(listener: Listener) -> None:
    lines = run(REMOTE, str(listener.port), "no load", guard=False)
    print(*lines, sep="\n")
    received = listener.close()
    assert len(received) == 1, received
    assert received[0].startswith(b"POST /sparql HTTP/1.1\r\n")


@guarded
def test_oxigraph_works_as_usual_under_the_guard(tmp_path: Path) -> None:
    database = tmp_path / "db"
    store = ox.Store(str(database))
    store.load(TRIPLES, format=ox.RdfFormat.N_TRIPLES)
    store.flush()
    del store
    lines = run(
        """
        import pyoxigraph as ox

        memory = ox.Store()
        memory.load(TRIPLES, format=ox.RdfFormat.N_TRIPLES)

        def main(database, dump):
            memory.update("INSERT DATA { <http://example.org/b> <http://example.org/p> 1 }")
            print("memory", len(list(memory.query("SELECT * WHERE { ?s ?p ?o }"))))
            answer = memory.query("SELECT ?o WHERE { <http://example.org/b> ?p ?o }")
            print("json", answer.serialize(format=ox.QueryResultsFormat.JSON).decode().count('"1"'))
            disk = ox.Store.read_only(database)
            print("disk", [str(s) for s, in disk.query("SELECT ?s WHERE { ?s ?p ?o }")])
            disk.dump(dump, format=ox.RdfFormat.N_QUADS)
        """,
        str(database),
        str(tmp_path / "dump.nq"),
    )
    assert lines == ["memory 2", "json 1", "disk ['<http://example.org/a>']"]
    assert (tmp_path / "dump.nq").read_text() == TRIPLES


def test_guard_supported_says_why_not() -> None:
    reason = guard_supported()
    if sys.platform == "linux" and platform.machine() in ("x86_64", "aarch64"):
        assert reason is None
    else:
        assert reason


def test_unknown_architectures_and_32_bit_interpreters_are_refused() -> None:
    assert _arch_for("x86_64", 8).audit == 0xC000003E
    assert _arch_for("aarch64", 8).audit == 0xC00000B7
    with pytest.raises(SandboxError, match=r"^unsupported architecture armv7l$"):
        _arch_for("armv7l", 4)
    with pytest.raises(SandboxError, match=r"^unsupported 32-bit interpreter on x86_64$"):
        _arch_for("x86_64", 4)


def test_an_unsupported_platform_is_named_and_the_guard_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "armv7l")
    assert guard_supported() == "unsupported architecture armv7l"
    with pytest.raises(SandboxError, match=r"^unsupported architecture armv7l$"):
        install_network_guard()
    monkeypatch.setattr(sys, "platform", "darwin")
    assert guard_supported() == "not Linux"
