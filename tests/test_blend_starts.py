"""Small pieces of the blend's validation data (recommender/model/blend_data.py and
freshness.reader_ages), each written out: the ascent's neutral starts, the cold weights
shared from the warm ones where too few new papers were held out, one task from a fit's
batches, and the papers' ages as each validation reader saw them."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.core.times import DAY_S
from recommender.model.blend import FEATURES, PERSONAL, RankingTask
from recommender.model.blend_data import concat_tasks, neutral_weights, share_warm_weights
from recommender.model.freshness import reader_ages

N_W = 4 * len(FEATURES) + 2


def _at(f: str, slot: int) -> int:
    return 4 * FEATURES.index(f) + slot


def test_the_neutral_start_weighs_every_personal_signal_at_one_in_both_regimes():
    W = neutral_weights()
    assert W.dtype == np.float32 and W.shape == (N_W,)
    want = np.zeros(N_W, np.float32)
    for f in PERSONAL:
        want[_at(f, 0)] = want[_at(f, 2)] = 1.0
    np.testing.assert_array_equal(W, want)
    for f in PERSONAL:  # or one signal alone
        alone = neutral_weights(f)
        assert set(np.flatnonzero(alone)) == {_at(f, 0), _at(f, 2)} and alone[_at(f, 0)] == 1.0
    assert not neutral_weights("pop").any()  # popularity is no personal signal


def test_shared_cold_weights_are_the_warm_ones_without_observed_popularity_or_offset():
    W = np.arange(1, N_W + 1, dtype=np.float32)
    given = W.copy()
    S = share_warm_weights(W)
    np.testing.assert_array_equal(W, given)  # a new array
    assert S.dtype == np.float32
    for f in FEATURES:
        warm = S[_at(f, 0): _at(f, 0) + 2]
        np.testing.assert_array_equal(warm, given[_at(f, 0): _at(f, 0) + 2])
        cold = S[_at(f, 2): _at(f, 2) + 2]
        np.testing.assert_array_equal(cold, [0.0, 0.0] if f == "pop" else warm)
    np.testing.assert_array_equal(S[-2:], [0.0, 0.0])


def _part(readers: int, width: int, seed: int, aged: bool = True) -> RankingTask:
    rng = np.random.default_rng(seed)
    label = rng.random((readers, width)) < 0.3
    label[0] = False  # a reader with nothing held out in this task
    return RankingTask(F=rng.normal(size=(readers, width, len(FEATURES))).astype(np.float32),
                       cold=rng.random((readers, width)) < 0.5, valid=np.ones((readers, width), bool),
                       label=label, n_rel=label.sum(1), h=rng.random(readers).astype(np.float32),
                       age=rng.random((readers, width)).astype(np.float32) if aged else None)


def test_batches_make_one_task_padded_to_the_widest_pool_and_readers_without_a_paper_dropped():
    a, b = _part(4, 5, 0), _part(3, 7, 1)
    t = concat_tasks([a, b])
    keep_a, keep_b = np.flatnonzero(a.n_rel > 0), np.flatnonzero(b.n_rel > 0)
    assert len(t.n_rel) == len(keep_a) + len(keep_b) and (t.n_rel > 0).all()
    assert t.F.shape == (len(t.n_rel), 7, len(FEATURES))
    # a's readers first, their pools padded: padding is never a candidate nor relevant
    n = len(keep_a)
    np.testing.assert_array_equal(t.F[:n, :5], a.F[keep_a])
    assert not t.F[:n, 5:].any() and not t.valid[:n, 5:].any() and not t.label[:n, 5:].any()
    assert not t.cold[:n, 5:].any()
    np.testing.assert_array_equal(t.F[n:], b.F[keep_b])
    np.testing.assert_array_equal(t.label[n:], b.label[keep_b])
    np.testing.assert_array_equal(t.cold[:n, :5], a.cold[keep_a])
    np.testing.assert_array_equal(t.n_rel, np.r_[a.n_rel[keep_a], b.n_rel[keep_b]])
    np.testing.assert_array_equal(t.h, np.r_[a.h[keep_a], b.h[keep_b]])
    np.testing.assert_array_equal(t.age[:n, :5], a.age[keep_a])
    np.testing.assert_array_equal(t.age[n:], b.age[keep_b])
    assert concat_tasks([a, _part(3, 7, 1, aged=False)]).age is None  # ages only where every batch has them


def test_each_reader_sees_the_papers_ages_from_their_own_newest_event_left_in_the_slice():
    """Reader 0 read papers 0 and 1 on days 10 and 20, and paper 2 on day 30, held out:
    their time is day 20. Reader 1's only event has no time, and reader 2 has no event left
    in the slice: both see the papers at the data's `now`. A paper of unknown date has no age."""
    day = DAY_S
    users = np.array([0, 0, 0, 1, 2])
    items = np.array([0, 1, 2, 3, 4])
    ts = np.array([10 * day, 20 * day, 30 * day, np.nan, 40 * day])
    C_fit = sp.csr_matrix((np.ones(3, np.float32), ([0, 0, 1], [0, 1, 3])), shape=(3, 5))
    published = np.array([0.0, 5 * day, 15 * day, np.nan, 50 * day])
    now = 60 * day
    ages = reader_ages(published, users, items, ts, C_fit, now)
    got = ages([0, 1, 2])
    assert got.dtype == np.float32 and got.shape == (3, 5)
    np.testing.assert_allclose(got[0], [20, 15, 5, np.nan, -30])  # published after day 20: negative
    np.testing.assert_allclose(got[1], [60, 55, 45, np.nan, 10])
    np.testing.assert_allclose(got[2], got[1])
    np.testing.assert_allclose(ages([2, 0]), got[[2, 0]])
    # a repeated event counts at its latest time
    again = reader_ages(published, np.r_[users, 0], np.r_[items, 0], np.r_[ts, 25 * day], C_fit, now)
    np.testing.assert_allclose(again([0])[0], [25, 20, 10, np.nan, -25])
    # no times at all, or no events: everyone at `now`
    none = reader_ages(published, users, items, np.full(5, np.nan), C_fit, now)
    np.testing.assert_allclose(none([0])[0], got[1])
    empty = np.zeros(0, np.int64)
    np.testing.assert_allclose(reader_ages(published, empty, empty, np.zeros(0), C_fit, now)([0])[0], got[1])
    # more readers than papers
    many = sp.csr_matrix((np.ones(2, np.float32), ([0, 6], [1, 0])), shape=(7, 2))
    few = reader_ages(published[:2], np.array([0, 6]), np.array([1, 0]), np.array([20 * day, 40 * day]), many, now)
    np.testing.assert_allclose(few([0, 3, 6]), [[20, 15], [60, 55], [40, 35]])


