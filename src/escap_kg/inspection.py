"""What the endpoint checks in a request's SPARQL before it runs: form, SERVICE, LOAD, size.

Run where the query runs (in the query workers, or for a remote store in the server), never on
the server's event loop for a local store, so a hostile text costs only its own time limit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from escap_kg.jobs import QueryJob, UpdateJob
from escap_kg.sparql import (
    GRAPH_TYPES,
    QUERY_FORMS,
    RESULT_TYPES,
    Scan,
    SparqlTextError,
    add_using_clauses,
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


def inspect_query(job: QueryJob) -> tuple[Scan, str, str]:
    """The scan of a query, its result format and media type (chosen from ``job.accept`` when
    the job fixes no format); :class:`RefusedError` for what this endpoint does not run."""
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
    table = RESULT_TYPES if info.form in ("SELECT", "ASK") else GRAPH_TYPES
    if job.result_format:
        return info, job.result_format, ""
    offers = list(table)
    chosen = negotiate(job.accept, offers)
    if chosen is None:
        raise RefusedError(
            406,
            f"cannot answer a {info.form} query in any type the Accept header allows; "
            f"available: {', '.join(offers)}",
        )
    return info, table[chosen], chosen


def inspect_update(job: UpdateJob) -> str:
    """The update text to evaluate (with the protocol's USING clauses); :class:`RefusedError` for
    what this endpoint does not run: LOAD in any form, SERVICE not allowed, two datasets."""
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
    if job.using or job.using_named:
        if info.names_update_dataset:
            raise RefusedError(
                400,
                "the update names its own dataset (USING or WITH) and the request names one too",
            )
        return add_using_clauses(job.text, info.tokens, list(job.using), list(job.using_named))
    return job.text


_PATH = re.compile(r"(?<![\w:/.])/(?:[\w.\-]+/)+[\w.\-]*")


def plain_message(err: BaseException) -> str:
    """An engine error's message without file paths of this machine."""
    return _PATH.sub("<path>", str(err.args[0]) if err.args else str(err))


def syntax_message(err: SyntaxError) -> str:
    """Oxigraph's ``error at LINE:COLUMN: ...`` as ``line L, column C: ...``."""
    message = plain_message(err)
    if message.startswith("error at ") and ": " in message:
        position, _, rest = message[len("error at ") :].partition(": ")
        line, _, column = position.partition(":")
        return f"line {line}, column {column}: {rest}"
    return message


__all__ = [
    "RefusedError",
    "check_services",
    "inspect_query",
    "inspect_update",
    "plain_message",
    "syntax_message",
]
