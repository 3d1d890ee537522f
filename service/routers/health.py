"""Health and Prometheus metrics."""
from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from recommender.storage import STORE_ERRORS

from service.deps import MetricsDep, RecommenderDep, StoreDep, off_loop_if_busy
from service.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health)
async def health(store: StoreDep, recommender: RecommenderDep) -> Health:
    """Runs like GET /recommendations (on the event loop unless the recommender is busy),
    so the load benchmark's floor measures the same path minus the ranking. `degraded`
    names each problem: a model that did not load, a database that does not take writes
    (read-only, full disk: writes answer 503 until it passes, then this heals)."""
    try:
        await off_loop_if_busy(recommender, recommender.refresh)
    except STORE_ERRORS as exc:
        if not store.fault_reason(exc):
            raise
        store.note_fault(exc)
    reasons = recommender.degraded_reasons()
    if store.fault is not None:  # a write failed for an outside cause: is it over?
        reasons += await run_in_threadpool(store.health_reasons)
    return Health(
        status="degraded" if reasons else "ok",
        reasons=reasons,
        papers=recommender.catalog.size,
        events=len(recommender.events),
        model_version=recommender.model_version,
    )


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
def metrics(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
