"""The HTTP service: ``create_app`` builds the FastAPI app that ``mmrag serve`` runs.

The app is assembled from one router per concept: collections (:mod:`.collections`),
ingest jobs (:mod:`.items`), search, ask, media, and the OpenAI-compatible ``/v1``
(:mod:`.openai_compat`), plus ``/health``, ``/metrics`` (:mod:`.metrics`) and the web page
(``/`` and ``/static``, when :mod:`mmrag.server` ships it). The lifespan opens what is
served (:mod:`.registry`) and the ingest workers (:mod:`.jobs`), and closes them at
shutdown; every error is one JSON shape with a stable code (:mod:`.errors`); API keys
(:mod:`.auth`) guard everything but ``/health``, the docs and the page.

Two ways to serve: ``create_app(index)`` serves one index as the collection ``default``
(opened and warmed at startup, so a bad setting stops the server); ``create_app(data=DIR)``
serves a folder of collections, each opened on first use.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..config import ServerSettings, Settings
from ..errors import ConfigError
from ..generate import PROVIDERS, generators
from ..index import Index
from . import ask, collections, items, media, search
from .allocator import limit_arenas
from .auth import is_loopback, require
from .errors import install_error_handlers
from .generation import index_generator
from .joblog import JobLog
from .jobs import Jobs
from .keys import KeyStore
from .metrics import LatencyMiddleware, Metrics
from .openai_compat import router as openai_router
from .quotas import Quotas
from .registry import DEFAULT, Collections
from .state import IndexSource, ServerState, server_state

__all__ = ["check_exposure", "create_app", "is_loopback", "serve", "warm_up"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"


def create_app(index: Index | str | Path | None = None, *, data: str | Path | None = None,
               profile: str | None = None, config: str | Path | None = None,
               server: ServerSettings | None = None, **overrides: Any) -> FastAPI:
    """The app serving ``index`` (an open :class:`Index`, left open at shutdown, or a
    folder / store URI opened at startup and closed at shutdown) or, with ``data``, the
    collections in that folder. ``profile``, ``config`` and settings ``overrides``
    (``generate__generator="openai"``) apply to every index opened; ``server`` (default:
    the ``server`` section of those settings) sets upload limits, CORS and thumbnails."""
    if index is not None and data is not None:
        raise ConfigError("serve either one index or a data folder of collections, not both")
    if index is None and data is None:
        index = ".mmrag"
    if server is None:
        server = index.settings.server if isinstance(index, Index) else \
            Settings.load(config, profile=profile, **overrides).server
    metrics = Metrics()
    opener = _Opener(index, data, profile, config, overrides)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await run_in_threadpool(_start, opener, server, metrics)
        state.search_limiter = anyio.CapacityLimiter(server.search_threads)
        app.state.mmrag = state
        try:
            yield
        finally:
            await run_in_threadpool(state.close)

    app = FastAPI(title="mmrag", version=__version__, lifespan=lifespan,
                  summary="Multimodal retrieval and grounded answers over indexed collections.")
    app.state.metrics = metrics
    install_error_handlers(app)
    for module in (collections, items, search, ask, media):
        app.include_router(module.router)
    app.include_router(openai_router, dependencies=[Depends(require("read", DEFAULT))])
    app.add_api_route("/health", health, methods=["GET"], tags=["service"])
    app.add_api_route("/metrics", metrics_text, methods=["GET"], tags=["service"],
                      dependencies=[Depends(require("read"))], response_class=Response)
    _mount_page(app)
    if server.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=server.cors_origins,
                           allow_methods=["*"], expose_headers=["ETag"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type",
                                          "If-None-Match"])
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    return app


class _Opener:
    """What the lifespan opens: one index (``index``) or a data folder (``data``)."""

    def __init__(self, index: Index | str | Path | None, data: str | Path | None,
                 profile: str | None, config: str | Path | None, overrides: dict[str, Any]):
        self.index, self.data = index, data
        self.profile, self.config, self.overrides = profile, config, overrides

    def open(self) -> Collections:
        if self.data is not None:
            _check_generator(Settings.load(self.config, profile=self.profile,
                                           **self.overrides).generate.generator)
            return Collections(warm=warm_up, data=self.data, profile=self.profile,
                               config=self.config, overrides=self.overrides)
        assert self.index is not None  # create_app passes an index whenever data is None
        owns = not isinstance(self.index, Index)
        opened = self.index if isinstance(self.index, Index) else \
            IndexSource(self.index, self.profile, self.config, self.overrides).open()
        assert isinstance(opened, Index)
        try:
            collections = Collections(warm=warm_up, single=opened, owns_single=owns)
            collections.get(DEFAULT).ready()
        except BaseException:
            if owns:
                opened.close()
            raise
        log.info("serving %r", opened)
        return collections


def _start(opener: _Opener, server: ServerSettings, metrics: Metrics) -> ServerState:
    registry = opener.open()
    jobs = Jobs(registry, max_jobs=server.max_jobs, keep_jobs=server.keep_jobs,
                on_file=metrics.on_file, log=_job_log(registry.root))
    metrics.watch(lambda: _sizes(registry), jobs.counts)
    uploads = Path(tempfile.mkdtemp(prefix="mmrag-uploads-"))
    return ServerState(collections=registry, jobs=jobs, keys=KeyStore(registry.root),
                       settings=server, uploads=uploads, quotas=Quotas(server))


def _job_log(folder: Path) -> JobLog:
    """The jobs of earlier runs; those a crash or restart cut short are failed now, with
    the reason, so a client polling one learns what happened."""
    log_ = JobLog(folder)
    if count := log_.fail_interrupted():
        log.warning("%d ingest job(s) were interrupted by a restart; marked failed", count)
    return log_


def _sizes(registry: Collections) -> Iterator[tuple[str, int, int]]:
    for collection in registry.opened():
        try:
            index = collection.index
            yield collection.name, index.store.count(), len(index.catalog.doc_ids())
        except Exception:  # closed or deleted between listing and counting
            log.debug("cannot size collection %r", collection.name, exc_info=True)


def _check_generator(name: str) -> None:
    """Refuse an unknown generator name at startup (built-in providers are imported when
    first used, so only their names are checked here)."""
    if name not in PROVIDERS:
        generators.get(name)


def _mount_page(app: FastAPI) -> None:
    """The web page, if this install ships it: ``/`` and ``/static/...``, no key needed
    (it asks for one and sends it with its API calls)."""
    if not STATIC.is_dir():
        return
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    async def page() -> Response:
        index = STATIC / "index.html"
        if not index.is_file():
            return Response("mmrag: no web page in this install", media_type="text/plain",
                            status_code=404)
        return FileResponse(index, media_type="text/html",
                            headers={"Cache-Control": "no-cache"})

    app.add_api_route("/", page, methods=["GET"], include_in_schema=False)


def warm_up(index: Index) -> None:
    """Load encoders, connect the store and build the generator now: the first requests
    would race to build them (the lazy properties are not meant for two threads at once),
    and a misconfigured generator (unknown name, missing key or extra) should stop the
    server from starting rather than fail every request."""
    _ = index.encoders, index.store
    index_generator(index)


async def health(request: Request) -> dict[str, Any]:
    """Liveness plus what is served; cheap (no index is opened), so probes may call it
    often. ``auth`` tells a client whether it needs an API key."""
    state = server_state(request)
    registry = state.collections
    out: dict[str, Any] = {"status": "ok", "version": __version__,
                           "auth": bool(state.keys.keys())}
    if registry.single:
        index = registry.get(DEFAULT).index
        out.update(index=str(index.root), profile=index.profile,
                   generator=index.settings.generate.generator)
    else:
        out.update(data=str(registry.root), collections=len(registry.names()))
    return out


async def metrics_text(request: Request) -> Response:
    """Prometheus text format (latency by route, ingest counters, index sizes)."""
    from prometheus_client import CONTENT_TYPE_LATEST

    body = await run_in_threadpool(request.app.state.metrics.render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def serve(index: Index | str | Path | None = None, *, data: str | Path | None = None,
          host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
          profile: str | None = None, config: str | Path | None = None,
          insecure: bool = False, server: ServerSettings | None = None,
          **overrides: Any) -> None:
    """Run the app with uvicorn until interrupted (what ``mmrag serve`` does).

    A single index is opened and warmed before the server starts: a bad folder, setting or
    missing extra then fails as one :class:`~mmrag.errors.MmragError` line for the CLI,
    not as a startup traceback in uvicorn's log. Without API keys the server is open to
    whoever reaches it, so it then refuses a non-loopback ``host`` unless ``insecure``.
    """
    import uvicorn

    limit_arenas()  # before uvicorn and the stores start their threads
    if data is not None:
        check_exposure(KeyStore(data), host, insecure)
        _check_generator(Settings.load(config, profile=profile, **overrides)
                         .generate.generator)
        app = create_app(data=data, profile=profile, config=config, server=server,
                         **overrides)
        app.state.bind_host = host  # what media caching policy is decided by
        uvicorn.run(app, host=host, port=port, log_level=log_level)
        return
    opened = index if isinstance(index, Index) else IndexSource(
        index or ".mmrag", profile, config, overrides).open()
    try:
        check_exposure(KeyStore(opened.root), host, insecure)
        warm_up(opened)
        app = create_app(opened, server=server)
        app.state.bind_host = host
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    finally:
        if opened is not index:
            opened.close()


def check_exposure(keys: KeyStore, host: str, insecure: bool) -> None:
    if not is_loopback(host) and not insecure and not keys.keys():
        raise ConfigError(f"refusing to listen on {host!r} without API keys: create one with "
                          "`mmrag keys create`, listen on 127.0.0.1, or pass --insecure")
