"""App wiring: settings, store, live recommender, middleware and routers."""
from __future__ import annotations

import gc
import signal
import sys
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from threadpoolctl import threadpool_limits

from recommender.serving.live import LiveRecommender
from recommender.storage import open_store
from service.errors import STORE_ERRORS, store_unavailable_handler, validation_error_handler
from service.limits import BodySizeLimit
from service.metrics import Metrics, MetricsMiddleware
from service.security import SecurityMiddleware
from service.routers import events, experiments, health, papers, recommendations, users
from recommender.core.settings import Settings
from service.web import install_web, start_search


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Requests run on many threads at once; a threaded BLAS under each of them makes
        # every small matrix product fight over the same 2 cores (measured: 0.2 ms -> 40 ms
        # a product at 16 threads). One BLAS thread per request thread.
        blas = threadpool_limits(limits=1, user_api="blas")
        # A write past the file-size limit (RLIMIT_FSIZE) must fail like a full disk (503,
        # healed when space returns), not kill the process with SIGXFSZ.
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        except ValueError:  # not the main thread (an embedding app): leave it alone
            pass
        # Sync routes run on anyio's pool (40 threads by default). On 2 cores, 40 threads
        # convoy on the GIL and starve the event loop: 8 gave ~25% more throughput and a
        # lower p99 than 40, 16 or 4 in `make bench-load`.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        switch = sys.getswitchinterval()
        sys.setswitchinterval(settings.gil_switch_ms / 1000.0)  # see Settings.gil_switch_ms
        store = open_store(settings.db)
        app.state.store = store
        app.state.recommender = LiveRecommender(
            store, trending_half_life_days=settings.trending_half_life_days,
            list_ttl_s=settings.list_ttl_s, max_kept_items=settings.kept_list_items)
        start_search(app, store)
        # ~150k objects exist by now (modules, the catalog, the model) and live as long as
        # the process; a full collection walked them all: a 35-70 ms stall of every request
        # in flight, the p99 of `make bench-load`. Frozen, collections see only what
        # requests create.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            store.close()
            blas.restore_original_limits()
            sys.setswitchinterval(switch)

    app = FastAPI(
        title="paperrec",
        version="0.1.0",
        summary="Personalised 'trending for you' lists for a research-paper feed.",
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served offline by service/web.py
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    for error in STORE_ERRORS:
        app.add_exception_handler(error, store_unavailable_handler)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    install_web(app, settings)
    app.add_middleware(SecurityMiddleware)
    for module in (recommendations, events, papers, users, experiments, health):
        app.include_router(module.router)
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory: `uvicorn service.app:app_from_env --factory`."""
    return create_app()
