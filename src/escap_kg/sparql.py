"""SPARQL text inspection and HTTP content negotiation for the protocol layer.

A small lexer finds what the endpoint must know before a query reaches the engine: the query form
(for content negotiation), whether it is an update, whether it names its own dataset (FROM), and
operations that would reach the network (SERVICE, LOAD), which this endpoint refuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

QUERY_FORMS = ("SELECT", "ASK", "CONSTRUCT", "DESCRIBE")
UPDATE_FORMS = (
    "INSERT",
    "DELETE",
    "LOAD",
    "CLEAR",
    "CREATE",
    "DROP",
    "COPY",
    "MOVE",
    "ADD",
    "WITH",
)

_IRI = re.compile(r"<[^<>\"{}|^`\\\x00-\x20]*>")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-.]*(?::[A-Za-z0-9_\-.:%]*)?|:[A-Za-z0-9_\-.:%]*")
_VAR = re.compile(r"[?$][A-Za-z0-9_]+")
_STRING_STARTS = ('"""', "'''", '"', "'")

#: The deepest nesting of brackets (``{``, ``(`` and ``[`` together) the endpoint takes, and the
#: longest run of prefix operators (``!``, ``+``, ``-``). The engine's parser recurses on both and
#: overflows its stack (killing the worker) some thousands of levels down; no real query comes
#: near these limits.
MAX_NESTING = 256
#: The most operators one text may chain (``&&``, ``||``, ``+``, path ``/`` and ``|``, UNION,
#: OPTIONAL, FILTER, BIND, ...): the engine builds a tree as deep as the chain is long, and a few
#: thousand of them overflow its stack too.
MAX_OPERATORS = 1000
_OPERATOR_CHARACTERS = "&|/+-*=!<>"
_OPERATOR_KEYWORDS = frozenset(
    {"UNION", "OPTIONAL", "MINUS", "FILTER", "BIND", "GRAPH", "SERVICE", "EXISTS", "VALUES"}
)
_OPENING = "{(["
_CLOSING = "})]"
_PREFIX_OPERATORS = "!+-"


class SparqlTextError(ValueError):
    """The text is not SPARQL we can take (unterminated string, empty, ...)."""


@dataclass(frozen=True)
class Token:
    """A keyword or punctuation mark outside strings, IRIs and comments, with its offset."""

    text: str
    offset: int
    depth: int


@dataclass
class Scan:
    """What the lexer learnt about a request's SPARQL text."""

    form: str = ""
    is_update: bool = False
    keywords: set[str] = field(default_factory=set)
    tokens: list[Token] = field(default_factory=list)
    #: The endpoint of each SERVICE clause: an IRI as written, or "" when it is not a full IRI
    #: (a variable or a prefixed name), which the endpoint cannot check and so refuses.
    services: list[str] = field(default_factory=list)

    @property
    def has_dataset_clause(self) -> bool:
        """True when the query names its own dataset with FROM or FROM NAMED."""
        return "FROM" in self.keywords

    @property
    def uses_service(self) -> bool:
        """True when the query asks for a federated SERVICE call."""
        return "SERVICE" in self.keywords

    @property
    def uses_load(self) -> bool:
        """True when the update fetches a document with LOAD."""
        return "LOAD" in self.keywords

    @property
    def names_update_dataset(self) -> bool:
        """True when the update names its own dataset (USING, USING NAMED or WITH)."""
        return bool({"USING", "WITH"} & self.keywords)


def scan(text: str) -> Scan:
    """Lex SPARQL text far enough to know its form and the keywords it uses."""
    result = Scan()
    depth = 0
    nesting = 0
    operators = 0
    chained = 0
    i, n = 0, len(text)
    expecting_service = False
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        operators = operators + 1 if ch in _PREFIX_OPERATORS else 0
        if operators > MAX_NESTING:
            raise SparqlTextError(
                f"nested too deeply: more than {MAX_NESTING} operators in a row at line "
                f"{_line_of(text, i)}"
            )
        if ch == "<" and (m := _IRI.match(text, i)):
            if expecting_service:
                result.services.append(m.group()[1:-1])
                expecting_service = False
            i = m.end()
        elif ch in "\"'":
            i = _skip_string(text, i)
        elif ch in "?$" and (m := _VAR.match(text, i)):
            if expecting_service:
                result.services.append("")
                expecting_service = False
            i = m.end()
        elif m := _WORD.match(text, i):
            word = m.group()
            if ":" not in word:
                upper = word.upper()
                result.keywords.add(upper)
                result.tokens.append(Token(upper, i, depth))
                if upper in _OPERATOR_KEYWORDS:
                    chained += 1
                if not result.form and upper not in ("PREFIX", "BASE"):
                    result.form = upper
                if upper == "SERVICE":
                    expecting_service = True
                elif upper != "SILENT" and expecting_service:
                    result.services.append("")
                    expecting_service = False
            elif expecting_service:
                result.services.append("")
                expecting_service = False
            i = m.end()
        else:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch in _OPENING:
                nesting += 1
                if nesting > MAX_NESTING:
                    raise SparqlTextError(
                        f"nested too deeply: more than {MAX_NESTING} levels of brackets at line "
                        f"{_line_of(text, i)}"
                    )
            elif ch in _CLOSING:
                nesting = max(0, nesting - 1)
            elif ch in _OPERATOR_CHARACTERS:
                chained += 1
            result.tokens.append(Token(ch, i, depth))
            i += 1
        if chained > MAX_OPERATORS:
            raise SparqlTextError(
                f"too many operators: more than {MAX_OPERATORS} (&&, ||, +, /, UNION, OPTIONAL, "
                f"FILTER, BIND, ...) in one request; split it into smaller queries"
            )
    if result.form in UPDATE_FORMS:
        result.is_update = True
    return result


