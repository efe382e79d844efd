"""Full-text search over every literal of the graph: an SQLite FTS5 index kept in a file."""

from __future__ import annotations

import html
import itertools
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

import pyoxigraph as ox

#: The index's file name inside an on-disk store's folder (built by ``escap-kg load``).
INDEX_NAME = "escap-kg-search.sqlite"
#: The most results one search returns.
MAX_LIMIT = 100
#: Words of a search beyond this many are ignored.
MAX_WORDS = 16
#: How the refusal of a search begins while the index is still being built (the server adds
#: ``Retry-After``).
INDEX_BUILDING = "the search index is being built"

RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
LABELS = (
    f"{SKOS}prefLabel",
    f"{RDFS}label",
    "https://schema.org/name",
    "http://purl.org/dc/terms/title",
)
NAMES = frozenset((*LABELS, f"{SKOS}altLabel"))
SUBCLASS_OF = f"{RDFS}subClassOf"
# Private-use characters around a match in FTS5's snippets, so the text can be escaped as HTML
# before the marks become <mark>; taken out of the data when it is indexed.
OPEN, CLOSE = "\ue000", "\ue001"
_MARKS = str.maketrans("", "", OPEN + CLOSE)
_WORD = re.compile(r"\w+")


class SearchError(Exception):
    """A search that cannot be answered; ``status`` is the HTTP status that fits."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Hit:
    """One resource a search found: ``snippet`` is HTML (the text escaped, matches in
    ``<mark>``); ``score`` is higher for better matches."""

    iri: str
    label: str
    kind: str
    snippet: str
    score: float


# Building ---------------------------------------------------------------------------------------


@dataclass
class _Entry:
    names: dict[str, None]
    body: dict[str, None]
    labels: list[tuple[int, str]]
    types: set[str]


def _local_name(iri: str) -> str:
    return re.split(r"[/#]", iri.rstrip("/#"))[-1] or iri


def _best_label(labels: list[tuple[int, str]]) -> str:
    return min(labels)[1]


def _rank(predicate: str, literal: ox.Literal) -> int:
    """Lower is better: the label property's order, English (or no language) first."""
    english = literal.language in (None, "en") or (literal.language or "").startswith("en-")
    return LABELS.index(predicate) * 2 + (0 if english else 1)


def _collect(
    quads: Iterable[ox.Quad | ox.Triple],
) -> tuple[dict[str, _Entry], dict[str, set[str]]]:
    entries: dict[str, _Entry] = {}
    parents: dict[str, set[str]] = {}
    for quad in quads:
        subject, predicate, obj = quad.subject, quad.predicate.value, quad.object
        if not isinstance(subject, ox.NamedNode):
            continue
        iri = subject.value
        if predicate == SUBCLASS_OF and isinstance(obj, ox.NamedNode):
            parents.setdefault(iri, set()).add(obj.value)
        if not isinstance(obj, (ox.Literal, ox.NamedNode)):
            continue
        entry = entries.get(iri)
        if entry is None:
            entry = entries[iri] = _Entry({}, {}, [], set())
        if isinstance(obj, ox.NamedNode):
            if predicate == RDF_TYPE:
                entry.types.add(obj.value)
            continue
        text = obj.value.translate(_MARKS)
        if predicate in NAMES:
            entry.names[text] = None
            if predicate in LABELS:
                entry.labels.append((_rank(predicate, obj), text))
        else:
            entry.body[text] = None
    return entries, parents


def _ancestors(cls: str, parents: dict[str, set[str]], memo: dict[str, set[str]]) -> set[str]:
    found = memo.get(cls)
    if found is not None:
        return found
    memo[cls] = set()  # a cycle of subClassOf ends here
    found = set()
    for parent in parents.get(cls, ()):
        if parent != cls:
            found |= {parent, *_ancestors(parent, parents, memo)}
    memo[cls] = found
    return found


def _rows(
    entries: dict[str, _Entry], parents: dict[str, set[str]]
) -> Iterator[tuple[int, str, str, str, str, str]]:
    """One row per resource with texts, in the order of their IRIs (so the index is the same
    whatever order the statements came in); each entry is let go as soon as its row is made, so
    the texts are never held twice."""
    memo: dict[str, set[str]] = {}
    kinds: dict[str, str] = {}
    for entry in entries.values():  # the names of the classes, before their entries go
        for cls in entry.types:
            if cls not in kinds:
                found = entries.get(cls)
                labels = found.labels if found is not None else None
                name = _best_label(labels) if labels else _local_name(cls)
                kinds[cls] = name[:1].upper() + name[1:]
    number = 0
    for iri in sorted(entries):
        entry = entries.pop(iri)
        if not entry.names and not entry.body:
            continue
        # The most specific types: those no other type of the resource is a subclass of.
        broader = set().union(*(_ancestors(t, parents, memo) for t in entry.types))
        specific = sorted(kinds[t] for t in entry.types if t not in broader)
        label = _best_label(entry.labels) if entry.labels else _local_name(iri)
        number += 1
        # Each in sorted order, like the rows: the same whatever order the statements came in.
        names, body = " \u2022 ".join(sorted(entry.names)), " \u2022 ".join(sorted(entry.body))
        yield number, iri, label, specific[0] if specific else "", names, body


#: Rows written to the index at a time.
BATCH = 5000


