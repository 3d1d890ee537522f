"""The reading's order as a second EASE (recommender/model/reading_order.py): which windows
a history is cut into, how many, when the feature is left out, and that the model is EASE's
closed form over the readers and windows stacked."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.model import reading_order
from recommender.model.ease import fit as fit_ease
from recommender.model.hybrid import HybridConfig, HybridModel
from recommender.model.reading_order import (MIN_PAPERS, ReadingRows, pair_times, latest_of_history, latest_rows,
                                            reader_windows, reading_rows, windows_of_history, window_count,
                                            window_rows)
from tests.helpers import CONFIG, synthetic
from tests.test_ease import paper_terms


def matrix(users, items, shape) -> sp.csr_matrix:
    C = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=shape)
    C.data[:] = 1.0
    return C


def windows_as_sets(W: sp.csr_matrix) -> list[set]:
    return [set(W.indices[W.indptr[r]:W.indptr[r + 1]].tolist()) for r in range(W.shape[0])]


def test_a_history_is_cut_in_time_order_into_overlapping_windows():
    # reader 0 reads papers 0..44 in a shuffled time order: paper p at time order[p]
    rng = np.random.default_rng(0)
    n = 45
    times = rng.permutation(n).astype(float) * 100.0
    by_time = np.argsort(times)
    items = np.arange(n)
    users = np.zeros(n, np.int64)
    C = matrix(users, items, (1, 60))
    W = window_rows(users, items, times, C, window=20, stride=10)
    expected = [set(by_time[a:b].tolist()) for a, b in ((0, 20), (10, 30), (20, 40), (30, 45))]
    assert windows_as_sets(W) == expected
    assert W.dtype == np.float32 and set(W.data.tolist()) == {1.0}
    assert window_count(C, 20, 10) == 4


def test_short_readers_give_one_window_and_one_paper_readers_none():
    users = np.array([0, 0, 0, 1, 2, 2])
    items = np.array([3, 1, 2, 4, 5, 6])
    ts = np.array([3.0, 1.0, 2.0, 9.0, 5.0, 5.0])
    C = matrix(users, items, (3, 8))
    W = window_rows(users, items, ts, C, window=20, stride=10)
    assert windows_as_sets(W) == [{1, 2, 3}, {5, 6}]
    assert window_count(C) == 2 == MIN_PAPERS


def test_a_pair_counts_at_its_first_event_and_untimed_or_unkept_events_are_left_out():
    # reader 0: paper 1 at t=1 and again at t=50, paper 2 at t=10, paper 3 at t=20, paper 4
    # untimed, paper 5 held out of the matrix being fit (the validation slice's)
    users = np.zeros(7, np.int64)
    items = np.array([1, 1, 2, 3, 4, 5, 6])
    ts = np.array([1.0, 50.0, 10.0, 20.0, np.nan, 30.0, 40.0])
    keep = matrix(np.zeros(5, np.int64), [1, 2, 3, 4, 6], (1, 8))
    u, i, t = pair_times(users, items, ts, 8)
    assert i.tolist() == [1, 2, 3, 5, 6] and t.tolist() == [1.0, 10.0, 20.0, 30.0, 40.0]
    W = window_rows(users, items, ts, keep, window=2, stride=1)
    # in time order 1, 2, 3, 6 (4 has no time, 5 is held out): windows every paper
    assert [sorted(s) for s in windows_as_sets(W)] == [[1, 2], [2, 3], [3, 6]]


def test_ties_in_time_keep_the_papers_order():
    users = np.zeros(4, np.int64)
    items = np.array([7, 2, 5, 0])
    ts = np.array([1.0, 1.0, 1.0, 0.0])
    W = window_rows(users, items, ts, matrix(users, items, (1, 8)), window=2, stride=2)
    assert [sorted(s) for s in windows_as_sets(W)] == [[0, 2], [5, 7]]


def test_the_latest_papers_are_those_of_the_last_events_the_row_keeps():
    # reader 0: paper 1 read first and again last, 2..6 in between, 7 dismissed (no positive
    # confidence), 8 untimed; reader 1: two papers at one time
    users = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    items = np.array([1, 2, 3, 4, 5, 6, 1, 7, 8, 4, 2])
    ts = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 9.0, 8.0, np.nan, 5.0, 5.0])
    keep = sp.csr_matrix((np.ones(8, np.float32), ([0, 0, 0, 0, 0, 0, 0, 1], [1, 2, 3, 4, 5, 6, 8, 2])),
                         shape=(2, 10))
    keep = keep.tolil()
    keep[1, 4] = 0.0  # not in the matrix being fit (dismissed, or held out)
    keep = keep.tocsr()
    L = latest_rows(users, items, ts, keep, latest=3)
    assert L[0].indices.tolist() == [1, 5, 6]  # 1 at t=9, then 6 and 5; 7 and 8 left out
    # reader 1's one paper is their whole history, which the `order` feature scores already
    assert L[1].nnz == 0
    assert latest_rows(users, items, None, keep) is None
    # ties in time: the higher index counts as the later
    L = latest_rows(np.zeros(3, np.int64), np.array([5, 2, 9]), np.array([1.0, 1.0, 1.0]),
                    sp.csr_matrix(np.ones((1, 10), np.float32)), latest=2)
    assert L[0].indices.tolist() == [5, 9]


def test_one_readers_latest_papers_follow_the_batch_rule():
    history = [(1, "read", 1.0), (2, "read", 2.0), (3, "read", None), (1, "upvote", 9.0), (4, "read", 5.0),
               (12, "read", 10.0)]
    row = sp.csr_matrix(np.array([[0, 1, 1, 1, 1, 0, 0, 0, 0, 0]], np.float32))
    assert latest_of_history(history, row, latest=2).tolist() == [1, 4]
    assert latest_of_history(history, row, latest=3).tolist() == [1, 2, 4]  # 3 has no time; 12 no row
    assert latest_of_history(history, row, latest=4) is None  # four papers: the whole history
    assert latest_of_history([(3, "read", None)], row) is None
    assert latest_of_history([], row) is None
    # paper 0 counts like any other; an entry without a time field counts as untimed; a
    # paper beyond the catalog (index 10 of 10) is no paper, whatever its time
    row0 = sp.csr_matrix(np.array([[1, 1, 1, 1, 0, 0, 0, 0, 0, 0]], np.float32))
    history = [(1, "read", 1.0), (2, "read"), (0, "read", 3.0), (3, "read", 2.0), (10, "read", 0.5)]
    assert latest_of_history(history, row0, latest=2).tolist() == [0, 3]
    assert latest_of_history(history, row0, latest=3).tolist() == [0, 1, 3]


def test_no_times_no_windows():
    users, items = np.array([0, 0, 1]), np.array([0, 1, 1])
    assert window_rows(users, items, None, matrix(users, items, (2, 2))) is None


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=8), st.integers(2, 25), st.integers(1, 25))
def test_the_count_before_building_is_the_windows_built(lengths, window, stride):
    stride = min(stride, window)
    users = np.concatenate([np.full(n, r) for r, n in enumerate(lengths)]).astype(np.int64)
    items = np.concatenate([np.arange(n) for n in lengths]).astype(np.int64)
    C = matrix(users, items, (len(lengths), 61))
    W = window_rows(users, items, np.arange(len(users), dtype=float), C, window=window, stride=stride)
    built = 0 if W is None else W.shape[0]
    assert window_count(C, window, stride) == built
    if W is not None:  # every window holds consecutive papers of one reader, at most `window`
        sizes = np.diff(W.indptr)
        assert sizes.max() <= window and sizes.min() >= MIN_PAPERS


def dense_ease_scores(X: np.ndarray, lam: float, rows: np.ndarray) -> np.ndarray:
    """EASE's closed form (Steck 2019) in float64: B = I - P diag(1 / diag P), diagonal 0."""
    P = np.linalg.inv(X.T @ X + lam * np.eye(X.shape[1]))
    B = -P / np.diag(P)[None, :]
    np.fill_diagonal(B, 0.0)
    return rows @ B


