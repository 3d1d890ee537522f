"""Dependency aliases: what a route needs, named once (FastAPI full-stack template style).

The providers are `async def` although nothing in them waits: FastAPI runs a plain `def`
dependency on its thread pool, one hand-off to a worker thread and back per dependency and
request (four for GET /recommendations), which under load cost more than the route's work.
They only read app state, so they run on the event loop at no cost."""
from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from recommender.serving.live import LiveRecommender
from recommender.storage import Store
from service.metrics import Metrics
from recommender.core.settings import Settings

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="Needed for writes; one of PAPERREC_API_KEYS.")


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_store(request: Request) -> Store:
    return request.app.state.store


async def get_recommender(request: Request) -> LiveRecommender:
    return request.app.state.recommender


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def key_is_valid(settings: Settings, key: str | None) -> bool:
    """Compared as UTF-8 bytes: compare_digest refuses str with non-ASCII characters (a
    header byte above 0x7f arrives as one), which made such a key a 500."""
    if not key:
        return False
    given = key.encode("utf-8", "surrogateescape")
    return any(hmac.compare_digest(given, k.encode("utf-8")) for k in settings.api_key_set)


async def require_api_key(
    settings: Annotated[Settings, Depends(get_settings)],
    key: Annotated[str | None, Security(api_key_header)],
) -> str:
    """401 when no key is given (who are you?), 403 when it is wrong (not allowed)."""
    if not key:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "X-API-Key header required",
                            headers={"WWW-Authenticate": "APIKey"})
    if not key_is_valid(settings, key):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "X-API-Key not accepted")
    return key


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
RecommenderDep = Annotated[LiveRecommender, Depends(get_recommender)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ApiKey = Annotated[str, Depends(require_api_key)]
OptionalKey = Annotated[str | None, Security(api_key_header)]


async def off_loop_if_busy(recommender: LiveRecommender, fn, *args):
    """Run a read of the live recommender on the event loop, or on a worker thread when it
    could wait on a lock (see LiveRecommender.is_busy).

    Why on the loop: a list over the demo catalog takes well under a millisecond of
    Python, and sending it to a worker thread and back (two GIL hand-offs under load) cost
    about as much again; the loop never waits on SQLite here (WAL reads, writes queued)."""
    if recommender.is_busy():
        return await run_in_threadpool(fn, *args)
    return fn(*args)
