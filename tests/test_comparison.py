"""The promotion gate's figures: a reader-level paired bootstrap of a metric's difference,
and the rule that decides on it (training/promotion.decide)."""
from __future__ import annotations

import numpy as np
import pytest

from recommender.offline.comparison import Comparison, paired_bootstrap
from training.promotion import MIN_READERS, TOLERANCE, decide

SERVING = {"version": "v-serving"}


def test_the_interval_covers_the_difference_at_its_stated_width():
    rng = np.random.default_rng(1)
    serving = rng.uniform(0, 1, 400)
    candidate = serving + rng.normal(0.1, 0.1, 400)
    c = paired_bootstrap(candidate, serving)
    assert c.readers == 400 and c.diff == pytest.approx(np.mean(candidate - serving))
    assert c.low < 0.1 < c.high
    assert c.high - c.low == pytest.approx(2 * 1.96 * 0.1 / np.sqrt(400), rel=0.2)


def test_pairing_by_reader_sees_a_small_steady_gain_through_large_reader_spread():
    """Readers differ far more from each other than the two models do: paired, a steady
    gain of 0.01 is sure; resampling the two sides independently it would not be."""
    rng = np.random.default_rng(2)
    serving = rng.uniform(0, 1, 200)
    candidate = serving + 0.01 + rng.normal(0, 0.005, 200)
    c = paired_bootstrap(candidate, serving)
    assert 0 < c.low < 0.01 < c.high < 0.02
    unpaired_se = np.sqrt(candidate.var() / 200 + serving.var() / 200)
    assert c.high - c.low < 0.1 * (2 * 1.96 * unpaired_se)


def test_no_readers_and_equal_differences_are_defined():
    assert paired_bootstrap(np.zeros(0), np.zeros(0)).readers == 0
    c = paired_bootstrap(np.full(5, 0.3), np.full(5, 0.1))
    assert (c.low, c.diff, c.high) == pytest.approx((0.2, 0.2, 0.2))
    with pytest.raises(ValueError):
        paired_bootstrap(np.zeros(3), np.zeros(4))


def test_the_same_seed_gives_the_same_interval():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(size=50), rng.uniform(size=50)
    assert paired_bootstrap(a, b, seed=7) == paired_bootstrap(a, b, seed=7)


def comparison(readers, diff, low, high):
    return Comparison(readers, 0.3 + diff, 0.3, diff, low, high)


@pytest.mark.parametrize("figures, promoted, words", [
    ((100, -0.02, -0.05, 0.01), True, "not surely worse"),  # could be chance: the newer data serves
    ((100, -0.03, -0.05, -0.01), False, "surely worse"),
    ((100, -0.004, -0.008, -0.001), True, "not surely worse"),  # within the tolerance
    ((29, 0.2, 0.1, 0.3), False, "too few readers to judge: 29 < 30"),
])
def test_the_gate_keeps_the_serving_model_only_when_sure_or_too_few(figures, promoted, words):
    ok, reason = decide(comparison(*figures), SERVING, None, force=False, min_readers=30)
    assert ok is promoted and words in reason
    if not ok:
        assert reason.endswith("kept v-serving")


def test_force_and_no_serving_model_promote_whatever_the_figures():
    few = comparison(3, -0.5, -0.6, -0.4)
    assert decide(few, SERVING, None, force=True) == (True, "forced")
    assert decide(few, None, None, force=False) == (True, "no model was serving")
    assert decide(None, SERVING, "active model v unusable: gone", force=False)[0]


def test_two_equally_good_models_promote_the_candidate():
    """The issue's first hand mutation (a gate that wants the candidate better by the
    tolerance) keeps the serving model here: the same per-reader figures on both sides."""
    same = paired_bootstrap(np.full(40, 0.25), np.full(40, 0.25))
    assert (same.low, same.diff, same.high) == (0.0, 0.0, 0.0)
    assert decide(same, SERVING, None, force=False, min_readers=30) == (True, (
        "not surely worse: ndcg@20 0.2500 vs serving 0.2500: difference +0.0000, "
        "95% interval [+0.0000, +0.0000] over 40 readers"))


