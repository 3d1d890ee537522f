"""A reader's history in serving (recommender/serving/reader_history.py): the content profile
it implies, what it makes seen or hidden, and the reader's own marks."""
from __future__ import annotations

import numpy as np
import pytest

from recommender.core.times import DAY_S
from recommender.serving.reader_history import (EMPTY_HISTORY, PROFILE_HALF_LIFE_DAYS, ReaderHistory,
                                                content_profile, reader_marks)

NOW = 1.8e9
VECTORS = np.eye(4, dtype=np.float32)  # paper i points along axis i


def history(*events) -> ReaderHistory:
    rows, kinds, ts = zip(*events) if events else ((), (), ())
    return ReaderHistory(np.array(rows, dtype=np.int64), list(kinds), np.array(ts, dtype=np.float64))


def test_the_profile_weighs_kinds_and_decays_with_age():
    h = history((0, "upvote", NOW), (1, "read", NOW))
    p = content_profile(h, VECTORS, NOW)
    assert np.linalg.norm(p) == pytest.approx(1.0) and p[0] / p[1] == pytest.approx(3 / 2)
    old = history((0, "upvote", NOW - PROFILE_HALF_LIFE_DAYS * DAY_S), (1, "upvote", NOW))
    p = content_profile(old, VECTORS, NOW)
    assert p[0] / p[1] == pytest.approx(0.5)
    # a dismissal points away from the paper; nothing at all is the zero vector
    assert content_profile(history((2, "dismiss", NOW)), VECTORS, NOW)[2] == pytest.approx(-1.0)
    assert not content_profile(EMPTY_HISTORY, VECTORS, NOW).any()


def test_seen_and_hidden_follow_the_kinds_table():
    h = history((0, "read", 1.0), (1, "impression", 2.0), (2, "dismiss", 3.0), (3, "click", 4.0),
                (0, "upvote", 5.0), (1, "remove_upvote", 6.0))
    assert h.seen.tolist() == [0, 2, 3] and h.hidden.tolist() == [2]
    assert h.excluded().tolist() == [0, 2, 3] and h.excluded(exclude_seen=False).tolist() == [2]
    assert len(h) == 6 and not h.is_empty and EMPTY_HISTORY.is_empty


def test_marks_are_the_upvotes_kept_and_the_dismissals():
    h = history((0, "upvote", 1.0), (1, "upvote", 2.0), (1, "remove_upvote", 3.0), (2, "dismiss", 4.0))
    assert reader_marks(h) == ({0}, {2})
