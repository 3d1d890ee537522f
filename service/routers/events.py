"""POST /events: what readers did, stored durably before the answer goes out.

The route runs on the event loop and awaits the store's group commit: while the commit's
fsync runs no worker thread is held, so a burst of event batches does not queue the
recommendation requests that share the thread pool (measured in `make bench-load`)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, status

from recommender.storage import EventRow, IdempotencyConflict
from service.deps import ApiKey, MetricsDep, RecommenderDep, StoreDep
from service.errors import invalid_fields
from service.schemas import EventBatch, EventIn, EventsAccepted

router = APIRouter(tags=["events"])


@router.post("/events", response_model=EventsAccepted, status_code=status.HTTP_201_CREATED,
             responses={409: {"description": "an idempotency key reused for another event"}})
async def post_events(
    payload: Annotated[EventIn | EventBatch, Body(description="one event or a list of up to 1,000")],
    store: StoreDep,
    recommender: RecommenderDep,
    metrics: MetricsDep,
    _key: ApiKey,
) -> EventsAccepted:
    """Store one event or a batch, all or nothing. Retries with the same idempotency key
    (per reader) are stored once; a key reused for other content is a 409 naming it. The reader's next list reflects the events at once (every list is
    ranked after a refresh from the store, which holds them by the time this answers)."""
    batch = payload if isinstance(payload, list) else [payload]
    known = recommender.catalog.row_of
    # Papers the served catalog lacks may still be in the store (added by another process
    # since the last refresh): only those cost a query.
    unsure = [e.paper_id for e in batch if e.paper_id not in known]
    stored_ids = store.existing_paper_ids(unsure) if unsure else set()
    errors = [
        (["body", i, "paper_id"] if isinstance(payload, list) else ["body", "paper_id"],
         f"unknown paper_id {e.paper_id!r}", e.paper_id)
        for i, e in enumerate(batch) if e.paper_id not in known and e.paper_id not in stored_ids
    ]
    if errors:
        raise invalid_fields(errors)
    try:
        stored, duplicates = await store.add_events_async([
            EventRow(e.user_id, e.paper_id, e.kind, e.ts, e.request_id, e.idempotency_key)
            for e in batch
        ])
    except IdempotencyConflict as exc:
        loc = ["body", exc.index, "idempotency_key"] if isinstance(payload, list) \
            else ["body", "idempotency_key"]
        raise HTTPException(status.HTTP_409_CONFLICT, {
            "loc": loc, "idempotency_key": exc.key, "msg": str(exc)}) from None
    metrics.events_accepted.inc(stored)
    return EventsAccepted(accepted=len(batch), stored=stored, duplicates=duplicates)
