"""The query catalogue for people: every question, its parameters, and its answer as a table."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse

from escap_kg.iris import is_iri
from escap_kg.jobs import EngineError, QueryJob
from escap_kg.pages.render import render
from escap_kg.pages.terms import Paths
from escap_kg.queries import Query
from escap_kg.sparql import SparqlTextError, scan

if TYPE_CHECKING:
    from escap_kg.service import State

#: Rows shown on a page; the CSV and JSON links give the whole answer.
ROW_LIMIT = 1000
GRAPH_FORMS = ("CONSTRUCT", "DESCRIBE")


class CataloguePages:
    """``/queries`` (the list), ``/queries/{id}`` (one answer) and ``/queries/{id}.rq``."""

    def __init__(self, state: State, paths: Paths) -> None:
        self.state = state
        self.paths = paths

    def _entries(self) -> list[dict[str, Any]]:
        return [self._entry(q) for q in self.state.catalogue]

    def _entry(self, query: Query) -> dict[str, Any]:
        try:
            graph_form = scan(query.text).form in GRAPH_FORMS
        except SparqlTextError:
            graph_form = False
        api = f"/api/queries/{query.id}"
        allowed = self.state.settings.service_allowlist
        download = (f"{api}?_format=csv", "CSV")
        if graph_form:
            download = (f"{api}?_format=nt", "N-Triples")
        return {
            "id": query.id,
            "number": int(query.number) if query.number else 0,
            "question": query.summary,
            "notes": _notes(query.text),
            "params": query.params,
            "run": f"/queries/{query.id}",
            "graph_form": graph_form,
            "csv": download,
            "json": f"{api}?_format=jsonld" if graph_form else api,
            "sparql": f"/queries/{query.id}.rq",
            "needs": [url for url in query.federated if url not in allowed],
        }

    async def index(self, request: Request) -> Response:
        """``/queries``: every question of the catalogue, with links to its answer."""
        del request
        page = render(
            "queries.html",
            title="Questions the graph answers",
            description="The query catalogue: each question, its answer and its SPARQL query.",
            queries=self._entries(),
        )
        return HTMLResponse(page)

    async def query(self, request: Request, name: str) -> Response:
        """``/queries/{id}``: the answer as a table; ``/queries/{id}.rq``: the query text."""
        by_id = {q.id: q for q in self.state.catalogue}
        stem = name.removesuffix(".rq")
        query = by_id.get(stem)
        if query is None:
            return _not_found(request.url.path, f"There is no catalogue query {stem!r}.")
        if name.endswith(".rq"):
            return PlainTextResponse(query.text)
        entry = self._entry(query)
        values = {p.name: request.query_params.get(p.name, "").strip() for p in query.params}
        unknown = sorted(set(request.query_params) - set(values))
        error = ""
        answer: dict[str, Any] | None = None
        status = 200
        bindings: dict[str, tuple[str, str]] = {}
        if unknown:
            error = f"query {query.id} has no parameter {unknown[0]!r}"
        for param in query.params:
            value = values[param.name]
            if not value or error:
                continue
            if param.kind == "iri":
                value = self.resolve(value)
                if not is_iri(value):
                    error = f"{param.name}: {value!r} is not an IRI"
                    continue
            bindings[param.name] = (param.kind, value)
        if error:
            status = 400
        elif not entry["needs"]:
            try:
                answer = await self._answer(query, bindings)
            except EngineError as err:
                error, status = err.message, err.status
        given = {name: value for name, (_, value) in bindings.items()}
        suffix = f"&{urlencode(given)}" if given else ""
        csv_href, csv_name = entry["csv"]
        json_sep = "&" if "?" in entry["json"] else "?"
        page = render(
            "query.html",
            title=query.summary,
            description=f"The answer to: {query.summary}",
            q=entry,
            values=values,
            answer=answer,
            error=error,
            csv=(csv_href + suffix, csv_name),
            json=entry["json"] + (json_sep + urlencode(given) if given else ""),
            text=query.text,
        )
        return HTMLResponse(page, status_code=status)

    def resolve(self, value: str) -> str:
        """An IRI given in full, or relative to the base (``id/activity/fifth-appc``), resolved as
        the endpoint resolves relative IRIs."""
        if is_iri(value):
            return value
        joined = urljoin(self.state.settings.base_iri, value)
        # A value that does not resolve to an IRI is left as given, for the error to quote.
        return joined if is_iri(joined) else value

    async def _answer(self, query: Query, bindings: dict[str, tuple[str, str]]) -> dict[str, Any]:
        graph_form = self._entry(query)["graph_form"]
        job = QueryJob(
            text=query.text,
            result_format="nt" if graph_form else "json",
            base_iri=self.state.settings.base_iri,
            max_bytes=self.state.settings.max_result_bytes,
            bindings=tuple(sorted(bindings.items())),
            allowed_services=self.state.settings.service_allowlist,
        )
        result = await self.state.engine.query(job, self.state.settings.query_timeout)
        body = await result.read()
        if graph_form:
            lines = sorted({line for line in body.decode("utf-8").splitlines() if line.strip()})
            return _table(["triple"], [[_plain(line)] for line in lines])
        data = json.loads(body)
        if "boolean" in data:
            return _table(["answer"], [[_plain("yes" if data["boolean"] else "no")]])
        variables = data["head"]["vars"]
        bound = data["results"]["bindings"]
        rows = [[self._cell(binding.get(v)) for v in variables] for binding in bound]
        return _table(variables, rows)

    def _cell(self, binding: dict[str, str] | None) -> dict[str, str | None]:
        if binding is None:
            return _plain("")
        value = binding["value"]
        if binding["type"] == "uri":
            # Only our own IRIs are links: the table sends no one to another host.
            return {"text": value, "href": self.paths.path(value)}
        return _plain(value)


def _plain(text: str) -> dict[str, str | None]:
    return {"text": text, "href": None}


def _table(variables: list[str], rows: list[list[dict[str, Any]]]) -> dict[str, Any]:
    return {"variables": variables, "rows": rows[:ROW_LIMIT], "count": len(rows)}


def _notes(text: str) -> str:
    """The ``# `` comment lines of a query's header, joined: what it does, in plain words."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("#+"):
            lines.append(line.removeprefix("#").strip())
    return " ".join(line for line in lines if line)


def _not_found(path: str, message: str) -> Response:
    page = render("not_found.html", title="Not found", path=path, what=message, guess="", search="")
    return HTMLResponse(page, status_code=404)


__all__ = ["CataloguePages"]
