"""The query UI page: escaping, the catalogue as example tabs, and no request to another host."""

from __future__ import annotations

import json
import re

import pytest

from escap_kg.namespaces import prefixes as graph_prefixes
from escap_kg.queries import load_catalogue
from escap_kg.settings import Settings
from escap_kg.ui import STATIC_DIR, TEMPLATES_DIR, render_query_ui, script_json, storage_key
from tests.markup import Page, parse

YASGUI_DIR = STATIC_DIR / "yasgui"
ASSETS = ("yasgui.min.js", "yasgui.min.css", "query-ui.js", "query-ui.css")
BASE = "https://w3id.org/escap-kg/"
HOSTILE = "SELECT * WHERE { ?s ?p \"</script><script>alert('x')</script>\" } # <!-- ]]> & $title"
CDN_HOSTS = (
    "unpkg.com",
    "jsdelivr.net",
    "cdnjs.cloudflare.com",
    "fonts.googleapis.com",
    "fonts.gstatic.com",
    "ajax.googleapis.com",
    "code.jquery.com",
    "cdn.datatables.net",
    "use.fontawesome.com",
    "kit.fontawesome.com",
    "stackpath.bootstrapcdn.com",
)


def json_block(page: Page, element_id: str) -> object:
    blocks = [(attrs, body) for attrs, body in page.scripts if attrs.get("id") == element_id]
    assert len(blocks) == 1, f"expected one <script id={element_id}>"
    attrs, body = blocks[0]
    assert attrs.get("type") == "application/json"
    return json.loads(body)


def render(
    examples: list[tuple[str, str]] | None = None,
    *,
    title: str = "escap-kg SPARQL",
    endpoint: str = "/sparql",
    static: str = "/static",
) -> str:
    return render_query_ui(
        title=title,
        endpoint=endpoint,
        static=static,
        examples=examples if examples is not None else [("01-first", "SELECT * {}")],
        prefixes=graph_prefixes(BASE),
    )


@pytest.fixture(scope="module")
def catalogue() -> list[tuple[str, str]]:
    return [(query.id, query.text) for query in load_catalogue(Settings())]


def test_hostile_query_text_cannot_end_its_script_element() -> None:
    html = render([("01-hostile", HOSTILE), ("02-plain", "ASK {}")])
    assert "</script><script>alert" not in html
    assert "<!--" not in html
    assert "]]>" not in html
    # The only </script> tags are the template's own: two JSON blocks and two script files.
    assert html.count("</script") == 4
    page = parse(html)
    assert len(page.scripts) == 4
    examples = json_block(page, "query-ui-examples")
    assert examples == [
        {"id": "01-hostile", "query": HOSTILE},
        {"id": "02-plain", "query": "ASK {}"},
    ]


def test_hostile_id_title_and_urls_are_html_escaped() -> None:
    html = render(
        [("<b>id</b>", "ASK {}")],
        title='<img src=x onerror="alert(1)"> & $endpoint',
        endpoint='/sparql"><script>alert(1)</script>',
        static='/static"><script>',
    )
    page = parse(html)
    assert "<img" not in html
    assert "<b>id" not in html
    assert not any(tag in {"img", "b"} for tag, _ in page.tags)
    assert len(page.scripts) == 4
    assert "".join(page.text).count('<img src=x onerror="alert(1)"> & $endpoint') == 2
    main = [attrs for tag, attrs in page.tags if tag == "main"]
    assert main == [
        {
            "id": "yasgui",
            "data-endpoint": '/sparql"><script>alert(1)</script>',
            "data-storage-key": main[0]["data-storage-key"],
        }
    ]
    assert json_block(page, "query-ui-examples") == [{"id": "<b>id</b>", "query": "ASK {}"}]


def test_every_catalogue_query_is_an_example_tab(catalogue: list[tuple[str, str]]) -> None:
    assert len(catalogue) >= 16
    page = parse(render(catalogue))
    examples = json_block(page, "query-ui-examples")
    assert examples == [{"id": query_id, "query": text} for query_id, text in catalogue]


def test_prefixes_are_those_of_the_graph() -> None:
    page = parse(render())
    table = json_block(page, "query-ui-prefixes")
    assert table == graph_prefixes(BASE)
    assert isinstance(table, dict)
    assert table["ekg"] == "https://w3id.org/escap-kg/ontology#"
    assert table["activity"] == f"{BASE}id/activity/"


def test_page_loads_our_static_files_and_nothing_from_another_host() -> None:
    html = render(static="/static/")
    page = parse(html)
    urls = [
        value
        for _, attrs in page.tags
        for name, value in attrs.items()
        if name in {"src", "href", "action", "srcset", "poster", "data"} and value is not None
    ]
    assert sorted(urls) == sorted(
        [
            "data:,",
            "/static/yasgui/yasgui.min.css",
            "/static/yasgui/query-ui.css",
            "/static/yasgui/yasgui.min.js",
            "/static/yasgui/query-ui.js",
        ]
    )
    for url in urls:
        if url.startswith("/static/"):
            assert (STATIC_DIR / url.removeprefix("/static/")).is_file(), url
    # Outside the JSON blocks (namespace IRIs and query texts: data, not requests) no absolute
    # URL at all; inline scripts and styles none either.
    json_free = re.sub(
        r'<script type="application/json"[^>]*>.*?</script>', "", html, flags=re.DOTALL
    )
    assert "http://" not in json_free
    assert "https://" not in json_free
    assert "//" not in "".join(urls)
    assert all(attrs.get("src") for attrs, _ in page.scripts if attrs.get("type") is None)
    assert all(body == "" for attrs, body in page.scripts if attrs.get("src"))
    assert "<style" not in html
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)