def test_the_second_ease_is_the_closed_form_over_readers_and_windows():
    rng = np.random.default_rng(3)
    n_users, n_items = 12, 70
    users, items, ts = [], [], []
    for u in range(n_users):
        papers = rng.choice(n_items, rng.integers(2, 40), replace=False)
        users += [u] * len(papers)
        items += papers.tolist()
        ts += rng.uniform(0, 1e6, len(papers)).tolist()
    users, items, ts = np.array(users), np.array(items), np.array(ts)
    C = matrix(users, items, (n_users, n_items))
    ease = fit_ease(C, 10.0, max_solve=500)
    model, info = reading_order.fit(C, (users, items, ts), ease, None, max_solve=500, top_k=300)
    W = window_rows(users, items, ts, C)
    assert info == {"windows": W.shape[0]} and W.shape[0] > n_users  # long readers give several
    X = np.vstack([C.toarray(), W.toarray()])
    read = np.flatnonzero(X.sum(0) > 0)
    rows = C.toarray()
    expected = np.zeros((n_users, n_items))
    expected[:, read] = dense_ease_scores(X[:, read], 10.0, rows[:, read])
    np.testing.assert_allclose(model.scores(C), expected, rtol=1e-3, atol=1e-4)
    # and not the first EASE: the windows change the weights
    assert np.abs(ease.scores(C) - expected).max() > 1e-2


