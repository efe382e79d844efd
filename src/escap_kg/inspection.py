"""What the endpoint checks in a request's SPARQL before it runs: form, SERVICE, LOAD, size.

It also declares the prefixes everyone knows (``ekg:``, ``schema:``, ``wd:``, ...; see
:func:`escap_kg.iris.prefixes`) that a text uses without declaring them, as the Wikidata Query
Service does, and turns the engine's syntax errors into short messages.

Run where the query runs (in the query workers, or for a remote store in the server), never on
the server's event loop for a local store, so a hostile text costs only its own time limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from escap_kg.iris import VOCABULARY_PREFIXES, prefixes
from escap_kg.jobs import QueryJob, UpdateJob
from escap_kg.sparql import (
    GRAPH_TYPES,
    QUERY_FORMS,
    RESULT_TYPES,
    Scan,
    SparqlTextError,
    add_using_clauses,
    engine_position,
    negotiate,
    scan,
)


class RefusedError(Exception):
    """A job refused before it runs: ``status`` and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_services(info: Scan, allowed: Sequence[str]) -> None:
    """Refuse SERVICE to any endpoint not in ``allowed`` (variables and prefixed names too)."""
    if not info.uses_service:
        return
    refused = [target for target in info.services if target not in allowed]
    if not refused and info.services:
        return
    shown = ", ".join(f"<{t}>" if t else "a variable or prefixed name" for t in refused)
    calls = "only " + ", ".join(f"<{a}>" for a in allowed) if allowed else "no other endpoint"
    if refused and all(refused):
        targets = " ".join(f"--allow-service {t}" for t in dict.fromkeys(refused))
        reason = f"this endpoint calls {calls} (start it with {targets} to allow it)"
    else:
        reason = f"this endpoint calls {calls} (start it with --allow-service URL)"
    raise RefusedError(400, f"SERVICE to {shown or 'an unnamed endpoint'} is not allowed: {reason}")


def prefix_table(base_iri: str | None) -> dict[str, str]:
    """The prefixes known without a declaration for resources under ``base_iri`` (the
    vocabularies' only when there is none)."""
    return prefixes(base_iri) if base_iri else dict(VOCABULARY_PREFIXES)


def known_prefixes(text: str, info: Scan, table: Mapping[str, str], what: str = "query") -> str:
    """``PREFIX p: <ns> `` for each prefix of ``table`` that ``text`` uses before it declares it
    (a declaration in the text wins); :class:`RefusedError` (400) naming a prefix that is neither
    declared nor known, with the line that would declare it. ``info`` is the scan of ``text``."""
    declarations = []
    for name, used in sorted(info.prefixes_used.items(), key=lambda item: item[1]):
        declared = info.prefixes_declared.get(name)
        if declared is not None and declared < used:
            continue
        if name not in table:
            raise RefusedError(
                400,
                f"malformed {what}: {_position(text, used)}: unknown prefix '{name}:'; "
                f"declare it: PREFIX {name}: <...>",
            )
        declarations.append(f"PREFIX {name}: <{table[name]}> ")
    return "".join(declarations)


def with_prologue(text: str, prologue: str) -> str:
    """``text`` with the declarations of :func:`known_prefixes` before it, on its first line so
    that positions in the engine's errors move only on line 1 (by ``len(prologue)``)."""
    return prologue + text.removeprefix("\ufeff")


def _position(text: str, offset: int) -> str:
    """``line L, column C`` of an offset, as an editor shows it (a byte-order mark is no column)."""
    if text.startswith("\ufeff"):
        text, offset = text[1:], offset - 1
    line = text.count("\n", 0, offset) + 1
    return f"line {line}, column {offset - text.rfind(chr(10), 0, offset)}"


def inspect_query(job: QueryJob) -> tuple[Scan, str, str, str]:
    """The scan of a query, its result format and media type (chosen from ``job.accept`` when
    the job fixes no format), and the prologue of known prefixes to put before its text (see
    :func:`with_prologue`); :class:`RefusedError` for what this endpoint does not run."""
    try:
        info = scan(job.text)
    except SparqlTextError as err:
        raise RefusedError(400, f"malformed query: {err}") from None
    if info.is_update:
        raise RefusedError(
            400, "this is a SPARQL update; send it as 'update' (POST), not as a query"
        )
    if info.form not in QUERY_FORMS:
        raise RefusedError(
            400, "malformed query: expected SELECT, ASK, CONSTRUCT or DESCRIBE after the prologue"
        )
    check_services(info, job.allowed_services)
    prologue = known_prefixes(job.text, info, prefix_table(job.base_iri))
    table = RESULT_TYPES if info.form in ("SELECT", "ASK") else GRAPH_TYPES
    if job.result_format:
        return info, job.result_format, "", prologue
    offers = list(table)
    chosen = negotiate(job.accept, offers)
    if chosen is None:
        raise RefusedError(
            406,
            f"cannot answer a {info.form} query in any type the Accept header allows; "
            f"available: {', '.join(offers)}",
        )
    return info, table[chosen], chosen, prologue


