"""The pages in headless Chromium, under a strict CSP: nothing fails, the pictures are visible."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from escap_kg.pages import add_page_routes
from escap_kg.server import create_app
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph
from tests.conftest import ROOT, chromium, free_port

ARTIFACTS = ROOT / "test-artifacts"
#: The policy the pages will be served under; they must work with it.
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    with chromium("1280,1000") as browser:
        yield browser


@pytest.fixture(scope="module")
def site(kg: KnowledgeGraph) -> Iterator[str]:
    """The application with the pages, under uvicorn in a thread, with the CSP header set."""
    import uvicorn
    from starlette.types import Message, Receive, Scope, Send

    app = create_app(Settings(workers=1), kg)
    if not any(getattr(route, "path", None) == "/id/{kind}/{slug}" for route in app.routes):
        add_page_routes(app, app.state.escap)

    async def with_csp(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_csp(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"content-security-policy", CSP.encode()),
                ]
            await send(message)

        await app(scope, receive, send_with_csp)

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(with_csp, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def _requests(browser: Any) -> tuple[list[str], list[str]]:
    """The URLs the page asked for, and the requests that failed."""
    urls: dict[str, str] = {}
    failures = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        rid = params.get("requestId")
        if message["method"] == "Network.requestWillBeSent":
            urls[rid] = params["request"]["url"]
        elif message["method"] == "Network.responseReceived":
            status = params["response"]["status"]
            if status >= 400:
                failures.append(f"{params['response']['url']}: HTTP {status}")
        elif message["method"] == "Network.loadingFailed":
            failures.append(f"{urls.get(rid, '?')}: {params.get('errorText')}")
    return list(urls.values()), failures


def _open(browser: Any, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(1280, 1000)
    browser.get("about:blank")
    browser.get_log("performance")
    browser.get_log("browser")
    browser.get(url)
    WebDriverWait(browser, 30).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "footer.site-footer"))
    )


def _screenshot(browser: Any, name: str) -> Path:
    """The whole page, as tall as it is, under test-artifacts/."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(int(height) + 140, 8000))
    time.sleep(0.3)
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    browser.save_screenshot(str(path))
    return path


@pytest.mark.parametrize(
    ("path", "name", "pictures"),
    [
        ("/", "pages-home", ["timeline", "network"]),
        ("/id/activity/fifth-appc", "pages-activity", ["neighbourhood", "timeline"]),
        ("/id/organization/escap", "pages-organisation", ["neighbourhood", "timeline"]),
        ("/ontology", "pages-ontology", ["ontology"]),
    ],
)
def test_page_renders_with_nothing_failing(
    driver: Any, site: str, path: str, name: str, pictures: list[str]
) -> None:
    from selenium.webdriver.common.by import By

    _open(driver, f"{site}{path}")
    for picture in pictures:
        element = driver.find_element(By.CSS_SELECTOR, f"svg.picture.{picture}")
        assert element.is_displayed(), picture
        assert element.size["width"] > 300, (picture, element.size)
        assert element.size["height"] > 80, (picture, element.size)
    # The stylesheet applied: the header is the dark band, not a bare list of links.
    header = driver.find_element(By.CSS_SELECTOR, ".site-header")
    assert header.value_of_css_property("background-color") == "rgba(11, 47, 78, 1)"
    shot = _screenshot(driver, name)
    urls, failures = _requests(driver)
    origin = urlsplit(site)[:2]
    foreign = [u for u in urls if not u.startswith("data:") and urlsplit(u)[:2] != origin]
    console = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not failures, failures
    assert not foreign, f"the page reached other hosts: {foreign}"
    assert not console, console
    assert shot.stat().st_size > 10_000


