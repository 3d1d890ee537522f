"""POST /events: what readers did, stored durably before the answer goes out."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, status
from fastapi.exceptions import RequestValidationError

from recommender.store import EventRow
from service.deps import ApiKey, MetricsDep, RecommenderDep, StoreDep
from service.schemas import EventBatch, EventIn, EventsAccepted

router = APIRouter(tags=["events"])


@router.post("/events", response_model=EventsAccepted, status_code=status.HTTP_201_CREATED)
def post_events(
    payload: Annotated[EventIn | EventBatch, Body(description="one event or a list of up to 1,000")],
    store: StoreDep,
    recommender: RecommenderDep,
    metrics: MetricsDep,
    _key: ApiKey,
) -> EventsAccepted:
    """Store one event or a batch, all or nothing. Retries with the same idempotency key
    are stored once. The reader's next list reflects the events at once."""
    batch = payload if isinstance(payload, list) else [payload]
    known = store.existing_paper_ids(e.paper_id for e in batch)
    errors = [
        {"type": "value_error", "loc": ["body", i, "paper_id"] if isinstance(payload, list)
         else ["body", "paper_id"], "msg": f"unknown paper_id {e.paper_id!r}", "input": e.paper_id}
        for i, e in enumerate(batch) if e.paper_id not in known
    ]
    if errors:
        raise RequestValidationError(errors)
    stored, duplicates = store.add_events([
        EventRow(e.user_id, e.paper_id, e.kind, e.ts, e.request_id, e.idempotency_key)
        for e in batch
    ])
    metrics.events_accepted.inc(stored)
    recommender.refresh()
    return EventsAccepted(accepted=len(batch), stored=stored, duplicates=duplicates)