def build_index(source: ox.Store | Iterable[ox.Quad | ox.Triple], path: Path) -> float:
    """Index every literal of ``source`` (a store, all its graphs; or the statements it was
    loaded from) into a new SQLite file at ``path``, one document per resource (its names, and
    its other texts); the seconds it took.

    The statements a store was loaded from give the same index as the store: what it adds, the
    entailed graph, repeats a stated text under a super-property (a text is indexed once per
    resource, and no super-property of ours is a name) and adds super-classes (which a
    resource's kind, its most specific type, leaves out).

    Written beside ``path`` first and renamed into place, so a reader never sees half an index.
    Raises OSError if it cannot be written.
    """
    started = time.monotonic()
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    statements = (
        source.quads_for_pattern(None, None, None, None) if isinstance(source, ox.Store) else source
    )
    entries, parents = _collect(statements)
    try:
        conn = sqlite3.connect(partial)
        try:
            conn.executescript(
                """
                PRAGMA journal_mode = OFF;
                PRAGMA synchronous = OFF;
                CREATE TABLE resources (
                    id INTEGER PRIMARY KEY, iri TEXT NOT NULL, label TEXT NOT NULL,
                    kind TEXT NOT NULL
                );
                CREATE VIRTUAL TABLE texts USING fts5(
                    names, body, tokenize = 'porter unicode61 remove_diacritics 2'
                );
                """
            )
            rows = _rows(entries, parents)
            while batch := list(itertools.islice(rows, BATCH)):
                conn.executemany(
                    "INSERT INTO resources VALUES (?, ?, ?, ?)", (r[:4] for r in batch)
                )
                conn.executemany(
                    "INSERT INTO texts (rowid, names, body) VALUES (?, ?, ?)",
                    ((r[0], r[4], r[5]) for r in batch),
                )
            conn.execute("INSERT INTO texts (texts, rank) VALUES ('rank', 'bm25(4.0, 1.0)')")
            conn.execute("INSERT INTO texts (texts) VALUES ('optimize')")
            conn.commit()
        finally:
            conn.close()
        partial.rename(path)
    except sqlite3.Error as err:  # a full disk, mostly: one plain line, as for other files
        partial.unlink(missing_ok=True)
        raise OSError(f"cannot write the search index {path.name}: {err}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return time.monotonic() - started


# Searching --------------------------------------------------------------------------------------


def match_expression(text: str) -> str:
    """The words of ``text`` as an FTS5 query that every one must match: each word quoted, so
    no text is FTS5 syntax (``NEAR``, ``*``, quotes...); empty if there is no word."""
    words = _WORD.findall(text)[:MAX_WORDS]
    return " ".join(f'"{word}"' for word in words)


def _mark(snippet: str) -> str:
    return html.escape(snippet).replace(OPEN, "<mark>").replace(CLOSE, "</mark>")


class Index:
    """A read-only view of an index file, opened on the first search (never before a fork)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            if not self.path.is_file():
                raise SearchError(
                    503, "this store has no search index; reload it with escap-kg load"
                )
            # The file is never changed once written (a new index is a new file): immutable.
            uri = f"file:{quote(str(self.path))}?mode=ro&immutable=1"
            self._conn = sqlite3.connect(uri, uri=True)
        return self._conn

    def search(self, text: str, limit: int = 20, kinds: tuple[str, ...] = ()) -> list[Hit]:
        """The resources whose texts contain every word of ``text``, best first."""
        expression = match_expression(text)
        if not expression:
            raise SearchError(400, "give at least one word to search for (q=...)")
        limit = max(1, min(limit, MAX_LIMIT))
        where = ""
        if kinds:
            where = f" WHERE r.kind COLLATE NOCASE IN ({', '.join('?' * len(kinds))})"
        # Ranked first without snippets (FTS5's own ORDER BY rank path), so that a common word
        # costs one pass over its matches; snippets are then made for the hits shown only.
        # Only placeholders are put into the text; every value is bound.
        top = (
            "SELECT r.id, r.iri, r.label, r.kind, t.rank FROM ("  # noqa: S608
            "SELECT rowid, rank FROM texts WHERE texts MATCH ? ORDER BY rank"
            f"{'' if kinds else ' LIMIT ?'}) AS t JOIN resources AS r ON r.id = t.rowid{where} "
            "ORDER BY t.rank LIMIT ?"
        )
        snippet = (
            "SELECT snippet(texts, -1, ?, ?, ?, 16) FROM texts WHERE texts MATCH ? AND rowid = ?"
        )
        values = (expression, *([] if kinds else [limit]), *kinds, limit)
        try:
            conn = self._connection()
            rows = conn.execute(top, values).fetchall()
            return [
                Hit(
                    iri,
                    label,
                    kind,
                    _mark(
                        conn.execute(snippet, (OPEN, CLOSE, "\u2026", expression, id_)).fetchone()[
                            0
                        ]
                    ),
                    -score,
                )
                for id_, iri, label, kind, score in rows
            ]
        except sqlite3.Error as err:
            raise SearchError(503, f"the search index cannot be read: {err}") from None

    def close(self) -> None:
        """Close the connection, if one was opened."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def hits_json(hits: list[Hit]) -> bytes:
    """Hits as the JSON list the API answers."""
    return json.dumps([asdict(hit) for hit in hits], ensure_ascii=False).encode()


__all__ = [
    "INDEX_BUILDING",
    "INDEX_NAME",
    "MAX_LIMIT",
    "Hit",
    "Index",
    "SearchError",
    "build_index",
    "hits_json",
    "match_expression",
]
