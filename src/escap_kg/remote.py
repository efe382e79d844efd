"""Any SPARQL 1.1 store behind escap-kg: publish the graph to it, and query it over HTTP."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TypeAlias

import httpx
import pyoxigraph as ox

from escap_kg.inspection import RefusedError, inspect_query
from escap_kg.jobs import BUFFER, CHUNK, Answer, EngineError, QueryJob, UpdateJob
from escap_kg.sparql import (
    GRAPH_TYPES,
    RESULT_TYPES,
    SparqlTextError,
    engine_position,
    parse_media_type,
    scan,
)
from escap_kg.store import KnowledgeGraph

#: A value bound to a query variable.
Term: TypeAlias = ox.NamedNode | ox.Literal
#: HTTP credentials: (user, password) for Basic authentication, or any ``httpx.Auth``
#: (``httpx.DigestAuth`` for Virtuoso's ``-auth`` endpoints, a SigV4 signer for Neptune IAM).
Auth: TypeAlias = tuple[str, str] | httpx.Auth | None

#: The HTTP authentication schemes of :func:`credentials`: Basic sends the password with every
#: request; Digest answers the store's challenge with a hash of it (Virtuoso's ``-auth``
#: endpoints accept nothing else).
AUTH_SCHEMES = ("basic", "digest")

#: Statuses that mean a Graph Store Protocol PUT was applied.
PUT_OK = frozenset({200, 201, 204})
N_TRIPLES = "application/n-triples"
#: Triples serialised per chunk of a PUT body.
TRIPLES_PER_CHUNK = 10_000
#: How much of an upstream error body goes into our message.
EXCERPT = 300

READ_ONLY = "updates go to the upstream store directly; this server is read-only in front of it"

_VARIABLE = re.compile(r"[A-Za-z0-9_]+")
_LITERAL_TERM = re.compile(
    r'"(?:[^"\\\n\r]|\\[tbnrf"\'\\]|\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8})*"'
    r'(?:@[A-Za-z]+(?:-[A-Za-z0-9]+)*|\^\^<[^<>"{}|^`\\\x00-\x20]*>)?'
)


def _first_media_types(table: Mapping[str, str]) -> dict[str, str]:
    """Format name -> the first (preferred) media type naming it in a negotiation table."""
    first: dict[str, str] = {}
    for media_type, name in table.items():
        first.setdefault(name, media_type)
    return first


#: The media type asked of the upstream store for each result format, by kind of answer.
RESULT_MEDIA_TYPES = _first_media_types(RESULT_TYPES)
GRAPH_MEDIA_TYPES = _first_media_types(GRAPH_TYPES)


class RemoteError(Exception):
    """Talking to a remote store failed; ``str()`` names the URL and what went wrong."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class PublishReport:
    """What :func:`publish` wrote: each graph ("" for the default graph) and its triples sent."""

    store_url: str
    graphs: dict[str, int] = field(default_factory=dict)

    @property
    def triples(self) -> int:
        """Triples sent in all."""
        return sum(self.graphs.values())

    def __str__(self) -> str:
        count = len(self.graphs)
        return (
            f"{count} graph{'s' if count != 1 else ''}, {self.triples:,} triples "
            f"written to {self.store_url}"
        )


# Terms and bindings -----------------------------------------------------------------------------


def sparql_term(term: Term) -> str:
    """An IRI or literal in SPARQL syntax (N-Triples escaping); raise ValueError if it is unsafe.

    pyoxigraph validates an IRI when a NamedNode is made (so none can end the ``<...>`` early)
    and writes ``str(term)`` in N-Triples syntax, escaping quotes, backslashes and line breaks in
    literals. A literal is checked once more against the SPARQL grammar of a literal.
    """
    if isinstance(term, ox.NamedNode):
        return str(term)
    if not isinstance(term, ox.Literal):
        raise ValueError(f"only IRIs and literals can be bound, not {type(term).__name__}")
    text = str(term)
    if not _LITERAL_TERM.fullmatch(text):
        raise ValueError(f"cannot write {text!r} safely as a SPARQL term")
    return text


