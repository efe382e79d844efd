"""The routes that make our IRIs answer: resource, graph and ontology pages, home and search."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from fastapi.routing import APIRoute

from escap_kg.citation import cite
from escap_kg.export import EXPORT_FORMATS
from escap_kg.formats import PAGE_FORMATS
from escap_kg.iris import ONTOLOGY_IRI, RESOURCE_KINDS
from escap_kg.pages import charts, jsonld, svg
from escap_kg.pages.browse import HOME_KINDS, PAGE_SIZE, Browse, parse_page
from escap_kg.pages.catalogue import CataloguePages
from escap_kg.pages.data import (
    Resource,
    SiteData,
    construct,
    graph_content_query,
    graph_size_query,
    select,
    short_name,
)
from escap_kg.pages.ontology import OntologyDoc, ontology_doc
from escap_kg.pages.render import ALIASES, RDF_SYNTAXES, jsonld_block, render, serialize
from escap_kg.pages.terms import (
    EXTRA_GRAPH,
    SKOS,
    SUFFIX_TYPES,
    Paths,
    format_period,
    iri_ref,
    split_suffix,
    words,
)
from escap_kg.sparql import negotiate

if TYPE_CHECKING:
    from escap_kg.service import State

HTML = "text/html"
#: What a negotiated route offers, our preference first: a browser (or no Accept) gets HTML.
OFFERS = [HTML, *RDF_SYNTAXES, *ALIASES]
RESOURCE_ROUTE = "/id/{kind}/{slug}"
#: Graphs up to this many triples are served whole; larger ones only described.
GRAPH_CONTENT_LIMIT = 10_000
#: Resources listed per graph page.
GRAPH_SUBJECT_LIMIT = 300
#: The RDF variants of a page: file suffix and the syntax's name.
FORMAT_NAMES = {fmt.file_extension: fmt.name for fmt in PAGE_FORMATS.values()}
#: The downloads of the whole graph: file suffix, media type and the syntax's name.
DOWNLOADS = [
    (spec.suffix.lstrip("."), spec.media_type, spec.rdf_format.name)
    for spec in EXPORT_FORMATS.values()
]
HOME_DESCRIPTION = (
    "A knowledge graph of the work of the United Nations Economic and Social Commission for "
    "Asia and the Pacific (ESCAP) on international migration from 2001 to 2003: the meetings "
    "and conferences it held, the organizations and countries it worked with and in which "
    "role, the themes each event took up, and what the events found and recommended."
)


def add_page_routes(app: FastAPI, state: State) -> None:
    """Add the pages: ``/``, ``/id/...``, ``/graph/...``, ``/ontology``, ``/search``, ``/queries``.

    Idempotent: a second call on the same application adds nothing. A route already serving
    ``GET /`` (the old redirect to the query UI) is replaced by the home page.
    """
    if any(getattr(route, "path", None) == RESOURCE_ROUTE for route in app.routes):
        return
    app.router.routes[:] = [
        route
        for route in app.router.routes
        if not (
            isinstance(route, APIRoute) and route.path == "/" and "GET" in (route.methods or ())
        )
    ]
    pages = Pages(state)

    def add(path: str, endpoint: Callable[..., Awaitable[Response]], **options: Any) -> None:
        """A GET route, and the same for HEAD (kept out of the API description)."""
        app.add_api_route(path, endpoint, methods=["GET"], **options)
        options["include_in_schema"] = False
        app.add_api_route(path, endpoint, methods=["HEAD"], **options)

    add("/", pages.home, include_in_schema=False)
    add("/search", pages.search, include_in_schema=False)
    catalogue_pages = CataloguePages(state, pages.paths)
    add("/queries", catalogue_pages.index, include_in_schema=False)
    add("/queries/{name}", catalogue_pages.query, include_in_schema=False)
    add(
        RESOURCE_ROUTE,
        pages.resource,
        tags=["linked data"],
        summary="A resource: its page, or its description in RDF",
        description=(
            "Every IRI `<base>id/<kind>/<slug>` we mint answers here. A browser gets the page; "
            "`Accept: text/turtle`, `application/ld+json`, `application/n-triples` or "
            "`application/rdf+xml` (or the suffix `.ttl`, `.jsonld`, `.nt`, `.rdf`) gets the "
            "resource's triples both ways, one hop, with the names of the resources it links to."
        ),
        response_class=Response,
    )
    add("/id/", pages.kinds, include_in_schema=False)
    add(
        "/id/{kind}/",
        pages.kind_list,
        tags=["linked data"],
        summary="Every resource of one kind: a page, or the list in RDF",
        description=(
            "The list at the namespace of a kind of IRI (`/id/activity/`, `/id/organization/`...): "
            "a page with every member, its counts and links, or by negotiation (or as "
            "`/id/activity.ttl` and the other suffixes) the list's `rdfs:member` statements with "
            "each member's types and names."
        ),
        response_class=Response,
    )
    add("/id/{name}", pages.kind_file, include_in_schema=False)
    add("/id/{rest:path}", pages.unknown, include_in_schema=False)
    add(
        "/graph/extra/{name}",
        pages.extra_graph,
        include_in_schema=False,
    )
    add(
        "/graph/{name}",
        pages.graph,
        tags=["linked data"],
        summary="A named graph: its page, or its description and content in RDF",
        response_class=Response,
    )
    add("/graph/{rest:path}", pages.unknown, include_in_schema=False)
    add(
        "/ontology",
        pages.ontology,
        tags=["linked data"],
        summary="The ontology: its documentation, or the ontology graph in RDF",
        response_class=Response,
    )
    add("/ontology.{suffix}", pages.ontology_file, include_in_schema=False)
    add("/ontology/{version}", pages.ontology_version, include_in_schema=False)


class Pages:
    """The request handlers; data comes through the engine, never from an in-memory graph."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.site = SiteData(state)
        self.paths = Paths(state.settings.base_iri)
        self.browse = Browse(state, self.paths)
        self._ontology: dict[int, OntologyDoc] = {}
        self._lock = asyncio.Lock()

    # Negotiation ----------------------------------------------------------------------------

    def choose(self, request: Request, suffix: str | None) -> str | None:
        """The media type to answer in: the suffix's, else the Accept header's best offer."""
        if suffix is not None:
            return SUFFIX_TYPES[suffix]
        return negotiate(request.headers.get("accept"), OFFERS)

    def not_acceptable(self) -> Response:
        """406 with the types there are."""
        available = ", ".join([HTML, *RDF_SYNTAXES])
        return PlainTextResponse(
            f"this resource is available as {available}\n",
            status_code=406,
            headers={"Vary": "Accept"},
        )

    def not_found(self, request: Request, what: str = "") -> Response:
        """404: a page with a way on for people, a line of text for other clients."""
        path = request.url.path
        headers = {"Vary": "Accept"}
        if negotiate(request.headers.get("accept"), [HTML, "text/plain"]) != HTML:
            return PlainTextResponse(f"nothing is known of {path}\n", 404, headers=headers)
        guess = words(path.rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0])
        page = render(
            "not_found.html",
            title="Not found",
            path=path,
            what=what,
            guess=guess,
            search=f"/search?q={quote(guess)}" if guess else "/search",
        )
        return HTMLResponse(page, status_code=404, headers=headers)

    def alternates(self, path: str) -> list[dict[str, str]]:
        """The RDF variants of a page, for ``<link rel="alternate">`` and the Link header."""
        return [
            {"href": f"{path}.{suffix}", "type": SUFFIX_TYPES[suffix], "name": name}
            for suffix, name in FORMAT_NAMES.items()
        ]

    def rdf_response(self, nt: bytes, media_type: str, path: str, negotiated: bool) -> Response:
        """A description in the chosen syntax, with Vary and Content-Location when negotiated."""
        body = serialize(nt, media_type, self.state.settings.base_iri)
        headers: dict[str, str] = {}
        if negotiated:
            headers["Vary"] = "Accept"
            canonical = ALIASES.get(media_type, media_type)
            file_suffix = next(s for s, t in SUFFIX_TYPES.items() if t == canonical)
            headers["Content-Location"] = f"{path}.{file_suffix}"
        return Response(body, media_type=media_type, headers=headers)

    def html_response(self, page: str, path: str, negotiated: bool) -> Response:
        """A page, with its RDF variants in the Link header."""
        links = ", ".join(
            f'<{alt["href"]}>; rel="alternate"; type="{alt["type"]}"'
            for alt in self.alternates(path)
        )
        headers = {"Link": links}
        if negotiated:
            headers["Vary"] = "Accept"
        return HTMLResponse(page, headers=headers)

    # Resources ------------------------------------------------------------------------------

    async def resource(self, request: Request, kind: str, slug: str) -> Response:
        """``/id/{kind}/{slug}``: the page of a resource, or its description in RDF."""
        stem, suffix = split_suffix(slug)
        iri = self.paths.resource_iri(kind, stem)
        if iri is None:
            return self.not_found(request, "This is not the form of an IRI we mint.")
        return await self._serve(request, iri, f"/id/{kind}/{stem}", suffix)

    async def unknown(self, request: Request, rest: str) -> Response:
        """Any other path under ``/id/`` or ``/graph/``: not one of ours."""
        del rest
        return self.not_found(request, "This is not the form of an IRI we mint.")

    async def _serve(
        self, request: Request, iri: str, path: str, suffix: str | None, graph: bool = False
    ) -> Response:
        media = self.choose(request, suffix)
        negotiated = suffix is None
        if media is None:
            return self.not_acceptable()
        if media == HTML:
            resource = await self.site.resource(iri)
            content = await self._graph_content(iri) if graph else None
            if resource is None and not (content and content["size"]):
                return self.not_found(request, "Nothing in the graph has this IRI.")
            page = await self._resource_page(request, iri, path, resource, content)
            return self.html_response(page, path, negotiated)
        nt, triples = await self.site.describe(iri)
        found = bool(triples)
        if graph:
            size = await self._graph_size(iri)
            if 0 < size <= GRAPH_CONTENT_LIMIT:
                more, _ = await construct(self.state, graph_content_query(iri))
                nt = nt + b"\n" + more
            found = found or size > 0
        if not found:
            return self.not_found(request, "Nothing in the graph has this IRI.")
        return self.rdf_response(nt, media, path, negotiated)

    async def _resource_page(
        self,
        request: Request,
        iri: str,
        path: str,
        resource: Resource | None,
        content: dict[str, object] | None,
    ) -> str:
        site = self.site
        if resource is None:
            label = iri.rsplit("/", 1)[-1]
            resource = _empty_resource(iri, label, self.paths)
        page_url = str(request.url.replace(query="", fragment=""))
        schema = jsonld.SchemaTypes(await site.class_parents())
        data = jsonld.resource_jsonld(resource, page_url, schema)
        if content is not None:
            data["@type"] = "Dataset"
            data["license"] = "https://creativecommons.org/licenses/by/4.0/"
        timeline = None
        tree = None
        types = set(resource.type_iris)
        activities = await site.activities()
        roles = await site.role_labels()
        if any(a.iri == iri for a in activities):
            # An activity among all the others, marked.
            timeline = svg.timeline(
                activities,
                "page-timeline",
                roles,
                highlight=[iri],
                title=f"{resource.label} among the activities of {svg.year_span(activities)}",
            )
        else:
            # An organisation or a country: the activities it took part in.
            own = [a for a in activities if any(n.iri == iri for n, _ in a.agents)]
            if own:
                timeline = svg.timeline(
                    own,
                    "page-timeline",
                    roles,
                    title=f"Activities of {resource.label}, {svg.year_span(own)}",
                )
        if f"{SKOS}ConceptScheme" in types:
            tree = await site.concept_tree(iri)
        picture = (
            svg.neighbourhood(
                short_name(resource.label, resource.alt_labels), resource.edges, "page-links"
            )
            if resource.edges
            else None
        )
        return render(
            "resource.html",
            title=resource.label,
            description=_summary(resource),
            r=resource,
            path=path,
            when=format_period(resource.when) if resource.when else "",
            picture=picture,
            hidden_edges=max(len(resource.edges) - svg.NEIGHBOURS, 0),
            timeline=timeline,
            years=svg.year_span(activities),
            tree=tree,
            content=content,
            jsonld=jsonld_block(data),
            alternates=self.alternates(path),
            formats=self.alternates(path),
        )

    # Lists ----------------------------------------------------------------------------------

    async def kinds(self, request: Request) -> Response:
        """``/id/``: every kind of resource with how many the graph describes, each a link."""
        del request
        counts = await self.browse.counts()
        kinds = [c for c in counts.values() if c.count]
        page = render("browse.html", title="Browse the graph", kinds=kinds, active="/id/")
        return HTMLResponse(page)

    async def kind_list(self, request: Request, kind: str) -> Response:
        """``/id/{kind}/``: the list of every resource of a kind, or the list in RDF."""
        return await self._list(request, kind, None)

    async def kind_file(self, request: Request, name: str) -> Response:
        """``/id/activity`` (on to the list) and ``/id/activity.ttl`` (the list in a syntax)."""
        if name in RESOURCE_KINDS:
            return RedirectResponse(f"/id/{name}/", status_code=308)
        stem, suffix = split_suffix(name)
        if suffix is None:
            return self.not_found(request, "This is not the form of an IRI we mint.")
        return await self._list(request, stem, suffix)

    async def _list(self, request: Request, kind: str, suffix: str | None) -> Response:
        if kind not in RESOURCE_KINDS:
            return self.not_found(request, "There is no such kind of resource.")
        media = self.choose(request, suffix)
        if media is None:
            return self.not_acceptable()
        path = f"/id/{kind}"
        if media != HTML:
            return self.rdf_response(await self.browse.rdf(kind), media, path, suffix is None)
        counts = await self.browse.counts()
        pages = max(-(-counts[kind].count // PAGE_SIZE), 1)
        number = parse_page(request.query_params.get("page"), pages)
        if number is None:
            asked = request.query_params.get("page", "")[:20]
            return self.not_found(
                request, f"There is no page {asked!r} of this list: its pages are 1 to {pages}."
            )
        listing = await self.browse.listing(kind, number, await self.site.vocabulary())
        page = render(
            "list.html",
            title=listing.title,
            description=f"{listing.title} in the escap-kg knowledge graph, with counts and links.",
            listing=listing,
            alternates=self.alternates(path),
            formats=self.alternates(path),
            active="/id/",
        )
        return self.html_response(page, path, suffix is None)

    # Graphs ---------------------------------------------------------------------------------

    async def graph(self, request: Request, name: str) -> Response:
        """``/graph/{name}``: a named graph's page, or its description and content in RDF."""
        stem, suffix = split_suffix(name)
        iri = self.paths.graph_iri(stem)
        if iri is None:
            return self.not_found(request, "This is not the form of a graph name we mint.")
        return await self._serve(request, iri, f"/graph/{stem}", suffix, graph=True)

    async def extra_graph(self, request: Request, name: str) -> Response:
        """``/graph/extra/{name}``: a graph loaded from an extra file (``serve --data``)."""
        graphs = await self.site.graphs()
        stem, suffix = name, None
        if f"{self.paths.graph_base}extra/{name}" not in graphs:
            stem, suffix = split_suffix(name)
        iri = self.paths.graph_iri(stem, extra=True) if EXTRA_GRAPH.match(stem) else None
        if iri is None:
            return self.not_found(request, "This is not the form of a graph name we mint.")
        return await self._serve(request, iri, f"/graph/extra/{stem}", suffix, graph=True)

    async def _graph_size(self, iri: str) -> int:
        rows = await select(self.state, graph_size_query(iri, GRAPH_CONTENT_LIMIT + 1))
        return int(rows[0]["n"].value) if rows else 0

    async def _graph_content(self, iri: str) -> dict[str, object]:
        size = await self._graph_size(iri)
        subjects: list[dict[str, object]] = []
        nt = ""
        if size:
            rows = await select(
                self.state,
                f"""SELECT ?s (COUNT(*) AS ?n) (SAMPLE(?l) AS ?label) WHERE {{
                  {{ SELECT ?s ?p ?o WHERE {{ GRAPH {iri_ref(iri)} {{ ?s ?p ?o }} }}
                     LIMIT {GRAPH_CONTENT_LIMIT} }}
                  OPTIONAL {{ ?s rdfs:label ?l }}
                }} GROUP BY ?s ORDER BY ?s LIMIT {GRAPH_SUBJECT_LIMIT}""",
            )
            for row in rows:
                subject = row["s"].value
                subjects.append(
                    {
                        "iri": subject,
                        "href": self.paths.href(subject),
                        "label": row["label"].value if "label" in row else subject,
                        "count": int(row["n"].value),
                    }
                )
            if size <= GRAPH_CONTENT_LIMIT:
                body, _ = await construct(self.state, graph_content_query(iri))
                nt = serialize(body, "application/n-triples", self.state.settings.base_iri).decode()
        return {
            "size": size,
            "capped": size > GRAPH_CONTENT_LIMIT,
            "limit": GRAPH_CONTENT_LIMIT,
            "subjects": subjects,
            "nt": nt,
        }

    # The ontology ---------------------------------------------------------------------------

    async def _ontology_doc(self) -> OntologyDoc:
        generation = self.state.generation
        async with self._lock:
            if generation not in self._ontology:
                doc = await ontology_doc(self.state, self.site.ontology_graph)
                self._ontology = {generation: doc}
        return self._ontology[generation]

    async def ontology(self, request: Request) -> Response:
        """``/ontology``: the documentation of every class and property, or the graph in RDF."""
        return await self._ontology_response(request, None)

    async def ontology_file(self, request: Request, suffix: str) -> Response:
        """``/ontology.ttl`` and the other suffixes: the ontology graph in that syntax."""
        if suffix not in SUFFIX_TYPES:
            return self.not_found(request, "No such format of the ontology.")
        return await self._ontology_response(request, suffix)

    async def ontology_version(self, request: Request, version: str) -> Response:
        """``/ontology/<version>``: the version IRI of the ontology, while it is the current one."""
        stem, suffix = split_suffix(version)
        doc = await self._ontology_doc()
        if not doc.version_iri or doc.version_iri != f"{ONTOLOGY_IRI}/{stem}":
            return self.not_found(request, "No such version of the ontology.")
        return await self._ontology_response(request, suffix)

    async def _ontology_response(self, request: Request, suffix: str | None) -> Response:
        media = self.choose(request, suffix)
        if media is None:
            return self.not_acceptable()
        doc = await self._ontology_doc()
        negotiated = suffix is None
        if media != HTML:
            return self.rdf_response(doc.nt, media, "/ontology", negotiated)
        page_url = str(request.url.replace(query="", fragment=""))
        data = jsonld.add_addresses(
            {
                "@context": "https://schema.org",
                "@type": "DefinedTermSet",
                "@id": doc.iri,
                "name": doc.title,
                "description": doc.description,
                "version": doc.version,
            },
            url=page_url,
            license=doc.license,
        )
        data["hasDefinedTerm"] = [
            {
                "@type": "DefinedTerm",
                "@id": term.iri,
                "name": term.label,
                "description": term.definition,
                "termCode": term.anchor,
            }
            for term in doc.terms
        ]
        page = render(
            "ontology.html",
            title=doc.title,
            description=doc.description,
            doc=doc,
            jsonld=jsonld_block(data),
            alternates=self.alternates("/ontology"),
            formats=self.alternates("/ontology"),
            active="/ontology",
        )
        return self.html_response(page, "/ontology", negotiated)

    # Home and search ------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        """``/``: what the dataset is, its size, a timeline, the partner network and the themes."""
        site = self.site
        counts = await site.counts()
        kinds = await self.browse.counts()
        activities = await site.activities()
        roles = await site.role_labels()
        themes = await site.concept_tree(site.themes_scheme)
        base = str(request.base_url).rstrip("/")
        downloads = [
            (f"{base}/download/escap-kg.{suffix}", media) for suffix, media, _ in DOWNLOADS
        ]
        data = jsonld.dataset_jsonld(f"{base}/", HOME_DESCRIPTION, counts, downloads)
        from escap_kg.service import dataset_stats

        citation = cite(f"{base}/", (await dataset_stats(self.state)).issued)
        page = render(
            "home.html",
            title="ESCAP and international migration, 2001-2003",
            description=HOME_DESCRIPTION,
            counts=counts,
            cards=[kinds[kind] for kind in HOME_KINDS],
            themes_chart=await charts.themes_by_year(self.state, self.paths),
            partners_chart=await charts.partners_by_year(self.state, self.paths),
            activities=activities,
            timeline=svg.timeline(activities, "home-timeline", roles),
            network=svg.network(activities, "home-network", roles),
            roles=roles,
            themes=themes,
            downloads=DOWNLOADS,
            citation=citation,
            jsonld=jsonld_block(data),
            active="/",
        )
        return HTMLResponse(page)

    async def search(self, request: Request) -> Response:
        """``/search?q=``: resources whose texts hold every word of the query, best first, with
        the matching text (the full-text index); by name only over an upstream store."""
        from escap_kg.engine import EngineError, QueryEngine
        from escap_kg.service import ProtocolError, search_hits

        query = " ".join(request.query_params.get("q", "").split())[:200]
        results: list[dict[str, Any]] = []
        full_text = isinstance(self.state.engine, QueryEngine)
        if query and full_text:
            try:
                hits = await search_hits(self.state, query, limit=50)
            except (ProtocolError, EngineError) as err:
                if err.status != 400:
                    raise
                hits = []  # no word in the query: nothing to find
            for hit in hits:
                results.append({**hit, "href": self.paths.href(str(hit["iri"]))})
        elif query:
            needles = query.lower().split()
            for entry in await self.site.search_index():
                text = " ".join(entry.names).lower() + " " + entry.iri.lower()
                if all(n in text for n in needles):
                    href = self.paths.href(entry.iri)
                    results.append(
                        {"iri": entry.iri, "label": entry.label, "kind": entry.kind, "href": href}
                    )
            results = sorted(results, key=lambda r: str(r["label"]).lower())[:100]
        page = render(
            "search.html",
            title=f"Search: {query}" if query else "Search",
            query=query,
            results=results,
            full_text=full_text,
        )
        return HTMLResponse(page)


def _summary(resource: Resource) -> str:
    texts = [value.text for _, value in resource.texts]
    kind = resource.types[0].label if resource.types else "resource"
    return texts[0] if texts else f"{resource.label}: a {kind} in the escap-kg knowledge graph."


def _empty_resource(iri: str, label: str, paths: Paths) -> Resource:
    return Resource(
        iri=iri,
        label=label,
        kind=paths.kind(iri),
        path=paths.path(iri),
        types=[],
        type_iris=[],
        texts=[],
        alt_labels=[],
        when=None,
        outgoing=[],
        incoming=[],
        edges=[],
        links=[],
        graphs=[],
        nt="",
        triples=[],
        names={},
        neighbour_types={},
    )


__all__ = ["add_page_routes"]
