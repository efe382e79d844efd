"""The query UI in headless Chromium: it loads with no failed request and runs an example."""

from __future__ import annotations

import csv as csv_module
import io
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
TAB_LINKS = ".yasgui .tabsList .tab a[role=tab]"
ACTIVE_TAB = ".yasgui .tabsList .tab.active a span"
RESULT_LINKS = ".yasr .yasr_results table.dataTable tbody a.iri"
DOWNLOAD = ".yasr .yasr_header .yasr_downloadIcon"
NOTE = ".query-ui-note"
# The CSV the table's download button would save, and the name it would save it under.
CSV_DOWNLOAD = """
const yasr = window.escapKgYasgui.getTab().getYasr();
const info = yasr.plugins[yasr.drawnPlugin].download(yasr.config.getDownloadFileName());
return [info.contentType, info.filename, info.getData()];
"""

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
    assert tabs[:2] == [
        "Which activities did ESCAP undertake, in time…",
        "Where was each activity held, and does that…",
    ]
    assert len(tabs) == 17
    assert driver.find_element(By.CSS_SELECTOR, ACTIVE_TAB).text == tabs[0]
    titles = [el.get_attribute("title") for el in driver.find_elements(By.CSS_SELECTOR, TAB_LINKS)]
    assert titles[0].startswith("Which activities did ESCAP undertake, in time order, of what")
    assert titles[16] == (
        "What does Wikidata call the organizations and countries that ESCAP worked with?"
    )
    assert [nav.text for nav in driver.find_elements(By.CSS_SELECTOR, "nav.site-nav a")] == [
        "Home",
        "Browse",
        "Themes",
        "Ontology",
        "Queries",
        "SPARQL",
        "API",
    ]
    editor = driver.execute_script("return window.escapKgYasgui.getTab().getQuery();")
    assert editor.startswith("PREFIX ekg: <https://w3id.org/escap-kg/ontology#>\n")
    assert "#+" not in editor
    # The note on the federated query shows with its tab only (this server allows no SERVICE).
    note = driver.find_element(By.CSS_SELECTOR, NOTE)
    assert not note.is_displayed()

    driver.find_element(By.CSS_SELECTOR, RUN_BUTTON).click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, RESULT_ROWS)) > 0)
    time.sleep(0.5)
    rows = driver.find_elements(By.CSS_SELECTOR, RESULT_ROWS)
    assert len(rows) == 4
    assert "activity:egm-2001-migration-and-development" in rows[0].text

    # Our IRIs link to our pages on this server; others (schema.org types) stay as they are.
    links = driver.find_elements(By.CSS_SELECTOR, RESULT_LINKS)
    hrefs = {link.get_attribute("href") for link in links}
    assert f"{live_server.url}/id/activity/egm-2001-migration-and-development" in hrefs
    ours = [link for link in links if link.get_attribute("data-iri")]
    assert ours
    for link in ours:
        iri = link.get_attribute("data-iri")
        assert iri.startswith("https://w3id.org/escap-kg/")
        local = iri.removeprefix("https://w3id.org/escap-kg/")
        assert link.get_attribute("href") == f"{live_server.url}/{local}"
    assert not [h for h in hrefs if h.startswith("https://w3id.org/escap-kg/")]

    # The table's download button is there and gives the results as CSV.
    button = driver.find_element(By.CSS_SELECTOR, DOWNLOAD)
    assert button.is_displayed()
    assert "disabled" not in (button.get_attribute("class") or "")
    assert button.get_attribute("title") == "Download result"
    content_type, filename, csv = driver.execute_script(CSV_DOWNLOAD)
    assert content_type == "text/csv"
    assert filename == "01-activities-in-time-order.csv"
    table = list(csv_module.reader(io.StringIO(csv)))
    assert table[0] == [
        "activity",
        "activityLabel",
        "type",
        "typeLabel",
        "startDate",
        "endDate",
        "organisers",
        "partners",
    ]
    assert len(table) == 5
    assert "https://w3id.org/escap-kg/id/activity/egm-2001-migration-and-development" in table[1]

    # The last tab, the federated query: its note says why it will be refused.
    driver.find_elements(By.CSS_SELECTOR, TAB_LINKS)[16].click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, NOTE).is_displayed())
    assert "--allow-service https://query.wikidata.org/sparql" in note.text
    driver.find_elements(By.CSS_SELECTOR, TAB_LINKS)[0].click()
    wait.until(lambda d: not d.find_element(By.CSS_SELECTOR, NOTE).is_displayed())

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
