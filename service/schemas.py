"""Request and response bodies: the API's contract, and where field errors are named."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recommender.core.events import MAX_ID_LENGTH, InvalidField, check_no_nul, normalize_ts
from recommender.core.kinds import KINDS

# Not blank; no NUL or other control character anywhere (`\S` alone matched a NUL, so
# "a\x00b" passed; a trailing newline made GET /papers/{id} answer with another paper).
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH,
                          pattern=r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$")]
EventKind = Literal[KINDS]  # type: ignore[valid-type]
MAX_BATCH = 1000


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Id
    paper_id: Id
    kind: EventKind
    ts: str | None = Field(None, validate_default=True,
                            description="ISO-8601; empty means the time it arrives")
    request_id: Id | None = None
    idempotency_key: Id | None = None

    @field_validator("ts")
    @classmethod
    def _canonical_ts(cls, value: str | None) -> str:
        try:
            return normalize_ts(value)
        except InvalidField as exc:
            raise ValueError(exc.reason) from None


EventBatch = Annotated[list[EventIn], Field(min_length=1, max_length=MAX_BATCH)]


class EventsAccepted(BaseModel):
    accepted: int = Field(description="events in the request")
    stored: int = Field(description="newly stored")
    duplicates: int = Field(description="retries already stored under their idempotency key")


class PaperIn(BaseModel):
    """A paper to add, or what changes of a stored one: an update keeps every field it
    does not carry."""

    model_config = ConfigDict(extra="forbid")

    paper_id: Id
    title: Annotated[str, Field(min_length=1, max_length=2_000)] | None = Field(
        None, description="required for a new paper; an update may leave it out")
    abstract: Annotated[str, Field(max_length=100_000)] = ""
    published_at: str | None = None
    authors: Annotated[list[Annotated[str, Field(max_length=500)]], Field(max_length=5_000)] = []
    upvotes: Annotated[int, Field(ge=0, le=10**9)] | None = None
    url: Annotated[str, Field(max_length=2_000, pattern=r"^https?://[^\s\"'<>\\]+$")] | None = Field(
        None, description="the paper's page, for ids that are not arXiv ids")

    @field_validator("title", "abstract")
    @classmethod
    def _no_nul(cls, value: str | None, info) -> str | None:
        try:
            return value if value is None else check_no_nul(value, info.field_name)
        except InvalidField as exc:
            raise ValueError(exc.reason) from None

    @field_validator("authors")
    @classmethod
    def _no_nul_in_names(cls, value: list[str]) -> list[str]:
        try:
            for author in value:
                check_no_nul(author, "authors")
        except InvalidField as exc:
            raise ValueError(exc.reason) from None
        return value

    @field_validator("published_at")
    @classmethod
    def _canonical_date(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        try:
            return normalize_ts(value, field="published_at")
        except InvalidField as exc:
            raise ValueError(exc.reason) from None


PaperBatch = Annotated[list[PaperIn], Field(min_length=1, max_length=MAX_BATCH)]


class PaperOut(BaseModel):
    paper_id: str
    title: str
    abstract: str
    published_at: str | None
    authors: list[str]
    upvotes: int | None
    added_at: str
    url: str | None = Field(None, description="the paper's own page: arXiv's abstract page "
                            "for an arXiv id, else the catalog's url")


class PapersStored(BaseModel):
    accepted: int
    changed: int


class RecommendedItem(BaseModel):
    paper_id: str
    title: str
    score: float
    reason: str
    url: str | None = Field(None, description="the paper's own page (see PaperOut.url)")
    authors: list[str] = []
    author_count: int | None = Field(None, description="len(authors), or the count the "
                                     "catalog gives where it lists no names")
    organization: str | None = None
    published_at: str | None = None
    upvotes: int | None = Field(None, description="the catalog's upvote count")


class Recommendations(BaseModel):
    request_id: str
    user_id: str
    strategy: str
    model_version: str | None
    experiment: str | None = None
    variant: str | None = None
    items: list[RecommendedItem]


class TrendingList(BaseModel):
    as_of: datetime
    items: list[RecommendedItem]


class UserSummary(BaseModel):
    user_id: str
    known: bool
    events: int
    by_kind: dict[str, int]
    distinct_papers: int
    first_event_at: str | None
    last_event_at: str | None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    reasons: list[str]
    papers: int
    events: int
    model_version: str | None


class SearchResults(BaseModel):
    request_id: str | None = Field(description="the served list, logged when a reader is named")
    query: str
    user_id: str | None
    items: list[RecommendedItem]


class SimilarPapers(BaseModel):
    request_id: str | None = Field(description="the served list, logged when a reader is named")
    paper_id: str
    title: str
    items: list[RecommendedItem]
