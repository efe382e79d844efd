"""Shared fixtures: the embedded graph, loaded once per test session."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import pytest

from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture(scope="session", autouse=True)
def validation_cache() -> Iterator[Path]:
    """Servers started by the tests remember validated content in a folder of the test run,
    not the user's cache."""
    folder = Path(tempfile.mkdtemp(prefix="escap-kg-cache-"))
    previous = os.environ.get("ESCAP_KG_CACHE_DIR")
    os.environ["ESCAP_KG_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("ESCAP_KG_CACHE_DIR", None)
    else:
        os.environ["ESCAP_KG_CACHE_DIR"] = previous
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def kg(settings: Settings) -> KnowledgeGraph:
    return KnowledgeGraph.load(settings)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """A server in a subprocess, its output in a log file, ready once ``ready_url`` answers
    ``ASK {}``; always stopped with :meth:`stop`."""

    name = "the server"

    def __init__(
        self,
        command: list[str],
        ready_url: str,
        log: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        import subprocess

        self.ready_url = ready_url
        self.log = (
            log.open("wb")
            if log is not None
            else tempfile.NamedTemporaryFile(prefix="escap-kg-serve-", suffix=".log")  # noqa: SIM115
        )
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait(self, timeout: float = 60) -> Self:
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.output()}")
            try:
                answer = httpx.get(self.ready_url, params={"query": "ASK {}"}, timeout=2)
                if answer.status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        import subprocess

        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.log.close()


class LiveServer(ServerProcess):
    """``escap-kg serve`` in a subprocess on 127.0.0.1, stopped when the test is done."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        import sys

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "escap_kg", "serve", "--port", str(self.port), *args]
        super().__init__(command, f"{self.url}/sparql", env=env)


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    server = LiveServer("--query-timeout", "3", env={"ESCAP_KG_UPDATE_TOKEN": ""}).wait()
    yield server
    server.stop()


CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@contextmanager
def chromium(window: str = "1280,1000") -> Iterator[Any]:
    """Headless Debian Chromium through Selenium, with network and console logs.

    Skipped with the reason when the browser is not installed; under CI, where .ci/run installs
    it, its absence is a failure instead.
    """
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        reason = (
            f"{' and '.join(missing)} not installed (Debian packages chromium, chromium-driver)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; .ci/run installs them, so CI must have them")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="escap-kg-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--window-size={window}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