def test_left_out_without_ease_times_or_room():
    users = np.repeat(np.arange(4), 30)
    items = np.tile(np.arange(30), 4)
    ts = np.arange(len(users), dtype=float)
    C = matrix(users, items, (4, 200))
    ease = fit_ease(C, 10.0, max_solve=500)
    assert reading_order.fit(C, (users, items, ts), None, None, 500, 300) == (None, {"left_out": "no EASE in the blend"})
    model, info = reading_order.fit(C, (users, items, None), ease, None, 500, 300)
    assert (model, info) == (None, {"left_out": "no event times to order the reading by"})
    # 4 readers and 4 x 2 windows: a solve of at most 11 has no room for them
    model, info = reading_order.fit(C, (users, items, ts), ease, None, 11, 300)
    assert model is None and info["left_out"].startswith("4 readers and 8 windows exceed")
    model, info = reading_order.fit(C, (users, items, ts), ease, None, 12, 300)
    assert model is not None and info == {"windows": 8}


@pytest.fixture(scope="module")
def timed_fit():
    texts, titles, users, items, _ = synthetic(n_papers=300, n_users=100)
    ts = np.random.default_rng(1).uniform(1.6e9, 1.7e9, len(users))
    m = HybridModel.fit(texts, users, items, ts=ts, n_users=int(users.max()) + 1, titles=titles,
                        config=replace(CONFIG, ease=True))
    return m, (texts, titles, users, items, ts)


def test_a_timed_fit_has_the_feature_in_its_manifest_and_its_slice(timed_fit):
    m, _ = timed_fit
    manifest = m.manifest()
    assert manifest["reading_order"]["windows"] == m.comps.order_info["windows"] > 0
    assert manifest["reading_order"]["lambda"] == manifest["ease"]["lambda"]
    assert m.stats["validation"]["reading_order"]["windows"] > 0
    assert m.comps.order.n_items == m.n_items


def test_a_fit_without_times_or_with_it_turned_off_has_none(timed_fit):
    m, (texts, titles, users, items, ts) = timed_fit
    off = HybridModel.fit(texts, users, items, ts=ts, n_users=int(users.max()) + 1, titles=titles,
                          config=replace(CONFIG, ease=True, reading_order=False))
    assert off.comps.order is None and off.manifest()["reading_order"] is None
    assert off.stats["reading_order"] == {"left_out": "turned off"}
    names = off.blender.coefficients()
    assert all(names[f"{f}:{r}"] == 0.0 for f in ("order", "latest") for r in ("warm", "warm*h", "cold", "cold*h"))
    assert any(m.blender.coefficients()[f"latest:{r}"] != 0.0 for r in ("warm", "warm*h"))


def test_a_saved_model_keeps_the_second_ease_and_refit_and_new_papers_keep_it(timed_fit):
    m, (texts, titles, users, items, ts) = timed_fit
    back = HybridModel.from_arrays(m.to_arrays(), m.manifest())
    rows, _ = m.history_row([(3, "read", 1.65e9), (7, "upvote", 1.66e9)])
    np.testing.assert_array_equal(back.comps.order.scores(rows), m.comps.order.scores(rows))
    np.testing.assert_array_equal(back.score_rows(rows), m.score_rows(rows))
    again = m.refit(users, items, ts=ts, n_users=int(users.max()) + 1)
    assert again.comps.order is not None and again.comps.order_info == m.comps.order_info
    untimed = m.refit(users, items, n_users=int(users.max()) + 1)
    assert untimed.comps.order is None
    back.add_papers([("a new paper", "about nothing read yet", 0.0)])
    assert back.comps.order.n_items == m.n_items + 1



