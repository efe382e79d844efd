"""The SPARQL endpoint's request path, on Starlette alone: what a server needs to answer the
SPARQL 1.1 Protocol (queries, updates, the service description) with its limits, headers, access
log and result cache, and nothing of the web application (FastAPI, the pages, the API).

``serve`` answers queries with it from its first moment, while the whole application is still
being built (see :mod:`escap_kg.boot`); the application routes /sparql to the same handler.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from escap_kg.cache import Collector, Entry, ResultCache, cacheable, matches
from escap_kg.engine import Answer, EngineError, QueryEngine, QueryJob, UpdateJob
from escap_kg.formats import RDF_FORMATS, media_type
from escap_kg.http import ABORT, DELIVERED
from escap_kg.iris import is_iri, prefixes
from escap_kg.queries import load_catalogue
from escap_kg.service import Engine, ProtocolError, State, cached_description, dataset_stats
from escap_kg.settings import Settings
from escap_kg.sparql import negotiate, parse_media_type

log = logging.getLogger("escap_kg.server")
access_log = logging.getLogger("escap_kg.access")


def new_state(settings: Settings, engine: Engine) -> State:
    """The state of a server over ``engine``: the catalogue, and the result cache over a local
    engine (an upstream store may change without this server knowing)."""
    # Our own graph alone, in memory: small enough for canonical downloads.
    canonical = isinstance(engine, QueryEngine) and not engine.on_disk and not settings.extra_files
    state = State(settings, engine, load_catalogue(settings), canonical_downloads=canonical)
    if isinstance(engine, QueryEngine):
        state.results = ResultCache(settings.cache_bytes)
    state.sparql_handler = sparql_handler(state)
    return state


def sparql_handler(state: State) -> Callable[[Request], Any]:
    """The handler of /sparql: a query, an update, or (GET without either) the service
    description or, for browsers, the query UI."""
    settings = state.settings

    async def sparql(request: Request) -> Response:
        op = await parse_operation(request, settings)
        if op.query is not None and op.update is not None:
            raise ProtocolError(400, "a request carries either a query or an update, not both")
        if op.update is not None:
            return await _run_update(request, state, op)
        if op.query is None:
            if request.method == "POST":
                raise ProtocolError(400, "no 'query' or 'update' in the request")
            return await _describe_service(request, state)
        return await _run_query(request, state, op)

    return sparql


FORM = "application/x-www-form-urlencoded"


SPARQL_QUERY = "application/sparql-query"


SPARQL_UPDATE = "application/sparql-update"


#: The media types of the service and dataset descriptions (rdflib writes each by that name);
#: for a browser, the service description is the query page.
DESCRIPTION_TYPES = [
    *(media_type(RDF_FORMATS[name]) for name in ("turtle", "jsonld", "xml", "nt")),
    "text/html",
]


def log_access(scope: Any, started: float, status: int, complete: bool, gone: bool) -> None:
    """The access log's line for a request (see :class:`AccessLog`), if the log is on."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    client = scope.get("client") or ("-", 0)
    elapsed = (time.perf_counter() - started) * 1000
    path = scope.get("path", "")
    if access_log.isEnabledFor(logging.DEBUG) and scope.get("query_string"):
        path += "?" + scope["query_string"].decode("latin-1")
    access_log.info(
        "%s %s %s %d %.1fms%s",
        client[0],
        scope["method"].translate(LOG_ESCAPES),
        path.translate(LOG_ESCAPES),
        status,
        elapsed,
        " incomplete: the connection closed before the whole request body arrived"
        if gone
        else ("" if complete else " incomplete"),
    )


#: Control characters as ``\\xNN``, for log lines.
LOG_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]}


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


