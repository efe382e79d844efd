"""The HTTP service: ``create_app(settings)`` builds the FastAPI application."""

from __future__ import annotations

import asyncio
import gc
import gzip
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response
from fastapi import Query as QueryParam
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import PlainTextResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from escap_kg import __version__, entailment
from escap_kg.cache import Collector, Entry, ResultCache, cacheable, matches
from escap_kg.engine import (
    Answer,
    DumpJob,
    EngineError,
    ExportJob,
    QueryEngine,
    QueryJob,
    UpdateJob,
    build_engine,
)
from escap_kg.export import EXPORT_FORMATS, ExportFormat
from escap_kg.formats import RDF_FORMATS, RESULT_FORMATS, media_type
from escap_kg.http import ABORT, DELIVERED
from escap_kg.iris import is_iri, prefixes
from escap_kg.pages import add_page_routes
from escap_kg.queries import load_catalogue
from escap_kg.reconcile_api import add_reconcile_routes
from escap_kg.search import MAX_LIMIT
from escap_kg.service import (
    Download,
    Engine,
    ProtocolError,
    SearchHit,
    State,
    cached_description,
    dataset_stats,
    search_hits,
)
from escap_kg.settings import Settings
from escap_kg.sparql import negotiate, parse_media_type, scan
from escap_kg.store import KnowledgeGraph

if TYPE_CHECKING:
    pass

log = logging.getLogger("escap_kg.server")
access_log = logging.getLogger("escap_kg.access")

FORM = "application/x-www-form-urlencoded"
SPARQL_QUERY = "application/sparql-query"
SPARQL_UPDATE = "application/sparql-update"
#: The media types of the service and dataset descriptions (rdflib writes each by that name);
#: for a browser, the service description is the query page.
DESCRIPTION_TYPES = [
    *(media_type(RDF_FORMATS[name]) for name in ("turtle", "jsonld", "xml", "nt")),
    "text/html",
]
#: The ``_format`` values of the catalogue API, and the media type each asks for.
FORMAT_PARAMETER = {
    **{name: media_type(fmt) for name, fmt in RESULT_FORMATS.items()},
    **{name: media_type(RDF_FORMATS[name]) for name in ("turtle", "nt", "jsonld")},
}
DOWNLOADS = {spec.suffix.lstrip("."): spec for spec in EXPORT_FORMATS.values()}


def create_app(
    settings: Settings | None = None,
    kg: KnowledgeGraph | None = None,
    engine: Engine | None = None,
) -> FastAPI:
    """The application: over ``engine`` if given (an upstream store), else over worker processes
    holding ``kg`` in memory (loaded from ``settings`` when not given) or, with
    ``settings.database``, sharing that on-disk store.

    Nothing starts until the application's lifespan begins: then the engine starts, and it stops
    when the lifespan ends.
    """
    settings = settings or Settings.from_env()
    catalogue = load_catalogue(settings)
    if engine is None:
        # The graph goes to the engine's zygote as N-Quads; this process keeps no copy.
        in_memory = None if settings.database is not None else kg or KnowledgeGraph.load(settings)
        engine = build_engine(settings, in_memory).engine
        kg = in_memory = None
    # Our own graph alone, in memory: small enough for canonical downloads.
    canonical = isinstance(engine, QueryEngine) and not engine.on_disk and not settings.extra_files
    state = State(settings, engine, catalogue, canonical_downloads=canonical)
    if isinstance(engine, QueryEngine):
        # Not over an upstream store: it may change without this server knowing.
        state.results = ResultCache(settings.cache_bytes)
    running = engine

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await running.start()
        if isinstance(running, QueryEngine):
            log.info("kernel network guard for the query workers: %s", running.guard)
        announce = getattr(app.state, "on_ready", None)
        if announce is not None:
            announce()
        # What is loaded by now (the graph, the catalogue, the framework) stays for the life of
        # the server: move it out of the garbage collector's sight. A full collection over it
        # took about 100 ms, a pause every request in flight felt. (No collection first: it
        # would add 50-100 ms to the start to free about 20 objects.)
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            await running.close()

    app = Application(
        title="escap-kg",
        summary="SPARQL endpoint and query catalogue of ESCAP's work on international migration",
        version=__version__,
        lifespan=lifespan,
        license_info={"name": "CC BY 4.0 (data), MIT (code)"},
        # Served below from our own static files: FastAPI's pages load Swagger UI from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.escap = state
    # Middleware added first runs innermost: the SPARQL fast path sits inside CORS.
    app.add_middleware(ConditionalPages, state=state)
    app.add_middleware(SparqlFastPath, state=state)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_credentials=False,
        allow_methods=["GET", "POST"],
        allow_headers=["Accept", "Content-Type", "Authorization"],
        max_age=3600,
    )
    app.add_middleware(HeaderLimits)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AccessLog)
    app.sparql_entry = SparqlEntry(state)
    _install_error_handlers(app)
    app.mount("/static", StaticFiles(packages=[("escap_kg", "static")]), name="static")
    _add_sparql_routes(app, state)
    _add_api_routes(app, state)
    _add_search_route(app, state)
    add_reconcile_routes(app, state)
    _add_download_routes(app, state)
    add_page_routes(app, state)
    return app