@pytest.mark.parametrize("setting, off, feature, at", [("reading_latest", 0, "latest", 0),
                                                      ("reading_windows", False, "windows", 1)])
def test_the_latest_papers_and_the_readers_windows_are_on_by_default_and_each_turns_off(timed_fit, setting, off,
                                                                                        feature, at):
    m, (texts, titles, users, items, ts) = timed_fit
    assert HybridConfig().reading_latest == reading_order.LATEST > 0 and HybridConfig().reading_windows
    plain = HybridModel.fit(texts, users, items, ts=ts, n_users=int(users.max()) + 1, titles=titles,
                            config=replace(CONFIG, ease=True, **{setting: off}))
    assert plain.comps.order is not None
    coefficients = plain.blender.coefficients()
    assert all(coefficients[f"{feature}:{r}"] == 0.0 for r in ("warm", "warm*h", "cold", "cold*h"))
    assert any(coefficients[f"order:{r}"] != 0.0 for r in ("warm", "warm*h"))
    history = [(int(items[k]), "read", float(ts[k])) for k in range(60)]
    row, _ = plain.history_row(history)
    assert row.nnz > reading_order.WINDOW
    assert plain.reading_of(history, row)[at] is None and m.reading_of(history, row)[at] is not None


def test_a_feed_with_publication_times_leaves_the_order_out(timed_fit):
    m, (texts, titles, users, items, ts) = timed_fit
    published = np.full(len(texts), float(ts.min()) - 86400.0)  # every paper out before its readings
    feed = HybridModel.fit(texts, users, items, ts=ts, n_users=int(users.max()) + 1, titles=titles,
                           config=replace(CONFIG, ease=True), published=published)
    assert feed.comps.order is None and feed.manifest()["reading_order"] is None
    assert "feed" in feed.stats["reading_order"]["left_out"]
    # the same catalog without publication times keeps it (the module fixture)
    assert m.comps.order is not None


def test_the_readers_counted_for_the_solve_are_those_with_a_paper():
    # readers 0-3 with 30 timed papers each (2 windows each), reader 4 with one paper (a
    # reader, no window), reader 5 with none (not a reader): 5 readers + 8 windows = 13 rows
    users = np.r_[np.repeat(np.arange(4), 30), 4]
    items = np.r_[np.tile(np.arange(30), 4), 31]
    ts = np.arange(len(users), dtype=float)
    C = matrix(users, items, (6, 40))
    ease = fit_ease(C, 10.0, max_solve=500)
    assert reading_order.fit(C, (users, items, ts), ease, None, 12, 300) == (
        None, {"left_out": "5 readers and 8 windows exceed EASE's solve (12)"})
    model, info = reading_order.fit(C, (users, items, ts), ease, None, 13, 300)
    assert model is not None and info == {"windows": 8}


def test_left_out_without_a_timed_window_or_with_more_rows_than_papers():
    # three readers of papers 0-2: only one paper each has a time, so no window of two
    users, items = np.repeat(np.arange(3), 3), np.tile(np.arange(3), 3)
    ts = np.where(np.arange(9) % 3 == 0, np.arange(9, dtype=float), np.nan)
    C = matrix(users, items, (3, 3))
    ease = fit_ease(C, 10.0, max_solve=500)
    assert reading_order.fit(C, (users, items, ts), ease, None, 500, 300) == (
        None, {"left_out": "no reader with two timed papers"})
    # all timed: 3 readers + 3 windows over 3 papers is a papers' side solve, which EASE
    # prunes; the second EASE is not built there
    assert reading_order.fit(C, (users, items, np.arange(9.0)), ease, None, 500, 300) == (
        None, {"left_out": "more readers and windows than read papers"})


