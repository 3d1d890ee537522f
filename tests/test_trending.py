"""Trending scores: bounded, time-aware, ordered by how many readers took a paper up lately;
one reader cannot take the list over, and an old or quiet log keeps its list."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.serving.trending import DAY_S, MAX_K, MIN_K, active_ages, credibility, trending_scores
from tests.helpers import AUTH

NOW = 1_800_000_000.0
CLICK, READ, UPVOTE = 1.0, 2.0, 4.0  # core/kinds.py's trending weights


def score(items, weights, ts, n=5, upvotes=None, published=None, as_of=NOW, readers=None, k=None):
    return trending_scores(
        n, np.array(items, dtype=int), np.array(weights, dtype=float), np.array(ts, dtype=float),
        np.zeros(n) if upvotes is None else np.array(upvotes, dtype=float),
        np.full(n, np.nan) if published is None else np.array(published, dtype=float), as_of,
        event_readers=None if readers is None else np.array(readers), k=k)


def test_on_a_busy_site_recent_beats_old_by_the_half_life():
    # an event every day for three weeks: active time is wall time
    days = np.arange(21.0)
    items = [0] + [1] + [2] * 19
    ts = [NOW - 1 * DAY_S, NOW - 20 * DAY_S] + [NOW - d * DAY_S for d in days[2:]]
    s = score(items, [CLICK] * 21, ts, readers=list(range(21)), k=1.0)
    assert s[0] > s[1] > 0
    assert np.isclose(s[1] / s[0], 0.5 ** (19 / 7))


def test_events_after_as_of_do_not_count():
    s = score([0, 1], [1, 1], [NOW - DAY_S, NOW + DAY_S])
    assert s[1] == 0.0


def test_a_quiet_month_does_not_age_the_list():
    """A gap without events counts for one day: the list as of three months after the last
    event is the list as of the day after it (before: all scores near 0 but the top)."""
    items, readers = [0, 0, 0, 1, 2], [1, 2, 3, 4, 5]
    ts = [NOW - 3 * DAY_S, NOW - 2 * DAY_S, NOW - DAY_S, NOW, NOW - 9 * DAY_S]
    next_day = score(items, [READ] * 5, ts, readers=readers, as_of=NOW + DAY_S)
    later = score(items, [READ] * 5, ts, readers=readers, as_of=NOW + 90 * DAY_S)
    np.testing.assert_allclose(later, next_day)
    assert later[0] == 1.0 and later[1] > 0.2
    # the first event after the quiet months is one more reader, not the whole list
    back = NOW + 90 * DAY_S
    woken = score(items + [3], [READ] * 6, ts + [back], readers=readers + [6], as_of=back)
    assert woken[0] == 1.0 and woken[3] < 0.5


def test_ancient_log_keeps_its_order_instead_of_underflowing():
    s = score([0, 1, 1], [1, 1, 1], [NOW - 5000 * DAY_S] * 3)
    assert s[1] == 1.0 and 0 < s[0] < 1


def test_active_time_caps_every_gap_at_a_day():
    ts = np.array([NOW - 100 * DAY_S, NOW - 10 * DAY_S, NOW - 10 * DAY_S + 3600, NOW])
    ages = active_ages(ts[[2, 0, 3, 1]], NOW + 50 * DAY_S)  # any order
    np.testing.assert_allclose(ages / DAY_S, [2.0, 3 + 1 / 24, 1.0, 2 + 1 / 24])


def test_a_reader_counts_once_per_paper():
    # one reader upvotes paper 0 twenty times; two readers read paper 1 once
    s = score([0] * 20 + [1, 1], [UPVOTE] * 20 + [READ, READ], [NOW - 60] * 22,
              readers=[7] * 20 + [8, 9], k=1.0)
    assert s[1] > s[0] > 0
    once = score([0, 1, 1], [UPVOTE, READ, READ], [NOW - 60] * 3, readers=[7, 8, 9], k=1.0)
    np.testing.assert_allclose(s, once)


def test_one_upvote_does_not_outrank_broad_recent_support():
    """Three readers who clicked outrank one who upvoted: a reader's weight is shrunk toward
    the catalog's mean engagement (without it the upvote, weight 4, beat three clicks)."""
    items = [0, 1, 1, 1] + [2] * 4 + [3] * 6
    weights = [UPVOTE, CLICK, CLICK, CLICK] + [READ] * 4 + [CLICK, READ] * 3
    readers = list(range(len(items)))
    s = score(items, weights, [NOW - 3600] * len(items), readers=readers)
    assert s[1] > s[0]
    assert s[0] > s[4] == 0  # the upvote still counts


