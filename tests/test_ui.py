"""The query UI page: escaping, the catalogue as example tabs, and no request to another host."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from escap_kg.namespaces import prefixes as graph_prefixes
from escap_kg.queries import Query, load_catalogue
from escap_kg.server import create_app
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph
from escap_kg.ui import (
    STATIC_DIR,
    TEMPLATES_DIR,
    Example,
    catalogue_examples,
    editor_text,
    render_query_ui,
    script_json,
    service_note,
    short_name,
    storage_key,
)
from tests.markup import Page, parse

YASGUI_DIR = STATIC_DIR / "yasgui"
ASSETS = ("yasgui.min.js", "yasgui.min.css", "query-ui.js", "query-ui.css")
BASE = "https://w3id.org/escap-kg/"
WIKIDATA = "https://query.wikidata.org/sparql"
NOTE_17 = (
    "This query asks Wikidata through SERVICE; this server was started without "
    f"--allow-service {WIKIDATA}, so it will be refused."
)
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
    examples: list[Example] | None = None,
    *,
    title: str = "escap-kg SPARQL",
    endpoint: str = "/sparql",
    static: str = "/static",
) -> str:
    return render_query_ui(
        title=title,
        endpoint=endpoint,
        static=static,
        examples=examples if examples is not None else [Example("01-first", "Q?", "SELECT * {}")],
        prefixes=graph_prefixes(BASE),
        base_iri=BASE,
    )


def tab(query_id: str, question: str, text: str) -> dict[str, str]:
    return {"id": f"example-{query_id}", "name": question, "title": question, "query": text}


@pytest.fixture(scope="module")
def queries() -> list[Query]:
    return load_catalogue(Settings())


@pytest.fixture(scope="module")
def catalogue(queries: list[Query]) -> list[Example]:
    return catalogue_examples(queries)


def test_hostile_query_text_cannot_end_its_script_element() -> None:
    html = render([Example("01-hostile", "Why?", HOSTILE), Example("02-plain", "Is it?", "ASK {}")])
    assert "</script><script>alert" not in html
    assert "<!--" not in html
    assert "]]>" not in html
    # The only </script> tags are the template's own: three JSON blocks and two script files.
    assert html.count("</script") == 5
    page = parse(html)
    assert len(page.scripts) == 5
    examples = json_block(page, "query-ui-examples")
    assert examples == [tab("01-hostile", "Why?", HOSTILE), tab("02-plain", "Is it?", "ASK {}")]


def test_hostile_id_title_and_urls_are_html_escaped() -> None:
    html = render(
        [Example("<b>id</b>", "<i>why</i>?", "ASK {}", note="<u>refused</u>")],
        title='<img src=x onerror="alert(1)"> & $endpoint',
        endpoint='/sparql"><script>alert(1)</script>',
        static='/static"><script>',
    )
    page = parse(html)
    assert "<img" not in html
    assert "<b>id" not in html
    assert not any(tag in {"img", "b", "i", "u"} for tag, _ in page.tags)
    assert len(page.scripts) == 5
    assert "".join(page.text).count('<img src=x onerror="alert(1)"> & $endpoint') == 2
    assert "<u>refused</u>" in page.plain
    root = [attrs for tag, attrs in page.tags if attrs.get("id") == "yasgui"]
    assert root == [
        {
            "id": "yasgui",
            "data-endpoint": '/sparql"><script>alert(1)</script>',
            "data-storage-key": root[0]["data-storage-key"],
        }
    ]
    assert json_block(page, "query-ui-examples") == [tab("<b>id</b>", "<i>why</i>?", "ASK {}")]


def test_every_catalogue_query_is_a_tab_named_by_its_question(
    queries: list[Query], catalogue: list[Example]
) -> None:
    assert len(catalogue) >= 17
    page = parse(render(catalogue))
    examples = json_block(page, "query-ui-examples")
    assert isinstance(examples, list)
    assert [e["id"] for e in examples] == [f"example-{q.id}" for q in queries]
    assert [e["title"] for e in examples] == [q.summary for q in queries]
    for example, query in zip(examples, queries, strict=True):
        name = example["name"]
        assert 0 < len(name) <= 48, name
        assert query.id not in name
        if len(query.summary) <= 48:
            assert name == query.summary
        else:
            assert name.endswith("…")
            assert query.summary.startswith(name.removesuffix("…")), name
    assert examples[10]["name"] == "Which themes did the most activities address…"


def test_editor_shows_the_query_without_its_header_and_notes(
    queries: list[Query], catalogue: list[Example]
) -> None:
    shown = json_block(parse(render(catalogue)), "query-ui-examples")
    assert isinstance(shown, list)
    for example, query in zip(shown, queries, strict=True):
        text = example["query"]
        assert "#+" not in text, query.id
        assert text.startswith("PREFIX "), query.id
        # The query itself is unchanged: the tail of the file, from its first PREFIX on.
        assert query.text.rstrip().endswith(text.rstrip()), query.id
        assert query.text.startswith("#+ summary:"), "the file itself keeps its header"
    first = shown[0]["query"]
    assert "Dates come at the precision" not in first
    assert "PREFIX ekg: <https://w3id.org/escap-kg/ontology#>" in first


def test_editor_text_keeps_comments_inside_the_query() -> None:
    text = "#+ summary: Q?\n# how it works\n\nPREFIX a: <x:>\n# inside\nSELECT ?s {}\n"
    assert editor_text(text) == "PREFIX a: <x:>\n# inside\nSELECT ?s {}\n"
    assert editor_text("#+ summary: only a header\n") == ""


def test_short_name_cuts_at_a_word() -> None:
    assert short_name("Which ones?") == "Which ones?"
    assert short_name("alpha beta gamma delta", limit=12) == "alpha beta…"
    assert short_name("alpha, beta gamma", limit=10) == "alpha…"
    assert short_name("abcdefghijklmnop", limit=6) == "abcde…"


def test_service_note_names_the_flag_that_allows_it() -> None:
    assert service_note([WIKIDATA], ()) == NOTE_17
    assert service_note([WIKIDATA], (WIKIDATA,)) == ""
    assert service_note([], ()) == ""
    assert "asks example.org through SERVICE" in service_note(["https://example.org/sparql"], ())


def notes(html: str) -> dict[str | None, str]:
    page = parse(html)
    found = [attrs.get("data-tab") for tag, attrs in page.tags if tag == "p" and "role" in attrs]
    return {tab_id: text for tab_id, text in zip(found, NOTE_TEXT.findall(html), strict=True)}


NOTE_TEXT = re.compile(r'<p class="query-ui-note" role="note" data-tab="[^"]*" hidden>([^<]*)</p>')


def test_federated_query_has_a_note_only_when_service_is_refused(queries: list[Query]) -> None:
    refused = notes(render(catalogue_examples(queries)))
    assert refused == {"example-17-wikidata-names-of-partners": NOTE_17}
    assert notes(render(catalogue_examples(queries, (WIKIDATA,)))) == {}


@pytest.fixture(scope="module")
def client(kg: KnowledgeGraph) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(workers=1, query_timeout=10), kg)) as test_client:
        yield test_client


def test_endpoint_page_has_the_site_navigation_and_the_note(client: TestClient) -> None:
    response = client.get("/sparql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    page = parse(response.text)
    nav = [attrs for tag, attrs in page.tags if tag == "nav"]
    assert nav == [{"class": "site-nav", "aria-label": "Site"}]
    for href in ("/", "/id/scheme/themes", "/ontology", "/queries", "/sparql", "/docs"):
        assert href in page.hrefs, href
    current = [a["href"] for tag, a in page.tags if tag == "a" and a.get("aria-current")]
    assert current == ["/sparql"]
    assert page.hrefs.count("/queries") >= 2, "the navigation and the footer link the catalogue"
    assert "/api/queries" not in page.hrefs
    assert notes(response.text) == {"example-17-wikidata-names-of-partners": NOTE_17}
    links = json_block(page, "query-ui-links")
    assert links == [
        [f"{BASE}id", "/id"],
        [f"{BASE}graph", "/graph"],
        [f"{BASE}ontology", "/ontology"],
    ]


def test_no_note_when_the_server_may_ask_wikidata(kg: KnowledgeGraph) -> None:
    settings = Settings(workers=1, query_timeout=10, service_allowlist=(WIKIDATA,))
    with TestClient(create_app(settings, kg)) as allowed:
        response = allowed.get("/sparql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert notes(response.text) == {}
    assert "--allow-service" not in response.text


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
    loaded = [
        value
        for tag, attrs in page.tags
        for name, value in attrs.items()
        if (tag, name) in {("link", "href"), ("script", "src"), ("img", "src")} and value
    ]
    assert sorted(loaded) == sorted(
        [
            "data:,",
            "/static/pages/site.css",
            "/static/yasgui/yasgui.min.css",
            "/static/yasgui/query-ui.css",
            "/static/yasgui/yasgui.min.js",
            "/static/yasgui/query-ui.js",
        ]
    )
    for url in loaded:
        if url.startswith("/static/"):
            assert (STATIC_DIR / url.removeprefix("/static/")).is_file(), url
    # Outside the JSON blocks (namespace IRIs and query texts: data, not requests) no absolute
    # URL but the links a person may follow; inline scripts and styles none either.
    json_free = re.sub(
        r'<script type="application/json"[^>]*>.*?</script>', "", html, flags=re.DOTALL
    )
    absolute = set(re.findall(r"https?://[^\s\"<]*", json_free))
    assert absolute == {href for href in page.hrefs if "//" in href}
    assert absolute == {"https://creativecommons.org/licenses/by/4.0/"}
    assert [url for url in urls if "//" in url and url not in absolute] == []
    assert all(attrs.get("src") for attrs, _ in page.scripts if attrs.get("type") is None)
    assert all(body == "" for attrs, body in page.scripts if attrs.get("src"))
    assert "<style" not in html
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)


def test_static_url_prefix_is_configurable() -> None:
    html = render(static="/ui/assets")
    assert 'src="/ui/assets/yasgui/yasgui.min.js"' in html
    assert 'href="/ui/assets/yasgui/yasgui.min.css"' in html
    assert "/static/yasgui" not in html


def test_storage_key_follows_the_catalogue() -> None:
    table = graph_prefixes(BASE)
    a = Example("01-a", "A?", "ASK {}")
    one = storage_key("/sparql", [a], table)
    assert one == storage_key("/sparql", [a], dict(reversed(table.items())))
    assert one != storage_key("/sparql", [Example("01-a", "A?", "ASK { ?s ?p ?o }")], table)
    assert one != storage_key("/sparql", [Example("01-a", "Is A?", "ASK {}")], table)
    assert one != storage_key("/sparql", [Example("01-a", "A?", "ASK {}", note="no")], table)
    assert one != storage_key("/sparql", [a, Example("02-b", "B?", "ASK {}")], table)
    assert one != storage_key("/other", [a], table)
    assert re.fullmatch(r"escap-kg-query-ui-[0-9a-f]{16}", one)
    assert f'data-storage-key="{one}"' in render([a])


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
    assert (TEMPLATES_DIR / "pages" / "query_ui.html").is_file()
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