def test_static_url_prefix_is_configurable() -> None:
    html = render(static="/ui/assets")
    assert 'src="/ui/assets/yasgui/yasgui.min.js"' in html
    assert 'href="/ui/assets/yasgui/yasgui.min.css"' in html
    assert "/static/" not in html


def test_storage_key_follows_the_catalogue() -> None:
    table = graph_prefixes(BASE)
    one = storage_key("/sparql", [("01-a", "ASK {}")], table)
    assert one == storage_key("/sparql", [("01-a", "ASK {}")], dict(reversed(table.items())))
    assert one != storage_key("/sparql", [("01-a", "ASK { ?s ?p ?o }")], table)
    assert one != storage_key("/sparql", [("01-a", "ASK {}"), ("02-b", "ASK {}")], table)
    assert one != storage_key("/other", [("01-a", "ASK {}")], table)
    assert re.fullmatch(r"escap-kg-query-ui-[0-9a-f]{16}", one)
    assert f'data-storage-key="{one}"' in render([("01-a", "ASK {}")])


def test_script_json_reads_back_as_the_same_value() -> None:
    value = {"q": "</script><!-- --> & <![CDATA[ ]]> \u2028 é $x"}
    text = script_json(value)
    assert "<" not in text
    assert ">" not in text
    assert "&" not in text
    assert json.loads(text) == value


def test_static_assets_are_there() -> None:
    for name in (*ASSETS, "LICENSE", "SOURCE.txt"):
        assert (YASGUI_DIR / name).is_file(), name
    assert (TEMPLATES_DIR / "sparql.html").is_file()
    source = (YASGUI_DIR / "SOURCE.txt").read_text(encoding="utf-8")
    assert "@zazuko/yasgui 4.6.2" in source
    assert "sha512-" in source
    assert "MIT License" in (YASGUI_DIR / "LICENSE").read_text(encoding="utf-8")
    # Only what the page needs: no source maps, no ESM build.
    assert sorted(path.name for path in YASGUI_DIR.iterdir()) == sorted(
        [*ASSETS, "LICENSE", "SOURCE.txt"]
    )


@pytest.mark.parametrize(
    "name", [path.relative_to(STATIC_DIR).as_posix() for path in sorted(STATIC_DIR.rglob("*.css"))]
)
def test_css_loads_nothing_from_another_host(name: str) -> None:
    """Every stylesheet we serve: the query UI's, the resource pages', the API docs'."""
    css = (STATIC_DIR / name).read_text(encoding="utf-8")
    urls = re.findall(r"url\(\s*['\"]?([^'\")]*)", css, flags=re.IGNORECASE)
    assert [url for url in urls if not url.startswith("data:")] == []
    assert not re.search(r"@import", css, flags=re.IGNORECASE)
    assert not re.search(r"@font-face", css, flags=re.IGNORECASE)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", css, flags=re.IGNORECASE)


@pytest.mark.parametrize("name", ASSETS)
def test_no_cdn_or_prefix_cc_request_in_assets(name: str) -> None:
    text = (YASGUI_DIR / name).read_text(encoding="utf-8")
    for host in CDN_HOSTS:
        assert host not in text, f"{name} refers to {host}"
    # prefix.cc's API (YASQE's prefixCcApi); http://prefix.cc/nsogi: in the bundled prefix list
    # is a namespace IRI, not a request.
    assert not re.search(r"prefix\.cc/(popular|context|api|[^\"'`]*\.json)", text)
    # No script, style, module or fetch of an absolute URL given as a literal.
    literal = r"\s*[\"'`](?:https?:)?//"
    assert not re.search(r"\bimport\s*\(" + literal, text)
    assert not re.search(r"\bimport\s[^;]*?from" + literal, text)
    assert not re.search(r"\bfetch\(" + literal, text)
    assert not re.search(r"\bimportScripts\(", text)
    assert not re.search(r"sourceMappingURL", text)


def test_bundle_remote_lookups_are_off_by_default_or_turned_off() -> None:
    bundle = (YASGUI_DIR / "yasgui.min.js").read_text(encoding="utf-8")
    config = (YASGUI_DIR / "query-ui.js").read_text(encoding="utf-8")
    # YASQE asks prefix.cc only if prefixCcApi is set: null by default, and kept null.
    assert "prefixCcApi:null" in bundle
    assert "Yasqe.defaults.prefixCcApi = null;" in config
    # The "property" and "class" autocompleters fetch from lov.linkeddata.es: not enabled.
    assert "lov.linkeddata.es" in bundle
    assert 'Yasqe.defaults.autocompleters = ["variables", "prefixes"];' in config
    # Yasgui's CORS check fetches the endpoint only through a corsProxy: none is set.
    assert "corsProxy:void 0" in bundle
    assert "corsProxy: undefined" in config
    assert "getData: function () { return [{ endpoint: endpoint }]; }" in config
