"""What an event is, and the one place its fields are checked.

The API and the importer both validate through here, so a row that the CLI rejects is
rejected by `POST /events` for the same reason, in the same words.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

KINDS = ("impression", "click", "read", "upvote", "remove_upvote", "dismiss", "remove_dismiss")
# Kinds that mean the reader has dealt with the paper: excluded from their next list.
SEEN_KINDS = frozenset({"click", "read", "upvote", "dismiss"})
# An undo that takes its event back entirely, as if neither had happened: a dismissal
# undone puts the paper back into the reader's lists. (`remove_upvote` is not one of them:
# it is a signal of its own, weighted by the models, and the paper stays seen.)
CANCELS = {"remove_dismiss": "dismiss"}
MAX_ID_LENGTH = 256
# Clocks drift; a timestamp further ahead than this is a bug in the client, not a clock.
MAX_FUTURE = timedelta(days=1)
MIN_TS = datetime(1970, 1, 1, tzinfo=timezone.utc)


class InvalidField(ValueError):
    """A field that cannot be accepted; `field` names it for the 4xx answer."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def normalize_ts(value: str | datetime | None, now: datetime | None = None,
                 field: str = "ts") -> str:
    """Return a canonical UTC ISO-8601 string, so stored timestamps sort as text.

    Naive times are taken as UTC. Empty means 'now'."""
    now = now or datetime.now(timezone.utc)
    if value is None or value == "":
        dt = now
    elif isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidField(field, f"not an ISO-8601 timestamp: {str(value)[:64]!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        # 0001-01-01T00:00+01:00 is a valid datetime whose UTC time is not (year 0).
        dt = dt.astimezone(timezone.utc)
    except OverflowError:
        raise InvalidField(field, "outside the years 1970-9999 in UTC") from None
    if dt < MIN_TS:
        raise InvalidField(field, "before 1970-01-01")
    if dt > now + MAX_FUTURE:
        raise InvalidField(field, "more than a day in the future")
    return dt.isoformat(timespec="microseconds")


def check_id(value, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidField(field, "must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidField(field, f"longer than {MAX_ID_LENGTH} characters")
    if "\x00" in value:
        raise InvalidField(field, "contains a NUL character")
    return value


def check_kind(value) -> str:
    if value not in KINDS:
        raise InvalidField("kind", f"must be one of {', '.join(KINDS)}; got {str(value)[:32]!r}")
    return value


def without_cancelled(events: list[dict]) -> list[dict]:
    """A reader's events (dicts with paper_id and kind, in time order) minus every undo in
    CANCELS and the latest earlier event of that paper it undoes; an undo with nothing to
    undo is dropped too. Histories are read through this, so the models, what "seen"
    means and the page all see a dismissal undone as no dismissal."""
    if not any(e["kind"] in CANCELS for e in events):
        return events
    kept: list[dict | None] = []
    open_: dict[tuple[str, str], list[int]] = {}
    for e in events:
        undone = CANCELS.get(e["kind"])
        if undone is None:
            open_.setdefault((e["paper_id"], e["kind"]), []).append(len(kept))
            kept.append(e)
            continue
        stack = open_.get((e["paper_id"], undone))
        if stack:
            kept[stack.pop()] = None
    return [e for e in kept if e is not None]