def test_the_second_ease_takes_the_first_ones_words_at_their_weight():
    """With the papers' words in the first EASE (weight 0.5), the second is EASE over the
    readers and windows with the same word rows at the same weight: `ease.fit` on the stack."""
    rng = np.random.default_rng(4)
    n_users, n_items = 10, 70
    users = np.repeat(np.arange(n_users), 25)
    items = np.concatenate([rng.choice(n_items, 25, replace=False) for _ in range(n_users)])
    ts = rng.uniform(0, 1e6, len(users))
    C = matrix(users, items, (n_users, n_items))
    T = paper_terms(n_papers=n_items)
    ease = fit_ease(C, 10.0, max_solve=500, text=T, words=0.5)
    model, info = reading_order.fit(C, (users, items, ts), ease, T, max_solve=500, top_k=300)
    stacked = sp.vstack([C, window_rows(users, items, ts, C)], format="csr")
    with_words = fit_ease(stacked, 10.0, max_solve=500, text=T, words=0.5)
    np.testing.assert_allclose(model.scores(C), with_words.scores(C), rtol=1e-4, atol=1e-5)
    without = fit_ease(stacked, 10.0, max_solve=500)
    assert np.abs(model.scores(C) - without.scores(C)).max() > 1e-2


def test_readers_beyond_the_matrix_being_fit_are_left_out():
    # events of readers 2 and 5 (a refit's matrix of two readers knows neither) are ignored
    users = np.repeat(np.array([0, 1, 2, 5]), 8)
    items = np.tile(np.arange(8), 4)
    ts = np.arange(len(users), dtype=float)
    keep = matrix(users[users < 2], items[users < 2], (2, 40))
    W = window_rows(users, items, ts, keep, window=8, stride=8)
    assert W.shape[0] == 2 and windows_as_sets(W) == [set(range(8))] * 2
    L = latest_rows(users, items, ts, keep, latest=3)
    assert L.shape == (2, 40) and [L[r].indices.tolist() for r in range(2)] == [[5, 6, 7]] * 2


events_st = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 6),
                               st.one_of(st.just(np.nan), st.integers(0, 5).map(float))), max_size=40)


def oracle_pairs(events, last: bool):
    """Each (reader, paper) with a timed event at its first (or last) time, sorted by
    reader, time, paper: pair_times written out."""
    at = {}
    for u, i, t in events:
        if np.isfinite(t):
            at[(u, i)] = t if (u, i) not in at else (max if last else min)(at[(u, i)], t)
    return sorted(((u, t, i) for (u, i), t in at.items()))


@settings(max_examples=80, deadline=None)
@given(events_st, st.booleans())
def test_pair_times_is_each_pairs_first_or_last_event_in_reader_then_time_order(events, last):
    users, items, ts = (np.array([e[k] for e in events], dtype) for k, dtype in
                        ((0, np.int64), (1, np.int64), (2, np.float64)))
    u, i, t = pair_times(users, items, ts, 7, last=last)
    assert list(zip(u.tolist(), t.tolist(), i.tolist())) == oracle_pairs(events, last)


@settings(max_examples=80, deadline=None)
@given(events_st, st.lists(st.integers(0, 2), min_size=28, max_size=28), st.integers(1, 4))
def test_the_latest_papers_follow_their_rule_for_every_reader(events, stored, latest):
    """latest_rows against its rule written out: of a reader's papers the matrix stores with
    a positive value, the `latest` with the last timed events (ties: the higher paper); none
    for a reader with at most `latest` such papers. Reader 3's events are outside the
    matrix (three readers)."""
    values = np.array(stored, np.float32).reshape(4, 7)[:3] - 1.0  # -1, 0 or +1 a pair
    keep = sp.csr_matrix(values)
    users, items, ts = (np.array([e[k] for e in events], dtype) for k, dtype in
                        ((0, np.int64), (1, np.int64), (2, np.float64)))
    L = latest_rows(users, items, ts, keep, latest=latest)
    for r in range(3):
        positive = set(np.flatnonzero(values[r] > 0).tolist())
        timed = [(t, i) for u, t, i in oracle_pairs(events, last=True) if u == r and i in positive]
        expected = [] if len(positive) <= latest else sorted(i for _, i in sorted(timed)[-latest:])
        assert L[r].indices.tolist() == expected, (r, positive, timed)


def oracle_windows(seq: list, window: int, stride: int) -> list:
    """The windows of one reader's papers in order, written out: a window every `stride`
    papers from the first, the last the first to reach the end; a window of fewer than
    MIN_PAPERS dropped."""
    cuts, s = [], 0
    while True:
        cuts.append(seq[s:s + window])
        if s + window >= len(seq):
            break
        s += stride
    return [c for c in cuts if len(c) >= MIN_PAPERS]


