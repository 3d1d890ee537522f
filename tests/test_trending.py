"""Trending scores: bounded, time-aware, and ordered by decayed weight."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.serving.trending import DAY_S, trending_scores

NOW = 1_800_000_000.0


def score(items, weights, ts, n=5, upvotes=None, published=None, as_of=NOW):
    return trending_scores(
        n, np.array(items, dtype=int), np.array(weights, dtype=float), np.array(ts, dtype=float),
        np.zeros(n) if upvotes is None else np.array(upvotes, dtype=float),
        np.full(n, np.nan) if published is None else np.array(published, dtype=float), as_of)


def test_recent_beats_old_at_equal_weight():
    s = score([0, 1], [1, 1], [NOW - 1 * DAY_S, NOW - 20 * DAY_S])
    assert s[0] == 1.0 and 0 < s[1] < s[0]
    assert np.isclose(s[1], 0.5 ** (19 / 7))


def test_events_after_as_of_do_not_count():
    s = score([0, 1], [1, 1], [NOW - DAY_S, NOW + DAY_S])
    assert s[1] == 0.0


def test_ancient_log_keeps_its_order_instead_of_underflowing():
    s = score([0, 1, 1], [1, 1, 1], [NOW - 5000 * DAY_S] * 3)
    assert s[1] == 1.0 and np.isclose(s[0], 0.5)


def test_prior_upvotes_count_and_decay_with_age():
    s = score([], [], [], n=3, upvotes=[100, 100, 0],
              published=[NOW - DAY_S, NOW - 90 * DAY_S, NOW - DAY_S])
    assert s[0] == 1.0 and 0 < s[1] < 1 and s[2] == 0


def test_removed_upvote_cancels():
    s = score([0, 0, 1], [4, -4, 1], [NOW - DAY_S] * 3)
    assert s[0] == 0.0 and s[1] == 1.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.sampled_from([1.0, 2.0, 4.0]),
                          st.floats(-400, 10)), max_size=60))
def test_scores_are_finite_in_unit_range(events):
    items = [e[0] for e in events]
    weights = [e[1] for e in events]
    ts = [NOW + e[2] * DAY_S for e in events]
    s = score(items, weights, ts, n=10)
    assert np.all(np.isfinite(s)) and s.min() >= 0 and s.max() <= 1
    if any(t <= NOW for t in ts):
        assert s.max() == 1.0