def test_credibility_is_measured_from_how_much_papers_differ():
    """Papers whose readers all engage alike but differ from paper to paper: little
    shrinkage. Papers that differ only by chance: the most."""
    n = np.full(6, 10.0)
    alike = np.array([0.25, 0.25, 1.0, 1.0, 0.5, 0.5])
    k_real = credibility(n, n * alike, n * alike ** 2 + 1e-9)
    noise = np.full(6, 0.5)
    k_noise = credibility(n, n * noise, n * (noise ** 2 + 0.1))
    assert k_real == MIN_K and k_noise == MAX_K
    assert credibility(np.array([1.0]), np.array([1.0]), np.array([1.0])) == MIN_K


def _buhlmann_straub_by_hand(papers: list[list[float]]) -> float:
    """The textbook estimator, written out over each reader's weight (no arrays): k =
    expected within-paper variance / variance of the papers' true means, unequal sizes."""
    total = sum(len(w) for w in papers)
    means = [sum(w) / len(w) for w in papers]
    within = [sum((x - m) ** 2 for x in w) / (len(w) - 1) for w, m in zip(papers, means)]
    epv = sum(len(w) * v for w, v in zip(papers, within)) / total
    grand = sum(len(w) * m for w, m in zip(papers, means)) / total
    between = sum(len(w) * (m - grand) ** 2 for w, m in zip(papers, means))
    vhm = (between - (len(papers) - 1) * epv) / (total - sum(len(w) ** 2 for w in papers) / total)
    return epv / vhm


def _sums(papers: list[list[float]]):
    return (np.array([len(w) for w in papers], float), np.array([sum(w) for w in papers]),
            np.array([sum(x * x for x in w) for w in papers]))


def test_credibility_equals_buhlmann_straub_written_out():
    """Papers of 2, 3 and 4 readers with unequal spreads: the array code gives the
    textbook value to the last digits (k about 3.3, inside the bounds, so unclipped)."""
    papers = [[1.0, 0.25], [0.5, 0.5, 0.25], [1.0, 1.0, 0.5, 1.0]]
    expected = _buhlmann_straub_by_hand(papers)
    assert MIN_K < expected < MAX_K
    assert credibility(*_sums(papers)) == pytest.approx(expected, rel=1e-12)


def test_credibility_is_estimated_from_exactly_two_papers_of_exactly_two_readers():
    """The smallest log it is estimated from: two papers, one with exactly two readers
    (k about 1.03, unclipped). A paper with fewer than two readers' worth of weight (1.9
    decayed readers) says nothing about within-paper variance and is left out."""
    papers = [[1.0, 0.5], [0.25, 0.25, 0.5]]
    expected = _buhlmann_straub_by_hand(papers)
    assert MIN_K < expected < MAX_K
    n, s, s2 = _sums(papers)
    assert credibility(n, s, s2) == pytest.approx(expected, rel=1e-12)
    n_more, s_more, s2_more = np.r_[n, 1.9], np.r_[s, 1.9], np.r_[s2, 1.9]
    assert credibility(n_more, s_more, s2_more) == pytest.approx(expected, rel=1e-12)
    assert credibility(n[:1], s[:1], s2[:1]) == MIN_K  # one paper: nothing to compare


def test_prior_upvotes_count_and_decay_with_age():
    s = score([], [], [], n=3, upvotes=[100, 100, 0],
              published=[NOW - DAY_S, NOW - 90 * DAY_S, NOW - DAY_S])
    assert s[0] == 1.0 and 0 < s[1] < 1 and s[2] == 0


def test_an_event_of_weight_zero_counts_nowhere():
    s = score([0, 1], [0.0, CLICK], [NOW - DAY_S] * 2)
    assert s[0] == 0.0 and s[1] == 1.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.sampled_from([1.0, 2.0, 4.0]),
                          st.floats(-400, 10), st.integers(0, 5)), max_size=60))
def test_scores_are_finite_in_unit_range(events):
    items = [e[0] for e in events]
    weights = [e[1] for e in events]
    ts = [NOW + e[2] * DAY_S for e in events]
    s = score(items, weights, ts, n=10, readers=[e[3] for e in events])
    assert np.all(np.isfinite(s)) and s.min() >= 0 and s.max() <= 1
    if any(t <= NOW for t in ts):
        assert s.max() == 1.0


