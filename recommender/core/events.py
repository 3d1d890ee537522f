"""What an event is, and the one place its fields are checked; and the undo rule.

The API and the importer both validate through here, so a row that the CLI rejects is
rejected by `POST /events` for the same reason, in the same words. What each kind means
(weights, seen, undo) is the table in core/kinds.py.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np

from recommender.core.kinds import BY_NAME, KINDS, UNDO_KINDS

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
    return check_no_nul(value, field)


def check_no_nul(value: str, field: str) -> str:
    """Text may not hold a NUL character: PostgreSQL's text cannot store one, and on SQLite
    it was stored but cut short by every consumer that reads C strings. Refused with a 422
    on both backends alike."""
    if "\x00" in value:
        raise InvalidField(field, "contains a NUL character")
    return value


def check_kind(value) -> str:
    if value not in KINDS:
        raise InvalidField("kind", f"must be one of {', '.join(KINDS)}; got {str(value)[:32]!r}")
    return value


def undo_pairs(keys, kinds) -> tuple[list[bool], dict[int, int]]:
    """The undo rule, for events in time order: `keys[i]` names the reader and paper of
    event i. An undo (core/kinds.py: `undoes`) takes back that reader's latest earlier,
    not yet taken back event of its kind on that paper; an erasing undo removes that event
    and itself (a dismissal undone is no dismissal), another keeps both (an upvote taken
    back is a signal of its own for the model). An undo with nothing to take back is stored
    but counts nowhere: it is dropped. Returns (which events count, undo -> the event it
    took back)."""
    keep = [True] * len(kinds)
    taken: dict[int, int] = {}
    open_: dict[tuple, list[int]] = {}
    for i, (key, kind) in enumerate(zip(keys, kinds)):
        row = BY_NAME.get(kind)
        if row is None or row.undoes is None:
            open_.setdefault((key, kind), []).append(i)
            continue
        stack = open_.get((key, row.undoes))
        if not stack:
            keep[i] = False
            continue
        taken[i] = j = stack.pop()
        if row.erases:
            keep[i] = keep[j] = False
    return keep, taken


def undo_keep(keys, kinds) -> list[bool]:
    """Which events count under the undo rule (undo_pairs)."""
    return undo_pairs(keys, kinds)[0]


def without_cancelled(events: list[dict]) -> list[dict]:
    """A reader's events (dicts with paper_id and kind, in time order) under the undo rule
    (undo_keep). Histories are read through this, so the models, what "seen" means and the
    page all see a dismissal undone as no dismissal, and an upvote taken back that never
    was as nothing."""
    if not any(e["kind"] in UNDO_KINDS for e in events):
        return events
    keep = undo_keep([e["paper_id"] for e in events], [e["kind"] for e in events])
    return [e for e, k in zip(events, keep) if k]


def undo_mask(users, items, kinds) -> np.ndarray:
    """undo_keep over many readers' events at once (training data, in time order), as a
    boolean mask; only the (reader, paper) pairs that have an undo are walked."""
    kinds = np.asarray(kinds, dtype=object)
    keep = np.ones(len(kinds), dtype=bool)
    is_undo = np.isin(kinds, list(UNDO_KINDS))
    if not is_undo.any():
        return keep
    users = np.asarray(users, np.int64)
    items = np.asarray(items, np.int64)
    pair = users * (int(items.max()) + 1) + items
    touched = np.flatnonzero(np.isin(pair, np.unique(pair[is_undo])))
    flags = undo_keep(pair[touched].tolist(), kinds[touched].tolist())
    keep[touched] = flags
    return keep
