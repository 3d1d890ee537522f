"""GET /users/{user_id}: what the service knows of a reader (history counts)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from service.deps import ApiKey, StoreDep
from service.schemas import Id, UserSummary

router = APIRouter(tags=["users"])


@router.get("/users/{user_id:path}", response_model=UserSummary)
def get_user(user_id: Annotated[Id, Path()], store: StoreDep, _key: ApiKey) -> UserSummary:
    """A reader nobody has seen is not an error: they simply have no history yet.
    Needs X-API-Key: a reader's activity and its times are theirs, not the public's."""
    summary = store.user_summary(user_id)
    return UserSummary(known=summary["events"] > 0, **summary)
