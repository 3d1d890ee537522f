"""Health and Prometheus metrics."""
from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import MetricsDep, RecommenderDep, StoreDep, off_loop_if_busy
from service.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health)
async def health(store: StoreDep, recommender: RecommenderDep) -> Health:
    """Runs like GET /recommendations (on the event loop unless the recommender is busy),
    so the load benchmark's floor measures the same path minus the ranking."""
    await off_loop_if_busy(recommender, recommender.refresh)
    reasons = recommender.degraded_reasons()
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