def test_one_new_reader_cannot_take_over_the_demo_trending_list(client):
    """The issue's case: the demo log is months old; a new reader upvotes two quiet papers.
    Before, those two topped /trending at 1.0 with the rest near 0."""
    before = client.get("/trending", params={"k": 100}).json()["items"]
    top = [i["paper_id"] for i in before[:8]]
    assert before[7]["score"] > 0.3  # a list, not one paper and noise
    quiet = [i["paper_id"] for i in before[-2:]]
    for paper in quiet:
        event = {"user_id": "newcomer", "paper_id": paper, "kind": "upvote"}
        assert client.post("/events", json=event, headers=AUTH).status_code == 201
    after = client.get("/trending", params={"k": 20}).json()["items"]
    assert [i["paper_id"] for i in after[:8]] == top
    assert not set(quiet) & {i["paper_id"] for i in after[:10]}


def _trending_by_hand(n_items, events, upvotes, published, as_of, k=None,
                      half_life_days=7.0, prior_half_life_days=30.0):
    """The trending rules of the module docstring written out event by event, as the
    oracle of the array code. events: (paper, weight, ts, reader; reader < 0: anonymous)."""
    import math
    past = sorted(ts for _, _, ts, _ in events if ts <= as_of)

    def active_age(t):  # every gap between consecutive events, and to as_of, capped at a day
        later = [x for x in past if x >= t]
        gaps = [min(b - a, DAY_S) for a, b in zip(later, later[1:])]
        return sum(gaps) + min(max(as_of - later[-1], 0.0), DAY_S)

    rate = math.log(2.0) / (half_life_days * DAY_S)
    pairs: dict = {}  # (reader, paper) -> (strongest weight, youngest age)
    for i, (paper, weight, ts, reader) in enumerate(events):
        if ts > as_of or weight <= 0 or paper >= n_items:
            continue
        key = (("anonymous", i) if reader < 0 else reader, paper)
        w, age = pairs.get(key, (0.0, math.inf))
        pairs[key] = (max(w, weight / UPVOTE), min(age, active_age(ts)))
    by_paper: dict = {}  # paper -> [(weight, decay) per reader]
    for (_, paper), (w, age) in pairs.items():
        by_paper.setdefault(paper, []).append((w, math.exp(-rate * age)))
    n = {p: sum(d for _, d in r) for p, r in by_paper.items()}
    s = {p: sum(w * d for w, d in r) for p, r in by_paper.items()}
    if k is None:  # Buehlmann-Straub over papers with two readers' worth of weight
        big = [p for p in by_paper if n[p] >= 2.0]
        if len(big) < 2:
            k = MIN_K
        else:
            total = sum(n[p] for p in big)
            mean = {p: s[p] / n[p] for p in big}
            var = {p: sum(d * (w - mean[p]) ** 2 for w, d in by_paper[p]) / (n[p] - 1) for p in big}
            epv = sum(n[p] * var[p] for p in big) / total
            grand = sum(n[p] * mean[p] for p in big) / total
            vhm = ((sum(n[p] * (mean[p] - grand) ** 2 for p in big) - (len(big) - 1) * epv)
                   / (total - sum(n[p] ** 2 for p in big) / total))
            k = MAX_K if vhm <= 0 else min(max(epv / vhm, MIN_K), MAX_K)
    mu = sum(s.values()) / sum(n.values()) if n else 0.0
    scores = [n[p] * (s[p] + k * mu) / (n[p] + k) if p in n else 0.0 for p in range(n_items)]
    known = [t for t in published if not math.isnan(t)]
    oldest = min(known) if known else as_of
    prior_rate = math.log(2.0) / (prior_half_life_days * DAY_S)
    priors = {}
    for p in range(n_items):
        age = as_of - (oldest if math.isnan(published[p]) else published[p])
        if upvotes[p] > 0 and age >= 0:
            priors[p] = math.log(math.log1p(upvotes[p]) / UPVOTE) - prior_rate * age
    if any(scores):
        for p, log_prior in priors.items():
            scores[p] += math.exp(log_prior)
    elif priors:  # only priors: their order, however old
        top_log = max(priors.values())
        for p, log_prior in priors.items():
            scores[p] = math.exp(log_prior - top_log)
    top = max(scores)
    return [x / top if top > 0 else x for x in scores]


_event = st.tuples(st.integers(0, 5), st.sampled_from([0.0, CLICK, READ, UPVOTE]),
                   st.floats(-12.0, 0.5), st.integers(-1, 6))


