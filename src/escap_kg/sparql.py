"""SPARQL text inspection and HTTP content negotiation for the protocol layer.

A small lexer finds what the endpoint must know before a query reaches the engine: the query form
(for content negotiation), whether it is an update, whether it names its own dataset (FROM), and
operations that would reach the network (SERVICE, LOAD), which this endpoint refuses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from escap_kg.formats import GRAPH_FORMATS, RESULT_FORMATS, offers
from escap_kg.iris import is_http_iri

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

#: The deepest nesting of brackets (``{``, ``(`` and ``[`` together) the endpoint takes, and the
#: longest run of prefix operators (``!``, ``+``, ``-``). The engine's parser recurses on both and
#: overflows its stack (killing the worker) some thousands of levels down (nested groups: answered
#: at 2,000, a crash at 5,000); no real query comes near these limits.
MAX_NESTING = 256
#: The most operators one text may chain (``&&``, ``||``, ``+``, path ``/`` and ``|``, UNION,
#: OPTIONAL, FILTER, BIND, ...): the engine builds a tree as deep as the chain is long, and a few
#: thousand of them overflow its stack too (chains of UNION or FILTER crash at 10,000).
MAX_OPERATORS = 1000
#: Long flat lists overflow the engine's stack as well. Measured with pyoxigraph 0.5.13 on an
#: empty store, on the main thread with an 8 MiB stack: 8,000 triple patterns (``.``), objects
#: (``,``), predicate-object pairs (``;``) or sibling groups (``{...}{...}``) parse, 9,000 crash;
#: 2,000 SELECT expressions are answered, 3,000 crash. The limits below leave a wide margin and
#: are still far above any real query (the catalogue's largest has a few dozen patterns). Each
#: counts marks over the whole text, so a list split over several patterns counts in full.
MAX_TRIPLE_PATTERNS = 2000
MAX_GROUPS = 1000
MAX_LIST_ITEMS = 1000
MAX_PROJECTION = 500

_OPERATOR_KEYWORDS = frozenset(
    {"UNION", "OPTIONAL", "MINUS", "FILTER", "BIND", "GRAPH", "SERVICE", "EXISTS", "VALUES"}
)
_PROLOGUE = frozenset({"PREFIX", "BASE", "VERSION"})
_NOTED = _OPERATOR_KEYWORDS | {"SELECT", "WHERE", "DELETE"}

# The terminals of the SPARQL 1.1 grammar (section 19.8), with Oxigraph's reading of escapes:
# \u and \U escapes are decoded inside IRIs and strings only, and a backslash anywhere else
# outside a local name's PN_LOCAL_ESC is a syntax error (so the lexer refuses it too).
_PN_CHARS_BASE = (
    "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u0370-\u037d\u037f-\u1fff\u200c-\u200d"
    "\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff"
)
_PN_CHARS_U = _PN_CHARS_BASE + "_"
_PN_CHARS = _PN_CHARS_U + "\\-0-9\u00b7\u0300-\u036f\u203f-\u2040"
_UCHAR = r"\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8}"
_ECHAR = r"\\[tbnrf\\\"']"
_PLX = r"%[0-9A-Fa-f]{2}|\\[_~.\-!$&'()*+,;=/?#@%]"
_PN_PREFIX = f"[{_PN_CHARS_BASE}](?:[{_PN_CHARS}.]*[{_PN_CHARS}])?"
_PN_LOCAL = (
    f"(?:[{_PN_CHARS_U}:0-9]|{_PLX})(?:(?:[{_PN_CHARS}.:]|{_PLX})*(?:[{_PN_CHARS}:]|{_PLX}))?"
)
_VARNAME = f"[{_PN_CHARS_U}0-9][{_PN_CHARS_U}0-9\u00b7\u0300-\u036f\u203f-\u2040]*+"
_SKIP = r"(?>(?:[ \t\r\n]++|\#[^\r\n]*+)*)"
_IRI_BODY = f'(?:[^<>"{{}}|^`\\\\\\x00-\\x20]++|{_UCHAR})*+'


def _string(quote: str) -> str:
    """The short and the long string terminal quoted with ``quote``, long first."""
    escapes = f"{_ECHAR}|{_UCHAR}"
    long = f"{quote * 3}(?:[^{quote}\\\\]++|{escapes}|{quote}(?!{quote * 2}))*+{quote * 3}"
    return f"{long}|{quote}(?:[^{quote}\\\\\\n\\r]++|{escapes})*+{quote}"


#: One token after any whitespace and comments; the order of the alternatives matters (a prefixed
#: name before a keyword, a string before an unterminated quote, the catch-all last).
_TERMINALS = {
    "iri": f"<{_IRI_BODY}>",
    "var": f"[?$]{_VARNAME}",
    "pname": f"(?:{_PN_PREFIX})?:(?:{_PN_LOCAL})?",
    "bnode": f"_:[{_PN_CHARS_U}0-9](?:[{_PN_CHARS}.]*[{_PN_CHARS}])?",
    "word": r"[A-Za-z_][A-Za-z0-9_]*+",
    "number": r"[0-9]++(?:\.[0-9]*+)?[eE][+-]?[0-9]++|[0-9]*+\.[0-9]++(?:[eE][+-]?[0-9]++)?"
    r"|[0-9]++",
    "sep": r"[.;,]",
    "lbrace": r"\{",
    "rbrace": r"\}",
    "open": r"[(\[]",
    "close": r"[)\]]",
    "prefixop": r"[!+\-](?:" + _SKIP + r"[!+\-])*+",
    "op": r"[&|/*=<>]",
    "langtag": r"@[a-zA-Z]++(?:-[a-zA-Z0-9]++)*+",
    "string": _string("'") + "|" + _string('"'),
    "badstring": "[\"']",
    "other": r"[\^?~]",
    "bad": r"[^ \t\r\n#]",
}
_TOKEN = re.compile(
    _SKIP + "(?:" + "|".join(f"(?P<{name}>{rx})" for name, rx in _TERMINALS.items()) + ")"
)
_ONLY_SKIP = re.compile(_SKIP + r"\Z")
_ESCAPE = re.compile(_UCHAR)


class SparqlTextError(ValueError):
    """The text is not SPARQL we can take (unterminated string, stray character, too large, ...)."""


@dataclass(frozen=True)
class Token:
    """A top-level ``WHERE`` or ``VALUES`` keyword, with its offset and depth.

    ``follows`` is ``DELETE`` when that keyword comes right before (the ``DELETE WHERE``
    shorthand), else "".
    """

    text: str
    offset: int
    depth: int
    follows: str = ""


@dataclass
class Scan:
    """What the lexer learnt about a request's SPARQL text."""

    form: str = ""
    is_update: bool = False
    keywords: set[str] = field(default_factory=set)
    #: The top-level WHERE and VALUES keywords (all that callers need to edit the text).
    tokens: list[Token] = field(default_factory=list)
    #: The endpoint of each SERVICE clause: its IRI with escapes decoded when it is an absolute
    #: http(s) IRI, else "" (a variable, a prefixed name, a relative IRI, ...), which the endpoint
    #: cannot check and so refuses.
    services: list[str] = field(default_factory=list)
    #: Each prefix name the text uses in a prefixed name (``ekg`` for ``ekg:Seminar``, "" for
    #: ``:x``), with the offset of its first use.
    prefixes_used: dict[str, int] = field(default_factory=dict)
    #: Each prefix name the text declares with ``PREFIX``, with the offset of the declaration.
    prefixes_declared: dict[str, int] = field(default_factory=dict)

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


