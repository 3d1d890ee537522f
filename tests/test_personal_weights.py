"""The blend's one constraint (blend.personal_ok / make_personal_ok): every personal signal
weighs >= 0 in both regimes for every history length from one paper to a thousand.

The weight of a feature in a regime is a line a + b log(1 + h) over the reader's history
length h, so it holds everywhere in the range when it holds at both ends. The ascent keeps
every step inside it, and a start outside is moved to the nearest line inside; popularity
(observed and predicted from text) is not personal and may weigh less than nothing."""
from __future__ import annotations

import numpy as np
import pytest

from recommender.model.blend import FEATURES, H_RANGE, PERSONAL, make_personal_ok, personal_ok

N_W = 4 * len(FEATURES) + 2
LO, HI = H_RANGE
# (feature, regime) -> the index of its weight a; b, the history-length term, is the next one
SLOTS = [(f, regime, 4 * j + (0 if regime == "warm" else 2))
         for j, f in enumerate(FEATURES) for regime in ("warm", "cold")]


def _line(slot: int, a: float, b: float) -> np.ndarray:
    W = np.full(N_W, 0.5, np.float32)
    W[slot], W[slot + 1] = a, b
    return W


def test_the_ranges_ends_are_one_paper_and_a_thousand():
    assert (LO, HI) == (pytest.approx(np.log(2.0)), pytest.approx(np.log(1001.0)))


@pytest.mark.parametrize("feature,regime,slot", SLOTS)
def test_a_personal_weight_below_zero_at_either_end_of_the_range_is_refused(feature, regime, slot):
    personal = feature in PERSONAL
    assert personal_ok(_line(slot, 0.5, 0.0))
    assert personal_ok(_line(slot, 0.0, 0.0))  # zero is allowed: a signal may be left out
    # negative for one-paper readers only (a + b lo < 0 < a + b hi), and for long histories only
    low_only, high_only = _line(slot, -1.0, 1.0), _line(slot, 1.0, -0.5)
    assert -1.0 + LO < 0 < -1.0 + HI and 1.0 - 0.5 * HI < 0 < 1.0 - 0.5 * LO
    assert personal_ok(low_only) is not personal and personal_ok(high_only) is not personal
    assert personal_ok(_line(slot, -1.0, 0.0)) is not personal
    # half a weight below zero for a thousand papers, above it for one
    slight = _line(slot, 1.0, -1.5 / HI)
    assert personal_ok(slight) is not personal
    # the slack is a float32 rounding's, no more
    assert personal_ok(_line(slot, -5e-7, 0.0))
    assert personal_ok(_line(slot, -2e-6, 0.0)) is not personal


def test_the_offset_for_new_papers_is_no_personal_weight():
    W = _line(0, 0.5, 0.0)
    W[-2:] = (-3.0, -1.0)
    assert personal_ok(W)


@pytest.mark.parametrize("feature,regime,slot", SLOTS)
def test_weights_outside_are_moved_to_the_nearest_line_inside(feature, regime, slot):
    for a, b in ((-1.0, 1.0), (1.0, -0.5), (-1.0, -1.0), (0.3, 0.2)):
        given = _line(slot, a, b)
        kept = given.copy()
        moved = make_personal_ok(given)
        np.testing.assert_array_equal(given, kept)  # a new array; the caller's is left as it was
        assert personal_ok(moved)
        others = np.arange(N_W) != slot
        others[slot + 1] = False
        np.testing.assert_array_equal(moved[others], given[others])  # nothing else moves
        if feature not in PERSONAL or (a + b * LO >= 0 and a + b * HI >= 0):
            np.testing.assert_allclose(moved[slot:slot + 2], (a, b), atol=1e-6)
            continue
        # the line through its own values at both ends, each clipped at zero
        lo, hi = max(a + b * LO, 0.0), max(a + b * HI, 0.0)
        np.testing.assert_allclose(moved[slot] + moved[slot + 1] * LO, lo, atol=1e-6)
        np.testing.assert_allclose(moved[slot] + moved[slot + 1] * HI, hi, atol=1e-5)
