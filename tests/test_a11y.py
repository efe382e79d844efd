"""Every page we serve passes axe-core's WCAG 2.1 A and AA rules, and works from the keyboard.

axe-core comes from the npm registry (``.ci/node``, installed by ``.ci/run``); the test injects it
into each page in headless Chromium, under the CSP the pages are served with, and fails on any
violation, naming the rule, its impact, where on the page and how to fix it. A new page joins
the scan with one line in ``PAGES``.
"""

# ruff: noqa: F811 - the tests take the fixtures imported from test_pages_browser as arguments

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.test_pages_browser import driver, site  # noqa: F401 - the same browser and server

#: Where ``npm ci --prefix .ci/node`` puts axe-core; ``ESCAP_KG_AXE`` may name another copy.
AXE_JS = ROOT / ".ci" / "node" / "node_modules" / "axe-core" / "axe.min.js"
#: The rules of WCAG 2.1, levels A and AA.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
#: A page is scanned once this selector matches: the site's footer, or the rendered widget.
FOOTER = "footer.site-footer"
YASGUI_READY = ".yasqe .yasqe_queryButton"
SWAGGER_READY = ".swagger-ui .opblock-tag-section"
#: At this width and below the page must not scroll sideways.
NARROW = 420

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Page:
    """A URL to scan, what shows it has rendered, and the window width to scan it at."""

    path: str
    ready: str = FOOTER
    width: int = 1280
    #: Buttons clicked in turn once the page is ready (each as soon as it shows), to open
    #: more of it, and what then shows.
    clicks: tuple[str, ...] = ()
    shown: str = ""
    name: str = ""

    @property
    def id(self) -> str:
        return f"{self.path}{self.name}@{self.width}"


#: Every kind of page we serve; add a URL here and it is scanned.
PAGES = [
    Page("/"),
    Page("/", width=NARROW),
    Page("/id/activity/fifth-appc"),
    Page("/id/activity/fifth-appc", width=NARROW),
    Page("/id/organization/escap"),
    Page("/id/organization/unfpa"),
    Page("/id/organization/unfpa", width=NARROW),
    Page("/id/theme/safe-migration"),
    Page("/id/scheme/themes"),
    Page("/id/finding/fifth-appc-rising-share-of-women"),
    Page("/id/recommendation/fifth-appc-combat-trafficking"),
    Page("/id/document/egm-2003-recommendations"),
    Page("/id/paragraph/escap-migration-activities-2"),
    Page("/graph/paragraph-2"),
    Page("/ontology"),
    Page("/ontology", width=NARROW),
    Page("/queries"),
    Page("/queries", width=NARROW),
    Page("/queries/15-where-in-the-source"),
    Page("/queries/03-partners-of-escap", width=NARROW),
    Page("/search?q=trafficking"),
    Page("/sparql", ready=YASGUI_READY),
    Page("/sparql", ready=YASGUI_READY, width=NARROW),
    Page(
        "/sparql",
        ready=YASGUI_READY,
        clicks=(YASGUI_READY,),
        shown=".yasr .yasr_results table.dataTable tbody tr",
        name="+results",
    ),
    Page("/docs", ready=SWAGGER_READY),
    Page(
        "/docs",
        ready=SWAGGER_READY,
        clicks=(".opblock-summary-control", ".try-out__btn", ".opblock-body .execute"),
        shown=".live-responses-table .response-col_status",
        name="+try-it-out",
    ),
    Page("/docs", ready=SWAGGER_READY, width=NARROW),
    Page("/id/activity/no-such-activity"),
    Page("/id/"),
    Page("/id/activity/"),
    Page("/id/organization/", width=NARROW),
    Page("/id/theme/"),
    Page("/id/organization/government-of-sweden"),
    Page("/reconcile/preview?id=https://w3id.org/escap-kg/id/activity/fifth-appc", ready="body"),
]

CLICK_IN_TURN = """
const selectors = arguments[0];
(function next() {
  if (!selectors.length) return;
  const element = document.querySelector(selectors[0]);
  if (element) { selectors.shift(); element.click(); }
  setTimeout(next, 100);
})();
"""
RUN_AXE = """
const done = arguments[arguments.length - 1];
axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}, resultTypes: ['violations']})
  .then(r => done(r.violations.map(v => ({
      id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
      nodes: v.nodes.length,
      targets: v.nodes.slice(0, 4).map(n => n.target.join(' ')),
      summary: v.nodes.length ? v.nodes[0].failureSummary : ''}))))
  .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), helpUrl: '',
                     nodes: 0, targets: [], summary: ''}]));
"""


