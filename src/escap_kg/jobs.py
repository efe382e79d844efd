"""What the server asks of the query engine and what it gets back: jobs, answers, errors.

Shared by the local worker pool (:mod:`escap_kg.pool`, :mod:`escap_kg.worker`) and the remote
engine (:mod:`escap_kg.remote`); it imports nothing of either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from escap_kg.formats import DUMP_FORMATS, GRAPH_FORMATS, RESULT_FORMATS

CHUNK = 64 * 1024
#: An answer up to this size is sent whole, with a Content-Length; a larger one streams.
BUFFER = 1024 * 1024


@dataclass(frozen=True)
class QueryJob:
    """A query for a worker: its text, the result format, and the dataset to run it over.

    The worker inspects the text itself (query form, SERVICE, size limits), so a hostile text
    costs the server nothing. ``result_format`` fixes the format; left empty, the worker chooses
    it from ``accept`` (an HTTP Accept header) by the query's form, and the answer names the
    media type it chose. ``allowed_services`` are the only endpoints SERVICE may call.

    ``default_graphs``/``named_graphs`` set the dataset (None: not given). With neither and no
    FROM in the query, the default graph is the union of all graphs (``union_default_graph``
    False turns that off). ``bindings`` are values for variables, ``(name, (kind, value))`` with
    kind ``iri`` or ``literal``, bound as terms.
    """

    text: str
    result_format: str = ""
    base_iri: str | None = None
    default_graphs: tuple[str, ...] | None = None
    named_graphs: tuple[str, ...] | None = None
    union_default_graph: bool = True
    max_bytes: int = 0
    bindings: tuple[tuple[str, tuple[str, str]], ...] = ()
    accept: str | None = None
    allowed_services: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpdateJob:
    """A SPARQL update, evaluated once by the store's single writer.

    ``using``/``using_named`` are the protocol's ``using-graph-uri`` and
    ``using-named-graph-uri``; ``allowed_services`` as for :class:`QueryJob`.
    """

    text: str
    base_iri: str | None = None
    using: tuple[str, ...] = ()
    using_named: tuple[str, ...] = ()
    allowed_services: tuple[str, ...] = ()


@dataclass(frozen=True)
class DumpJob:
    """The whole store in one RDF format (``nquads``, ``trig``, or ``nt`` for the union)."""

    result_format: str


@dataclass(frozen=True)
class ExportJob:
    """The whole store as :func:`escap_kg.export.export` writes it (stable order, canonical
    Turtle), for downloads of the graph held in memory."""

    result_format: str
    base_iri: str


@dataclass(frozen=True)
class SearchJob:
    """A full-text search: the resources whose texts hold every word of ``q``, best first (at
    most ``limit``; only those of the given ``kinds``, if any)."""

    q: str
    limit: int
    kinds: tuple[str, ...] = ()


class EngineError(Exception):
    """A job failed; ``status`` is the HTTP status that fits."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Answer:
    """A query's answer: its format, its first bytes, and the rest as a stream if it is large.

    ``rest`` is None when ``body`` is the whole answer. Otherwise the answer must be read to the
    end (or ``rest.aclose()`` called) to free what holds it. ``media_type`` is the type the
    engine chose when the job asked it to negotiate. ``deadline`` (``time.monotonic()``) is when
    the whole answer must have been delivered; 0 for none.
    """

    result_format: str
    body: bytes
    rest: AsyncIterator[bytes] | None = None
    media_type: str = ""
    deadline: float = 0.0

    async def read(self) -> bytes:
        """The whole answer in memory (for small answers and tests)."""
        if self.rest is None:
            return self.body
        parts = [self.body]
        async for chunk in self.rest:
            parts.append(chunk)
        return b"".join(parts)


__all__ = [
    "BUFFER",
    "CHUNK",
    "DUMP_FORMATS",
    "GRAPH_FORMATS",
    "RESULT_FORMATS",
    "Answer",
    "DumpJob",
    "EngineError",
    "ExportJob",
    "QueryJob",
    "SearchJob",
    "UpdateJob",
]
