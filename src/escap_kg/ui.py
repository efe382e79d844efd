"""The SPARQL query UI: a YASGUI page, served from our own static files, with the catalogue."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from markupsafe import Markup

from escap_kg.iris import ONTOLOGY_IRI
from escap_kg.pages.render import TEMPLATES_DIR, script_json

PACKAGE_DIR = Path(__file__).resolve().parent
STATIC_DIR: Path = PACKAGE_DIR / "static"
QUERY_UI_TEMPLATE = "query_ui.html"
STORAGE_KEY_PREFIX = "escap-kg-query-ui-"
#: Tab names longer than this are cut at a word and end in an ellipsis; the tab's title has all.
TAB_NAME_LIMIT = 48
#: What a note calls an endpoint a catalogue query asks through SERVICE (else its host name).
SERVICE_NAMES = {"query.wikidata.org": "Wikidata"}


class CatalogueQuery(Protocol):
    """What the query UI needs of a catalogue query (``escap_kg.queries.Query`` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def federated(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Example:
    """One tab of the query UI: the question a query answers, its text and a note, if any."""

    id: str
    question: str
    text: str
    note: str = ""

    @property
    def tab_name(self) -> str:
        """The question, cut to fit a tab."""
        return short_name(self.question)

    @property
    def tab_id(self) -> str:
        """YASGUI's id of the tab (kept in the browser with the tabs)."""
        return f"example-{self.id}"


def short_name(question: str, limit: int = TAB_NAME_LIMIT) -> str:
    """``question`` if it fits in ``limit`` characters, else its first words and an ellipsis."""
    question = " ".join(question.split())
    if len(question) <= limit:
        return question
    cut = question[: limit - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "…"


def editor_text(text: str) -> str:
    """A query as the editor shows it: without the comment lines before the query proper.

    Those are the ``#+`` header a program reads and the notes on how the query works; the
    PREFIX lines and everything after them stay as they are.
    """
    lines = text.splitlines()
    start = 0
    while start < len(lines) and (lines[start].startswith("#") or not lines[start].strip()):
        start += 1
    body = "\n".join(lines[start:]).rstrip()
    return f"{body}\n" if body else ""


def service_note(endpoints: Iterable[str], allowlist: Sequence[str]) -> str:
    """Why a query that asks other endpoints through SERVICE will be refused here; "" if not."""
    notes = []
    for endpoint in endpoints:
        if endpoint in allowlist:
            continue
        host = urlsplit(endpoint).hostname or endpoint
        name = SERVICE_NAMES.get(host, host)
        notes.append(
            f"This query asks {name} through SERVICE; this server was started without "
            f"--allow-service {endpoint}, so it will be refused."
        )
    return " ".join(notes)


def catalogue_examples(
    catalogue: Iterable[CatalogueQuery], service_allowlist: Sequence[str] = ()
) -> list[Example]:
    """The example tabs of the catalogue, with a note on each query this server will refuse."""
    return [
        Example(
            id=query.id,
            question=query.summary,
            text=editor_text(query.text),
            note=service_note(query.federated, service_allowlist),
        )
        for query in catalogue
    ]


def local_links(base_iri: str) -> list[tuple[str, str]]:
    """``(IRI prefix, path prefix)``: where on this server the IRIs we mint have their pages."""
    return [
        (f"{base_iri}id", "/id"),
        (f"{base_iri}graph", "/graph"),
        (ONTOLOGY_IRI, "/ontology"),
    ]


def _json_block(value: object) -> Markup:
    return Markup(script_json(value))  # noqa: S704 - script_json escapes < > and &


def storage_key(endpoint: str, examples: Sequence[Example], prefixes: dict[str, str]) -> str:
    """The browser-storage key of YASGUI's tabs; it changes whenever the examples change.

    YASGUI keeps its tabs in localStorage; under a new key a page shows the current catalogue
    instead of the tabs a visitor had from an older one.
    """
    tabs = [[e.id, e.question, e.text, e.note] for e in examples]
    state = json.dumps([endpoint, tabs, sorted(prefixes.items())], ensure_ascii=False)
    digest = hashlib.sha256(state.encode("utf-8")).hexdigest()[:16]
    return f"{STORAGE_KEY_PREFIX}{digest}"


def render_query_ui(
    *,
    title: str,
    endpoint: str,
    static: str,
    examples: Sequence[Example],
    prefixes: dict[str, str],
    base_iri: str,
) -> str:
    """The HTML of the query UI page, in the site's header, navigation and footer.

    ``endpoint`` is the URL (usually a path such as ``/sparql``) that queries are POSTed to; the
    page makes it absolute against its own location. ``static`` is the URL prefix under which
    ``STATIC_DIR`` is served (``/static``). ``examples`` are the tabs, the first one active;
    ``prefixes`` maps a prefix to its namespace IRI, for YASQE's prefix autocompletion, for
    YASR's shortening of IRIs in results, and for the page's table of the prefixes a query may
    use without declaring them. Result IRIs under ``base_iri`` link to this server's pages.
    """
    from escap_kg.pages.render import render

    prefixes = {str(prefix): str(iri) for prefix, iri in prefixes.items()}
    tabs = [
        {"id": e.tab_id, "name": e.tab_name, "title": e.question, "query": e.text} for e in examples
    ]
    return render(
        QUERY_UI_TEMPLATE,
        title=title,
        active="/sparql",
        endpoint=endpoint,
        assets=static.rstrip("/") + "/yasgui",
        storage_key=storage_key(endpoint, examples, prefixes),
        notes=[(e.tab_id, e.question, e.note) for e in examples if e.note],
        prefixes_json=_json_block(prefixes),
        examples_json=_json_block(tabs),
        links_json=_json_block(local_links(base_iri)),
    )


__all__ = [
    "STATIC_DIR",
    "TEMPLATES_DIR",
    "Example",
    "catalogue_examples",
    "editor_text",
    "local_links",
    "render_query_ui",
    "script_json",
    "service_note",
    "short_name",
    "storage_key",
]