def test_a_node_of_the_picture_leads_to_its_page(driver: Any, site: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(driver, f"{site}/id/activity/fifth-appc")
    node = driver.find_element(
        By.CSS_SELECTOR, 'svg.picture.neighbourhood a[href="/id/organization/unfpa"]'
    )
    node.click()
    WebDriverWait(driver, 30).until(lambda d: d.current_url.endswith("/id/organization/unfpa"))
    assert driver.find_element(By.TAG_NAME, "h1").text == "UNFPA"


# Layout: no label runs out of its box, onto another label, or under a line -------------------

#: For every SVG picture of the page, what is wrong with its labels, as Chromium lays them out:
#: a text outside the picture, outside the box (node or cell) it is drawn in, overlapping another
#: text, or crossed by one of the picture's lines (the grid of a timeline aside).
LAYOUT_PROBLEMS = """
const problems = [];
const inside = (b, r, tol) => b.x >= r.x - tol && b.y >= r.y - tol &&
  b.x + b.width <= r.x + r.width + tol && b.y + b.height <= r.y + r.height + tol;
for (const svg of document.querySelectorAll('svg.picture')) {
  const name = svg.getAttribute('class');
  const view = svg.viewBox.baseVal;
  const texts = [...svg.querySelectorAll('text')].filter(t => t.textContent.trim());
  const boxes = texts.map(t => t.getBBox());
  texts.forEach((t, i) => {
    const b = boxes[i];
    const said = `${name}: "${t.textContent}"`;
    if (!inside(b, view, 0.5)) problems.push(`${said} runs out of the picture`);
    const holder = t.parentElement === svg ? null : t.parentElement;
    const own = holder && [...holder.children].find(c => c.tagName === 'rect' &&
      /\\b(node|cell)\\b/.test(c.getAttribute('class') || ''));
    if (own && !inside(b, own.getBBox(), 0.5)) problems.push(`${said} runs out of its box`);
    for (let j = i + 1; j < texts.length; j++) {
      const o = boxes[j];
      const w = Math.min(b.x + b.width, o.x + o.width) - Math.max(b.x, o.x);
      const h = Math.min(b.y + b.height, o.y + o.height) - Math.max(b.y, o.y);
      if (w > 1 && h > 1) problems.push(`${said} overlaps "${texts[j].textContent}"`);
    }
  });
  const lines = [...svg.querySelectorAll('path, line')].filter(l =>
    !l.closest('defs') && !/grid|axis/.test(l.getAttribute('class') || ''));
  for (const line of lines) {
    const length = line.getTotalLength();
    for (let d = 0; d <= length; d += 1.5) {
      const p = line.getPointAtLength(d);
      const hit = boxes.findIndex(b => p.x > b.x + 1 && p.x < b.x + b.width - 1 &&
        p.y > b.y + 1 && p.y < b.y + b.height - 1);
      if (hit >= 0) {
        const what = line.getAttribute('class');
        problems.push(`${name}: a ${what} line crosses "${texts[hit].textContent}"`);
        break;
      }
    }
  }
}
for (const card of document.querySelectorAll('.counts li, .counts a')) {
  if (card.scrollWidth > card.clientWidth) {
    problems.push(`count card "${card.textContent.trim()}" overflows`);
  }
}
return problems;
"""


@pytest.mark.parametrize("width", [1400, 420])
@pytest.mark.parametrize(
    ("path", "name"),
    [("/", "home"), ("/id/activity/fifth-appc", "activity"), ("/ontology", "ontology")],
)
def test_no_label_is_cut_or_crossed(
    driver: Any, site: str, path: str, name: str, width: int
) -> None:
    driver.set_window_size(width, 1000)
    driver.get(f"{site}{path}")
    driver.execute_script("return document.fonts.ready")
    pictures = driver.execute_script("return document.querySelectorAll('svg.picture').length")
    assert pictures > 0
    problems = driver.execute_script(LAYOUT_PROBLEMS)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(int(height) + 140, 12000))
    time.sleep(0.3)
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"layout-{name}-{width}.png"))
    assert not problems, "\n".join(problems)
