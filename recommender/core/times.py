"""Time, in one place: the service stores ISO-8601 UTC text (it sorts as text) and computes
in unix seconds (floats, NaN for an unknown time)."""
from __future__ import annotations

import math
from datetime import datetime, timezone

DAY_S = 86_400.0


def to_unix(value) -> float:
    """Unix seconds from an ISO-8601 string (naive = UTC; `Z` accepted), a datetime or a
    number; NaN for None, "" or text that is not a time."""
    if value is None or value == "":
        return math.nan
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hasattr(value, "dtype"):  # a numpy scalar
        return float(value)
    try:
        dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return math.nan
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def to_iso(ts: float, timespec: str = "microseconds") -> str:
    """ISO-8601 UTC text of unix seconds (what the store keeps)."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec=timespec)


def utcnow_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")
