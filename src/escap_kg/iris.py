"""IRIs and prefixes: what an IRI is, the prefix table used across the project, and shortening
IRIs with it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import pyoxigraph as ox

ONTOLOGY_IRI = "https://w3id.org/escap-kg/ontology"

# Prefixes of the vocabularies we reuse, and of our own kinds of resource (relative to the
# resource base). Canonical Turtle, exports and the query UI all use this one table.
VOCABULARY_PREFIXES: dict[str, str] = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dcterms": "http://purl.org/dc/terms/",
    "ekg": "https://w3id.org/escap-kg/ontology#",
    "ekgsh": "https://w3id.org/escap-kg/shapes#",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "org": "http://www.w3.org/ns/org#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "prov": "http://www.w3.org/ns/prov#",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "schema": "https://schema.org/",
    "sh": "http://www.w3.org/ns/shacl#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "wd": "http://www.wikidata.org/entity/",
    "wdt": "http://www.wikidata.org/prop/direct/",
    "unbis": "http://metadata.un.org/thesaurus/",
    "sdg": "http://metadata.un.org/sdg/",
    "m49": "http://metadata.un.org/sdg/codes/geoArea/",
}

RESOURCE_KINDS: tuple[str, ...] = (
    "activity",
    "actor-group",
    "alignment",
    "change-event",
    "confidence",
    "country",
    "derivation",
    "document",
    "finding",
    "organization",
    "paragraph",
    "participation",
    "period",
    "place",
    "plan",
    "planned-work",
    "recommendation",
    "region",
    "role",
    "ruleset",
    "scheme",
    "series",
    "source",
    "theme",
)


#: A slug we mint: lowercase kebab-case, as the README asks of new IRIs.
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def is_iri(value: str) -> bool:
    """True for an absolute IRI as the engine reads one (RFC 3987; pyoxigraph checks it), which
    is also safe between ``<`` and ``>`` in SPARQL and Turtle text."""
    try:
        ox.NamedNode(value)
    except ValueError:
        return False
    return True


def is_http_iri(value: str) -> bool:
    """True for an absolute ``http`` or ``https`` IRI with a host."""
    scheme, sep, rest = value.partition("://")
    return (
        bool(sep)
        and scheme.lower() in ("http", "https")
        and rest[:1] not in ("", "/", "?", "#")
        and is_iri(value)
    )


def prefixes(base_iri: str) -> dict[str, str]:
    """All prefixes for a resource base: the vocabularies, ``graph:`` and one per resource kind."""
    table = dict(VOCABULARY_PREFIXES)
    table["graph"] = f"{base_iri}graph/"
    for kind in RESOURCE_KINDS:
        table[kind] = f"{base_iri}id/{kind}/"
    return table


def used_prefixes(iris: Iterable[str], table: Mapping[str, str]) -> dict[str, str]:
    """The entries of ``table`` whose namespace some IRI starts with, sorted by prefix."""
    iris = list(iris)
    return {p: ns for p, ns in sorted(table.items()) if any(i.startswith(ns) for i in iris)}


def shorten(iri: str, table: dict[str, str]) -> str:
    """``prefix:local`` for an IRI under one of the namespaces of ``table`` (longest first)."""
    best = ""
    for prefix, ns in table.items():
        if iri.startswith(ns) and len(ns) > len(table.get(best, "")) and _local_ok(iri[len(ns) :]):
            best = prefix
    return f"{best}:{iri[len(table[best]) :]}" if best else iri


def _local_ok(local: str) -> bool:
    return bool(local) and all(c.isalnum() or c in "-_." for c in local) and not local.endswith(".")
