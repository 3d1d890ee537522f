"""Team-draft interleaving: a fair draft, credit to the right team, the sign test."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from recommender.experiments.interleaving import compare, credit, sign_test, team_draft

rankings = st.lists(st.integers(0, 30), unique=True, max_size=25)


@settings(max_examples=300, deadline=None)
@given(a=rankings, b=rankings, k=st.integers(1, 20), seed=st.integers(0, 2**32 - 1))
def test_draft_properties(a, b, k, seed):
    merged, teams = team_draft(a, b, k, random.Random(seed))
    assert len(merged) == len(set(merged)) == len(teams)
    assert len(merged) == min(k, len(set(a) | set(b)))
    assert set(merged) <= set(a) | set(b)
    for team, ranking in ((0, a), (1, b)):
        picked = [x for x, t in zip(merged, teams) if t == team]
        assert all(x in ranking for x in picked)
        # each team adds its best paper not yet taken, so its picks follow its ranking
        assert picked == sorted(picked, key=ranking.index)
    # while both teams still have papers to add, their counts never drift apart
    n_a, n_b = teams.count(0), teams.count(1)
    if len(set(a) - set(merged)) and len(set(b) - set(merged)):
        assert abs(n_a - n_b) <= 1


def test_each_strategy_leads_the_first_slot_half_the_time():
    rng = random.Random(7)
    draws = 10_000
    a, b = list(range(10)), list(range(10, 20))
    first_a = sum(team_draft(a, b, 10, rng)[1][0] == 0 for _ in range(draws))
    assert stats.binomtest(first_a, draws, 0.5).pvalue > 0.001
    assert abs(first_a / draws - 0.5) < 0.02


def test_identical_rankings_split_credit_evenly():
    rng = random.Random(3)
    lst = list(range(10))
    totals = np.zeros(2)
    for _ in range(4000):
        merged, teams = team_draft(lst, lst, 10, rng)
        assert merged == lst  # the reader sees the same list either way
        totals += credit(teams, [0])  # a click on the top slot
    assert stats.binomtest(int(totals[1]), int(totals.sum()), 0.5).pvalue > 0.001


def test_credit_goes_to_the_team_of_the_slot():
    assert credit([0, 1, 1, 0], [0, 2, 3, 9, -1]) == (2, 1)
    assert credit([], [0]) == (0, 0)


def test_sign_test_known_values():
    p, ci = sign_test(40, 60)
    assert p == pytest.approx(stats.binomtest(60, 100, 0.5).pvalue)
    assert p == pytest.approx(0.056887, abs=1e-6)  # exact two-sided binomial, 60 of 100
    assert ci[0] < 0.6 < ci[1]
    assert sign_test(0, 0) == (None, None)
    assert sign_test(0, 10)[0] == pytest.approx(2 * 0.5**10)


def test_compare_counts_wins_losses_ties():
    a = np.array([3, 0, 1, 0, 2, 0])
    b = np.array([1, 2, 1, 0, 5, 4])
    res = compare(a, b)
    assert (res.wins_a, res.wins_b, res.ties) == (1, 3, 2)
    assert res.clicks_a == 6 and res.clicks_b == 13
    assert res.delta == pytest.approx(2 / 6)
    assert res.p_value == pytest.approx(stats.binomtest(3, 4, 0.5).pvalue)
    assert res.preferred == "b"
    assert res.paired_p_value == pytest.approx(stats.ttest_1samp(b - a, 0).pvalue)