# readers 0-3 of papers 0-11 (reader 3 beyond the matrix), most pairs stored positive, so
# that readers have several windows of 2-4 papers
long_events_st = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 11),
                                    st.one_of(st.just(np.nan), st.integers(0, 9).map(float))),
                          min_size=10, max_size=60)


@settings(max_examples=120, deadline=None)
@given(long_events_st, st.lists(st.sampled_from([-1, 0, 1, 1, 1]), min_size=48, max_size=48),
       st.sampled_from([(3, 2), (3, 3), (2, 1), (4, 2)]))
def test_a_readers_own_windows_follow_their_rule_for_every_reader_and_one_at_a_time(events, stored, cut):
    """reader_windows against its rule written out: a reader's papers the matrix stores with a
    positive value, in the order of their first timed event (ties: the lower paper), cut as
    the windows' EASE cuts them; none for a reader whose reading is one window. Reader 3's
    events are outside the matrix (three readers). `windows_of_history` gives each reader's
    own from their history, and `ReadingRows.take` any readers' in any order."""
    window, stride = cut
    values = np.array(stored, np.float32).reshape(4, 12)[:3]  # -1, 0 or +1 a pair
    keep = sp.csr_matrix(values)
    users, items, ts = (np.array([e[k] for e in events], dtype) for k, dtype in
                        ((0, np.int64), (1, np.int64), (2, np.float64)))
    got = reader_windows(users, items, ts, keep, window, stride)
    W, owner = got if got is not None else (sp.csr_matrix((0, 12)), np.zeros(0, np.int64))
    assert W.shape[1] == 12 and (np.diff(owner) >= 0).all()
    for r in range(3):
        positive = set(np.flatnonzero(values[r] > 0).tolist())
        seq = [i for u, t, i in oracle_pairs(events, last=False) if u == r and i in positive]
        expected = oracle_windows(seq, window, stride)
        expected = [sorted(w) for w in expected] if len(expected) > 1 else []
        mine = [sorted(W[k].indices.tolist()) for k in np.flatnonzero(owner == r)]
        assert mine == expected, (r, seq)
        history = [(int(i), "read", float(t)) for u, i, t in events if u == r]
        one = windows_of_history(history, keep[r], window, stride)
        assert ([w.tolist() for w in one] if one is not None else []) == expected
    if got is not None:
        rows = np.array([2, 0])
        taken = ReadingRows(None, W, owner).take(rows)
        for pos, r in enumerate(rows):
            mine = [sorted(W[k].indices.tolist()) for k in np.flatnonzero(owner == r)]
            theirs = ([] if taken.windows is None else
                      [sorted(taken.windows[k].indices.tolist()) for k in np.flatnonzero(taken.owner == pos)])
            assert theirs == mine


def test_a_model_saved_before_the_windows_feature_loads_and_ranks_without_it(timed_fit):
    """A format-3 model (its blend without the `windows` weights) loads into this code: the
    feature is off and weighs 0, so it ranks as the same model with that weight 0; a
    format-2 model does not load."""
    import json
    from dataclasses import replace as dc_replace
    from recommender.model.blend import FEATURES

    m, (texts, titles, users, items, ts) = timed_fit
    arrays = m.to_arrays()
    manifest = json.loads(json.dumps(m.manifest()))
    j = FEATURES.index("windows")
    W = arrays["blend_weights"]
    old = {**arrays, "blend_weights": np.concatenate([W[:4 * j], W[4 * j + 4:]])}
    loaded = HybridModel.from_arrays(old, {**manifest, "format_version": 3})
    assert not loaded.config.reading_windows and m.config.reading_windows
    assert len(loaded.blender.weights) == len(W) and not loaded.blender.weights[4 * j:4 * j + 4].any()
    zeroed = W.copy()
    zeroed[4 * j:4 * j + 4] = 0
    m.blender = dc_replace(m.blender, weights=zeroed)
    try:
        history = [(int(items[k]), "read", float(ts[k])) for k in range(60)]
        row, _ = m.history_row(history)
        assert m.reading_of(history, row)[1] is not None and loaded.reading_of(history, row)[1] is None
        np.testing.assert_allclose(loaded.score_history(history), m.score_history(history), rtol=1e-6, atol=1e-6)
    finally:
        m.blender = dc_replace(m.blender, weights=W)
    with pytest.raises(ValueError):
        HybridModel.from_arrays(old, {**manifest, "format_version": 2})


