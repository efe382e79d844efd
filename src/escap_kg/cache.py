"""The result cache: whole answers by exact request and version of the store, bounded in bytes.

A query's answer is kept under the job that asked for it (query text, dataset, Accept header or
format, bound parameters) and the store's generation, which every update and every load moves
on: an answer of an older version is never looked up again, and is dropped as soon as the
version changes. Only complete, successful answers are kept (the engine raises on every error,
and an answer that streams is not kept), nor answers that may differ from one run to the next
(``NOW()``, ``RAND()``, ``UUID()``, ``STRUUID()``, ``BNODE()``) or that come from another
endpoint (``SERVICE``). The least recently used answers go first once the bound is reached.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

#: Calls whose value may change from one evaluation to the next, and SERVICE, whose answer
#: comes from elsewhere: queries using them are never answered from the cache.
VOLATILE = re.compile(r"\b(?:NOW|RAND|UUID|STRUUID|BNODE)\s*\(|\bSERVICE\b", re.IGNORECASE)
#: What one kept answer costs besides its body (the key, the entry, the entity tag), in bytes.
OVERHEAD = 512


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


@dataclass(frozen=True)
class Entry:
    """A kept answer: its bytes, media type and entity tag."""

    body: bytes
    media_type: str
    etag: str

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
        #: Random for each start: tags derived from a version of the store (which counts from
        #: 0 at every start) never match those of an earlier run over other data.
        self.token = secrets.token_bytes(16)
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()

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

    def put(self, generation: int, key: Hashable, body: bytes, media_type: str) -> Entry:
        """Keep an answer (unless it alone is over the bound); the entry, kept or not."""
        entry = Entry(body, media_type, entity_tag(body))
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


__all__ = ["Entry", "ResultCache", "cacheable", "entity_tag", "matches"]