def inspect_update(job: UpdateJob) -> tuple[str, int]:
    """The update text to evaluate (with the protocol's USING clauses and the known prefixes it
    uses) and how many characters were put before it on line 1; :class:`RefusedError` for what
    this endpoint does not run: LOAD in any form, SERVICE not allowed, two datasets."""
    try:
        info = scan(job.text)
    except SparqlTextError as err:
        raise RefusedError(400, f"malformed update: {err}") from None
    if not info.is_update:
        raise RefusedError(400, "this is not a SPARQL update; send queries as 'query'")
    if info.uses_load:
        raise RefusedError(
            400,
            "LOAD is not allowed: this endpoint never reads a document from a file or the network",
        )
    check_services(info, job.allowed_services)
    prologue = known_prefixes(job.text, info, prefix_table(job.base_iri), "update")
    text = job.text
    if job.using or job.using_named:
        if info.names_update_dataset:
            raise RefusedError(
                400,
                "the update names its own dataset (USING or WITH) and the request names one too",
            )
        text = add_using_clauses(text, info.tokens, list(job.using), list(job.using_named))
    return with_prologue(text, prologue), len(prologue)


_PATH = re.compile(r"(?<![\w:/.])/(?:[\w.\-]+/)+[\w.\-]*")


def plain_message(err: BaseException) -> str:
    """An engine error's message without file paths of this machine."""
    return _PATH.sub("<path>", str(err.args[0]) if err.args else str(err))


#: One item of Oxigraph's "expected one of ..." list: a quoted token, a character class in
#: brackets (with quoted characters, which may be brackets), or a bare word such as a keyword.
_EXPECTED_ITEM = re.compile(
    r'"(?P<token>(?:[^"\\]|\\.)*)"|\[(?P<chars>(?:\'[^\']*\'|[^\]\'])*)\]|(?P<word>[^,"\[]+)'
)
_ONE_CHAR = re.compile(r"'(?P<char>[^'\\]|\\.)'")
_SKIPPED = re.compile(r"(?:\s|#[^\n]*)*")
#: The most expected items a message lists; Oxigraph can list dozens, and Unicode ranges.
MAX_EXPECTED = 8


def syntax_message(err: SyntaxError, text: str = "", shift: int = 0) -> str:
    """Oxigraph's ``error at LINE:COLUMN: ...`` as ``line L, column C: ...`` in a few words.

    ``text`` is the text the engine read, to say what it found there; ``shift`` is the length of
    the prologue :func:`with_prologue` put before the user's text, taken off columns on line 1.
    Oxigraph's list of what it expected is cut short and its Unicode ranges said in words.
    """
    message = " ".join(plain_message(err).split())
    at = engine_position(message)
    if at is None or at.line is None or at.column is None:
        return _cut(message)
    detail = at.detail
    if detail.startswith("expected "):
        detail = _expected(detail[len("expected ") :], text, at.line, at.column)
    return f"line {at.line}, column {at.column_after(shift)}: {_cut(detail)}"


def _expected(listed: str, text: str, line: int, column: int) -> str:
    """What the parser found at a position and what it expected there, in a few words."""
    items: list[str] = []
    for match in _EXPECTED_ITEM.finditer(listed.removeprefix("one of ")):
        item = _expected_item(match)
        if " " in item and not item.startswith("'"):
            # A sentence of the engine's ("The query limit should be a non negative integer").
            return item[0].lower() + item[1:]
        if item and item not in items:
            items.append(item)
    lines = text.split("\n")
    found = "syntax error"
    if text and 0 < line <= len(lines):
        offset = sum(len(previous) + 1 for previous in lines[: line - 1]) + column - 1
        rest = text[min(max(offset, 0), len(text)) :]
        if _SKIPPED.fullmatch(rest):
            found = "unexpected end of the query"
        else:
            found = f"unexpected {rest.split(maxsplit=1)[0][:20]!r}"
    if not items:
        return f"{found} (check the brackets and punctuation before this point)"
    shown = ", ".join(items[:MAX_EXPECTED]) + (", ..." if len(items) > MAX_EXPECTED else "")
    return f"{found}; expected {'one of ' if len(items) > 1 else ''}{shown}"


def _expected_item(match: re.Match[str]) -> str:
    """One item of the engine's expected list in words, or "" for one not worth showing."""
    if match["token"] is not None:
        return repr(re.sub(r"\\(.)", r"\1", match["token"]))
    if match["chars"] is not None:
        chars = match["chars"]
        if one := _ONE_CHAR.fullmatch(chars.strip()):
            return repr(one["char"].removeprefix("\\"))
        if "'A'" in chars or "'a'" in chars:
            return "a name"
        if "'0'" in chars:
            return "a number"
        return ""
    word = match["word"].strip()
    # "Prefix not found" is said before the engine runs (see known_prefixes); [_] is any character.
    return "" if word == "Prefix not found" else word


def _cut(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[: limit - 3].rstrip() + "..."


__all__ = [
    "RefusedError",
    "check_services",
    "inspect_query",
    "inspect_update",
    "known_prefixes",
    "plain_message",
    "prefix_table",
    "syntax_message",
    "with_prologue",
]