@dataclass
class _Marks:
    """What the lexer counts while it reads, for the structural limits."""

    depth: int = 0  # braces open now (top level is 0)
    nesting: int = 0  # brackets of every kind open now
    chained: int = 0  # operators so far
    groups: int = 0
    separators: int = 0
    commas: int = 0
    semicolons: int = 0
    #: Where the last DELETE keyword ended (for the DELETE WHERE shorthand).
    delete_end: int = -1
    #: The previous token was the PREFIX keyword: the next prefixed name is declared.
    declaring: bool = False


def scan(text: str) -> Scan:
    """Lex SPARQL text far enough to know its form, its keywords and the endpoints it calls.

    Raise SparqlTextError, naming the line and column, for text the grammar's terminals do not
    cover (a stray backslash, an unterminated string) and for text past the structural limits.
    """
    result = Scan()
    marks = _Marks()
    m = None
    start = 1 if text.startswith("\ufeff") else 0
    for m in iter(_tokens_from(text, start), None):
        kind = m.lastgroup or ""
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(result, marks, text, m)
        marks.declaring = kind == "word" and m["word"].upper() == "PREFIX"
        if marks.chained > MAX_OPERATORS:
            raise SparqlTextError(
                f"too many operators: more than {MAX_OPERATORS} (&&, ||, +, /, UNION, OPTIONAL, "
                f"FILTER, BIND, ...) in one request (at {_at(text, m)}); "
                "split it into smaller queries"
            )
    end = m.end() if m is not None else start
    if not _ONLY_SKIP.match(text, end):
        # Only whitespace and comments can be left once no token matches; anything else means a
        # terminal is missing above, and skipping text is what an attack would want.
        raise SparqlTextError(f"cannot read the text at {_where(text, end)}")
    result.is_update = result.form in UPDATE_FORMS
    return result