@pytest.fixture(scope="module")
def long_timed_fit():
    """40 readers of ~36 papers each, in three periods a month apart, each period a dozen
    papers of one topic: readers with several windows, whose slice has the `windows`
    feature (`timed_fit`'s readers have at most 11 papers, one window); the blend is learnt
    from 30 validation readers or more instead of 100."""
    texts, titles, _, _, topic = synthetic(n_papers=300, n_users=2)
    rng = np.random.default_rng(3)
    users, items, ts = [], [], []
    for u in range(40):
        t = 1.6e9
        for _ in range(3):
            pool = np.flatnonzero(topic == rng.integers(0, topic.max() + 1))
            for i in rng.choice(pool, min(12, len(pool)), replace=False):
                users.append(u)
                items.append(int(i))
                ts.append(t)
                t += 3600.0
            t += 30 * 86400.0
    users, items, ts = np.array(users), np.array(items), np.array(ts)
    m = HybridModel.fit(texts, users, items, ts=ts, n_users=40, titles=titles,
                        config=replace(CONFIG, ease=True, min_task_users=30))
    assert m.comps.order is not None, m.comps.order_info
    return m, (texts, titles, users, items, ts)


@pytest.mark.parametrize("cells", [None, 1])
def test_the_windows_feature_is_each_readers_best_window(long_timed_fit, monkeypatch, cells):
    """`best_window_scores` against its rule written out: for each reader, each of their
    windows scored alone through the windows' EASE, smoothed and z-scored, and the largest
    per paper; 0 for a reader without windows. With one window a block (`cells` 1), a
    reader's windows span blocks and still meet in one maximum."""
    from recommender.model import components
    from recommender.model.blend import zscore_rows
    from recommender.model.confidence import confidence_matrix

    if cells is not None:
        monkeypatch.setattr(components, "WINDOW_CELLS", cells)
    m, (texts, titles, users, items, ts) = long_timed_fit
    assert any(m.blender.coefficients()[f"windows:{r}"] != 0.0 for r in ("warm", "warm*h"))
    short = np.flatnonzero(users == 0)[:8]  # reader 40: the first 8 papers of reader 0, one window
    users, items, ts = np.r_[users, np.full(8, 40)], np.r_[items, items[short]], np.r_[ts, ts[short]]
    C, _ = confidence_matrix(users, items, None, ts, (41, m.n_items), now=m.now, config=m.conf_config)
    R = reading_rows(users, items, ts, C, m.config.reading_latest, True)
    with_windows = np.unique(R.owner)
    without = np.setdiff1d(np.arange(C.shape[0]), with_windows)
    assert len(with_windows) >= 3 and len(without) >= 1
    readers = np.r_[with_windows[:3], without[:1]]
    got = components.raw_features(m.comps, m.X, m.V, C[readers], R.take(readers))["windows"]
    c = m.comps
    for pos, r in enumerate(readers[:3]):
        W = R.windows[np.flatnonzero(R.owner == r)]
        assert W.shape[0] >= 2
        each = [zscore_rows(c.cold.smooth_scores(c.order.scores(W[k])))[0] for k in range(W.shape[0])]
        np.testing.assert_allclose(got[pos], np.max(each, axis=0), rtol=1e-5, atol=1e-5)
    assert not got[3].any()


def three_readers():
    """Readers of 30, 8 and 45 papers (of 60) at distinct random times: two with windows of
    their own, one without."""
    rng = np.random.default_rng(2)
    sizes = (30, 8, 45)
    users = np.repeat(np.arange(3), sizes)
    items = np.concatenate([rng.choice(60, k, replace=False) for k in sizes])
    ts = rng.permutation(len(users)).astype(float) * 60.0
    return users, items, ts, matrix(users, items, (3, 60))


