"""The query UI in headless Chromium: it loads with no failed request and runs an example."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import ROOT, LiveServer, chromium

ARTIFACTS = ROOT / "test-artifacts"
RUN_BUTTON = ".yasqe .yasqe_queryButton"
RESULT_ROWS = ".yasr .yasr_results table.dataTable tbody tr"
TABS = ".yasgui .tabsList .tab a span"
ACTIVE_TAB = ".yasgui .tabsList .tab.active a span"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    with chromium("1366,1000") as browser:
        yield browser


def _network(browser: Any) -> list[dict[str, Any]]:
    events = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"].startswith("Network."):
            events.append(message)
    return events


def _requests(events: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    requests: dict[str, dict[str, Any]] = {}
    failures = []
    for event in events:
        params = event["params"]
        rid = params.get("requestId")
        if event["method"] == "Network.requestWillBeSent":
            requests[rid] = {"url": params["request"]["url"], "method": params["request"]["method"]}
        elif event["method"] == "Network.responseReceived":
            requests.setdefault(rid, {"url": params["response"]["url"], "method": "?"})
            requests[rid]["status"] = params["response"]["status"]
        elif event["method"] == "Network.loadingFailed":
            url = requests.get(rid, {}).get("url", "?")
            failures.append(f"{url}: {params.get('errorText')}")
    for request in requests.values():
        if request.get("status", 0) >= 400:
            failures.append(f"{request['url']}: HTTP {request['status']}")
    return requests, failures


def test_query_ui_runs_an_example(driver: Any, live_server: LiveServer) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    page = f"{live_server.url}/sparql"
    driver.get("about:blank")
    driver.get_log("performance")
    driver.get_log("browser")
    driver.get(page)
    wait = WebDriverWait(driver, 30)
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, RUN_BUTTON)))
    assert driver.current_url == page
    tabs = [el.text for el in driver.find_elements(By.CSS_SELECTOR, TABS)]
    assert tabs[:2] == ["01-activities-in-time-order", "02-where-activities-were-held"]
    assert len(tabs) == 17
    assert driver.find_element(By.CSS_SELECTOR, ACTIVE_TAB).text == tabs[0]

    driver.find_element(By.CSS_SELECTOR, RUN_BUTTON).click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, RESULT_ROWS)) > 0)
    time.sleep(0.5)
    rows = driver.find_elements(By.CSS_SELECTOR, RESULT_ROWS)
    assert len(rows) == 4
    assert "activity:egm-2001-migration-and-development" in rows[0].text

    requests, failures = _requests(_network(driver))
    origin = urlsplit(page)[:2]
    foreign = [
        r["url"]
        for r in requests.values()
        if not r["url"].startswith("data:") and urlsplit(r["url"])[:2] != origin
    ]
    console = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "query-ui.png"))
    assert not failures, failures
    assert not foreign, f"the page reached other hosts: {foreign}"
    assert not console, console
    assert any(r["method"] == "POST" and r["url"] == page for r in requests.values())


def test_api_documentation_works_offline(driver: Any, live_server: LiveServer) -> None:
    """Swagger UI comes from our own static files and runs under our CSP."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get("about:blank")
    driver.get_log("performance")
    driver.get_log("browser")
    driver.get(f"{live_server.url}/docs")
    WebDriverWait(driver, 30).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")) > 0
    )
    paths = {
        el.text.replace("\u200b", "")
        for el in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    }
    assert "/api/queries" in paths
    requests, failures = _requests(_network(driver))
    origin = urlsplit(live_server.url)[:2]
    foreign = [
        r["url"]
        for r in requests.values()
        if not r["url"].startswith("data:") and urlsplit(r["url"])[:2] != origin
    ]
    console = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "api-docs.png"))
    assert not failures, failures
    assert not foreign, foreign
    assert not console, console
