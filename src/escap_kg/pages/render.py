"""The Jinja2 templates of the pages (autoescaped) and the RDF syntaxes of descriptions."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import rdflib
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from escap_kg.formats import ALIASES as FORMAT_ALIASES
from escap_kg.formats import PAGE_FORMATS, RDF_FORMATS, canonical, media_type
from escap_kg.iris import prefixes, used_prefixes

#: The Jinja2 templates of the pages and the query UI.
TEMPLATES_DIR: Path = Path(__file__).resolve().parents[1] / "templates"
PAGES_TEMPLATES = TEMPLATES_DIR / "pages"
STATIC = "/static/pages"

#: RDF media types a description is served in, our preference first (rdflib writes each by it).
RDF_SYNTAXES: list[str] = [media_type(fmt) for fmt in PAGE_FORMATS.values()]
#: Other names clients use for the same syntaxes, and the media type each stands for.
ALIASES: dict[str, str] = {
    alias: canonical(alias, PAGE_FORMATS.values()) for alias in FORMAT_ALIASES["page"]
}
N_TRIPLES = media_type(RDF_FORMATS["nt"])
JSON_LD = media_type(RDF_FORMATS["jsonld"])
NAV = (
    ("/", "Home"),
    ("/id/", "Browse"),
    ("/id/scheme/themes", "Themes"),
    ("/ontology", "Ontology"),
    ("/queries", "Queries"),
    ("/sparql", "SPARQL"),
    ("/docs", "API"),
)


@cache
def environment() -> Environment:
    """The template environment: HTML autoescaping always on, undefined names an error."""
    env = Environment(
        loader=FileSystemLoader(str(PAGES_TEMPLATES)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static"] = STATIC
    env.globals["nav"] = NAV
    env.filters["thousands"] = lambda n: f"{int(n):,}"
    return env


def render(template: str, **context: Any) -> str:
    """A page from one of the templates in ``templates/pages``."""
    context.setdefault("jsonld", None)
    context.setdefault("alternates", [])
    context.setdefault("query", "")
    context.setdefault("description", "")
    context.setdefault("active", "")
    return environment().get_template(template).render(**context)


def jsonld_block(data: object) -> Markup:
    """JSON for a ``<script type="application/ld+json">`` element; no text can close it."""
    return Markup(script_json(data))  # noqa: S704 - script_json escapes < > and &


def serialize(nt: bytes, media_type: str, base_iri: str) -> bytes:
    """A description given as N-Triples, written in the RDF syntax of ``media_type``."""
    media_type = ALIASES.get(media_type, media_type)
    if media_type == N_TRIPLES:
        lines = sorted({line for line in nt.decode("utf-8").splitlines() if line.strip()})
        return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""
    graph = rdflib.Graph(bind_namespaces="none")
    table = prefixes(base_iri)
    for prefix, namespace in table.items():
        graph.bind(prefix, namespace)
    graph.parse(data=nt.decode("utf-8"), format="nt")
    if media_type == JSON_LD:
        used = used_prefixes(
            (str(t) for triple in graph for t in triple if isinstance(t, rdflib.URIRef)), table
        )
        text = graph.serialize(format=media_type, context=used, auto_compact=True)
    else:
        text = graph.serialize(format=media_type)
    return text.encode("utf-8")


__all__ = ["ALIASES", "RDF_SYNTAXES", "environment", "jsonld_block", "render", "serialize"]


def script_json(value: object) -> str:
    """JSON for the inside of a ``<script>`` element: no ``</script>``, ``<!--`` or ``]]>`` in it.

    ``<``, ``>`` and ``&`` become ``\\u003c``, ``\\u003e`` and ``\\u0026``, which JSON.parse reads
    back as the same characters, so no text of a value can end the element or start a comment.
    """
    text = json.dumps(value, ensure_ascii=False, indent=None, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