# YASGUI sets style attributes from script, hence 'unsafe-inline' for styles only.
CONTENT_SECURITY_POLICY = (
    b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


async def sparql_response(state: State, scope: Any, receive: Any) -> Response:
    """The SPARQL handler's response to a request, its errors as plain-text answers."""
    assert state.sparql_handler is not None  # noqa: S101 - checked by the callers
    try:
        return await state.sparql_handler(Request(scope, receive))
    except (ProtocolError, EngineError) as exc:
        headers = exc.headers if isinstance(exc, ProtocolError) else {}
        return PlainTextResponse(exc.message + "\n", status_code=exc.status, headers=headers)


class SparqlEntry:
    """Requests to /sparql from clients that send no ``Origin`` (scripts, libraries, other
    endpoints: nearly all queries), answered before any of the application's middleware, with
    what those layers give every answer: the header limits (``431``), the security headers, the
    access log's line, and plain-text errors (``500`` for a fault of ours, logged). Each layer
    costs a closure and an await per message, a third of the time of a small query's request.

    A request with an ``Origin`` (a browser; CORS) takes the whole stack, where
    :class:`SparqlFastPath` answers it with the same handler.
    """

    def __init__(self, state: State) -> None:
        self.state = state

    def takes(self, scope: Any) -> bool:
        """Whether this request is one to answer here."""
        if scope["method"] not in ("GET", "POST") or self.state.sparql_handler is None:
            return False
        return all(name != b"origin" for name, _ in scope["headers"])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        status = 0
        complete = gone = False

        async def send_secured(message: Any) -> None:
            nonlocal status, complete
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": secured(message.get("headers", []))}
            elif not message.get("more_body"):
                complete = True
            await send(message)

        try:
            response = headers_too_large(scope["headers"])
            if response is None:
                response, receive = await self.recall(scope, receive)
            if response is None:
                response = await sparql_response(self.state, scope, receive)
            await response(scope, receive, send_secured)
        except ClientDisconnect:
            gone = True
        except Exception:
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if not status:
                failed = PlainTextResponse("internal error; it has been logged\n", status_code=500)
                await failed(scope, receive, send_secured)
        finally:
            log_access(scope, started, status, complete, gone)

    async def recall(self, scope: Any, receive: Any) -> tuple[Response | None, Any]:
        """The kept answer to a request whose very bytes (method, query string, body, and the
        Content-Type and Accept headers that say how to read them) were answered before at this
        version of the store, found without parsing it; else None, and the ``receive`` to read
        the request with (its body, if read here, is given again)."""
        cache, engine = self.state.results, self.state.engine
        if cache is None or not cache.enabled or not isinstance(engine, QueryEngine):
            return None, receive
        fields = dict(reversed(scope["headers"]))  # the first of repeated fields, as Request
        body = b""
        if scope["method"] == "POST":
            declared = fields.get(b"content-length", b"")
            if not declared.isdigit() or int(declared) > self.state.settings.max_body_bytes:
                return None, receive
            body = await read_all(receive)
            receive = replay(body, receive)
        raw = (
            scope["method"],
            scope["query_string"],
            body,
            fields.get(b"content-type"),
            fields.get(b"accept"),
        )
        scope[RAW_REQUEST] = raw
        entry = cache.recall(await engine.refresh(), raw)
        if entry is None:
            return None, receive
        return kept_answer(
            entry, VARY_ACCEPT, scope["method"], fields.get(b"if-none-match")
        ), receive


#: The scope key under which :class:`SparqlEntry` leaves a request's bytes, so that its answer,
#: once kept, can be recalled by them.
RAW_REQUEST = "escap_kg.raw_request"


VARY_ACCEPT = [(b"vary", b"Accept")]


async def read_all(receive: Any) -> bytes:
    """A request body of a declared length (within the limit), straight from the server."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def replay(body: bytes, receive: Any) -> Any:
    """A ``receive`` that gives ``body`` (already read) first, then what the server says."""
    given = False

    async def again() -> Any:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


def kept_answer(
    entry: Entry, fields: list[tuple[bytes, bytes]], method: str, if_none_match: bytes | None
) -> Whole:
    """A kept answer with these header fields besides its own, or ``304`` to a GET whose
    ``If-None-Match`` names it."""
    if (
        method == "GET"
        and if_none_match is not None
        and matches(if_none_match.decode("latin-1"), entry.etag)
    ):
        return Whole(304, [*fields, (b"etag", entry.etag.encode("ascii"))])
    return Whole(200, [*entry.fields, *fields], entry.body)


class Whole(Response):
    """A whole answer whose header fields are ready (an answer kept in the result cache): sent
    as it is, with nothing built per request."""

    def __init__(self, status: int, fields: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        self.status_code = status
        self.raw_headers = fields
        self.body = body
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body})


#: Largest total size of a request's headers, and most header fields, we answer.
MAX_HEADER_BYTES = 16 * 1024


MAX_HEADER_FIELDS = 100


def headers_too_large(headers: Any) -> Response | None:
    """The ``431`` answer to request header fields over the limits, or None."""
    if len(headers) <= MAX_HEADER_FIELDS and (
        sum(len(k) + len(v) + 4 for k, v in headers) <= MAX_HEADER_BYTES
    ):
        return None
    message = (
        f"request headers too large: at most {MAX_HEADER_FIELDS} fields and "
        f"{MAX_HEADER_BYTES:,} bytes\n"
    )
    return PlainTextResponse(message, status_code=431)


#: The security headers with the policy, as most responses get them.
SECURED = (*SECURITY_HEADERS, (b"content-security-policy", CONTENT_SECURITY_POLICY))


def secured(headers: Any) -> list[tuple[bytes, bytes]]:
    """A response's header fields with the security headers added (see :class:`SecurityHeaders`)."""
    # A response with a policy of its own (the reconciliation preview, shown in OpenRefine's
    # frame) keeps it, and may be framed.
    if not any(k.lower() == b"content-security-policy" for k, _ in headers):
        return [*headers, *SECURED]
    return [*headers, *(h for h in SECURITY_HEADERS if h[0] != b"x-frame-options")]


class AnswerStream(StreamingResponse):
    """A large answer, streamed; one that fails half way is cut off visibly.

    Once the first bytes have gone the status cannot change any more. If the answer then
    passes the size limit, runs out of time, or its worker dies, the response ends without
    its last chunk: the server closes the connection, and every HTTP client reports an
    incomplete body (curl exits with 18, httpx raises ``RemoteProtocolError``) instead of
    taking the part it got for the whole answer. The log says why, in one line.
    """

    deadline: float = 0.0
    send_timeout: float = 20.0
    time_limit: float = 0.0
    #: Bytes handed to the server per send: a client that reads at all finishes each one well
    #: within the send timeout, however slowly it reads.
    piece = 32 * 1024

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        extensions = scope.get("extensions") or {}
        self._abort: Callable[[], None] | None = extensions.get(ABORT)
        self._delivered: Callable[[], int | None] = extensions.get(DELIVERED) or (lambda: None)
        await super().__call__(scope, receive, send)

    async def stream_response(self, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        sent = 0
        try:
            async for chunk in self.body_iterator:
                for start in range(0, len(chunk), self.piece):
                    piece = chunk[start : start + self.piece]
                    await self._send_within_limits(
                        send, {"type": "http.response.body", "body": piece, "more_body": True}
                    )
                    sent += len(piece)
        except EngineError as err:
            log.warning(
                "answer cut off after %s bytes, connection closed: %s", f"{sent:,}", err.message
            )
            if isinstance(err, UndeliveredError) and self._abort is not None:
                # The client is not keeping up: what the kernel holds for it is dropped too.
                # (Otherwise the connection closes once what was sent has been delivered.)
                self._abort()
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_within_limits(self, send: Any, message: Any) -> None:
        """Send, or give up on a client that has taken nothing for the send timeout or whose
        answer has run out of its time limit (its connection is then reset).

        Progress is what the client's TCP stack acknowledges, not what the kernel accepts
        from us: a slow reader behind a large send buffer still reads, and is kept.
        """
        sending = asyncio.ensure_future(send(message))
        progress = self._delivered()
        try:
            while True:
                limit = self.send_timeout
                if self.deadline:
                    limit = min(limit, self.deadline - time.monotonic())
                done, _ = await asyncio.wait({sending}, timeout=max(limit, 0.0))
                if done:
                    sending.result()
                    return
                if self.deadline and time.monotonic() >= self.deadline:
                    raise UndeliveredError(
                        503,
                        "the answer was not delivered within the time limit of "
                        f"{self.time_limit:g} s",
                    )
                now = self._delivered()
                if now is None or now == progress:
                    raise UndeliveredError(
                        503, f"the client read nothing for {self.send_timeout:g} s"
                    )
                progress = now
        finally:
            if not sending.done():
                sending.cancel()


class UndeliveredError(EngineError):
    """An answer the client did not take in time (send timeout or time limit)."""


def answer_response(
    answer: Answer,
    media_type: str,
    headers: dict[str, str],
    settings: Settings | None = None,
    keep: Collector | None = None,
) -> Response:
    """A small answer whole; a large one streamed from its spool, within the time limit (and
    given to ``keep`` as it goes, to be kept once it has ended)."""
    if answer.rest is None:
        return Response(answer.body, media_type=media_type, headers=headers)
    rest = answer.rest

    async def chunks() -> AsyncIterator[bytes]:
        try:
            if keep is not None:
                keep.add(answer.body)
            yield answer.body
            async for chunk in rest:
                if keep is not None:
                    keep.add(chunk)
                yield chunk
            if keep is not None:
                keep.done()
        finally:
            if keep is not None:
                keep.drop()

    stream = AnswerStream(chunks(), media_type=media_type, headers=headers)
    stream.deadline = answer.deadline
    if settings is not None:
        stream.send_timeout = settings.send_timeout
        stream.time_limit = settings.query_timeout
    return stream


@dataclass
class Operation:
    """A parsed protocol request: the query or update and its dataset parameters."""

    query: str | None = None
    update: str | None = None
    params: dict[str, list[str]] = field(default_factory=dict)

    def graphs(self, name: str) -> list[str]:
        values = self.params.get(name, [])
        for value in values:
            if not is_iri(value):
                raise ProtocolError(400, f"{name}: {value!r} is not an absolute IRI")
        return values


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProtocolError(413, f"the request body is larger than the limit of {limit:,} bytes")
    chunks, size = [], 0
    receive = request.receive
    while True:
        # Read from the server directly: no generator per request, as Request.stream() makes.
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ProtocolError(
                413, f"the request body is larger than the limit of {limit:,} bytes"
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ProtocolError(
            400, f"the {what} is not valid UTF-8 (byte {err.start}); SPARQL requests are UTF-8"
        ) from None


#: Most parameters a query string or form body may have (the protocol needs a handful).
MAX_PARAMETERS = 1000


def parse_pairs(text: str, what: str) -> dict[str, list[str]]:
    # Counted before parsing, so a body of many empty pairs costs no time on the event loop.
    if text.count("&") + text.count(";") >= MAX_PARAMETERS:
        raise ProtocolError(
            400, f"the {what} has more than {MAX_PARAMETERS:,} parameters; send at most that many"
        )
    try:
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise ProtocolError(
            400, f"the {what} has percent-encoded bytes that are not UTF-8"
        ) from None
    params: dict[str, list[str]] = {}
    for key, value in pairs:
        params.setdefault(key, []).append(value)
    return params


def query_string(request: Request) -> str:
    """The request's query string, as it came (``request.url.query`` builds the whole URL)."""
    try:
        return str(request.scope.get("query_string", b"").decode())
    except UnicodeDecodeError:
        raise ProtocolError(
            400, "the query string has bytes that are not UTF-8; percent-encode them"
        ) from None


async def parse_operation(request: Request, settings: Settings) -> Operation:
    """Read a SPARQL protocol request (GET, POST form, POST direct) into an :class:`Operation`."""
    url_params = parse_pairs(query_string(request), "query string")
    if request.method == "GET":
        if "update" in url_params:
            raise ProtocolError(400, "a SPARQL update must be sent with POST, not GET")
        return _single(Operation(params=url_params))
    media, options = parse_media_type(request.headers.get("content-type"))
    charset = options.get("charset", "utf-8")
    if media in (FORM, SPARQL_QUERY, SPARQL_UPDATE) and charset not in ("utf-8", "utf8"):
        raise ProtocolError(400, f"charset {charset!r} is not supported; send UTF-8")
    if media == FORM:
        body = _decode(await read_body(request, settings.max_body_bytes), "request body")
        params = parse_pairs(body, "form body")
        for key, values in url_params.items():
            params.setdefault(key, []).extend(values)
        return _single(Operation(params=params))
    if media == SPARQL_QUERY:
        text = _decode(await read_body(request, settings.max_body_bytes), "query")
        if "query" in url_params or "update" in url_params:
            raise ProtocolError(400, "the query is in the body; do not repeat it in the URL")
        return Operation(query=text, params=url_params)
    if media == SPARQL_UPDATE:
        text = _decode(await read_body(request, settings.max_body_bytes), "update")
        if "query" in url_params or "update" in url_params:
            raise ProtocolError(400, "the update is in the body; do not repeat it in the URL")
        return Operation(update=text, params=url_params)
    shown = media or "no Content-Type"
    raise ProtocolError(
        415,
        f"unsupported request type ({shown}); POST {FORM}, {SPARQL_QUERY} or {SPARQL_UPDATE}",
    )


def _single(op: Operation) -> Operation:
    queries = op.params.pop("query", [])
    updates = op.params.pop("update", [])
    if len(queries) > 1:
        raise ProtocolError(400, "more than one 'query' parameter; send exactly one")
    if len(updates) > 1:
        raise ProtocolError(400, "more than one 'update' parameter; send exactly one")
    op.query = queries[0] if queries else None
    op.update = updates[0] if updates else None
    return op


def _query_job(request: Request, state: State, op: Operation, text: str) -> QueryJob:
    """The job for a protocol query: the worker inspects the text and negotiates the type."""
    default_graphs = op.graphs("default-graph-uri")
    named_graphs = op.graphs("named-graph-uri")
    protocol_dataset = bool(default_graphs or named_graphs)
    return QueryJob(
        text=text,
        accept=request.headers.get("accept"),
        base_iri=state.settings.base_iri,
        default_graphs=tuple(default_graphs) if protocol_dataset else None,
        named_graphs=tuple(named_graphs) if protocol_dataset else None,
        max_bytes=state.settings.max_result_bytes,
        allowed_services=state.settings.service_allowlist,
    )


async def _run_query(request: Request, state: State, op: Operation) -> Response:
    assert op.query is not None  # noqa: S101 - checked by the caller
    job = _query_job(request, state, op, op.query)
    return await answer_query(request, state, job, lambda media: {"Vary": "Accept"})


async def answer_query(
    request: Request,
    state: State,
    job: QueryJob,
    headers: Callable[[str], dict[str, str]],
) -> Response:
    """A query's answer, with ``headers(media type)``: from the result cache when the same
    request was answered at this version of the store, and ``304`` to a GET whose
    ``If-None-Match`` names it. A large answer streams; it is kept once it has ended, if it fits
    (see :meth:`ResultCache.collector`), and tagged from then on."""
    engine, cache = state.engine, state.results
    timeout = state.settings.query_timeout
    if cache is None or not isinstance(engine, QueryEngine):
        answer = await engine.query(job, timeout)
        return answer_response(
            answer, answer.media_type, headers(answer.media_type), state.settings
        )
    generation = await engine.refresh()
    # Looked up first: only answers that may be kept are ever there.
    entry = cache.get(generation, job)
    if entry is None:
        answer = await engine.query(job, timeout)
        chosen = headers(answer.media_type)
        if not cacheable(job.text):
            return answer_response(answer, answer.media_type, chosen, state.settings)
        if answer.rest is not None:
            keep = cache.collector(generation, job, answer.media_type)
            return answer_response(answer, answer.media_type, chosen, state.settings, keep)
        entry = cache.put(generation, job, answer.body, answer.media_type)
    else:
        chosen = headers(entry.media_type)
    raw = request.scope.get(RAW_REQUEST)
    if raw is not None:
        cache.alias(raw, job)
    fields = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in chosen.items()]
    if_none_match = request.headers.get("if-none-match")
    return kept_answer(
        entry,
        fields,
        request.method,
        None if if_none_match is None else if_none_match.encode("latin-1"),
    )


async def _run_update(request: Request, state: State, op: Operation) -> Response:
    assert op.update is not None  # noqa: S101 - checked by the caller
    _authorise(request, state.settings)
    job = UpdateJob(
        op.update,
        base_iri=state.settings.base_iri,
        using=tuple(op.graphs("using-graph-uri")),
        using_named=tuple(op.graphs("using-named-graph-uri")),
        allowed_services=state.settings.service_allowlist,
    )
    await state.engine.update(job, state.settings.query_timeout)
    return Response(status_code=204)


def _authorise(request: Request, settings: Settings) -> None:
    if settings.update_token is None:
        raise ProtocolError(
            403, "updates are disabled on this endpoint (start it with an update token)"
        )
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials:
        raise ProtocolError(
            401,
            "an update needs 'Authorization: Bearer <token>'",
            {"WWW-Authenticate": 'Bearer realm="escap-kg"'},
        )
    if not hmac.compare_digest(credentials.strip().encode(), settings.update_token.encode()):
        raise ProtocolError(403, "the update token is not valid")


async def _describe_service(request: Request, state: State) -> Response:
    chosen = negotiate(request.headers.get("accept"), list(DESCRIPTION_TYPES))
    if chosen is None:
        raise ProtocolError(
            406, f"the service description is available as {', '.join(DESCRIPTION_TYPES)}"
        )
    if chosen == "text/html":
        return _query_ui(request, state)
    endpoint = str(request.url.replace(query="", fragment=""))

    async def write() -> bytes:
        # rdflib-endpoint builds the description; about 25-30 ms of rdflib work, so it runs off
        # the event loop, once per version of the store, URL and media type.
        from escap_kg.void import service_description

        stats = await dataset_stats(state)

        def build() -> bytes:
            graph = service_description(
                stats.graphs, state.settings, endpoint, request_base(request)
            )
            return graph.serialize(format=chosen, encoding="utf-8")

        return await asyncio.to_thread(build)

    body = await cached_description(state, "service", endpoint, chosen, write)
    return Response(body, media_type=chosen, headers={"Vary": "Accept"})


def _query_ui(request: Request, state: State) -> Response:
    from escap_kg.ui import catalogue_examples, render_query_ui

    page = render_query_ui(
        title="SPARQL endpoint",
        endpoint="/sparql",
        static="/static",
        examples=catalogue_examples(state.catalogue, state.settings.service_allowlist),
        prefixes=prefixes(state.settings.base_iri),
        base_iri=state.settings.base_iri,
    )
    return Response(page, media_type="text/html", headers={"Vary": "Accept"})


def request_base(request: Request) -> str:
    """The server's own base URL as the client sees it, without a trailing slash."""
    return str(request.base_url).rstrip("/")


async def start_engine(engine: Engine) -> None:
    """Start the engine, saying whether the query workers run under the network guard."""
    await engine.start()
    if isinstance(engine, QueryEngine):
        log.info("kernel network guard for the query workers: %s", engine.guard)
