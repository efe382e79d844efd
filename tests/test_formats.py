"""The format tables: derived from pyoxigraph's formats, plus one table of aliases."""

from __future__ import annotations

import pyoxigraph as ox
import pytest

from escap_kg.formats import (
    ALIASES,
    GRAPH_FORMATS,
    PAGE_FORMATS,
    RESULT_FORMATS,
    canonical,
    file_formats,
    media_type,
    offers,
)


def test_result_media_types_are_offered_in_our_order_then_their_aliases() -> None:
    assert list(offers(RESULT_FORMATS, "results").items()) == [
        ("application/sparql-results+json", "json"),
        ("application/sparql-results+xml", "xml"),
        ("text/csv", "csv"),
        ("text/tab-separated-values", "tsv"),
        ("application/json", "json"),
        ("application/xml", "xml"),
        ("text/xml", "xml"),
    ]


def test_graph_media_types_are_offered_in_our_order_then_their_aliases() -> None:
    assert list(offers(GRAPH_FORMATS, "graph").items()) == [
        ("text/turtle", "turtle"),
        ("application/n-triples", "nt"),
        ("application/rdf+xml", "xml"),
        ("application/ld+json", "jsonld"),
        ("application/x-turtle", "turtle"),
        ("text/plain", "nt"),
        ("application/json", "jsonld"),
        ("application/xml", "xml"),
    ]


@pytest.mark.parametrize("kind", sorted(ALIASES))
def test_every_alias_names_a_format_we_offer_for_it(kind: str) -> None:
    formats = {"results": RESULT_FORMATS, "graph": GRAPH_FORMATS, "page": PAGE_FORMATS}[kind]
    table = offers(formats, kind)
    assert set(ALIASES[kind]) <= set(table), "an alias pyoxigraph does not read as one of them"


def test_media_types_have_no_parameters() -> None:
    assert media_type(ox.QueryResultsFormat.CSV) == "text/csv"
    assert canonical("application/json", PAGE_FORMATS.values()) == "application/ld+json"
    assert canonical("text/html", PAGE_FORMATS.values()) == "text/html"


def test_files_are_read_by_pyoxigraphs_extensions_and_a_few_more() -> None:
    table = file_formats()
    assert table[".ttl"] is ox.RdfFormat.TURTLE
    assert table[".turtle"] is ox.RdfFormat.TURTLE
    assert table[".owl"] is ox.RdfFormat.RDF_XML
    assert table[".json"] is ox.RdfFormat.JSON_LD
    assert sorted(table) == sorted(
        [
            ".ttl",
            ".turtle",
            ".nt",
            ".nq",
            ".trig",
            ".rdf",
            ".owl",
            ".xml",
            ".jsonld",
            ".json",
            ".n3",
        ]
    )
