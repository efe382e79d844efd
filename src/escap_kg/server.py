"""The HTTP service: ``create_app(settings)`` builds the FastAPI application."""

from __future__ import annotations

import asyncio
import gc
import gzip
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Request, Response
from fastapi import Query as QueryParam
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import PlainTextResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from escap_kg import __version__, entailment
from escap_kg.cache import matches
from escap_kg.endpoint import (
    DESCRIPTION_TYPES,
    SparqlEntry,
    answer_query,
    answer_response,
    headers_too_large,
    log_access,
    new_state,
    parse_pairs,
    request_base,
    secured,
    sparql_response,
    start_engine,
)
from escap_kg.engine import (
    Answer,
    DumpJob,
    EngineError,
    ExportJob,
    QueryEngine,
    QueryJob,
    build_engine,
)
from escap_kg.export import EXPORT_FORMATS, ExportFormat
from escap_kg.formats import RDF_FORMATS, RESULT_FORMATS, media_type
from escap_kg.iris import is_iri
from escap_kg.pages import add_page_routes
from escap_kg.reconcile_api import add_reconcile_routes
from escap_kg.search import MAX_LIMIT
from escap_kg.service import (
    Download,
    Engine,
    ProtocolError,
    State,
    cached_description,
    dataset_stats,
    search_hits,
)
from escap_kg.settings import Settings
from escap_kg.sparql import negotiate, scan
from escap_kg.store import KnowledgeGraph

if TYPE_CHECKING:
    pass

log = logging.getLogger("escap_kg.server")
access_log = logging.getLogger("escap_kg.access")

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
    state: State | None = None,
) -> FastAPI:
    """The application: over ``state`` if given (see :func:`escap_kg.endpoint.new_state`),
    else over ``engine`` if given (an upstream store), else over worker processes
    holding ``kg`` in memory (loaded from ``settings`` when not given) or, with
    ``settings.database``, sharing that on-disk store.

    Nothing starts until the application's lifespan begins: then the engine starts, and it stops
    when the lifespan ends.
    """
    if state is None:
        settings = settings or Settings.from_env()
        if engine is None:
            # The graph goes to the engine's zygote as N-Quads; this process keeps no copy.
            in_memory = (
                None if settings.database is not None else kg or KnowledgeGraph.load(settings)
            )
            engine = build_engine(settings, in_memory).engine
            kg = in_memory = None
        state = new_state(settings, engine)
    settings, running = state.settings, state.engine

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await start_engine(running)
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


def _add_sparql_routes(app: FastAPI, state: State) -> None:
    sparql = state.sparql_handler
    assert sparql is not None  # noqa: S101 - set with the state (see new_state)
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
        params = parse_pairs(request.url.query, "query string")
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

        return await answer_query(request, state, job, headers)


async def _workbook(answer: Answer, query_id: str) -> Response:
    """A catalogue answer as an Excel workbook, made off the event loop."""
    from escap_kg.xlsx import XLSX_MEDIA_TYPE, results_to_xlsx

    body = await asyncio.to_thread(results_to_xlsx, await answer.read(), query_id)
    headers = {"Content-Disposition": f'attachment; filename="{query_id}.xlsx"'}
    return Response(body, media_type=XLSX_MEDIA_TYPE, headers=headers)


# Full-text search -------------------------------------------------------------------------------


class SearchHit(BaseModel):
    """One resource a search found."""

    iri: str
    label: str = Field(description="The resource's name")
    kind: str = Field(description="Its most specific type, e.g. Finding or Seminar")
    snippet: str = Field(description="HTML: the matching text, escaped, with matches in <mark>")
    score: float = Field(description="Relevance (BM25): higher is better")


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
