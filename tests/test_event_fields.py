"""The one place event fields are checked (recommender/core/events.py), called directly:
exact field names and reasons, and each limit at the boundary and one past it. The API's
schema refuses most of these before they get here; the importer reaches them as they are."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from recommender.core.events import (MAX_ID_LENGTH, InvalidField, check_id, check_kind,
                                     check_no_nul, normalize_ts)
from recommender.core.kinds import KINDS

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def refused(call, *args, **kw) -> tuple[str, str]:
    with pytest.raises(InvalidField) as info:
        call(*args, **kw)
    assert str(info.value) == f"{info.value.field}: {info.value.reason}"
    return info.value.field, info.value.reason


def test_ids_up_to_the_limit_pass_and_one_past_is_refused():
    assert check_id("a" * MAX_ID_LENGTH, "user_id") == "a" * MAX_ID_LENGTH
    assert MAX_ID_LENGTH == 256
    assert refused(check_id, "a" * (MAX_ID_LENGTH + 1), "paper_id") == \
        ("paper_id", "longer than 256 characters")


@pytest.mark.parametrize("value", ["", "   ", None, 7, ["x"]])
def test_empty_or_non_text_ids_are_refused(value):
    assert refused(check_id, value, "user_id") == ("user_id", "must be a non-empty string")


def test_a_nul_is_refused_wherever_it_is():
    assert refused(check_id, "ab\x00c", "user_id") == ("user_id", "contains a NUL character")
    assert refused(check_no_nul, "\x00", "title") == ("title", "contains a NUL character")
    assert check_no_nul("a\\x00 b", "title") == "a\\x00 b"  # the escaped text is just text


def test_every_kind_of_the_table_passes_and_others_are_named():
    assert [check_kind(k) for k in KINDS] == list(KINDS)
    assert refused(check_kind, "like") == (
        "kind", "must be one of impression, click, read, upvote, remove_upvote, dismiss, "
                "remove_dismiss; got 'like'")
    assert refused(check_kind, "x" * 40)[1].endswith(f"got {'x' * 32!r}")


def test_timestamps_a_day_ahead_pass_and_a_microsecond_more_is_refused():
    assert normalize_ts(NOW + timedelta(days=1), now=NOW) == "2026-06-02T12:00:00.000000+00:00"
    assert refused(normalize_ts, NOW + timedelta(days=1, microseconds=1), now=NOW) == \
        ("ts", "more than a day in the future")
    assert normalize_ts("1970-01-01T00:00:00Z", now=NOW) == "1970-01-01T00:00:00.000000+00:00"
    assert refused(normalize_ts, "1969-12-31T23:59:59Z", now=NOW, field="as_of") == \
        ("as_of", "before 1970-01-01")
    assert normalize_ts(None, now=NOW) == normalize_ts("", now=NOW) == NOW.isoformat(timespec="microseconds")
    assert normalize_ts("2026-01-02T03:04:05", now=NOW) == "2026-01-02T03:04:05.000000+00:00"
    assert normalize_ts("2026-01-02T03:04:05+02:00", now=NOW) == "2026-01-02T01:04:05.000000+00:00"
    assert refused(normalize_ts, "yesterday", now=NOW) == ("ts", "not an ISO-8601 timestamp: 'yesterday'")


def test_times_outside_utcs_years_and_long_garbage_are_named():
    assert refused(normalize_ts, "0001-01-01T00:00:00+01:00", now=NOW) == \
        ("ts", "outside the years 1970-9999 in UTC")
    assert refused(normalize_ts, "x" * 100, now=NOW) == ("ts", f"not an ISO-8601 timestamp: {'x' * 64!r}")


def test_naive_times_are_utc_whatever_the_machines_zone(monkeypatch):
    """A naive time is UTC, and the answer is in UTC, also on a machine set to Tokyo."""
    import time
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert normalize_ts("2026-01-02T03:04:05", now=NOW) == "2026-01-02T03:04:05.000000+00:00"
        assert normalize_ts("2026-01-02T03:04:05+09:00", now=NOW) == "2026-01-01T18:04:05.000000+00:00"
    finally:
        monkeypatch.undo()
        time.tzset()
