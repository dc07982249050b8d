"""The gateway: the HTTP API over the store (FastAPI)."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypedDict

import anyio.to_thread
from fastapi import Depends, FastAPI, Request, params
from fastapi.exception_handlers import http_exception_handler
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from topictag.adapters.registry import AdapterRegistry
from topictag.bootstrap import Parts
from topictag.gateway.admission import Admission
from topictag.gateway.auth import AUTH_ERRORS, require_api_key
from topictag.gateway.cache import ReadCache
from topictag.gateway.middleware import REQUEST_ID_HEADER, BodyLimit, ObserveLatency, RequestId, request_id_of
from topictag.gateway.routes import health, ingest, models, papers, search, stats, topics
from topictag.metrics import StoreCollector
from topictag.settings import GatewaySettings, Settings, get_settings
from topictag.store import Store
from topictag.topics.queries import SearchIndex

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


STATISTICS_EVERY_S = 600


class _RouterOptions(TypedDict, total=False):
    """What ``include_router`` adds to every route of a router."""

    dependencies: Sequence[params.Depends]
    responses: dict[int | str, dict[str, Any]]


def _keep_statistics(store: Store, stop: threading.Event) -> None:
    """Planner statistics for SQLite, now and every few minutes as papers arrive."""
    while True:
        try:
            store.refresh_statistics()
        except Exception as exc:  # a busy or missing store: try again next time
            log.warning("could not refresh the store's statistics: %r", exc)
        if stop.wait(STATISTICS_EVERY_S):
            return


def _lifespan(settings: Settings, store: Store | None):
    """What the app holds while it runs: the store (a store passed in stays its caller's to
    close), the registry, the task client, the search index, the read cache, the publisher."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        parts = Parts(settings)
        app.state.store = store or parts.store
        app.state.registry = lambda: AdapterRegistry(app.state.store, announce=parts.model_events)
        app.state.celery = lambda: parts.task_client
        app.state.search = SearchIndex(app.state.store, settings.topics.search_refresh_s)
        app.state.search_admission = Admission("search", settings.gateway.search_max_waiting)
        app.state.read_cache = ReadCache(settings.gateway.read_cache_s)  # per run: an app may be started again
        app.state.papers_out = ingest.PaperPublisher(settings.kafka)
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.gateway.threads
        stop = threading.Event()
        threading.Thread(target=_keep_statistics, args=(app.state.store, stop), daemon=True, name="statistics").start()
        yield
        stop.set()
        app.state.read_cache.close()
        app.state.papers_out.close()
        parts.close()

    return lifespan


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        # Clients get no stack trace or internals; the log keeps them, under the request id.
        rid = request_id_of(request.scope) or uuid.uuid4().hex
        log.exception("unhandled error on %s %s (request %s)", request.method, request.url.path, rid)
        return JSONResponse({"detail": "internal error", "request_id": rid}, status_code=500, headers={REQUEST_ID_HEADER: rid})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 405:
            # Starlette's Allow names the methods of the first route on the path only; GET and
            # POST /v1/papers are two routes. List every method the path has.
            methods = sorted({
                m for route in app.router.routes if route.matches(request.scope)[0] != Match.NONE
                for m in (getattr(route, "methods", None) or ())
            })
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(methods)}
        return await http_exception_handler(request, exc)


def _add_middleware(app: FastAPI, gateway: GatewaySettings) -> None:
    # Outermost last: request id, then CORS (so refusals carry its headers too), body limit, latency.
    app.add_middleware(ObserveLatency)
    app.add_middleware(BodyLimit, max_bytes=gateway.max_body_bytes)
    if gateway.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=gateway.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(RequestId)


def _add_routes(app: FastAPI, settings: Settings) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    store_metrics = CollectorRegistry(auto_describe=False)
    store_metrics.register(StoreCollector(lambda: app.state.store))

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        # This process's metrics, then gauges read from the store (one registry per app: a
        # test or a second app in one process has its own store).
        return Response(generate_latest() + generate_latest(store_metrics), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    # Reads are open unless TOPICTAG_GATEWAY_READS_NEED_KEY; writes always need a key.
    # (The same dependency on a write route runs once: FastAPI caches it per request.)
    keyed: _RouterOptions = (
        {"dependencies": [Depends(require_api_key)], "responses": AUTH_ERRORS} if settings.gateway.reads_need_key else {}
    )
    app.include_router(health.router)
    app.include_router(ingest.router(settings))
    for router in (papers.router(settings), topics.router, models.router, search.router, stats.router):
        app.include_router(router, **keyed)


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="topictag",
        version="0.1.0",
        description="Topics of research papers as they stream in, tagged by a self-distilling student LLM.",
        lifespan=_lifespan(settings, store),
    )
    app.state.settings = settings
    _add_error_handlers(app)
    _add_middleware(app, settings.gateway)
    _add_routes(app, settings)
    return app


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Run the gateway with uvicorn until interrupted."""
    import torch
    import uvicorn

    torch.set_num_threads(settings.gateway.torch_threads)
    uvicorn.run(
        create_app(settings),
        host=host or settings.gateway.host,
        port=port or settings.gateway.port,
        log_level="warning",
        log_config=None,  # uvicorn's lines go through setup_logging's handler (JSON when configured)
    )