def add_values(text: str, bindings: Mapping[str, Term]) -> str:
    """The query with a trailing ``VALUES (?a ?b) { (<iri> "literal") }`` binding variables.

    SPARQL 1.1 allows one VALUES clause after the whole query (after the solution modifiers) of
    every query form; it is joined with the solutions of the WHERE clause before projection, so
    a bound variable must be in scope at the top level of the WHERE clause (for an aggregate
    query, a GROUP BY variable). Terms are written by :func:`sparql_term`, never pasted raw.
    Raise ValueError for a bad variable name or value, or a query that already ends in VALUES.
    """
    if not bindings:
        return text
    try:
        info = scan(text)
    except SparqlTextError as err:
        raise ValueError(f"malformed query: {err}") from None
    if any(t.text == "VALUES" and t.depth == 0 for t in info.tokens):
        raise ValueError("the query already ends with a VALUES clause; cannot bind more values")
    names, terms = [], []
    for name, term in bindings.items():
        if not _VARIABLE.fullmatch(name):
            raise ValueError(f"{name!r} is not a SPARQL variable name")
        names.append(f"?{name}")
        terms.append(sparql_term(term))
    return f"{text}\nVALUES ({' '.join(names)}) {{ ({' '.join(terms)}) }}\n"


def _job_terms(bindings: Sequence[tuple[str, tuple[str, str]]]) -> dict[str, Term]:
    """A job's ``(name, (kind, value))`` bindings as terms; EngineError(400) for a bad one."""
    terms: dict[str, Term] = {}
    for name, (kind, value) in bindings:
        if kind == "iri":
            try:
                terms[name] = ox.NamedNode(value)
            except ValueError:
                raise EngineError(
                    400, f"parameter {name!r}: {value!r} is not an absolute IRI"
                ) from None
        elif kind == "literal":
            terms[name] = ox.Literal(value)
        else:
            raise EngineError(400, f"parameter {name!r}: unknown kind {kind!r}")
    return terms


# HTTP helpers -----------------------------------------------------------------------------------


def _check_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as err:
        raise ValueError(f"{url!r} is not a valid URL: {err}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"{url!r} is not an http(s) URL")
    return parsed


def credentials(user: str, scheme: str = "basic") -> httpx.Auth:
    """``USER:PASSWORD`` as HTTP authentication by ``scheme`` (``basic`` or ``digest``).

    Raise ValueError, saying what is wrong, for a value without a colon or an unknown scheme.
    """
    name, colon, password = user.partition(":")
    if not colon or not name:
        raise ValueError("credentials are given as USER:PASSWORD")
    if scheme == "basic":
        return httpx.BasicAuth(name, password)
    if scheme == "digest":
        return httpx.DigestAuth(name, password)
    raise ValueError(f"unknown authentication scheme {scheme!r}; use {' or '.join(AUTH_SCHEMES)}")


def _auth(auth: Auth) -> httpx.Auth | None:
    if isinstance(auth, tuple):
        return httpx.BasicAuth(*auth)
    return auth


def _challenge_hint(response: httpx.Response, auth: httpx.Auth | None) -> str:
    """For a 401, what the store asks for when it is not what was sent."""
    if response.status_code != 401:
        return ""
    asked = response.headers.get("www-authenticate", "").split(" ", 1)[0].lower()
    sent = (
        "basic"
        if isinstance(auth, httpx.BasicAuth)
        else "digest"
        if isinstance(auth, httpx.DigestAuth)
        else ""
    )
    if asked in AUTH_SCHEMES and asked != sent:
        return f" (the store asks for {asked.capitalize()} authentication, not {sent or 'none'})"
    if not asked and sent == "basic":
        # Virtuoso answers Basic credentials on its -auth endpoints with a bare 401.
        return " (the store refused Basic authentication: is it one that takes Digest only?)"
    return ""


def _excerpt(body: bytes | str) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text[:EXCERPT] + ("..." if len(text) > EXCERPT else "")


def _reason(err: Exception) -> str:
    return str(err) or type(err).__name__


def _form(
    text: str, default_graphs: Sequence[str] | None, named_graphs: Sequence[str] | None
) -> dict[str, str | list[str]]:
    form: dict[str, str | list[str]] = {"query": text}
    if default_graphs:
        form["default-graph-uri"] = list(default_graphs)
    if named_graphs:
        form["named-graph-uri"] = list(named_graphs)
    return form


# Publishing -------------------------------------------------------------------------------------


class _NTriplesBody:
    """N-Triples of a list of triples, written a chunk at a time as the request is sent.

    It can be iterated more than once (an authentication challenge resends the body), and
    knows its length up front, so the request carries a Content-Length, which every store takes,
    rather than chunked transfer encoding, which some do not.
    """

    def __init__(self, triples: list[ox.Triple]) -> None:
        self.triples = triples
        self.length = sum(len(chunk) for chunk in self)

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self.triples), TRIPLES_PER_CHUNK):
            chunk = self.triples[start : start + TRIPLES_PER_CHUNK]
            yield ox.serialize(chunk, format=ox.RdfFormat.N_TRIPLES) or b""