def _on_word(result: Scan, marks: _Marks, text: str, m: re.Match[str]) -> None:
    word = m["word"].upper()
    result.keywords.add(word)
    if word in _NOTED or not result.form:
        marks.chained += _note(result, text, m, word, marks.depth, marks.delete_end)
        if word == "DELETE":
            marks.delete_end = m.end()


def _on_pname(result: Scan, marks: _Marks, text: str, m: re.Match[str]) -> None:
    name = m["pname"].partition(":")[0]
    names = result.prefixes_declared if marks.declaring else result.prefixes_used
    names.setdefault(name, m.start("pname"))


def _on_sep(result: Scan, marks: _Marks, text: str, m: re.Match[str]) -> None:
    marks.separators += 1
    if marks.separators > MAX_TRIPLE_PATTERNS:
        raise _too_many(text, m, "triple patterns", MAX_TRIPLE_PATTERNS, "'.', ';' or ','")
    sep = m["sep"]
    if sep == ",":
        marks.commas += 1
        if marks.commas > MAX_LIST_ITEMS:
            raise _too_many(text, m, "list items", MAX_LIST_ITEMS, "','")
    elif sep == ";":
        marks.semicolons += 1
        if marks.semicolons > MAX_LIST_ITEMS:
            raise _too_many(text, m, "list items", MAX_LIST_ITEMS, "';'")


def _on_lbrace(result: Scan, marks: _Marks, text: str, m: re.Match[str]) -> None:
    marks.depth += 1
    marks.groups += 1
    _on_open(result, marks, text, m)
    if marks.groups > MAX_GROUPS:
        raise _too_many(text, m, "group patterns", MAX_GROUPS, "'{'")


def _on_rbrace(result: Scan, marks: _Marks, text: str, m: re.Match[str]) -> None:
    marks.depth -= 1
    _on_close(result, marks, text, m)


def _on_open(result: Scan, marks: _Marks, text: str, m: re.Match[str]) -> None:
    marks.nesting += 1
    if marks.nesting > MAX_NESTING:
        raise _too_deep(text, m)


def _on_close(result: Scan, marks: _Marks, text: str, m: re.Match[str]) -> None:
    marks.nesting = max(0, marks.nesting - 1)


def _on_op(result: Scan, marks: _Marks, text: str, m: re.Match[str]) -> None:
    marks.chained += 1


