"""Reader-level statistics against known answers (scipy on fixed data, textbook values)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from recommender.experiments import statistics as ab_stats
from recommender.experiments.statistics import ReaderOutcomes, compare, srm_test, welch


def outcomes(clicks, impressions=None, upvotes=None):
    clicks = np.asarray(clicks, dtype=float)
    impressions = np.full(len(clicks), 10.0) if impressions is None else np.asarray(impressions, float)
    upvotes = np.zeros(len(clicks)) if upvotes is None else np.asarray(upvotes, float)
    return ReaderOutcomes(lists=np.ones(len(clicks)), impressions=impressions, clicks=clicks,
                          reads=np.zeros(len(clicks)), upvotes=upvotes)


def test_welch_matches_scipy_and_textbook():
    # A textbook example; reference values from scipy, the literature and by hand.
    a = np.array([27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4])
    b = np.array([27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4])
    diff, low, high, p = welch(b, a)
    ref = stats.ttest_ind(b, a, equal_var=False)
    assert p == pytest.approx(ref.pvalue)
    # Wikipedia, "Welch's t-test", example 1: t = 2.46, df = 25.0, p = 0.021.
    assert p == pytest.approx(0.021, abs=5e-4)
    assert ref.statistic == pytest.approx(2.46, abs=5e-3) and ref.df == pytest.approx(25.0, abs=0.05)
    assert diff == pytest.approx(b.mean() - a.mean())
    # The interval by hand: Welch-Satterthwaite degrees of freedom and the t quantile.
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.975, df) * np.sqrt(va + vb)
    assert (low, high) == pytest.approx((diff - half, diff + half))


def test_ratio_metric_equals_per_reader_rate_test_when_exposure_is_equal():
    rng = np.random.default_rng(0)
    c, t = rng.poisson(1.0, 300), rng.poisson(1.3, 280)
    d = compare(outcomes(t), outcomes(c), "click_rate")
    ref = stats.ttest_ind(t / 10.0, c / 10.0, equal_var=False)
    assert d.p_value == pytest.approx(ref.pvalue)
    assert d.diff == pytest.approx(t.sum() / (10 * len(t)) - c.sum() / (10 * len(c)))


def test_ratio_metric_uses_delta_method_variance():
    rng = np.random.default_rng(1)
    n = rng.integers(1, 40, 500).astype(float)
    x = rng.binomial(n.astype(int), 0.1).astype(float)
    vals = ab_stats.per_reader_values(outcomes(x, n), "click_rate")
    r = x.sum() / n.sum()
    assert vals.mean() == pytest.approx(r)
    # Delta-method variance of a ratio of means: (var x - 2 r cov + r^2 var n) / mean(n)^2 / N
    cov = np.cov(x, n, ddof=1)
    delta_var = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / n.mean() ** 2 / len(n)
    assert vals.var(ddof=1) / len(n) == pytest.approx(delta_var)


def test_per_reader_metric_is_welch_on_counts():
    c, t = [0, 1, 2, 0, 5, 1, 0, 0], [2, 3, 0, 4, 1, 6, 2]
    d = compare(outcomes(t), outcomes(c), "clicks_per_reader")
    assert d.p_value == pytest.approx(stats.ttest_ind(t, c, equal_var=False).pvalue)
    assert d.relative == pytest.approx((np.mean(t) - np.mean(c)) / np.mean(c))
    assert d.significant == (d.p_value < 0.05)


def test_too_little_data_gives_no_p_value():
    d = compare(outcomes([1]), outcomes([0, 1]), "clicks_per_reader")
    assert d.p_value is None and not d.significant
    d = compare(outcomes([0, 0, 0]), outcomes([0, 0]), "click_rate")
    assert d.p_value is None and d.diff == 0
    empty = ReaderOutcomes.empty()
    assert compare(empty, empty, "click_rate").diff is None


def test_srm_known_values():
    assert srm_test([5000, 5000], [1, 1]).p_value == pytest.approx(1.0)
    r = srm_test([5200, 4800], [1, 1])
    assert r.chi2 == pytest.approx(16.0)
    assert r.p_value == pytest.approx(stats.chi2.sf(16.0, 1))
    assert r.mismatch  # 6e-5 < 0.001
    r = srm_test([2480, 7520], [1, 3])
    assert r.expected == [2500, 7500] and not r.mismatch
    assert r.p_value == pytest.approx(stats.chisquare([2480, 7520], [2500, 7500]).pvalue)
    assert srm_test([10, 5, 0], [1, 1, 0]).p_value is not None
    assert srm_test([10, 5, 1], [1, 1, 0]).mismatch  # a reader where nobody should be
    assert srm_test([0, 0], [1, 1]).p_value is None


def test_report_shape():
    rep = ab_stats.ab_report({"a": outcomes([1, 0, 2]), "b": outcomes([2, 2, 3, 1])}, "a",
                             {"a": 1, "b": 1})
    a, b = rep["variants"]
    assert a["is_control"] and a["vs_control"] is None
    assert set(b["vs_control"]) == set(ab_stats.METRICS)
    assert b["clicks"] == 8 and b["readers"] == 4 and b["impressions"] == 40
    assert rep["srm"]["observed"] == [3, 4]


def test_first_m_readers():
    o = outcomes([1, 2, 3])
    o.arrival = np.array([0, 3, 5])
    assert o.first(4).clicks.tolist() == [1, 2]


def test_one_reader_with_abnormal_volume_does_not_carry_a_variant():
    from recommender.experiments.statistics import ReaderOutcomes, ab_report, cap_volume
    n = 200
    ones = np.ones(n)
    control = ReaderOutcomes(ones, 10 * ones, ones, 0 * ones, 0 * ones)
    # the same readers, plus one id that fetched 600 lists and clicked nothing
    flood = ReaderOutcomes(np.r_[ones, 600], np.r_[10 * ones, 6000], np.r_[ones, 0],
                           np.zeros(n + 1), np.zeros(n + 1))
    raw = ab_report({"a": control, "b": flood}, "a", {"a": 1, "b": 1})
    capped, info = cap_volume({"a": control, "b": flood})
    fair = ab_report(capped, "a", {"a": 1, "b": 1})
    rate = {r["name"]: r["click_rate"] for r in raw["variants"]}
    assert rate["b"] < rate["a"] / 3  # uncapped: the one reader decides the rate
    fair_rate = {r["name"]: r["click_rate"] for r in fair["variants"]}
    assert fair_rate["b"] == pytest.approx(200 / 2100)
    assert info == {"max_lists_per_reader": 10.0, "readers_capped": {"a": 0, "b": 1}}
    assert not fair["variants"][1]["vs_control"]["click_rate"]["significant"]


def test_first_m_readers_is_strictly_the_first_m_and_keeps_their_order():
    o = outcomes([1, 2, 3])
    o.arrival = np.array([0, 3, 4])
    first = o.first(4)  # arrivals 0..3: readers 0 and 1, not the one who came 5th (4)
    assert first.clicks.tolist() == [1, 2] and first.arrival.tolist() == [0, 3]
    assert first.first(1).clicks.tolist() == [1]
    with pytest.raises(ValueError, match="^arrival order unknown$"):
        outcomes([1]).first(1)
    assert ReaderOutcomes.empty().readers == 0 and ReaderOutcomes.empty().lists.shape == (0,)


def test_the_volume_cap_is_a_bound_readers_at_it_are_not_capped():
    from recommender.experiments.statistics import cap_volume
    ones = np.ones(100)
    at_cap = ReaderOutcomes(np.r_[ones, 10], np.r_[ones * 10, 100], np.r_[ones, 5], np.zeros(101),
                            np.zeros(101), arrival=np.arange(101))
    over = ReaderOutcomes(np.r_[ones, 11], np.r_[ones * 10, 110], np.r_[ones, 11], np.zeros(101),
                          np.zeros(101), arrival=np.arange(101))
    capped, info = cap_volume({"a": at_cap, "b": over})
    assert info == {"max_lists_per_reader": 10.0, "readers_capped": {"a": 0, "b": 1}}
    assert capped["a"].clicks[-1] == 5 and capped["a"].lists[-1] == 10
    assert capped["b"].lists[-1] == 10 and capped["b"].clicks[-1] == pytest.approx(10)
    assert capped["b"].arrival.tolist() == list(range(101))
    assert cap_volume({}) == ({}, {"max_lists_per_reader": None, "readers_capped": {}})


def test_sample_ratio_check_on_empty_and_zero_weight_variants():
    from recommender.experiments.statistics import SrmResult
    assert srm_test([0, 0], [1, 1]) == SrmResult([0, 0], [0.0, 0.0], None, None, False)
    # a variant of weight 0 must get nobody: one reader there is a mismatch, whatever else
    assert srm_test([10, 3], [1, 0]) == SrmResult([10, 3], [13.0, 0.0], None, 0.0, True)
    # ...and nobody there is no mismatch: the other arms are tested among themselves
    ok = srm_test([10, 0, 10], [0.25, 0, 0.25])
    assert (ok.observed, ok.expected, ok.chi2, ok.p_value, ok.mismatch) == \
        ([10, 0, 10], [10.0, 0.0, 10.0], 0.0, 1.0, False)


def test_the_report_tests_at_the_alpha_it_is_given():
    from recommender.experiments.statistics import ab_report
    rng = np.random.default_rng(13)  # a difference with p = 0.245
    a, b = outcomes(rng.poisson(2.0, 300)), outcomes(rng.poisson(2.2, 300))
    strict = ab_report({"a": a, "b": b}, "a", {"a": 1, "b": 1})
    loose = ab_report({"a": a, "b": b}, "a", {"a": 1, "b": 1}, alpha=0.5)
    d_strict = strict["variants"][1]["vs_control"]["clicks_per_reader"]
    d_loose = loose["variants"][1]["vs_control"]["clicks_per_reader"]
    assert 0.05 < d_strict["p_value"] == d_loose["p_value"] < 0.5
    assert (d_strict["significant"], d_loose["significant"]) == (False, True)
    assert loose["alpha"] == 0.5 and d_loose["ci_high"] - d_loose["ci_low"] < d_strict["ci_high"] - d_strict["ci_low"]


def test_compare_when_there_is_too_little_to_test():
    """The report still shows the figures it has, exactly, and no test it cannot do."""
    from recommender.experiments.statistics import Difference, metric_value
    one, two = outcomes([3], impressions=[1]), outcomes([1, 1], impressions=[4, 4])
    # one reader in an arm: values and their difference, no interval, no p
    assert compare(one, two, "click_rate") == Difference("click_rate", 0.25, 3.0, 2.75, None, None, 11.0, None, False)
    assert compare(one, two, "clicks_per_reader") == \
        Difference("clicks_per_reader", 1.0, 3.0, 2.0, None, None, 2.0, None, False)
    # no impressions at all in the control: no rate, so no difference
    blind = outcomes([0, 0], impressions=[0, 0])
    assert compare(two, blind, "click_rate") == Difference("click_rate", None, 0.25, None, None, None, None, None, False)
    assert compare(blind, two, "click_rate") == Difference("click_rate", 0.25, None, None, None, None, None, None, False)
    assert metric_value(ReaderOutcomes.empty(), "clicks_per_reader") is None
    assert metric_value(outcomes([2], impressions=[1]), "click_rate") == 2.0


def test_compare_reports_which_metric_and_both_arms():
    rng = np.random.default_rng(13)
    a, b = outcomes(rng.poisson(2.0, 300)), outcomes(rng.poisson(2.2, 300))
    d = compare(b, a, "clicks_per_reader")
    assert (d.metric, d.control, d.treatment) == ("clicks_per_reader", a.clicks.mean(), b.clicks.mean())
    assert d.diff == pytest.approx(b.clicks.mean() - a.clicks.mean())
    assert d.relative == pytest.approx(d.diff / a.clicks.mean())
    assert d.ci_low < d.diff < d.ci_high and d.significant is (d.p_value < 0.05)


def test_welch_needs_two_readers_an_arm_and_some_variance():
    from scipy import stats as sps
    got = welch([0.0, 1.0], [0.0, 1.0])  # two readers each, equal variances: p = 1
    res = sps.ttest_ind([0.0, 1.0], [0.0, 1.0], equal_var=False)
    ci = res.confidence_interval(0.95)
    assert got == (0.0, pytest.approx(ci.low), pytest.approx(ci.high), pytest.approx(1.0))
    assert welch([0.0, 1.0], [2.0]) is None and welch([3.0], [0.0, 1.0]) is None
    assert welch([1.0, 1.0, 1.0], [2.0, 2.0]) is None  # no variance at all: no test
    assert welch([1.0, 1.0, 1.0], [2.0, 3.0]) is not None


def test_edges_of_the_report():
    from recommender.experiments.statistics import ab_report
    # zero variance in two readers: no test (not a nan p-value)
    assert welch([1.0, 1.0], [2.0, 2.0]) is None
    # a control with no clicks: no relative difference, not a division by zero
    d = compare(outcomes([1, 2, 0]), outcomes([0, 0, 0]), "clicks_per_reader")
    assert d.control == 0.0 and d.relative is None and d.p_value is not None
    # no variants, or one with no readers at all
    assert srm_test([], []).observed == [] and srm_test([], []).mismatch is False
    rep = ab_report({"a": outcomes([1, 0])}, "a", {"a": 1, "b": 1})
    assert list(rep) == ["alpha", "primary_metric", "variants", "srm"] and rep["primary_metric"] == "click_rate"
    b = rep["variants"][1]
    assert (b["name"], b["weight"], b["is_control"], b["readers"], b["impressions"], b["upvotes"]) == \
        ("b", 1.0, False, 0, 0, 0)