def _graph_url(store: httpx.URL, graph: str) -> httpx.URL:
    """``store?graph=<IRI>``, or ``store?default`` for the default graph ("")."""
    if graph:
        return store.copy_merge_params({"graph": graph})
    query = store.query
    return store.copy_with(query=query + b"&default" if query else b"default")


def _graph_triples(kg: KnowledgeGraph, graph: str) -> list[ox.Triple]:
    name: ox.NamedNode | ox.DefaultGraph = ox.NamedNode(graph) if graph else ox.DefaultGraph()
    return [q.triple for q in kg.store.quads_for_pattern(None, None, None, name)]


def publish(
    kg: KnowledgeGraph,
    store_url: str,
    *,
    graph: str | None = None,
    auth: Auth = None,
    timeout: float = 60.0,
) -> PublishReport:
    """Write the graph to a store through the SPARQL 1.1 Graph Store HTTP Protocol.

    ``store_url`` is the store's Graph Store Protocol service:

    - Oxigraph server: ``http://HOST:7878/store``
    - Apache Jena Fuseki: ``http://HOST:3030/DATASET/data`` (the dataset's read-write GSP
      service)
    - Virtuoso: ``http://HOST:8890/sparql-graph-crud-auth`` with
      ``auth=httpx.DigestAuth(user, password)`` (the user in the SPARQL_UPDATE role), or
      ``http://HOST:8890/sparql-graph-crud`` if the anonymous SPARQL user may update
    - GraphDB: ``http://HOST:7200/repositories/REPOSITORY/rdf-graphs/service``
    - Amazon Neptune: ``https://CLUSTER:8182/sparql/gsp/`` (with IAM authentication enabled,
      pass an ``httpx.Auth`` that signs requests with SigV4)

    Without ``graph``, each of our graphs (one per source file, and any other graph our store
    holds, such as those named in a TriG file) is PUT to its own named graph,
    ``store_url?graph=<IRI>``, so provenance by named graph survives; our default graph, if it
    has triples (after an update without GRAPH), goes to ``store_url?default``. With ``graph``, the
    union of all our graphs is PUT into that one named graph. The body is N-Triples, streamed.

    PUT replaces a graph, so publishing again gives the same content, never duplicates. Graphs
    the store holds that we do not (say, of a renamed file) are left alone, and blank nodes are
    new on every run (they are scoped to one request), as the protocol has it.

    Raise :class:`RemoteError`, naming the URL and the status and body of the answer, for an
    answer other than 200, 201 or 204, an unreachable store, a timeout (``timeout`` seconds
    without progress), or an argument that is not an IRI or URL.
    """
    try:
        store = _check_url(store_url)
        if graph is not None:
            ox.NamedNode(graph)
    except ValueError as err:
        raise RemoteError(f"cannot publish: {err}") from None
    if graph is not None:
        uploads: list[tuple[str, Callable[[], list[ox.Triple]]]] = [(graph, kg.triples)]
    else:
        uploads = [
            (name, partial(_graph_triples, kg, name))
            for name, count in kg.triples_per_graph().items()
            if name or count
        ]
    written: dict[str, int] = {}
    http_auth = _auth(auth)
    with httpx.Client(auth=http_auth, timeout=timeout) as client:
        for name, triples in uploads:
            url = _graph_url(store, name)
            body = _NTriplesBody(triples())
            try:
                response = client.put(
                    url,
                    content=body,
                    headers={"Content-Type": N_TRIPLES, "Content-Length": str(body.length)},
                )
            except httpx.TimeoutException:
                raise RemoteError(
                    f"PUT {url}: the store did not answer within {timeout:g} s"
                    + _progress(written, uploads)
                ) from None
            except httpx.ConnectError as err:
                raise RemoteError(
                    f"cannot reach the graph store at {url}: {_reason(err)}"
                ) from None
            except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as err:
                raise RemoteError(
                    f"PUT {url} failed: {_reason(err)}" + _progress(written, uploads)
                ) from None
            if response.status_code not in PUT_OK:
                raise RemoteError(
                    f"PUT {url} answered {response.status_code} {response.reason_phrase}: "
                    f"{_excerpt(response.content) or '(no message)'}"
                    + _challenge_hint(response, http_auth)
                    + _progress(written, uploads),
                    response.status_code,
                )
            written[name] = len(body.triples)
    return PublishReport(str(store), written)