def _on_prefixop(result: Scan, marks: _Marks, text: str, m: re.Match[str]) -> None:
    run = m["prefixop"]
    count = run.count("!") + run.count("+") + run.count("-")
    if count > MAX_NESTING:
        raise SparqlTextError(
            f"nested too deeply: more than {MAX_NESTING} operators in a row at {_at(text, m)}"
        )
    marks.chained += count


def _on_badstring(result: Scan, marks: _Marks, text: str, m: re.Match[str]) -> None:
    raise SparqlTextError(f"unterminated string (or a bad escape in it) starting at {_at(text, m)}")


def _on_bad(result: Scan, marks: _Marks, text: str, m: re.Match[str]) -> None:
    raise SparqlTextError(f"unexpected character {m['bad']!r} at {_at(text, m)}")


#: What each kind of token does to the scan; kinds not named here (IRIs, variables, strings,
#: numbers...) only move the lexer on.
_HANDLERS: dict[str, Callable[[Scan, _Marks, str, re.Match[str]], None]] = {
    "word": _on_word,
    "pname": _on_pname,
    "sep": _on_sep,
    "lbrace": _on_lbrace,
    "rbrace": _on_rbrace,
    "open": _on_open,
    "close": _on_close,
    "op": _on_op,
    "prefixop": _on_prefixop,
    "badstring": _on_badstring,
    "bad": _on_bad,
}


def _note(result: Scan, text: str, m: re.Match[str], word: str, depth: int, after: int) -> int:
    """Record what a keyword tells; return how many operators it adds to the chain."""
    if not result.form and word not in _PROLOGUE:
        result.form = word
    if word == "SERVICE":
        result.services.append(_service_target(text, m.end()))
    elif word == "SELECT":
        _check_projection(text, m.end())
    elif depth == 0 and word in ("WHERE", "VALUES"):
        follows = "DELETE" if m.start() == after else ""
        result.tokens.append(Token(word, m.start("word"), depth, follows))
    return 1 if word in _OPERATOR_KEYWORDS else 0


def _service_target(text: str, pos: int) -> str:
    """The endpoint of the SERVICE whose keyword ends at pos (see :attr:`Scan.services`)."""
    target = _TOKEN.match(text, pos)
    if target and target.lastgroup == "word" and target["word"].upper() == "SILENT":
        target = _TOKEN.match(text, target.end())
    if target is None or target.lastgroup != "iri":
        return ""
    try:
        iri = _ESCAPE.sub(lambda e: chr(int(e.group()[2:], 16)), target["iri"][1:-1])
    except (ValueError, OverflowError):
        raise SparqlTextError(
            f"bad escape in the IRI at {_where(text, target.start('iri'))}"
        ) from None
    return iri if is_http_iri(iri) else ""


def _check_projection(text: str, pos: int) -> None:
    """Refuse a SELECT clause (starting at pos) with more than MAX_PROJECTION expressions."""
    items = level = 0
    for m in iter(_tokens_from(text, pos), None):
        kind = m.lastgroup
        if kind == "open":
            if level == 0:
                items += 1
            level += 1
        elif kind == "close":
            level -= 1
        elif kind == "var":
            items += level == 0
        elif kind == "word":
            if m["word"].upper() in ("WHERE", "FROM"):
                return
        elif kind in ("lbrace", "bad", "badstring") or level < 0:
            return
        if items > MAX_PROJECTION:
            raise SparqlTextError(
                f"too many projections: more than {MAX_PROJECTION} variables or expressions "
                f"after SELECT (at {_at(text, m)}); split it into smaller queries"
            )


def _tokens_from(text: str, pos: int) -> Callable[[], re.Match[str] | None]:
    """The next token on each call, None at the end: never skips text, unlike ``finditer``."""
    # Pattern.scanner is undocumented (so untyped) but has been in CPython's re since 2.x.
    scanner = _TOKEN.scanner(text, pos)  # type: ignore[attr-defined]
    return scanner.match  # type: ignore[no-any-return]