def axe_source() -> str:
    """axe-core's script, or a skip naming how to install it."""
    path = Path(os.environ.get("ESCAP_KG_AXE") or AXE_JS)
    if not path.is_file():
        reason = f"{path} not found: run `npm ci --prefix .ci/node` (or set ESCAP_KG_AXE)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; .ci/run installs it, so CI must have it")
        pytest.skip(reason)
    return path.read_text(encoding="utf-8")


def report(violations: list[dict[str, Any]]) -> str:
    """The violations, one paragraph each: rule, impact, count, where, and how to fix."""
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}, {v['nodes']} element(s)): {v['help']}")
        lines.extend(f"    at {target}" for target in v["targets"])
        lines.extend(f"    {line}" for line in v["summary"].splitlines()[:4])
        lines.append(f"    see {v['helpUrl']}")
    return "\n".join(lines)


def _settle(browser: Any) -> None:
    """Let scripts that run after a render (ours, YASGUI's, Swagger UI's) finish."""
    browser.execute_async_script(
        "const done = arguments[0];"
        "requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(done, 250)));"
    )


def open_page(browser: Any, url: str, page: Page) -> None:
    """Load ``url`` at the page's width, wait until it has rendered, and do its action."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(page.width, 1000)
    browser.get("about:blank")
    browser.get(url)
    wait = WebDriverWait(browser, 30)
    wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, page.ready)))
    _settle(browser)
    if page.clicks:
        browser.execute_script(CLICK_IN_TURN, list(page.clicks))
        wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, page.shown)))
        _settle(browser)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.id)
def test_page_has_no_wcag_violation(driver: Any, site: str, page: Page) -> None:
    axe = axe_source()
    open_page(driver, f"{site}{page.path}", page)
    # What a reader can open is scanned open.
    driver.execute_script("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    # Scripts run through the WebDriver are not subject to the page's CSP.
    driver.execute_script(axe)
    driver.set_script_timeout(60)
    violations = driver.execute_async_script(RUN_AXE, WCAG_TAGS)
    assert not violations, f"{page.id}:\n{report(violations)}"
    if page.width <= NARROW:
        # Reflow (WCAG 1.4.10): at a phone's width only boxes of their own scroll sideways.
        page_width, window_width = driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert page_width <= window_width, f"{page.id} scrolls sideways: {page_width} px wide"


#: What the element with the keyboard focus is: enough to tell the stops of a page apart.
FOCUSED = """
const e = document.activeElement;
if (!e || e === document.body) return '';
const where = e.closest('svg') ? 'svg ' : '';
return where + e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
  + (e.getAttribute('class') ? '.' + e.getAttribute('class').trim().split(/\\s+/).join('.') : '')
  + (e.getAttribute('href') ? '[href=' + e.getAttribute('href') + ']' : '')
  + (e.getAttribute('aria-label') ? '[' + e.getAttribute('aria-label') + ']' : '');
"""


def tab_stops(browser: Any, presses: int, escape: bool = False, back: bool = False) -> list[str]:
    """The elements the focus lands on, one per press of Tab (Shift+Tab if ``back``), from
    where it is now; ``escape``: press Escape first."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    if escape:
        ActionChains(browser).send_keys(Keys.ESCAPE).perform()
    stops = []
    for _ in range(presses):
        actions = ActionChains(browser)
        if back:
            actions.key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT)
        else:
            actions.send_keys(Keys.TAB)
        actions.perform()
        stops.append(str(browser.execute_script(FOCUSED)))
    return stops


