"""App wiring: settings, store, live recommender, middleware and routers."""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from recommender.serving import LiveRecommender
from recommender.store import Store
from service.errors import validation_error_handler
from service.limits import BodySizeLimit
from service.metrics import Metrics, MetricsMiddleware
from service.routers import events, experiments, health, papers, recommendations, users
from service.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = Store(settings.db)
        app.state.store = store
        app.state.recommender = LiveRecommender(
            store, trending_half_life_days=settings.trending_half_life_days)
        yield
        store.close()

    app = FastAPI(
        title="paperrec",
        version="0.1.0",
        summary="Personalised 'trending for you' lists for a research-paper feed.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    for module in (recommendations, events, papers, users, experiments, health):
        app.include_router(module.router)
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory: `uvicorn service.app:app_from_env --factory`."""
    return create_app()