def test_a_surely_worse_candidate_is_kept_back_with_its_figures_in_the_reason():
    """The reason names the metric and the candidate's figures, so `models list` and the
    job's output say why the serving model stayed."""
    worse = comparison(100, -0.03, -0.05, -0.01)
    assert decide(worse, SERVING, None, force=False, min_readers=30) == (False, (
        "surely worse: ndcg@20 0.2700 vs serving 0.3000: difference -0.0300, "
        "95% interval [-0.0500, -0.0100] over 100 readers; kept v-serving"))


@pytest.mark.parametrize("high, promoted", [
    (-TOLERANCE, True),  # at the tolerance: not *surely* worse by more than it
    (-TOLERANCE - 1e-9, False),
    (TOLERANCE, True),
])
def test_the_tolerance_boundary(high, promoted):
    assert decide(comparison(100, high - 0.01, high - 0.02, high), SERVING, None,
                  force=False, min_readers=30)[0] is promoted


@pytest.mark.parametrize("readers, judged", [(30, True), (29, False), (0, False)])
def test_the_min_readers_boundary(readers, judged):
    ok, reason = decide(comparison(readers, 0.0, 0.0, 0.0), SERVING, None, force=False,
                        min_readers=30)
    assert ok is judged
    assert reason == ("not surely worse: ndcg@20 0.3000 vs serving 0.3000: difference +0.0000, "
                      f"95% interval [+0.0000, +0.0000] over {readers} readers" if judged else
                      f"too few readers to judge: {readers} < 30; kept v-serving")


def test_no_comparison_at_all_is_too_few_readers():
    assert decide(None, SERVING, None, force=False, min_readers=1) == (
        False, "too few readers to judge: 0 < 1; kept v-serving")
    assert MIN_READERS == 30 and decide(comparison(29, 0, 0, 0), SERVING, None, False)[0] is False


def test_the_record_kept_with_each_version_is_exact():
    """The figures the registry stores and `models list` prints, pinned for the default
    seed, resample count and confidence (a changed default changes every stored interval)."""
    rng = np.random.default_rng(3)
    a, b = rng.uniform(size=50), rng.uniform(size=50)
    c = paired_bootstrap(a, b)
    assert c.to_dict() == {"readers": 50, "candidate": pytest.approx(0.5116963), "serving": pytest.approx(0.5054513),
                           "diff": pytest.approx(0.00624496), "ci_low": pytest.approx(-0.0915073),
                           "ci_high": pytest.approx(0.0983960), "confidence": 0.95}
    half = paired_bootstrap(a, b, confidence=0.5)
    assert (half.low, half.high, half.confidence) == (pytest.approx(-0.0279905), pytest.approx(0.0372266), 0.5)
    empty = paired_bootstrap(np.zeros(0), np.zeros(0)).to_dict()
    assert {k: v for k, v in empty.items() if k not in ("ci_low", "ci_high")} == {
        "readers": 0, "candidate": 0.0, "serving": 0.0, "diff": 0.0, "confidence": 0.95}
    assert np.isnan(empty["ci_low"]) and np.isnan(empty["ci_high"])
    assert paired_bootstrap([], [], confidence=0.9).confidence == 0.9
    with pytest.raises(ValueError, match=r"^per-reader values of different readers: \(3,\) vs \(4,\)$"):
        paired_bootstrap(np.zeros(3), np.zeros(4))
    one = paired_bootstrap([0.5], [0.2])
    assert (one.readers, one.low, one.diff, one.high) == (1, pytest.approx(0.3), pytest.approx(0.3), pytest.approx(0.3))
    # differences that are all equal except one are resampled, not taken as one value
    spread = paired_bootstrap([0.5, 0.5, 0.9], [0.2, 0.2, 0.2])
    assert spread.low < spread.diff < spread.high
