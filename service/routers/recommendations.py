"""GET /recommendations and GET /trending: the lists the front end shows."""
from __future__ import annotations

import json
import re
import weakref
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BeforeValidator

from recommender.core.events import InvalidField, normalize_ts
from recommender.core.times import to_unix
from recommender.serving import strategies
from recommender.serving.serve_list import serve_list
from service.deps import (MetricsDep, OptionalKey, RecommenderDep, SettingsDep, StoreDep, key_is_valid,
                          off_loop_if_busy)
from service.errors import invalid
from service.list_items import item_dicts
from service.schemas import Id, RecommendedItem, Recommendations, TrendingList

router = APIRouter(tags=["recommendations"])

def _iso_only(value):
    """pydantic would read a bare number as Unix seconds; the API documents ISO-8601."""
    if isinstance(value, (int, float)) or (isinstance(value, str) and _NUMBER.fullmatch(value.strip())):
        raise ValueError("not an ISO-8601 timestamp")
    return value


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
AsOf = Annotated[datetime | None, BeforeValidator(_iso_only),
                 Query(description="rank as of this time (ISO-8601); default now")]
K = Annotated[int, Query(ge=1, le=100, description="list length")]


def _as_of_unix(as_of: datetime | None) -> float | None:
    if as_of is None:
        return None
    try:
        return to_unix(normalize_ts(as_of, field="as_of"))
    except InvalidField as exc:
        raise invalid(["query", "as_of"], exc.reason, str(as_of)) from None


def _items(store, recommender, ranked) -> list[RecommendedItem]:
    return [RecommendedItem(**item) for item in
            item_dicts(store, recommender.catalog, ranked.rows, ranked.scores, ranked.reasons)]


# The key is optional here (only the debug `strategy` override needs it): `{}` tells
# OpenAPI clients that calling without it is allowed.
@router.get("/recommendations", response_model=Recommendations,
            openapi_extra={"security": [{}]})
async def recommendations(
    user_id: Annotated[Id, Query(description="the reader")],
    recommender: RecommenderDep,
    store: StoreDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    key: OptionalKey = None,
    k: K = 20,
    exclude_seen: bool = True,
    as_of: AsOf = None,
    strategy: Annotated[str | None, Query(max_length=64,
                        description="debug override of the strategy; needs X-API-Key")] = None,
) -> Response:
    """A personalised list; readers with no history get trending. A reader in a running
    experiment gets the strategy of their variant (or an interleaved list); the response
    names the experiment and variant. Every list served is logged under its request_id, so
    events that carry it are attributed to that list."""
    if strategy is not None:
        if not key:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "strategy override needs X-API-Key")
        if not key_is_valid(settings, key):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "X-API-Key not accepted")
        if strategy not in strategies.NAMES:
            raise invalid(["query", "strategy"], f"unknown strategy; one of {', '.join(strategies.NAMES)}",
                          strategy)
    served = await off_loop_if_busy(recommender, serve_list, store, recommender, user_id, k,
                                    exclude_seen, _as_of_unix(as_of), strategy)
    metrics.recommendations.labels(served.strategy).inc()
    return _json(served, store, recommender.catalog)


def _json(served, store, catalog) -> Response:
    """The `Recommendations` body, written directly: building the pydantic models and
    validating them again against response_model cost more than ranking a list of the
    demo catalog. Same fields in the same order; test_recommendations_api checks every
    answer against the schema."""
    head = {"request_id": served.request_id, "user_id": served.user_id,
            "strategy": served.strategy, "model_version": served.model_version,
            "experiment": served.experiment, "variant": served.variant}
    body = _dumps(head)[:-1] + ',"items":' + _items_json(served, store, catalog) + "}"
    return Response(body.encode("utf-8"), media_type="application/json")


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# The items of a list, encoded once per list object and catalog: a reader's kept list
# (and the trending list of everyone without history) is the same Ranked on every request
# that reuses it, and encoding its 20 items was a fifth of the GIL time of a request in
# `make bench-load`. Weak keys: an entry goes when the recommender drops the list; and a
# weak reference to the catalog, so an entry never keeps an older catalog (a full copy of
# the paper vectors) alive.
_ENCODED_ITEMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _items_json(served, store, catalog) -> str:
    ranked = served.ranked
    if ranked is not None:
        kept = _ENCODED_ITEMS.get(ranked)
        if kept is not None and kept[0]() is catalog:
            return kept[1]
    text = _dumps(item_dicts(store, catalog, served.rows, served.scores, served.reasons))
    if ranked is not None:
        _ENCODED_ITEMS[ranked] = (weakref.ref(catalog), text)
    return text


@router.get("/trending", response_model=TrendingList)
def trending(recommender: RecommenderDep, store: StoreDep, k: K = 20,
             as_of: AsOf = None) -> TrendingList:
    """Time-decayed popularity from events plus the catalog's prior upvotes."""
    when = _as_of_unix(as_of)
    ranked = recommender.trending_list(k, when)
    return TrendingList(
        as_of=(datetime.now(timezone.utc) if when is None  # the epoch (0.0) is a time too
                else datetime.fromtimestamp(when, tz=timezone.utc)),
        items=_items(store, recommender, ranked),
    )
