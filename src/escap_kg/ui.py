"""The SPARQL query UI: a YASGUI page, served from our own static files, with the catalogue."""

from __future__ import annotations

import hashlib
import html
import json
from functools import cache
from pathlib import Path
from string import Template

PACKAGE_DIR = Path(__file__).resolve().parent
STATIC_DIR: Path = PACKAGE_DIR / "static"
TEMPLATES_DIR: Path = PACKAGE_DIR / "templates"
QUERY_UI_TEMPLATE = "sparql.html"
STORAGE_KEY_PREFIX = "escap-kg-query-ui-"


@cache
def _template(name: str) -> Template:
    """The ``string.Template`` of a file in ``TEMPLATES_DIR``, read once."""
    return Template((TEMPLATES_DIR / name).read_text(encoding="utf-8"))


def script_json(value: object) -> str:
    """JSON for the inside of a ``<script>`` element: no ``</script>``, ``<!--`` or ``]]>`` in it.

    ``<``, ``>`` and ``&`` become ``\\u003c``, ``\\u003e`` and ``\\u0026``, which JSON.parse reads
    back as the same characters, so no text of a value can end the element or start a comment.
    """
    text = json.dumps(value, ensure_ascii=False, indent=None, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def storage_key(endpoint: str, examples: list[tuple[str, str]], prefixes: dict[str, str]) -> str:
    """The browser-storage key of YASGUI's tabs; it changes whenever the examples change.

    YASGUI keeps its tabs in localStorage; under a new key a page shows the current catalogue
    instead of the tabs a visitor had from an older one.
    """
    state = json.dumps([endpoint, examples, sorted(prefixes.items())], ensure_ascii=False)
    digest = hashlib.sha256(state.encode("utf-8")).hexdigest()[:16]
    return f"{STORAGE_KEY_PREFIX}{digest}"


def render_query_ui(
    *,
    title: str,
    endpoint: str,
    static: str,
    examples: list[tuple[str, str]],
    prefixes: dict[str, str],
) -> str:
    """The HTML of the query UI page.

    ``endpoint`` is the URL (usually a path such as ``/sparql``) that queries are POSTed to; the
    page makes it absolute against its own location. ``static`` is the URL prefix under which
    ``STATIC_DIR`` is served (``/static``). ``examples`` are ``(id, query text)`` pairs, one tab
    each, the first one active; ``prefixes`` maps a prefix to its namespace IRI, for YASQE's
    prefix autocompletion, for YASR's shortening of IRIs in results, and for the page's table of
    the prefixes a query may use without declaring them.
    """
    examples = [(str(query_id), str(text)) for query_id, text in examples]
    prefixes = {str(prefix): str(iri) for prefix, iri in prefixes.items()}
    return _template(QUERY_UI_TEMPLATE).substitute(
        title=html.escape(title),
        static=html.escape(static.rstrip("/")),
        endpoint=html.escape(endpoint),
        storage_key=html.escape(storage_key(endpoint, examples, prefixes)),
        prefixes=script_json(prefixes),
        examples=script_json([{"id": query_id, "query": text} for query_id, text in examples]),
    )


__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "render_query_ui", "script_json", "storage_key"]
