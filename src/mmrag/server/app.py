"""The HTTP service: ``create_app`` builds the FastAPI app that ``mmrag serve`` runs.

The app is assembled from one router per concept (``openai_compat`` now; collections,
media and auth beside it later), shares one :class:`~mmrag.Index` opened by the lifespan
(:mod:`.state`) and answers every error as one JSON shape with a stable code
(:mod:`.errors`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..index import Index
from .errors import install_error_handlers
from .generation import index_generator
from .openai_compat import router as openai_router
from .state import IndexSource, ServerState, server_state

__all__ = ["create_app", "serve", "warm_up"]

log = logging.getLogger(__name__)


def create_app(index: Index | str | Path = ".mmrag", *, profile: str | None = None,
               config: str | Path | None = None, **overrides: Any) -> FastAPI:
    """The app serving ``index``: an open :class:`Index` (left open at shutdown), or a
    folder / store URI opened at startup with ``profile``, ``config`` and settings
    ``overrides`` (``generate__generator="openai"``) and closed at shutdown."""
    source = index if isinstance(index, Index) else IndexSource(index, profile, config,
                                                                overrides)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await run_in_threadpool(_start, source)
        app.state.mmrag = state
        try:
            yield
        finally:
            await run_in_threadpool(state.close)

    app = FastAPI(title="mmrag", version=__version__, lifespan=lifespan,
                  summary="Multimodal retrieval and grounded answers over an index.")
    install_error_handlers(app)
    app.include_router(openai_router)
    app.add_api_route("/health", health, methods=["GET"], tags=["service"])
    return app


def _start(source: Index | IndexSource) -> ServerState:
    owns = isinstance(source, IndexSource)
    index = source.open() if isinstance(source, IndexSource) else source
    warm_up(index)
    log.info("serving %r", index)
    return ServerState(index=index, owns_index=owns)


def warm_up(index: Index) -> None:
    """Load encoders, connect the store and build the generator now: the first requests
    would race to build them (the lazy properties are not meant for two threads at once),
    and a misconfigured generator (unknown name, missing key or extra) should stop the
    server from starting rather than fail every request."""
    _ = index.encoders, index.store
    index_generator(index)


async def health(request: Request) -> dict[str, Any]:
    """Liveness plus what is served; cheap (no store scan), so probes may call it often."""
    index = server_state(request).index
    return {"status": "ok", "version": __version__, "index": str(index.root),
            "profile": index.profile, "generator": index.settings.generate.generator}


def serve(index: Index | str | Path = ".mmrag", *, host: str = "127.0.0.1", port: int = 8000,
          log_level: str = "info", profile: str | None = None,
          config: str | Path | None = None, **overrides: Any) -> None:
    """Run the app with uvicorn until interrupted (what ``mmrag serve`` does).

    The index is opened and warmed before the server starts: a bad folder, setting or
    missing extra then fails as one :class:`~mmrag.errors.MmragError` line for the CLI,
    not as a startup traceback in uvicorn's log.
    """
    import uvicorn

    opened = index if isinstance(index, Index) else IndexSource(index, profile, config,
                                                                overrides).open()
    try:
        warm_up(opened)
        uvicorn.run(create_app(opened), host=host, port=port, log_level=log_level)
    finally:
        if opened is not index:
            opened.close()