def _pairs(config, seed=0):
    """pair_samples on 5 readers of 30 papers whose features name the paper: feature 0 is
    its index j, feature 1 is j squared, so each sample's difference tells its two papers;
    each reader's history scale is 1 + its index, which the h columns tell."""
    from recommender.model.blend_data import pair_samples

    B, n = 5, 30
    Fz = np.zeros((len(FEATURES), B, n), np.float32)
    Fz[0] = np.arange(n, dtype=np.float32)
    Fz[1] = np.arange(n, dtype=np.float32) ** 2
    held = {0: [3, 4], 1: [10], 2: [], 3: [20, 21, 22], 4: [29]}
    excl = np.zeros((B, n), bool)
    excl[:, :3] = True  # papers 0-2 are every reader's own
    excl[4, :] = True
    excl[4, 29] = False  # reader 4 has seen everything but its held-out paper: no negative
    rows = [r for r, js in held.items() for _ in js]
    cols = [j for js in held.values() for j in js]
    P = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(B, n))
    Pd = P.toarray() > 0
    h = np.arange(1, B + 1, dtype=np.float32)
    X, y, w = pair_samples(Fz, excl, Pd, P, np.zeros(n, bool), h, config, np.random.default_rng(seed))
    half = len(y) // 2
    D = X[:half]
    d1, d2 = D[:, _at("cf", 0)], D[:, _at("graph", 0)]
    s = d2 / d1
    jp, jn = np.rint((d1 + s) / 2).astype(int), np.rint((s - d1) / 2).astype(int)
    reader = np.rint(D[:, _at("cf", 1)] / d1).astype(int) - 1
    return X, y, w, held, excl, reader, jp, jn


@pytest.mark.parametrize("hard_share", [0.0, 0.5])
def test_each_pair_is_a_held_out_paper_against_one_the_reader_has_not_met(hard_share):
    from dataclasses import replace
    from recommender.model.config import HybridConfig

    config = replace(HybridConfig(), negatives=8, pairs_per_user=5, hard_share=hard_share, hard_pool=4)
    X, y, w, held, excl, reader, jp, jn = _pairs(config)
    half = len(y) // 2
    np.testing.assert_array_equal(X[half:], -X[:half])  # each pair and its mirror
    np.testing.assert_array_equal(y, np.r_[np.ones(half), np.zeros(half)])
    np.testing.assert_array_equal(w[half:], w[:half])
    for r, js in held.items():
        mine = reader == r
        if not js or r == 4:  # nothing held out, or nothing left to be a negative
            assert not mine.any()
            continue
        assert mine.sum() == 5  # pairs_per_user (2 x 8 or more possible pairs)
        assert set(jp[mine]) <= set(js)
        assert not excl[r, jn[mine]].any() and not np.isin(jn[mine], js).any()
        assert w[:half][mine].sum() == pytest.approx(1.0)  # every reader weighs the same
    if hard_share:  # half the negatives from the top 4 of the summed features, the highest papers
        top = {r: set(np.argsort(-np.where(excl[r], -np.inf, np.arange(30.0) + np.arange(30.0) ** 2))[:4])
               for r in held}
        assert any(j in top[r] for r, j in zip(reader, jn))


