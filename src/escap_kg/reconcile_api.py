"""The reconciliation service's HTTP face at ``/reconcile``: manifest, queries, suggest,
preview, property proposals and data extension, as OpenRefine speaks them (API 0.2)."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse

from escap_kg.engine import EngineError
from escap_kg.reconcile import ReconcileError, Reconciler, callback_name, parse_batch
from escap_kg.service import ProtocolError, State, answer_of, search_hits

JSON = "application/json"


class EngineSource:
    """The graph as the server's engine holds it (this process evaluates no SPARQL)."""

    def __init__(self, state: State) -> None:
        self.state = state

    @property
    def version(self) -> int:
        """The store's version."""
        return self.state.generation

    async def select(self, text: str) -> list[dict[str, dict[str, str]]]:
        """The bindings of a SELECT, run by the engine."""
        data = json.loads(await answer_of(self.state, text, "json"))
        rows: list[dict[str, dict[str, str]]] = data["results"]["bindings"]
        return rows

    async def search(self, text: str, limit: int) -> list[str]:
        """IRIs from the engine's full-text index, best first; none where there is no index
        (an upstream store, a store loaded without one) or no word to look for."""
        try:
            hits = await search_hits(self.state, text, limit)
        except ProtocolError:
            return []
        except EngineError as err:
            if err.status in (400, 503):
                return []
            raise
        return [hit["iri"] for hit in hits]


async def _params(request: Request, limit: int) -> dict[str, str]:
    """The request's parameters, from the query string and a form body (last one wins)."""
    pairs = parse_qsl(request.url.query, keep_blank_values=True)
    if request.method == "POST":
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in ("application/x-www-form-urlencoded", ""):
            raise ProtocolError(415, "send the parameters as application/x-www-form-urlencoded")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise ProtocolError(413, f"the request body is larger than {limit:,} bytes")
        try:
            pairs += parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise ProtocolError(400, "the request body is not UTF-8") from None
    return dict(pairs)


def _answer(data: Any, params: dict[str, str]) -> Response:
    """JSON, or JSONP when a safe ``callback`` name is given."""
    body = json.dumps(data, ensure_ascii=False)
    callback = params.get("callback")
    if callback:
        name = callback_name(callback)
        if name is None:
            raise ProtocolError(400, "callback: a JavaScript name (letters, digits, _ $ .)")
        return Response(f"/**/{name}({body});", media_type="application/javascript")
    return Response(body, media_type=JSON)


def _number(params: dict[str, str], name: str, default: int, most: int) -> int:
    value = params.get(name, "")
    if not value:
        return default
    if not value.isdigit():
        raise ProtocolError(400, f"{name}: a whole number, not {value!r}")
    return min(int(value), most)


def add_reconcile_routes(app: FastAPI, state: State) -> None:
    """Serve the reconciliation service at ``/reconcile`` and below."""
    settings = state.settings
    service = Reconciler(
        EngineSource(state),
        name="escap-kg: ESCAP activities on international migration and development",
        id_base=settings.id_base,
    )
    tags: list[str | Enum] = ["reconciliation"]

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/") + "/reconcile"

    async def run(call: Any) -> Any:
        try:
            return await call
        except ReconcileError as err:
            raise ProtocolError(400, str(err)) from None

    async def reconcile(request: Request) -> Response:
        """The Reconciliation Service API 0.2: without parameters, the service manifest (paste
        this URL into OpenRefine); `queries=` a batch of queries (JSON); `extend=` a data
        extension query (JSON). GET or POST (form)."""
        params = await _params(request, settings.max_body_bytes)
        if "queries" in params:
            try:
                batch = parse_batch(params["queries"])
            except ReconcileError as err:
                raise ProtocolError(400, str(err)) from None
            return _answer(await run(service.reconcile(batch)), params)
        if "extend" in params:
            return _answer(await run(service.extend(params["extend"])), params)
        docs = str(request.base_url).rstrip("/") + "/docs"
        return _answer(service.manifest(base(request), docs), params)

    for method in ("GET", "POST"):
        app.add_api_route(
            "/reconcile",
            reconcile,
            methods=[method],
            name=f"reconcile-{method.lower()}",
            operation_id=f"reconcile_{method.lower()}",
            tags=tags,
            response_class=Response,
        )

    @app.get("/reconcile/suggest/entity", tags=tags, response_class=Response)
    async def suggest_entity(request: Request) -> Response:
        """Entities whose names start with `prefix` (or have words that do); `type` narrows."""
        params = await _params(request, 0)
        types = [params["type"]] if params.get("type") else []
        answer = service.suggest_entities(
            params.get("prefix", ""),
            types,
            _number(params, "cursor", 0, 10_000),
            _number(params, "limit", 10, 100),
        )
        return _answer(await run(answer), params)

    @app.get("/reconcile/suggest/type", tags=tags, response_class=Response)
    async def suggest_type(request: Request) -> Response:
        """The types entities are reconciled against, by `prefix`."""
        params = await _params(request, 0)
        cursor = _number(params, "cursor", 0, 10_000)
        return _answer(service.suggest_types(params.get("prefix", ""), cursor), params)

    @app.get("/reconcile/suggest/property", tags=tags, response_class=Response)
    async def suggest_property(request: Request) -> Response:
        """Properties for constraints and data extension, by `prefix`."""
        params = await _params(request, 0)
        cursor = _number(params, "cursor", 0, 10_000)
        return _answer(service.suggest_properties(params.get("prefix", ""), cursor), params)

    @app.get("/reconcile/properties", tags=tags, response_class=Response)
    async def propose_properties(request: Request) -> Response:
        """The properties worth fetching for entities of `type` (data extension proposals)."""
        params = await _params(request, 0)
        limit = _number(params, "limit", 10, 100)
        try:
            answer = service.propose_properties(params.get("type", ""), limit)
        except ReconcileError as err:
            raise ProtocolError(400, str(err)) from None
        return _answer(answer, params)

    @app.get("/reconcile/preview", tags=tags, response_class=Response)
    async def preview(request: Request) -> Response:
        """A small HTML summary of the entity `id`, for OpenRefine's preview pane."""
        params = await _params(request, 0)
        iri = params.get("id", "")
        page = _page_url(request, iri, settings.base_iri)
        try:
            text = await service.preview(iri, page)
        except ReconcileError as err:
            raise ProtocolError(404, str(err)) from None
        # Shown in OpenRefine's frame: this page alone may be framed, and it runs no script.
        headers = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}
        return Response(text, media_type="text/html", headers=headers)

    @app.get("/reconcile/view", tags=tags, response_class=Response)
    async def view(request: Request) -> Response:
        """The page of the entity `id` on this server (a redirect)."""
        params = await _params(request, 0)
        iri = params.get("id", "")
        if not iri.startswith(settings.id_base):
            raise ProtocolError(404, f"id: {iri!r} is not an IRI of this dataset")
        return RedirectResponse(_page_url(request, iri, settings.base_iri), status_code=303)


def _page_url(request: Request, iri: str, base_iri: str) -> str:
    """Where this server shows the resource ``iri`` (its IRI itself if it is not ours)."""
    if iri.startswith(base_iri):
        return str(request.base_url).rstrip("/") + "/" + iri[len(base_iri) :]
    return iri


__all__ = ["EngineSource", "add_reconcile_routes"]