def test_tab_reaches_the_links_the_pictures_and_the_scrolling_boxes(
    driver: Any,
    site: str,
) -> None:
    open_page(driver, f"{site}/id/activity/fifth-appc", Page("/id/activity/fifth-appc"))
    stops = tab_stops(driver, 400)
    assert stops[0] == "a.skip[href=#main]", stops[:3]
    for link in ("/", "/ontology", "/queries", "/sparql"):
        assert f"a[href={link}]" in stops, f"Tab never reaches the link to {link}: {stops[:20]}"
    assert any(s.startswith("input#site-search") for s in stops), stops[:20]
    assert any(s.startswith("svg a[href=/id/organization/unfpa]") for s in stops), stops
    assert "pre.triples[The triples, as N-Triples]" in stops, stops[-20:]
    # The footer's links come last, after the scrolling box of triples.
    assert stops.index("pre.triples[The triples, as N-Triples]") < stops.index(
        "a[href=/queries]", stops.index("pre.triples[The triples, as N-Triples]")
    )


def test_tab_moves_through_the_query_ui(driver: Any, site: str) -> None:
    editor = "textarea[SPARQL query]"
    open_page(driver, f"{site}/sparql", Page("/sparql", ready=YASGUI_READY))
    driver.execute_script("window.escapKgYasgui.getTab().getYasqe().focus()")
    assert driver.execute_script(FOCUSED) == editor
    # In the editor Tab indents, and the focus stays.
    assert tab_stops(driver, 1) == [editor]
    # Escape, then Tab: out of the editor, on to the query's scrolling box and the buttons.
    stops = tab_stops(driver, 24, escape=True)
    assert stops[0] == "div.CodeMirror-scroll[The query's text, to scroll]", stops
    assert any(stop.startswith("button.yasqe_queryButton") for stop in stops), stops
    assert editor not in stops
    # Escape, then Shift+Tab goes back the other way: to the endpoint and the tabs.
    driver.execute_script("window.escapKgYasgui.getTab().getYasqe().focus()")
    back = tab_stops(driver, 8, escape=True, back=True)
    assert back[0] != editor, back
    assert any("[SPARQL endpoint]" in stop for stop in back), back
    assert any(stop.startswith("button.addTab") for stop in back), back


#: Each picture's role and name, and the links in it that have no name of their own.
PICTURES = """
return [...document.querySelectorAll('svg.picture')].map(svg => {
  const ids = (svg.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean);
  const name = ids.map(id => (document.getElementById(id) || {}).textContent || '').join(' ');
  const unnamed = [...svg.querySelectorAll('a')].filter(a => {
    const title = a.querySelector('title');
    return !(a.getAttribute('aria-label') || (title && title.textContent.trim())
             || a.textContent.trim());
  }).length;
  const caption = svg.closest('figure') && svg.closest('figure').querySelector('figcaption');
  return [svg.getAttribute('class'), svg.getAttribute('role'), name.trim(), unnamed,
          caption ? caption.textContent.trim() : '', svg.querySelectorAll('a').length];
});
"""


@pytest.mark.parametrize(
    ("path", "count"), [("/", 4), ("/id/activity/fifth-appc", 2), ("/ontology", 1)]
)
def test_pictures_are_described_for_screen_readers(
    driver: Any, site: str, path: str, count: int
) -> None:
    open_page(driver, f"{site}{path}", Page(path))
    pictures = driver.execute_script(PICTURES)
    assert len(pictures) == count, pictures
    for css, role, name, unnamed, caption, links in pictures:
        # With links, a group, not an image: its boxes are links a screen reader must still
        # reach; a chart without links is one image with a description.
        assert role == ("group" if links else "img"), (css, role, links)
        assert len(name) > 10, f"{css} has no accessible name"
        assert unnamed == 0, f"{css}: {unnamed} links without a name"
        assert len(caption) > 40, f"{css} has no caption"


def test_the_partner_network_is_also_text(driver: Any, site: str) -> None:
    from selenium.webdriver.common.by import By

    open_page(driver, f"{site}/", Page("/"))
    activities = {
        a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, ".activity-list a")
    }
    items = driver.find_elements(By.CSS_SELECTOR, "details.picture-text li")
    assert len(items) == len(activities) > 0
    assert {item.find_element(By.TAG_NAME, "a").get_attribute("href") for item in items} == (
        activities
    )
    # Who took part, in which role: the lines of the picture, as words.
    text = driver.execute_script(
        "return document.querySelector('details.picture-text').textContent"
    )
    assert "UNFPA (joint organizer)" in " ".join(text.split())