def test_a_reader_gives_pairs_of_every_held_out_paper_up_to_max_pos():
    from dataclasses import replace
    from recommender.model.config import HybridConfig
    from recommender.model.blend_data import pair_samples

    config = replace(HybridConfig(), negatives=8, pairs_per_user=40)
    X, y, w, held, excl, reader, jp, jn = _pairs(config)
    for r in (0, 3):  # several positives and negatives, each drawn at random per pair
        mine = reader == r
        assert set(jp[mine]) == set(held[r]) and len(set(jn[mine])) > 1
    # at most `max_pos` of a reader's held-out papers: reader 3's three become two
    B, n = 2, 12
    Fz = np.zeros((len(FEATURES), B, n), np.float32)
    Fz[0] = np.arange(n, dtype=np.float32)
    Fz[1] = np.arange(n, dtype=np.float32) ** 2
    P = sp.csr_matrix((np.ones(4, np.float32), ([0, 0, 0, 1], [3, 4, 5, 6])), shape=(B, n))
    X, y, w = pair_samples(Fz, np.zeros((B, n), bool), P.toarray() > 0, P, np.zeros(n, bool),
                           np.ones(B, np.float32), replace(config, negatives=3), np.random.default_rng(0), max_pos=2)
    D = X[:len(y) // 2]
    d1, d2 = D[:, _at("cf", 0)], D[:, _at("graph", 0)]
    jp = np.rint((d1 + d2 / d1) / 2).astype(int)
    assert len(set(jp[np.isin(jp, [3, 4, 5])])) == 2 and (jp == 6).any()


def test_a_reader_with_few_pairs_gives_them_all_at_full_weight():
    from dataclasses import replace
    from recommender.model.config import HybridConfig

    config = replace(HybridConfig(), negatives=2, pairs_per_user=100)
    X, y, w, held, excl, reader, jp, jn = _pairs(config, seed=1)
    half = len(y) // 2
    counts = {r: int((reader == r).sum()) for r in held}
    # 1 held-out paper x 2 negatives (when both are usable) at most
    assert counts[1] <= 2 and counts[0] <= 4 and counts[3] <= 6 and counts[2] == counts[4] == 0
    for r, c in counts.items():
        if c:
            np.testing.assert_allclose(w[:half][reader == r], 1.0 / c)


@pytest.mark.parametrize("allowed_share", [None, 0.8, 0.2])
@pytest.mark.parametrize("aged", [False, True])
def test_a_readers_pool_is_each_components_top_papers_and_the_newest_written_out(allowed_share, aged):
    """`pool_task`: each reader's candidates are the union of the `per_feature` best papers
    by every component and, with ages, the `per_feature` most recently published, among the
    papers the reader has not met (and those allowed: all, most, or a minority, which is
    searched by its own columns); duplicates dropped, cut to the widest reader's pool. The
    labels are the held-out papers among them, and `n_rel` counts every held-out paper the
    reader could be shown, in the pool or not."""
    from recommender.model.blend_data import pool_task

    rng = np.random.default_rng(7)
    nf, B, n, k = len(FEATURES), 6, 40, 3
    Fz = rng.normal(size=(nf, B, n)).astype(np.float32)
    excl = rng.random((B, n)) < 0.2
    Pd = (rng.random((B, n)) < 0.15) & ~excl
    cold = rng.random(n) < 0.3
    h = rng.random(B).astype(np.float32)
    allowed = None if allowed_share is None else rng.random(n) < allowed_share
    age = None
    if aged:
        age = rng.uniform(0, 100, (B, n)).astype(np.float32)
        age[rng.random((B, n)) < 0.3] = np.nan
    t = pool_task(Fz, excl, Pd, cold, h, allowed, k, age)
    ok = ~excl & (True if allowed is None else allowed[None, :])
    sizes = []
    for r in range(B):
        cand = np.flatnonzero(ok[r])
        want = set()
        for f in range(nf):
            want |= set(cand[np.argsort(-Fz[f, r, cand])[:k]])
        if aged:
            dated = cand[np.isfinite(age[r, cand])]
            want |= set(dated[np.argsort(age[r, dated])[:k]])
        pool = np.flatnonzero(t.valid[r])
        sizes.append(len(pool))
        assert t.valid[r, :len(pool)].all()  # the real candidates first, then padding
        idx = [int(np.flatnonzero(Fz[0, r] == t.F[r, s, 0])[0]) for s in pool]  # which paper each slot holds
        assert set(idx) == want and len(idx) == len(want)
        for s, j in zip(pool, idx):
            np.testing.assert_array_equal(t.F[r, s], Fz[:, r, j])
            assert t.cold[r, s] == cold[j] and t.label[r, s] == (Pd[r, j] and ok[r, j])
            if aged:
                np.testing.assert_array_equal(t.age[r, s], age[r, j])
        assert t.n_rel[r] == (Pd[r] & ok[r]).sum()
    assert t.F.shape[1] == max(sizes) and (t.age is None) == (not aged)
    np.testing.assert_array_equal(t.h, h)