def _where(text: str, i: int) -> str:
    line = text.count("\n", 0, i) + 1
    column = i - text.rfind("\n", 0, i)
    return f"line {line}, column {column}"


def _at(text: str, m: re.Match[str]) -> str:
    return _where(text, m.start(m.lastindex or 0))


def _too_deep(text: str, m: re.Match[str]) -> SparqlTextError:
    return SparqlTextError(
        f"nested too deeply: more than {MAX_NESTING} levels of brackets at {_at(text, m)}"
    )


def _too_many(text: str, m: re.Match[str], what: str, limit: int, marks: str) -> SparqlTextError:
    return SparqlTextError(
        f"too many {what}: more than {limit} {marks} in one request (at "
        f"{_at(text, m)}); split it into smaller queries"
    )


#: How Oxigraph starts an error message: the position in SPARQL text (``error at 3:14: ``) or the
#: span in an RDF file (``Parser error at line 3 between columns 1 and 4: ``).
_ENGINE_POSITION = re.compile(r"error at (?P<line>\d+):(?P<column>\d+): |Parser error[^:]*: ")


@dataclass(frozen=True)
class EnginePosition:
    """Where the engine's error message says the error is, and what it says there."""

    #: Line and column, 1-based, for an error in SPARQL text; None for a file's span (its
    #: SyntaxError carries them).
    line: int | None
    column: int | None
    detail: str

    def column_after(self, shift: int) -> int | None:
        """The column in the user's own text, when ``shift`` characters (a prologue) were put
        before it on its first line."""
        if self.line == 1 and self.column is not None and self.column > shift:
            return self.column - shift
        return self.column


def engine_position(message: str) -> EnginePosition | None:
    """The position an Oxigraph error message starts with, and the rest; None without one."""
    match = _ENGINE_POSITION.match(message)
    if match is None:
        return None
    line, column = match["line"], match["column"]
    return EnginePosition(
        int(line) if line else None, int(column) if column else None, message[match.end() :]
    )


def add_using_clauses(text: str, tokens: list[Token], default: list[str], named: list[str]) -> str:
    """Insert ``USING``/``USING NAMED`` before each top-level ``WHERE`` of an update.

    This is how the protocol's ``using-graph-uri`` and ``using-named-graph-uri`` parameters set
    the dataset of ``DELETE``/``INSERT ... WHERE`` operations when the engine takes no dataset
    argument for updates. ``DELETE WHERE`` shorthand takes no dataset and is left alone.
    ``tokens`` are :attr:`Scan.tokens` of the same text.
    """
    clause = "".join(f" USING <{g}>" for g in default) + "".join(
        f" USING NAMED <{g}>" for g in named
    )
    inserts = [
        t.offset for t in tokens if t.text == "WHERE" and t.depth == 0 and t.follows != "DELETE"
    ]
    for offset in reversed(inserts):
        text = text[:offset] + clause.strip() + " " + text[offset:]
    return text


# Content negotiation ------------------------------------------------------------------------

#: Media types a SELECT or ASK answer can be written in (-> format name), server preference first.
RESULT_TYPES: dict[str, str] = offers(RESULT_FORMATS, "results")

#: Media types a CONSTRUCT or DESCRIBE answer can be written in, server preference first.
GRAPH_TYPES: dict[str, str] = offers(GRAPH_FORMATS, "graph")


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


def parse_media_type(header: str | None) -> tuple[str, dict[str, str]]:
    """A Content-Type header as its media type and parameters, all lowercase
    (``text/csv; charset=UTF-8`` -> ``("text/csv", {"charset": "utf-8"})``)."""
    if not header:
        return "", {}
    main, *rest = header.split(";")
    options = {}
    for item in rest:
        key, _, value = item.partition("=")
        options[key.strip().lower()] = value.strip().strip('"').lower()
    return main.strip().lower(), options


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