class AccessLog:
    """One log line per request: client, method, path, status and duration, and ``incomplete``
    when the response did not end (an answer cut off while streaming, or a client gone).

    The query string (which holds the query text of a GET) is logged only at DEBUG level.
    Control characters in the method and path are escaped (``\\x0a``), so that a request is
    always one line. A client that leaves before sending its whole request body gets this one
    line, saying so, rather than an error with a traceback.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        complete = False
        gone = False

        async def send_and_note(message: Any) -> None:
            nonlocal status, complete
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                complete = True
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except ClientDisconnect:
            gone = True
        finally:
            log_access(scope, started, status, complete, gone)


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


class SparqlFastPath:
    """Hands requests to /sparql straight to the SPARQL handler, past the framework's routing,
    exception and dependency layers: the hot path of a query endpoint for browsers (the requests
    :class:`SparqlEntry` leaves to the whole stack, for CORS). Errors become the same plain-text
    answers the routed handler gives; everything else goes on to the application."""

    def __init__(self, app: Any, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != "/sparql"
            or scope["method"] not in ("GET", "POST")
            or self.state.sparql_handler is None
        ):
            await self.app(scope, receive, send)
            return
        response = await sparql_response(self.state, scope, receive)
        await response(scope, receive, send)


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


class Application(FastAPI):
    """The FastAPI application, with requests to /sparql that need no CORS handed to its
    :class:`SparqlEntry` (set by :func:`create_app`) before any middleware."""

    sparql_entry: SparqlEntry | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry = self.sparql_entry
        if (
            entry is not None
            and scope["type"] == "http"
            and scope["path"] == "/sparql"
            and entry.takes(scope)
        ):
            scope["app"] = self
            await entry(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


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


class ConditionalPages:
    """Entity tags on the pages and the catalogue API, and ``304`` to a GET whose
    ``If-None-Match`` names the current one, before any work.

    What those answer depends on the store's version and the request alone, so the tag is
    derived from these (weak: the same page, not necessarily the same bytes), never from the
    body: a matching request costs no query. A per-start token in the tag keeps a restart over
    other data from matching a tag of the last run. /sparql, the static files and the
    downloads have strong tags of their own.
    """

    #: Request headers an answer may vary with.
    VARY = (b"accept", b"accept-encoding", b"accept-language", b"host")
    OWN_TAGS = ("/sparql", "/static/", "/download/")

    def __init__(self, app: Any, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        cache, engine = self.state.results, self.state.engine
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or cache is None
            or not isinstance(engine, QueryEngine)
            or scope["path"].startswith(self.OWN_TAGS)
        ):
            await self.app(scope, receive, send)
            return
        generation = await engine.refresh()
        headers = dict(scope.get("headers", []))
        digest = hashlib.blake2b(digest_size=12, key=cache.token)
        digest.update(f"{generation}\0{__version__}\0{scope['path']}\0".encode())
        digest.update(scope.get("query_string", b""))
        for name in self.VARY:
            digest.update(b"\0" + headers.get(name, b""))
        tag = f'W/"{digest.hexdigest()}"'
        if_none_match = headers.get(b"if-none-match")
        if if_none_match is not None and matches(if_none_match.decode("latin-1"), tag):
            await Response(status_code=304, headers={"ETag": tag})(scope, receive, send)
            return

        async def send_tagged(message: Any) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                names = {k.lower() for k, _ in message.get("headers", [])}
                if b"etag" not in names:
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), (b"etag", tag.encode())],
                    }
            await send(message)

        await self.app(scope, receive, send_tagged)


#: Largest total size of a request's headers, and most header fields, we answer.
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADER_FIELDS = 100


class HeaderLimits:
    """Refuses requests whose headers are too large or too many with 431, before any work."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refusal = headers_too_large(scope.get("headers", []))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


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