@settings(max_examples=300, deadline=None)
@given(n_items=st.integers(1, 5), events=st.lists(_event, max_size=14),
       upvotes=st.lists(st.integers(0, 40), min_size=5, max_size=5),
       published=st.lists(st.one_of(st.just(float("nan")), st.floats(-60.0, 3.0)), min_size=5, max_size=5),
       k=st.one_of(st.none(), st.floats(MIN_K, MAX_K)))
def test_scores_equal_the_rules_written_out(n_items, events, upvotes, published, k):
    """Every rule at once against the event-by-event oracle: readers once per paper
    (anonymous events each their own reader, reader 0 a reader), their strongest kind at
    their latest event's active age, the shrinkage with k given or measured, papers out of
    range and events after as_of ignored, the prior's decay and weight, top = 1."""
    events = [(p, w, NOW + d * DAY_S, r) for p, w, d, r in events]
    published = [NOW + d * DAY_S for d in published[:n_items]]
    got = trending_scores(n_items, [e[0] for e in events], [e[1] for e in events],
                          [e[2] for e in events], upvotes[:n_items], published, NOW,
                          event_readers=[e[3] for e in events], k=k)
    assert got == pytest.approx(_trending_by_hand(n_items, events, upvotes, published, NOW, k),
                                rel=1e-9, abs=1e-12)


def test_readers_are_told_apart_from_papers_and_from_anonymous_events():
    """Reader 5 on paper 0 and reader 0 on paper 1 of five are two pairs, not one; two
    anonymous events on one paper are two readers, neither of them reader 0 or 1, and
    reader 0's two events on paper 1 are one."""
    events = [(0, UPVOTE, NOW - 60, 5), (2, READ, NOW - 20, -1), (1, UPVOTE, NOW - 60, 0),
              (1, CLICK, NOW - 30, 0), (2, READ, NOW - 10, -1), (2, CLICK, NOW - 5, 0),
              (2, CLICK, NOW - 4, 1)]
    items, weights, ts, readers = (list(x) for x in zip(*events))
    got = trending_scores(5, items, weights, ts, [0] * 5, [float("nan")] * 5, NOW,
                          event_readers=readers)
    assert got == pytest.approx(_trending_by_hand(5, events, [0] * 5, [float("nan")] * 5, NOW),
                                rel=1e-9, abs=1e-12)


def test_scores_with_a_measured_k_equal_the_rules_written_out():
    """Enough readers on three papers for k to be measured (about 2.1, unclipped): the
    within-paper spread (squared weights) enters the scores exactly as written out."""
    papers = {0: [UPVOTE, UPVOTE, READ, UPVOTE, CLICK], 1: [CLICK, CLICK, READ, CLICK], 2: [READ, UPVOTE, READ]}
    assert MIN_K < _buhlmann_straub_by_hand([[w / UPVOTE for w in ws] for ws in papers.values()]) < MAX_K
    events = [(p, w, NOW - 60.0 * r, r) for r, (p, w) in enumerate((p, w) for p, ws in papers.items() for w in ws)]
    items, weights, ts, readers = (list(x) for x in zip(*events))
    got = trending_scores(4, items, weights, ts, [0] * 4, [float("nan")] * 4, NOW, event_readers=readers)
    assert got == pytest.approx(_trending_by_hand(4, events, [0] * 4, [float("nan")] * 4, NOW), rel=1e-12)


def test_credibility_is_the_upper_bound_when_papers_differ_no_more_than_noise():
    """Identical papers (no spread at all: 0 / 0) and papers whose true difference is tiny
    beside their readers' spread (k about 44 written out) both get MAX_K, never NaN or 44."""
    same = np.array([2.0, 2.0])
    assert credibility(same, same, same) == MAX_K
    noisy = [[1.0, 0.25] * 10, [1.0, 0.5] * 10]
    assert _buhlmann_straub_by_hand(noisy) > MAX_K
    assert credibility(*_sums(noisy)) == MAX_K


def test_a_catalog_of_only_old_priors_keeps_their_order():
    """No events and papers published sixty years ago: their prior upvotes still order the
    list (top 1.0), instead of every score underflowing to 0."""
    got = score([], [], [], n=3, upvotes=[5, 50, 0], published=[NOW - 60 * 365 * DAY_S] * 3)
    assert got[1] == 1.0 and 0 < got[0] < 1 and got[2] == 0


def test_an_empty_catalog_scores_nothing():
    assert score([], [], [], n=0, upvotes=[], published=[]).shape == (0,)