def _progress(written: Mapping[str, int], uploads: Sequence[object]) -> str:
    if not written:
        return ""
    return (
        f" ({len(written)} of {len(uploads)} graphs were written before it; publishing again "
        "replaces them, so rerun once the problem is fixed)"
    )


# Querying ---------------------------------------------------------------------------------------


def remote_query(
    endpoint: str,
    text: str,
    *,
    accept: str,
    bindings: Mapping[str, Term] | None = None,
    default_graphs: Sequence[str] | None = None,
    named_graphs: Sequence[str] | None = None,
    timeout: float = 60.0,
    auth: Auth = None,
) -> tuple[str, bytes]:
    """Run a query on a SPARQL 1.1 endpoint; return the answer's content type and bytes.

    The query is POSTed as a form (``query=...``), with ``default-graph-uri`` and
    ``named-graph-uri`` when given. ``bindings`` (a catalogue query's parameters) are bound with
    a trailing VALUES clause (see :func:`add_values`), never pasted into the text; a bad name or
    value raises ValueError. Any failure to get a 2xx answer raises :class:`RemoteError`.
    """
    try:
        url = _check_url(endpoint)
    except ValueError as err:
        raise RemoteError(str(err)) from None
    body = add_values(text, bindings or {})
    http_auth = _auth(auth)
    try:
        with httpx.Client(auth=http_auth, timeout=timeout) as client:
            response = client.post(
                url, data=_form(body, default_graphs, named_graphs), headers={"Accept": accept}
            )
    except httpx.TimeoutException:
        raise RemoteError(f"the store at {url} did not answer within {timeout:g} s") from None
    except httpx.ConnectError as err:
        raise RemoteError(f"cannot reach the store at {url}: {_reason(err)}") from None
    except (httpx.HTTPError, httpx.StreamError) as err:
        raise RemoteError(f"query to {url} failed: {_reason(err)}") from None
    if not response.is_success:
        raise RemoteError(
            f"{url} answered {response.status_code} {response.reason_phrase}: "
            f"{_excerpt(response.content) or '(no message)'}"
            + _challenge_hint(response, http_auth),
            response.status_code,
        )
    return response.headers.get("content-type", ""), response.content