def _line_of(text: str, i: int) -> int:
    return text.count("\n", 0, i) + 1


def _skip_string(text: str, i: int) -> int:
    for quote in _STRING_STARTS:
        if text.startswith(quote, i):
            j = i + len(quote)
            while j < len(text):
                if text[j] == "\\":
                    j += 2
                    continue
                if text.startswith(quote, j):
                    return j + len(quote)
                if len(quote) == 1 and text[j] in "\r\n":
                    break
                j += 1
            raise SparqlTextError(f"unterminated string starting at line {_line_of(text, i)}")
    return i + 1


def add_using_clauses(text: str, tokens: list[Token], default: list[str], named: list[str]) -> str:
    """Insert ``USING``/``USING NAMED`` before each top-level ``WHERE`` of an update.

    This is how the protocol's ``using-graph-uri`` and ``using-named-graph-uri`` parameters set
    the dataset of ``DELETE``/``INSERT ... WHERE`` operations when the engine takes no dataset
    argument for updates. ``DELETE WHERE`` shorthand takes no dataset and is left alone.
    """
    clause = "".join(f" USING <{g}>" for g in default) + "".join(
        f" USING NAMED <{g}>" for g in named
    )
    inserts = []
    previous = ""
    for token in tokens:
        if token.text == "WHERE" and token.depth == 0 and previous != "DELETE":
            inserts.append(token.offset)
        previous = token.text
    for offset in reversed(inserts):
        text = text[:offset] + clause.strip() + " " + text[offset:]
    return text


# Content negotiation ------------------------------------------------------------------------

#: Media types a SELECT or ASK answer can be written in, server preference first.
RESULT_TYPES: dict[str, str] = {
    "application/sparql-results+json": "json",
    "application/sparql-results+xml": "xml",
    "text/csv": "csv",
    "text/tab-separated-values": "tsv",
    "application/json": "json",
    "application/xml": "xml",
    "text/xml": "xml",
}

#: Media types a CONSTRUCT or DESCRIBE answer can be written in, server preference first.
GRAPH_TYPES: dict[str, str] = {
    "text/turtle": "turtle",
    "application/n-triples": "nt",
    "application/rdf+xml": "xml",
    "application/ld+json": "jsonld",
    "application/x-turtle": "turtle",
    "text/plain": "nt",
    "application/json": "jsonld",
    "application/xml": "xml",
}


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header."""

    type: str
    subtype: str
    q: float
    order: int

    def matches(self, media_type: str) -> int:
        """How specifically this range matches a media type: 3 exact, 2 type/*, 1 */*, 0 none."""
        main, _, sub = media_type.partition("/")
        if self.type == "*" and self.subtype == "*":
            return 1
        if self.type == main and self.subtype == "*":
            return 2
        return 3 if (self.type, self.subtype) == (main, sub) else 0


def parse_accept(header: str | None) -> list[MediaRange]:
    """Parse an Accept header; malformed entries are skipped, as RFC 9110 allows."""
    ranges = []
    for order, item in enumerate((header or "").split(",")):
        parts = [p.strip() for p in item.split(";")]
        media = parts[0].lower()
        if "/" not in media:
            continue
        main, _, sub = media.partition("/")
        q = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value.strip())))
                except ValueError:
                    q = 0.0
        ranges.append(MediaRange(main, sub, q, order))
    return ranges


def negotiate(header: str | None, offers: list[str]) -> str | None:
    """The offer the client prefers (q-values, then specificity, then our order); None for 406.

    A missing or empty Accept header means the client takes anything: our first offer.
    """
    ranges = parse_accept(header)
    if not header or not header.strip() or not ranges:
        return offers[0] if offers else None
    best: tuple[float, int] | None = None
    chosen = None
    for index, offer in enumerate(offers):
        matching = [(r.matches(offer), r) for r in ranges if r.matches(offer)]
        if not matching:
            continue
        _, most_specific = max(matching, key=lambda m: m[0])
        q = most_specific.q
        if q <= 0:
            continue
        score = (q, -index)
        if best is None or score > best:
            best, chosen = score, offer
    return chosen
