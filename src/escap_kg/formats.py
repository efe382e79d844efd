"""The RDF syntaxes and SPARQL result formats: pyoxigraph's media types and file extensions, our
short names for them, and the other media types clients send for them (one alias table)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pyoxigraph as ox

#: The RDF syntaxes we write, by the short name used in ``--format``, ``_format`` and jobs.
RDF_FORMATS: dict[str, ox.RdfFormat] = {
    "turtle": ox.RdfFormat.TURTLE,
    "nt": ox.RdfFormat.N_TRIPLES,
    "nquads": ox.RdfFormat.N_QUADS,
    "trig": ox.RdfFormat.TRIG,
    "jsonld": ox.RdfFormat.JSON_LD,
    "xml": ox.RdfFormat.RDF_XML,
}
#: The SPARQL result formats of a SELECT or ASK answer, our preference first.
RESULT_FORMATS: dict[str, ox.QueryResultsFormat] = {
    "json": ox.QueryResultsFormat.JSON,
    "xml": ox.QueryResultsFormat.XML,
    "csv": ox.QueryResultsFormat.CSV,
    "tsv": ox.QueryResultsFormat.TSV,
}
#: The syntaxes of a CONSTRUCT or DESCRIBE answer, our preference first.
GRAPH_FORMATS: dict[str, ox.RdfFormat] = {
    n: RDF_FORMATS[n] for n in ("turtle", "nt", "xml", "jsonld")
}
#: The syntaxes of a whole store streamed as it is (a dump).
DUMP_FORMATS: dict[str, ox.RdfFormat] = {n: RDF_FORMATS[n] for n in ("nquads", "trig", "nt")}
#: The syntaxes a page's description is served in, our preference first.
PAGE_FORMATS: dict[str, ox.RdfFormat] = {
    n: RDF_FORMATS[n] for n in ("turtle", "jsonld", "nt", "xml")
}

#: Other media types clients send, and where we take them: pyoxigraph says which format each
#: names (``application/json`` is SPARQL JSON results for a SELECT, JSON-LD for a CONSTRUCT).
ALIASES: dict[str, tuple[str, ...]] = {
    "results": ("application/json", "application/xml", "text/xml"),
    "graph": ("application/x-turtle", "text/plain", "application/json", "application/xml"),
    "page": ("application/x-turtle", "application/json"),
}
#: File suffixes of RDF files we read besides pyoxigraph's own extensions.
FILE_ALIASES: dict[str, ox.RdfFormat] = {
    "turtle": ox.RdfFormat.TURTLE,
    "owl": ox.RdfFormat.RDF_XML,
    "xml": ox.RdfFormat.RDF_XML,
    "json": ox.RdfFormat.JSON_LD,
}


def media_type(fmt: ox.RdfFormat | ox.QueryResultsFormat) -> str:
    """The format's media type, without parameters (``text/csv``, not ``...; charset=utf-8``)."""
    return fmt.media_type.split(";", 1)[0].strip()


def offers(
    formats: Mapping[str, ox.RdfFormat] | Mapping[str, ox.QueryResultsFormat], aliases: str
) -> dict[str, str]:
    """Media type -> short name of each format, in order, then the aliases of ``ALIASES[aliases]``
    that name one of them: the table content negotiation offers from."""
    table = {media_type(fmt): name for name, fmt in formats.items()}
    for alias in ALIASES[aliases]:
        fmt = _named(alias, formats.values())
        if fmt is not None:
            table.setdefault(alias, table[media_type(fmt)])
    return table


def canonical(media: str, formats: Iterable[ox.RdfFormat]) -> str:
    """The media type of the format among ``formats`` that ``media`` (or its alias) names."""
    fmt = _named(media, formats)
    return media if fmt is None else media_type(fmt)


def _named(
    media: str, formats: Iterable[ox.RdfFormat] | Iterable[ox.QueryResultsFormat]
) -> ox.RdfFormat | ox.QueryResultsFormat | None:
    candidates = list(formats)
    fmt: ox.RdfFormat | ox.QueryResultsFormat | None
    if candidates and isinstance(candidates[0], ox.QueryResultsFormat):
        fmt = ox.QueryResultsFormat.from_media_type(media)
    else:
        fmt = ox.RdfFormat.from_media_type(media)
    return fmt if fmt in candidates else None


def file_formats() -> dict[str, ox.RdfFormat]:
    """File suffix (with its dot) -> the RDF syntax of a file we read."""
    own = [*RDF_FORMATS.values(), ox.RdfFormat.N3]
    table = {f".{fmt.file_extension}": fmt for fmt in own}
    table.update({f".{suffix}": fmt for suffix, fmt in FILE_ALIASES.items()})
    return table


__all__ = [
    "ALIASES",
    "DUMP_FORMATS",
    "FILE_ALIASES",
    "GRAPH_FORMATS",
    "PAGE_FORMATS",
    "RDF_FORMATS",
    "RESULT_FORMATS",
    "canonical",
    "file_formats",
    "media_type",
    "offers",
]