class RemoteEngine:
    """The query engine interface of :class:`escap_kg.engine.QueryEngine` over a remote store.

    ``endpoint`` is the store's SPARQL query service:

    - Oxigraph server: ``http://HOST:7878/query``
    - Apache Jena Fuseki: ``http://HOST:3030/DATASET/query`` (or ``/DATASET/sparql``)
    - Virtuoso: ``http://HOST:8890/sparql``
    - GraphDB: ``http://HOST:7200/repositories/REPOSITORY``
    - Amazon Neptune: ``https://CLUSTER:8182/sparql``

    Our queries expect the default graph to be the union of all named graphs. Stores differ:
    set ``union_default_graph=True`` (the default) when the store already does this: Oxigraph
    server started with ``oxigraph serve --union-default-graph``; Fuseki with
    ``tdb2:unionDefaultGraph true`` in the dataset's configuration; Virtuoso, GraphDB and
    Neptune as they come. With ``union_default_graph=False`` every query that names no dataset
    of its own is sent with ``default-graph-uri`` and ``named-graph-uri`` for each graph in
    ``graphs`` (say, ``[sf.graph for sf in kg.files]``: this also keeps queries to our graphs
    in a shared store) or, if ``graphs`` is None, each named graph the store held when
    :meth:`start` (or :meth:`refresh_graphs`) listed them.

    One ``httpx.AsyncClient`` with a pool of up to ``max_connections`` connections is shared by
    all queries; it is opened by :meth:`start` and closed by :meth:`close`. Updates are refused:
    they go to the store itself. A bad ``endpoint`` (not an http(s) URL) raises ValueError.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        union_default_graph: bool = True,
        graphs: Sequence[str] | None = None,
        auth: Auth = None,
        max_connections: int = 100,
        connect_timeout: float = 10.0,
    ) -> None:
        self.endpoint = str(_check_url(endpoint))
        self.union_default_graph = union_default_graph
        self.graphs: tuple[str, ...] | None = tuple(graphs) if graphs is not None else None
        self._auth = _auth(auth)
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._timeout = httpx.Timeout(None, connect=connect_timeout)
        self._client: httpx.AsyncClient | None = None
        self.closed = False
        #: The store's version as far as this server can tell: updates go to the store itself.
        self.generation = 0

    async def start(self) -> None:
        """Open the connection pool (and list the store's graphs, if they are needed)."""
        self._client = httpx.AsyncClient(
            auth=self._auth, limits=self._limits, timeout=self._timeout, follow_redirects=False
        )
        if not self.union_default_graph and self.graphs is None:
            try:
                await self.refresh_graphs()
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        """Close the connection pool."""
        self.closed = True
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def refresh_graphs(self, timeout: float = 60.0) -> tuple[str, ...]:
        """List the store's named graphs again (for ``union_default_graph=False``)."""
        job = QueryJob("SELECT DISTINCT ?g WHERE { GRAPH ?g { } }", "json")
        body = await (await self._query(job, timeout, emulate_union=False)).read()
        try:
            rows = json.loads(body)["results"]["bindings"]
            self.graphs = tuple(sorted(row["g"]["value"] for row in rows if "g" in row))
        except (ValueError, KeyError, TypeError) as err:
            raise EngineError(502, f"cannot read the store's list of graphs: {err}") from None
        return self.graphs

    async def ping(self, timeout: float = 10.0) -> None:
        """Ask the store ``ASK {}``; raise :class:`EngineError` if it does not answer."""
        await (await self._query(QueryJob("ASK {}", "json"), timeout)).read()

    async def update(self, job: UpdateJob, timeout: float) -> None:
        """Refused: this server is read-only in front of the store (EngineError 403)."""
        raise EngineError(403, READ_ONLY)

    async def query(self, job: QueryJob, timeout: float) -> Answer:
        """Run a query on the store; raise :class:`EngineError` on failure or timeout.

        The answer is asked for in ``job.result_format``; ``job.default_graphs`` and
        ``job.named_graphs`` are sent as the protocol's dataset, ``job.base_iri`` as a leading
        BASE, and ``job.bindings`` as a trailing VALUES clause. An answer over ``job.max_bytes``
        raises 413 as it is read; one over :data:`BUFFER` bytes is returned as a stream in
        ``Answer.rest``, which must be read to the end (or closed) to free its connection.
        Errors: 400 for a query the store refuses as malformed, 503 past the time limit, 502 for
        an unreachable store or any other failure upstream.
        """
        return await self._query(job, timeout)

    # The work ---------------------------------------------------------------------------------

    def _client_or_fail(self) -> httpx.AsyncClient:
        if self._client is None:
            raise EngineError(503, "the query engine is not running")
        return self._client

    def _request(
        self, job: QueryJob, emulate_union: bool
    ) -> tuple[str, Mapping[str, str], str, dict[str, str | list[str]], QueryJob]:
        """The media type to ask for, the media types that name the same format, the BASE and
        known prefixes put before the text (so error positions can be given in the text as
        sent), and the form."""
        try:
            info, fmt, _, prologue = inspect_query(job)
        except RefusedError as err:
            raise EngineError(err.status, err.message) from None
        graph_answer = info.form in ("CONSTRUCT", "DESCRIBE")
        table = GRAPH_MEDIA_TYPES if graph_answer else RESULT_MEDIA_TYPES
        if fmt not in table:
            kind = "a graph" if graph_answer else "solutions"
            raise EngineError(406, f"cannot ask for {kind} as {fmt!r}")
        if fmt != job.result_format:
            job = replace(job, result_format=fmt)
        text = job.text.removeprefix("\ufeff")
        prefix = ""
        if job.base_iri:
            try:
                prefix = f"BASE {sparql_term(ox.NamedNode(job.base_iri))} "
            except ValueError:
                raise EngineError(400, f"base IRI {job.base_iri!r} is not an IRI") from None
        prefix += prologue
        text = prefix + text
        if job.bindings:
            try:
                text = add_values(text, _job_terms(job.bindings))
            except ValueError as err:
                raise EngineError(400, str(err)) from None
        default_graphs, named_graphs = job.default_graphs, job.named_graphs
        emulate = emulate_union and job.union_default_graph and not self.union_default_graph
        if emulate and default_graphs is None and named_graphs is None:
            default_graphs = named_graphs = self.graphs or ()
        form = _form(text, default_graphs, named_graphs)
        names = GRAPH_TYPES if graph_answer else RESULT_TYPES
        return table[fmt], names, prefix, form, job

    async def _query(self, job: QueryJob, timeout: float, emulate_union: bool = True) -> Answer:
        client = self._client_or_fail()
        media_type, names, prefix, form, job = self._request(job, emulate_union)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        request = client.build_request(
            "POST", self.endpoint, data=form, headers={"Accept": media_type}
        )
        try:
            async with asyncio.timeout_at(deadline):
                response = await client.send(request, stream=True)
        except (TimeoutError, httpx.TimeoutException):
            raise self._timed_out(timeout) from None
        except httpx.ConnectError as err:
            raise EngineError(
                502, f"cannot reach the upstream store at {self.endpoint}: {_reason(err)}"
            ) from None
        except (httpx.HTTPError, httpx.StreamError) as err:
            raise EngineError(
                502, f"the request to the upstream store at {self.endpoint} failed: {_reason(err)}"
            ) from None
        try:
            if not response.is_success:
                detail = await self._read_error(response, deadline)
                raise self._upstream_error(response, detail, len(prefix))
            answered = parse_media_type(response.headers.get("content-type"))[0]
            if answered and names.get(answered) != job.result_format:
                raise EngineError(
                    502,
                    f"the upstream store answered in {answered}, not in {media_type} as asked",
                )
            length = response.headers.get("content-length", "")
            if job.max_bytes and length.isdigit() and int(length) > job.max_bytes:
                raise self._too_large(job.max_bytes)
            chunks = response.aiter_bytes(CHUNK)
            parts: list[bytes] = []
            size = 0
            while size < BUFFER:
                chunk = await self._next(chunks, deadline, timeout)
                if chunk is None:
                    await response.aclose()
                    return Answer(job.result_format, b"".join(parts), media_type=media_type)
                size += len(chunk)
                if job.max_bytes and size > job.max_bytes:
                    raise self._too_large(job.max_bytes)
                parts.append(chunk)
        except BaseException:
            await response.aclose()
            raise
        rest = self._rest(response, chunks, size, job.max_bytes, deadline, timeout)
        return Answer(job.result_format, b"".join(parts), rest, media_type=media_type)

    async def _rest(
        self,
        response: httpx.Response,
        chunks: AsyncIterator[bytes],
        size: int,
        max_bytes: int,
        deadline: float,
        timeout: float,
    ) -> AsyncIterator[bytes]:
        try:
            while True:
                chunk = await self._next(chunks, deadline, timeout)
                if chunk is None:
                    return
                size += len(chunk)
                if max_bytes and size > max_bytes:
                    raise self._too_large(max_bytes)
                yield chunk
        finally:
            await response.aclose()

    async def _next(
        self, chunks: AsyncIterator[bytes], deadline: float, timeout: float
    ) -> bytes | None:
        """The next chunk of an answer, None at its end; EngineError past the deadline."""
        try:
            async with asyncio.timeout_at(deadline):
                return await anext(chunks)
        except StopAsyncIteration:
            return None
        except (TimeoutError, httpx.TimeoutException):
            raise self._timed_out(timeout) from None
        except (httpx.HTTPError, httpx.StreamError) as err:
            raise EngineError(
                502, f"the upstream store at {self.endpoint} broke off its answer: {_reason(err)}"
            ) from None

    async def _read_error(self, response: httpx.Response, deadline: float) -> str:
        parts: list[bytes] = []
        try:
            async with asyncio.timeout_at(deadline):
                async for chunk in response.aiter_bytes(CHUNK):
                    parts.append(chunk)
                    if sum(map(len, parts)) > CHUNK:
                        break
        except (TimeoutError, httpx.HTTPError, httpx.StreamError):
            pass
        return b"".join(parts).decode("utf-8", "replace").strip()

    def _upstream_error(self, response: httpx.Response, detail: str, shift: int) -> EngineError:
        if response.status_code == 400:
            return EngineError(400, _malformed(detail, shift))
        return EngineError(
            502,
            f"the upstream store at {self.endpoint} answered {response.status_code} "
            f"{response.reason_phrase}: {_excerpt(detail) or '(no message)'}"
            + _challenge_hint(response, self._auth),
        )

    @staticmethod
    def _timed_out(timeout: float) -> EngineError:
        return EngineError(503, f"the upstream store did not answer within {timeout:g} s")

    @staticmethod
    def _too_large(limit: int) -> EngineError:
        return EngineError(
            413, f"the answer is larger than the limit of {limit:,} bytes; add LIMIT"
        )


def _malformed(detail: str, shift: int) -> str:
    """An upstream 400 as our message; Oxigraph's positions are given as line and column."""
    text = " ".join(detail.split())[:1000] or "(no message)"
    at = engine_position(text)
    if at is not None and at.line is not None:
        return f"malformed query: line {at.line}, column {at.column_after(shift)}: {at.detail}"
    return f"the upstream store refused the query: {text}"


__all__ = [
    "AUTH_SCHEMES",
    "Auth",
    "PublishReport",
    "RemoteEngine",
    "RemoteError",
    "Term",
    "add_values",
    "credentials",
    "publish",
    "remote_query",
    "sparql_term",
]