def test_reading_rows_are_the_latest_papers_and_the_windows_each_rule_gives():
    users, items, ts, keep = three_readers()
    R = reading_rows(users, items, ts, keep, 3, True)
    assert (R.latest != latest_rows(users, items, ts, keep, 3)).nnz == 0
    W, owner = reader_windows(users, items, ts, keep)
    assert (R.windows != W).nnz == 0 and R.owner.tolist() == owner.tolist()
    assert sorted(set(owner.tolist())) == [0, 2]  # 8 papers are one window
    only_windows = reading_rows(users, items, ts, keep, 0, True)
    assert only_windows.latest is None and (only_windows.windows != W).nnz == 0
    one_latest = reading_rows(users, items, ts, keep, 1, False)
    assert one_latest.windows is None and one_latest.owner is None
    assert [one_latest.latest[r].nnz for r in range(3)] == [1, 1, 1]
    assert reading_rows(users, items, ts, keep, 0, False) is None
    assert reading_rows(users, items, None, keep, 3, True) is None


def test_a_sub_batch_and_one_reader_take_their_own_rows_in_the_order_asked():
    """`ReadingRows.take` gives readers' latest papers and windows in the order of the rows
    asked for (each window's owner its position there, ascending); `of_one` gives the first
    reader's as a live list takes them from their history (`latest_of_history`,
    `windows_of_history`), none where they have none."""
    users, items, ts, keep = three_readers()
    R = reading_rows(users, items, ts, keep, 3, True)

    def own(rr: ReadingRows, pos: int) -> list:
        if rr.windows is None:
            return []
        return [sorted(rr.windows[k].indices.tolist()) for k in np.flatnonzero(rr.owner == pos)]

    T = R.take(np.array([2, 1, 0]))
    assert (T.latest != R.latest[[2, 1, 0]]).nnz == 0
    assert (np.diff(T.owner) >= 0).all()
    assert [own(T, p) for p in range(3)] == [own(R, 2), [], own(R, 0)]
    assert len(own(R, 2)) == 4 and len(own(R, 0)) == 2
    assert R.take(np.array([1])).windows is None
    for r in range(3):
        latest, windows = R.take(np.array([r])).of_one()
        history = [(int(i), "read", float(t)) for u, i, t in zip(users, items, ts) if u == r]
        live_latest = latest_of_history(history, keep[r], 3)
        live_windows = windows_of_history(history, keep[r])
        assert latest.tolist() == live_latest.tolist() == sorted(R.latest[r].indices.tolist())
        assert ((windows is None) == (live_windows is None) == (r == 1))
        if windows is not None:
            assert [w.tolist() for w in windows] == [w.tolist() for w in live_windows] == own(R, r)


def test_sub_batches_and_one_reader_without_latest_papers_or_windows():
    """With the latest papers off, or a reader with too few of them, `of_one` gives None
    for them; with the windows off, `take` still carries the latest papers."""
    users, items, ts, keep = three_readers()
    no_latest = reading_rows(users, items, ts, keep, 0, True)
    latest, windows = no_latest.take(np.array([2])).of_one()
    assert latest is None and len(windows) == 4
    many = reading_rows(users, items, ts, keep, 10, True)  # reader 1 has 8 papers: none
    assert many.take(np.array([1])).of_one() == (None, None)
    no_windows = reading_rows(users, items, ts, keep, 3, False)
    T = no_windows.take(np.array([2, 0]))
    assert T.windows is None and (T.latest != no_windows.latest[[2, 0]]).nnz == 0


def test_one_readers_windows_skip_untimed_events_and_papers_beyond_the_catalog():
    """A history's events without a time (two-field events) and papers beyond the catalog
    (as `confidence.history_rows` drops them) are in no window; the windows are those of
    the timed papers alone."""
    users, items, ts, keep = three_readers()
    timed = [(int(i), "read", float(t)) for u, i, t in zip(users, items, ts) if u == 2 and i != 0]
    timed.append((0, "read", 1e9))  # paper 0 read last
    row = matrix(np.zeros(len(timed), np.int64), np.array([h[0] for h in timed]), (1, 60))
    expected = [w.tolist() for w in windows_of_history(timed, row)]
    untimed = [(int(i), "read") for i in range(60) if i not in {h[0] for h in timed}][:5]
    # indices that wrap onto the reader's own papers (60 onto 0, first read at 0.5 instead
    # of last) were a pair's key to keep them
    p1 = timed[0][0]
    beyond = [(60, "read", 0.5), (60 + p1, "read", 1.0), (p1 - 60, "read", 2.0)]
    got = windows_of_history(timed + untimed + beyond, row)
    assert [w.tolist() for w in got] == expected
