"""The result cache: whole answers by exact request and version of the store, bounded in bytes.

A query's answer is kept under the job that asked for it (query text, dataset, Accept header or
format, bound parameters) and the store's generation, which every update and every load moves
on: an answer of an older version is never looked up again, and is dropped as soon as the
version changes. Only complete, successful answers are kept (the engine raises on every error;
an answer over 1 MiB, which streams, is gathered as it goes and kept once it has ended, up to
:data:`MAX_STREAMED_ENTRY` and a quarter of the bound), nor answers that may differ from one
run to the next (``NOW()``, ``RAND()``, ``UUID()``, ``STRUUID()``, ``BNODE()``) or that come
from another endpoint (``SERVICE``). The least recently used answers go first once the bound
is reached.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

#: Calls whose value may change from one evaluation to the next, and SERVICE, whose answer
#: comes from elsewhere: queries using them are never answered from the cache.
VOLATILE = re.compile(r"\b(?:NOW|RAND|UUID|STRUUID|BNODE)\s*\(|\bSERVICE\b", re.IGNORECASE)
#: What one kept answer costs besides its body (the key, the entry, the entity tag), in bytes.
OVERHEAD = 512
#: Largest answer kept that streams (over 1 MiB), besides a quarter of the cache's bound: one
#: large answer does not push out every other.
MAX_STREAMED_ENTRY = 16 * 1024 * 1024
#: Most requests' bytes remembered with the key of their answer (see ``ResultCache.alias``).
MAX_ALIASES = 16384


def entity_tag(body: bytes) -> str:
    """A strong entity tag for a body: the same bytes always get the same tag."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``tag`` (or ``*``); weak tags compare weakly."""
    if not if_none_match:
        return False
    bare = tag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == bare:
            return True
    return False


def cacheable(text: str) -> bool:
    """Whether a query's answer depends on the store alone (see :data:`VOLATILE`)."""
    return VOLATILE.search(text) is None


def content_type(media_type: str) -> str:
    """The Content-Type of an answer in ``media_type``: text is UTF-8, and says so."""
    if media_type.startswith("text/") and "charset=" not in media_type.lower():
        return media_type + "; charset=utf-8"
    return media_type


@dataclass(frozen=True)
class Entry:
    """A kept answer: its bytes, media type and entity tag, and the response header fields
    these make (``fields``: Content-Type, Content-Length and ETag, ready to send)."""

    body: bytes
    media_type: str
    etag: str
    fields: tuple[tuple[bytes, bytes], ...] = ()

    @classmethod
    def of(cls, body: bytes, media_type: str) -> Entry:
        """The entry of an answer: its tag and header fields computed once, here."""
        etag = entity_tag(body)
        fields = (
            (b"content-type", content_type(media_type).encode("latin-1")),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"etag", etag.encode("ascii")),
        )
        return cls(body, media_type, etag, fields)

    @property
    def cost(self) -> int:
        return len(self.body) + OVERHEAD


class ResultCache:
    """Answers by ``(generation, key)``, least recently used dropped first past ``max_bytes``
    (0: keep nothing)."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("the cache size must be 0 (off) or a number of bytes")
        self.max_bytes = max_bytes
        self.size = 0
        self.generation: int | None = None
        self.hits = 0
        self.misses = 0
        #: Bytes reserved by the streamed answers being gathered (see :meth:`collector`).
        self.gathering = 0
        #: Random for each start: tags derived from a version of the store (which counts from
        #: 0 at every start) never match those of an earlier run over other data.
        self.token = secrets.token_bytes(16)
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()
        #: Requests' bytes and the key their answer is kept under (see :meth:`alias`).
        self._aliases: dict[tuple[Any, ...], Hashable] = {}
        self.alias_size = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    def _follow(self, generation: int) -> None:
        """Drop every answer of an older version of the store."""
        if generation != self.generation:
            self._entries.clear()
            self.size = 0
            self._aliases.clear()
            self.alias_size = 0
            self.generation = generation

    def get(self, generation: int, key: Hashable) -> Entry | None:
        """The answer kept for ``key`` at this version of the store, if any."""
        self._follow(generation)
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def alias(self, raw: tuple[Any, ...], key: Hashable) -> None:
        """Let the bytes of a request (``raw``: a tuple of str and bytes) find the answer kept
        under ``key``, so that the same bytes again need not be parsed; the aliases are bounded
        by :data:`MAX_ALIASES` and an eighth of the cache's bound in bytes."""
        if raw in self._aliases:
            return
        cost = sum(len(part) for part in raw if part is not None) + OVERHEAD
        if cost > self.max_bytes // 8:
            return
        if len(self._aliases) >= MAX_ALIASES or self.alias_size + cost > self.max_bytes // 8:
            self._aliases.clear()
            self.alias_size = 0
        self._aliases[raw] = key
        self.alias_size += cost

    def recall(self, generation: int, raw: tuple[Any, ...]) -> Entry | None:
        """The answer kept for a request with exactly these bytes (see :meth:`alias`), if any."""
        self._follow(generation)
        key = self._aliases.get(raw)
        if key is None:
            return None
        return self.get(generation, key)

    def put(self, generation: int, key: Hashable, body: bytes, media_type: str) -> Entry:
        """Keep an answer (unless it alone is over the bound); the entry, kept or not."""
        entry = Entry.of(body, media_type)
        if not self.enabled or entry.cost > self.max_bytes:
            return entry
        self._follow(generation)
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= old.cost
        self._entries[key] = entry
        self.size += entry.cost
        while self.size > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self.size -= dropped.cost
        return entry

    def clear(self) -> None:
        self._entries.clear()
        self.size = 0
        self._aliases.clear()
        self.alias_size = 0

    @property
    def streamed_limit(self) -> int:
        """The largest answer that streams and is still kept."""
        return min(MAX_STREAMED_ENTRY, self.max_bytes // 4)

    def collector(self, generation: int, key: Hashable, media_type: str) -> Collector | None:
        """Something to gather a streamed answer into, to keep it once it has ended whole; None
        when the cache is off, or when the answers gathered now would take more than its bound
        (each reserves :attr:`streamed_limit` bytes while it streams)."""
        limit = self.streamed_limit
        if limit <= 0 or self.gathering + limit > self.max_bytes:
            return None
        self.gathering += limit
        return Collector(self, generation, key, media_type, limit)


class Collector:
    """A streamed answer gathered as it goes: kept by :meth:`done` once it has ended, given up
    (:meth:`drop`) past its limit or when the stream stops short."""

    def __init__(
        self, cache: ResultCache, generation: int, key: Hashable, media_type: str, limit: int
    ) -> None:
        self.cache = cache
        self.generation = generation
        self.key = key
        self.media_type = media_type
        self.limit = limit
        self.size = 0
        self.parts: list[bytes] | None = []

    def add(self, chunk: bytes) -> None:
        """The next piece of the answer."""
        if self.parts is None:
            return
        self.size += len(chunk)
        if self.size + OVERHEAD > self.limit:
            self.drop()
        else:
            self.parts.append(chunk)

    def done(self) -> None:
        """The answer ended whole: keep it."""
        if self.parts is not None:
            body = b"".join(self.parts)
            self.drop()
            self.cache.put(self.generation, self.key, body, self.media_type)

    def drop(self) -> None:
        """Give up on it (idempotent); its reservation returns to the cache."""
        if self.parts is not None:
            self.parts = None
            self.cache.gathering -= self.limit


__all__ = [
    "Collector",
    "Entry",
    "ResultCache",
    "cacheable",
    "content_type",
    "entity_tag",
    "matches",
]
