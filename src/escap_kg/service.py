"""What the web layers share: the application's state, the engine it talks to, the protocol's
error, and the few helpers that run SPARQL through the engine for the pages and descriptions.

The server (``server.py``) and the pages (``pages/``) both import this module; it imports
neither, so imports point one way (``tests/test_layers.py`` keeps them so).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from escap_kg.engine import Answer, EngineError, QueryEngine, QueryJob, UpdateJob
from escap_kg.jobs import SearchJob
from escap_kg.queries import Query
from escap_kg.search import INDEX_BUILDING
from escap_kg.settings import Settings

if TYPE_CHECKING:
    from escap_kg.cache import ResultCache
    from escap_kg.void import DatasetStats


class ProtocolError(Exception):
    """A request the SPARQL protocol does not allow; answered with ``status`` and a message."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass
class Download:
    """One cached download: body, its gzip form and its entity tag."""

    body: bytes
    gzipped: bytes
    etag: str


class Engine(Protocol):
    """What the server needs of a query engine: the local worker pool or an upstream store."""

    #: The version of the store: it changes whenever its content may have.
    generation: int

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def query(self, job: QueryJob, timeout: float) -> Answer: ...

    async def update(self, job: UpdateJob, timeout: float) -> None: ...


@dataclass
class State:
    """What the running application holds: everything about the graph comes from ``engine``,
    which holds the one authoritative store (this process never evaluates SPARQL itself).

    ``canonical_downloads``: the store is our own graph, small enough for the downloads to be
    written in canonical form (else they stream from the store as it is).
    """

    settings: Settings
    engine: Engine
    catalogue: list[Query]
    canonical_downloads: bool = False
    downloads: dict[tuple[str, int], Download] = field(default_factory=dict)
    #: Written descriptions (service, dataset) by store version, URL and media type.
    descriptions: dict[tuple[int, str, str], bytes] = field(default_factory=dict)
    sparql_handler: Callable[[Request], Awaitable[Response]] | None = None
    stats: dict[int, Any] = field(default_factory=dict)
    #: Answers kept for repeated queries, and entity tags (local engine only: see cache.py).
    results: ResultCache | None = None

    @property
    def generation(self) -> int:
        """The store's version, for caches of what is computed from it."""
        return self.engine.generation


#: Most written descriptions kept at once (a few per host name and media type the server has).
MAX_DESCRIPTIONS = 32


async def cached_description(
    state: State, kind: str, url: str, media_type: str, write: Callable[[], Awaitable[bytes]]
) -> bytes:
    """A description (``kind``: service or dataset) as served at ``url`` in ``media_type``,
    written by ``write`` once per version of the store and kept until the next version."""
    key = (state.generation, f"{kind} {url}", media_type)
    body = state.descriptions.get(key)
    if body is None:
        body = await write()
        # The URL comes from the request's Host header: a client sending many could otherwise
        # grow the cache without bound.
        stale = any(k[0] != state.generation for k in state.descriptions)
        if stale or len(state.descriptions) >= MAX_DESCRIPTIONS:
            state.descriptions = {}
        state.descriptions[key] = body
    return body


async def answer_of(state: State, text: str, result_format: str) -> bytes:
    """The whole answer of one query of ours through the engine, in ``result_format`` (the one
    way the server and the pages run SPARQL; for small answers only)."""
    job = QueryJob(
        text,
        result_format,
        base_iri=state.settings.base_iri,
        max_bytes=state.settings.max_result_bytes,
    )
    answer = await state.engine.query(job, state.settings.query_timeout)
    return await answer.read()


async def select_rows(state: State, text: str) -> list[dict[str, str]]:
    """A SELECT through the engine, as rows of plain strings (for descriptions and stats)."""
    data = json.loads(await answer_of(state, text, "json"))
    return [{k: v["value"] for k, v in row.items()} for row in data["results"]["bindings"]]


async def dataset_stats(state: State) -> DatasetStats:
    """Counts for the descriptions, computed once per version of the graph."""
    from escap_kg.void import STATS_QUERIES, DatasetStats

    cached: DatasetStats | None = state.stats.get(state.generation)
    if cached is not None:
        return cached
    generation = state.generation
    rows = {name: await select_rows(state, text) for name, text in STATS_QUERIES.items()}
    stats = DatasetStats(
        triples=int(rows["triples"][0]["n"]),
        subjects=int(rows["subjects"][0]["n"]),
        classes={r["class"]: int(r["n"]) for r in rows["classes"]},
        links={(r["target"], r["link"]): int(r["n"]) for r in rows["links"]},
        graphs={r["graph"]: int(r["n"]) for r in rows["graphs"]},
        issued=rows["issued"][0]["created"] if rows["issued"] else "",
    )
    state.stats = {generation: stats}
    return stats


async def search_hits(
    state: State, q: str, limit: int = 20, kinds: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The resources whose texts hold every word of ``q``, best first, from the engine's index."""
    if not isinstance(state.engine, QueryEngine):
        raise ProtocolError(501, "full-text search needs the local query engine (not --upstream)")
    if not q.strip():
        raise ProtocolError(400, "give at least one word to search for (q=...)")
    job = SearchJob(q=q[:500], limit=limit, kinds=tuple(kinds))
    try:
        found = await state.engine.search(job, state.settings.query_timeout)
    except EngineError as err:
        if err.status == 503 and err.message.startswith(INDEX_BUILDING):
            raise ProtocolError(503, err.message, {"Retry-After": "5"}) from None
        raise
    hits: list[dict[str, Any]] = json.loads(found)
    return hits


__all__ = [
    "Download",
    "Engine",
    "ProtocolError",
    "State",
    "answer_of",
    "cached_description",
    "dataset_stats",
    "search_hits",
    "select_rows",
]
