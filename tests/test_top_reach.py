"""The blend's line search ranks only the slots that can reach a top k (model/top_reach.py),
and must give every reader the NDCG the whole pool gives: for any step within its reach,
with ties (integer scores make many), invalid slots and readers whose held-out papers are
partly outside the pool. And the ascent that uses it ends where ranking whole pools does."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.core.ranking import pool_ndcg
from recommender.model.blend import FEATURES, RankingTask, _column, coordinate_ascent, make_personal_ok, personal_ok
from recommender.model.top_reach import LineSearch


def _pool(seed: int, readers: int, width: int, tie_levels: int | None):
    rng = np.random.default_rng(seed)
    if tie_levels:  # few distinct values: ties everywhere, inside and at the edge of the top k
        S = rng.integers(0, tie_levels, (readers, width)).astype(np.float32)
        col = rng.integers(-2, 3, (readers, width)).astype(np.float32)
    else:
        S = rng.normal(0, 1, (readers, width)).astype(np.float32)
        col = rng.normal(0, 1, (readers, width)).astype(np.float32)
    valid = rng.random((readers, width)) < 0.85
    label = valid & (rng.random((readers, width)) < 0.1)
    n_rel = label.sum(1) + rng.integers(0, 3, readers)  # some held-out papers are not in the pool
    return S, col, valid, label, n_rel


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), readers=st.integers(1, 40), width=st.integers(1, 120),
       k=st.sampled_from([1, 5, 20]), tie_levels=st.sampled_from([None, 3, 8]),
       reach=st.sampled_from([0.0, 0.3, 2.0]), share=st.floats(-1.0, 1.0))
def test_every_step_within_reach_gives_the_whole_pool_s_ndcg(seed, readers, width, k, tie_levels, reach, share):
    S, col, valid, label, n_rel = _pool(seed, readers, width, tie_levels)
    line = LineSearch(S, col, valid, label, n_rel, reach, k)
    d = share * reach
    expected = pool_ndcg(S + np.float32(d) * col, valid, label, n_rel, k)
    np.testing.assert_array_equal(line.ndcg(d), expected)


def test_it_ranks_far_fewer_slots_than_the_pool():
    S, col, valid, label, n_rel = _pool(1, 200, 700, None)
    line = LineSearch(S, col * 0.05, valid, label, n_rel, 1.0, 20)
    assert line.S_k.shape[1] < 0.25 * S.shape[1]


def _reference_ascent(tasks, W, passes=2, steps=(-1.0, -0.5, -0.25, 0.25, 0.5, 1.0), k=20):
    """The ascent as it was before the narrowing: every trial ranks every whole pool."""
    best = float(np.mean([np.mean(pool_ndcg(t.scores(W), t.valid, t.label, t.n_rel, k)) for t in tasks]))
    cur = [np.where(t.valid, t.scores(W), 0.0).astype(np.float32) for t in tasks]
    for _ in range(passes):
        improved = False
        for j in range(len(W)):
            cols = [_column(t, j) for t in tasks]
            if all(not np.any(c) for c in cols):
                continue
            scale = max(abs(float(W[j])), 0.1)
            best_delta = 0.0
            for s in steps:
                trial = W.copy()
                trial[j] += s * scale
                if not personal_ok(trial):
                    continue
                val = float(np.mean([np.mean(pool_ndcg(S + s * scale * c, t.valid, t.label, t.n_rel, k))
                                     for t, S, c in zip(tasks, cur, cols)]))
                if val > best + 1e-5:
                    best, best_delta = val, s * scale
            if best_delta:
                W = W.copy()
                W[j] += best_delta
                cur = [S + best_delta * c for S, c in zip(cur, cols)]
                improved = True
        if not improved:
            break
    return W, best


def test_the_ascent_ends_on_the_weights_whole_pools_give():
    rng = np.random.default_rng(3)
    readers, pool = 120, 150
    F = rng.normal(0, 1, (readers, pool, len(FEATURES))).astype(np.float32)
    F[:, :, FEATURES.index("tfidf")] = np.round(F[:, :, FEATURES.index("tfidf")])  # genre-like ties
    label = rng.random((readers, pool)) < 0.03
    F[:, :, 0] += 1.5 * label
    F[:, :, 2] += 0.8 * label
    cold = rng.random((readers, pool)) < 0.2
    task = RankingTask(F=F, cold=cold, valid=rng.random((readers, pool)) < 0.9, label=label,
                       n_rel=label.sum(1) + 1, h=rng.uniform(0.7, 3.0, readers).astype(np.float32))
    W0 = np.r_[np.full(4 * len(FEATURES), 0.2), 0.0, 0.0].astype(np.float32)
    W, _, best = coordinate_ascent([task], W0, passes=2)
    W_ref, best_ref = _reference_ascent([task], make_personal_ok(W0.copy()), passes=2)
    assert best > 0.1 and not np.array_equal(W, W0)
    np.testing.assert_array_equal(W, W_ref)
    assert best == best_ref


def test_only_readers_with_a_tie_in_their_top_k_are_ranked_on_their_whole_pool(monkeypatch):
    """The narrow rows give every reader's rank except where a held-out paper ties another
    slot inside the top k: those readers, and no others, are ranked on their whole pool
    (with continuous scores, none; with integer scores, some). Counted by wrapping the real
    `pool_ndcg` the line search calls for them."""
    import recommender.model.top_reach as top_reach
    whole_rows = []

    def counted(S, *args):
        whole_rows.append(S.shape[0])
        return pool_ndcg(S, *args)

    monkeypatch.setattr(top_reach, "pool_ndcg", counted)
    S, col, valid, label, n_rel = _pool(5, 200, 300, None)
    LineSearch(S, col, valid, label, n_rel, 0.5, 20).ndcg(0.25)
    assert whole_rows == []
    none_held = LineSearch(S, col, valid, np.zeros_like(label), np.zeros_like(n_rel), 0.5, 20)
    assert not none_held.ndcg(0.25).any() and whole_rows == []
    S, col, valid, label, n_rel = _pool(5, 200, 300, 3)
    line = LineSearch(S, col, valid, label, n_rel, 0.5, 20)
    line.ndcg(0.5)
    mine = line.S_k[line.pos_rows, line.pos_slots] + np.float32(0.5) * line.col_k[line.pos_rows, line.pos_slots]
    scored = line.S_k[line.pos_rows] + np.float32(0.5) * line.col_k[line.pos_rows]
    ranks = (scored > mine[:, None]).sum(1)
    tied_in_top = ((scored == mine[:, None]).sum(1) > 1) & (ranks < 20)
    assert whole_rows == [len(np.unique(line.pos_rows[tied_in_top]))] and 0 < whole_rows[0] < 200
