"""The application ``serve`` runs: SPARQL from the first moment, the rest once it is built.

Importing the web application (FastAPI and pydantic, the pages, rdflib for the descriptions)
takes most of a second, longer than opening an on-disk store or loading a small graph. So the
server listens as soon as the engine is up, answers the SPARQL protocol with the request path of
:mod:`escap_kg.endpoint` (which needs none of that), and builds the whole application on a
thread meanwhile. A request for anything else (a page, the API, a download, or /sparql from a
browser, which takes the CORS layer) waits until the application is built, then is served by it;
nothing is refused for arriving early.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
from collections.abc import Callable
from typing import Any

from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from escap_kg.endpoint import SparqlEntry, start_engine
from escap_kg.service import State

log = logging.getLogger("escap_kg.server")


class Boot:
    """An ASGI application over ``state``: its lifespan starts and stops the engine, calls
    ``on_ready`` once it is up, and starts building the whole application with ``build``."""

    def __init__(
        self,
        state: State,
        build: Callable[[State], Any],
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.state = state
        self.build = build
        self.on_ready = on_ready
        self.entry = SparqlEntry(state)
        self.app: Any = None
        self._built: asyncio.Event | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if self.app is None:
            if scope["type"] == "http" and scope["path"] == "/sparql" and self.entry.takes(scope):
                await self.entry(scope, receive, send)
                return
            if self._built is not None:
                await self._built.wait()
            if self.app is None:
                failed = PlainTextResponse("internal error; it has been logged\n", status_code=500)
                await failed(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Start the engine and the build at startup; stop the engine at shutdown."""
        await receive()  # lifespan.startup
        try:
            await start_engine(self.state.engine)
        except Exception as err:  # the engine's own errors name what failed
            log.error("the query engine did not start: %s", err)
            await send({"type": "lifespan.startup.failed", "message": str(err)})
            return
        if self.on_ready is not None:
            self.on_ready()
        loop = asyncio.get_running_loop()
        self._built = asyncio.Event()
        threading.Thread(
            target=self._build, args=(loop, self._built), name="build-app", daemon=True
        ).start()
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        try:
            await self.state.engine.close()
        finally:
            await send({"type": "lifespan.shutdown.complete"})

    def _build(self, loop: asyncio.AbstractEventLoop, built: asyncio.Event) -> None:
        try:
            self.app = self.build(self.state)
            # What is loaded by now (the catalogue, the framework, the pages) stays for the
            # life of the server: out of the garbage collector's sight (see create_app).
            gc.freeze()
        except Exception:
            log.exception("the web application could not be built; only /sparql answers")
        finally:
            # The loop is closed if the server stopped before the build ended.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(built.set)