class SecurityHeaders:
    """Headers on every response: no MIME sniffing, no referrer, no framing, and a
    Content-Security-Policy that allows only this server's own scripts and styles."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": secured(message.get("headers", []))}
            await send(message)

        await self.app(scope, receive, send_with_headers)


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


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProtocolError)
    async def protocol_error(request: Request, exc: ProtocolError) -> Response:
        return PlainTextResponse(exc.message + "\n", status_code=exc.status, headers=exc.headers)

    @app.exception_handler(EngineError)
    async def engine_error(request: Request, exc: EngineError) -> Response:
        return PlainTextResponse(exc.message + "\n", status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        return PlainTextResponse(f"{exc.detail}\n", status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return PlainTextResponse(f"bad request: {problems}\n", status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return PlainTextResponse("internal error; it has been logged\n", status_code=500)


# The SPARQL protocol ----------------------------------------------------------------------------


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


def _parse_pairs(text: str, what: str) -> dict[str, list[str]]:
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
    url_params = _parse_pairs(query_string(request), "query string")
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
        params = _parse_pairs(body, "form body")
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


def _add_sparql_routes(app: FastAPI, state: State) -> None:
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

    state.sparql_handler = sparql
    for method in ("GET", "POST"):
        app.add_api_route(
            "/sparql",
            sparql,
            methods=[method],
            name=f"sparql-{method.lower()}",
            summary="SPARQL 1.1 endpoint (query, update, service description, query UI)",
            description=(
                "The SPARQL 1.1 Protocol: `query` by GET, POST form or POST "
                "`application/sparql-query`; `update` by POST form or `application/sparql-update` "
                "with `Authorization: Bearer <token>`. Without a query: the service description "
                "(Turtle, JSON-LD, RDF/XML) or, for browsers, the query UI."
            ),
            response_class=Response,
        )

    @app.get("/docs", include_in_schema=False)
    async def api_docs() -> Response:
        page = (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            "<title>escap-kg API</title>"
            '<link rel="icon" href="data:,">'
            '<link rel="stylesheet" href="/static/swagger/swagger-ui.css">'
            '<link rel="stylesheet" href="/static/swagger/docs.css"></head>'
            '<body><div id="swagger-ui" data-openapi="/openapi.json"></div>'
            '<script src="/static/swagger/swagger-ui-bundle.js"></script>'
            '<script src="/static/swagger/init.js"></script></body></html>'
        )
        return Response(page, media_type="text/html")


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
    return await _answer(request, state, job, lambda media: {"Vary": "Accept"})


async def _answer(
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


# The catalogue as an API ------------------------------------------------------------------------


def _add_api_routes(app: FastAPI, state: State) -> None:
    by_id = {q.id: q for q in state.catalogue}

    @app.get("/api/queries", summary="The query catalogue", tags=["catalogue"])
    async def list_queries(request: Request) -> list[dict[str, Any]]:
        """Every catalogue query: its id, the question it answers, its parameters and link."""
        base = request_base(request)
        return [
            {
                "id": q.id,
                "question": q.summary,
                "link": f"{base}/api/queries/{q.id}",
                "parameters": [
                    {"name": p.name, "kind": p.kind, "description": p.description} for p in q.params
                ],
            }
            for q in state.catalogue
        ]

    @app.get(
        "/api/queries/{query_id}",
        summary="Run a catalogue query",
        tags=["catalogue"],
        response_class=Response,
        responses={
            200: {
                "content": {
                    "application/sparql-results+json": {},
                    "text/csv": {},
                    "text/tab-separated-values": {},
                    "application/sparql-results+xml": {},
                    "text/turtle": {},
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {},
                },
                "description": "The answer, in the type the Accept header (or `_format`) asks for.",
            },
            404: {"description": "No such query"},
        },
    )
    async def run_query(request: Request, query_id: str) -> Response:
        """Run one catalogue query. Its declared parameters are given as `?name=value` and bound as
        RDF terms (never pasted into the query text). `_format=csv|tsv|json|xml` overrides the
        Accept header, for spreadsheets that cannot set one; `_format=xlsx` gives an Excel
        workbook (IRIs as hyperlinks, dates as dates)."""
        query = by_id.get(query_id)
        if query is None:
            raise ProtocolError(404, f"no catalogue query {query_id!r}; see /api/queries")
        params = _parse_pairs(request.url.query, "query string")
        fmt = params.pop("_format", [None])[-1]
        declared = {p.name: p for p in query.params}
        bindings: dict[str, tuple[str, str]] = {}
        for name, values in params.items():
            if name not in declared:
                known = ", ".join(sorted(declared)) or "none"
                raise ProtocolError(
                    400, f"query {query_id} has no parameter {name!r} (parameters: {known})"
                )
            if len(values) != 1:
                raise ProtocolError(400, f"give parameter {name!r} once")
            value = values[0]
            if declared[name].kind == "iri" and not is_iri(value):
                raise ProtocolError(400, f"parameter {name!r}: {value!r} is not an absolute IRI")
            bindings[name] = (declared[name].kind, value)
        accept = request.headers.get("accept")
        if fmt is not None:
            choices = [*FORMAT_PARAMETER, "xlsx"]
            if fmt not in choices:
                raise ProtocolError(400, f"_format must be one of {', '.join(choices)}")
            if fmt == "xlsx":
                if scan(query.text).form in ("CONSTRUCT", "DESCRIBE"):
                    raise ProtocolError(
                        406, f"query {query_id} gives a graph; a workbook holds tables (try turtle)"
                    )
                accept = FORMAT_PARAMETER["json"]  # made into a workbook below
            else:
                accept = FORMAT_PARAMETER[fmt]
        job = QueryJob(
            text=query.text,
            accept=accept,
            base_iri=state.settings.base_iri,
            max_bytes=state.settings.max_result_bytes,
            bindings=tuple(sorted(bindings.items())),
            allowed_services=state.settings.service_allowlist,
        )
        if fmt == "xlsx":
            return await _workbook(
                await state.engine.query(job, state.settings.query_timeout), query_id
            )

        def headers(chosen: str) -> dict[str, str]:
            headers = {"Vary": "Accept"}
            if chosen in ("text/csv", "text/tab-separated-values"):
                suffix = "csv" if chosen == "text/csv" else "tsv"
                headers["Content-Disposition"] = f'inline; filename="{query_id}.{suffix}"'
            return headers

        return await _answer(request, state, job, headers)


async def _workbook(answer: Answer, query_id: str) -> Response:
    """A catalogue answer as an Excel workbook, made off the event loop."""
    from escap_kg.xlsx import XLSX_MEDIA_TYPE, results_to_xlsx

    body = await asyncio.to_thread(results_to_xlsx, await answer.read(), query_id)
    headers = {"Content-Disposition": f'attachment; filename="{query_id}.xlsx"'}
    return Response(body, media_type=XLSX_MEDIA_TYPE, headers=headers)


# Full-text search -------------------------------------------------------------------------------


def _add_search_route(app: FastAPI, state: State) -> None:
    @app.get(
        "/api/search",
        summary="Full-text search",
        tags=["catalogue"],
        response_model=list[SearchHit],
        responses={
            400: {"description": "No word to search for"},
            501: {"description": "The server reads an upstream store: it has no search index"},
            503: {"description": "The store has no search index (reload it with escap-kg load)"},
        },
    )
    async def search(
        q: Annotated[
            str, QueryParam(description="Words that must all appear (any text is accepted)")
        ],
        limit: Annotated[int, QueryParam(ge=1, le=MAX_LIMIT, description="Results at most")] = 20,
        kind: Annotated[
            list[str] | None,
            QueryParam(description="Only resources of these kinds (e.g. Finding); repeatable"),
        ] = None,
    ) -> list[dict[str, Any]]:
        """Resources whose literals (names, statements, descriptions...) contain every word of
        `q`, best first (BM25), each with its kind and a snippet of the matching text."""
        return await search_hits(state, q, limit, kind or ())


# Downloads and the dataset description ----------------------------------------------------------


def _add_download_routes(app: FastAPI, state: State) -> None:
    @app.get(
        "/download/escap-kg.{suffix}",
        summary="Download the whole graph",
        tags=["downloads"],
        response_class=Response,
    )
    async def download(request: Request, suffix: str) -> Response:
        """The ontology, themes and data in one file: ttl, nt, nq, trig, jsonld or rdf."""
        spec = DOWNLOADS.get(suffix)
        if spec is None:
            raise ProtocolError(
                404, f"no download escap-kg.{suffix}; try {', '.join(sorted(DOWNLOADS))}"
            )
        item = await _cached_download(state, spec)
        if item is None:
            return await _stream_download(state, spec, suffix)
        headers = {
            "ETag": item.etag,
            "Content-Disposition": f'attachment; filename="escap-kg.{suffix}"',
            "Vary": "Accept-Encoding",
            "Cache-Control": "public, max-age=300",
        }
        if item.etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", "").lower():
            headers["Content-Encoding"] = "gzip"
            return Response(item.gzipped, media_type=spec.media_type, headers=headers)
        return Response(item.body, media_type=spec.media_type, headers=headers)

    @app.get(
        "/.well-known/void",
        summary="VoID and DCAT description of the dataset",
        tags=["downloads"],
        response_class=Response,
    )
    async def void(request: Request) -> Response:
        """Triples, classes, links to other datasets, licence, downloads and the endpoint."""
        offers = [t for t in DESCRIPTION_TYPES if t != "text/html"]
        chosen = negotiate(request.headers.get("accept"), offers)
        if chosen is None:
            raise ProtocolError(406, f"the description is available as {', '.join(offers)}")
        base = request_base(request)

        async def write() -> bytes:
            from escap_kg.void import describe_dataset

            stats = await dataset_stats(state)
            sizes = {}
            for spec in EXPORT_FORMATS.values():
                item = await _cached_download(state, spec)
                if item is not None:
                    sizes[spec.name] = len(item.body)

            def build() -> bytes:
                graph = describe_dataset(stats, state.settings, base, sizes)
                return graph.serialize(format=chosen, encoding="utf-8")

            return await asyncio.to_thread(build)

        body = await cached_description(state, "dataset", base, chosen, write)
        return Response(body, media_type=chosen, headers={"Vary": "Accept"})


async def _cached_download(state: State, spec: ExportFormat) -> Download | None:
    """The whole graph in ``spec``'s format, written once per version of the store; ``None``
    when the store is too big to hold here and its downloads are streamed."""
    engine = state.engine
    if not state.canonical_downloads or not isinstance(engine, QueryEngine):
        return None
    key = (spec.name, state.generation)
    item = state.downloads.get(key)
    if item is None:
        job = ExportJob(spec.name, state.settings.base_iri)
        body = await engine.export(job, max(state.settings.query_timeout, 300.0))
        item = Download(
            body,
            gzip.compress(body, mtime=0),
            '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        )
        state.downloads = {k: v for k, v in state.downloads.items() if k[1] == state.generation}
        state.downloads[key] = item
    return item


async def _stream_download(state: State, spec: ExportFormat, suffix: str) -> Response:
    """A download of a store too big to hold here, streamed from a worker as it is written."""
    engine = state.engine
    timeout = max(state.settings.query_timeout, 3600.0)
    if spec.name in ("nquads", "trig", "nt") and isinstance(engine, QueryEngine):
        answer = await engine.dump(DumpJob(spec.name), timeout)
    else:
        graph_format = {"turtle": "turtle", "nt": "nt", "jsonld": "jsonld", "xml": "xml"}
        if spec.name not in graph_format:
            raise ProtocolError(404, f"escap-kg.{suffix} is not available from this server")
        job = QueryJob(
            f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ {entailment.stated()} }}",
            graph_format[spec.name],
            base_iri=state.settings.base_iri,
        )
        answer = await engine.query(job, timeout)
    headers = {"Content-Disposition": f'attachment; filename="escap-kg.{suffix}"'}
    return answer_response(answer, spec.media_type, headers)


__all__ = ["Engine", "ProtocolError", "answer_response", "create_app"]
