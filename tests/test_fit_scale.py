"""The pieces that make the fit cheap at scale, each checked against what it replaces.

- ALS continuing from factors (`CollaborativeModel.fit(start=...)`) keeps them as its
  starting point and reaches a fit as good as one from scratch;
- top-k pruning by one sorted key equals the (row, -value) lexsort it replaced, and the
  item graph computed in row blocks equals the one computed whole;
- the shared content-neighbour search gives the final fit exactly its own search's result;
- the vectorised pair sampler only pairs a held-out paper with an unseen, not-held-out one;
- pools are compacted without losing a candidate;
- `HybridModel.refit` keeps encoder and blend and refits components on the new events."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.model.blend import FEATURES
from recommender.model.cold_start import NeighborCache, content_neighbors
from recommender.model.collaborative import CollaborativeModel, CollaborativeParams
from recommender.model.content import ContentEncoder
from recommender.model.blend_data import pair_samples, pool_task
from recommender.model.components import event_matrix
from recommender.model.config import collab_params
from recommender.model.hybrid import HybridConfig, HybridModel
from recommender.model.item_graph import ItemGraph, top_k_per_row
from tests.helpers import CONFIG, synthetic


def _confidences(seed=0, n_users=60, n_items=40, density=0.15):
    rng = np.random.default_rng(seed)
    M = sp.random(n_users, n_items, density=density, random_state=rng, format="csr", dtype=np.float32)
    M.data = 1.0 + M.data
    return M


def test_als_continues_from_the_given_factors():
    C = _confidences()
    params = CollaborativeParams(factors=8, iterations=40, seed=0)
    full = CollaborativeModel.fit(C, params)
    # one sweep from a converged fit barely moves it; one sweep from random is far from it
    one = CollaborativeModel.fit(C, params, start=full, iterations=1)
    scratch_one = CollaborativeModel.fit(C, params, iterations=1)
    moved = np.abs(one.item_factors - full.item_factors).max()
    assert moved < np.abs(scratch_one.item_factors - full.item_factors).max()
    assert moved < 0.05 * np.abs(full.item_factors).max()


def test_als_start_with_other_papers_fits_from_scratch_with_all_sweeps():
    C = _confidences()
    params = CollaborativeParams(factors=8, iterations=10, seed=0)
    other = CollaborativeModel.fit(_confidences(n_items=30), params)
    a = CollaborativeModel.fit(C, params, start=other, iterations=1)
    b = CollaborativeModel.fit(C, params)
    np.testing.assert_allclose(a.item_factors, b.item_factors, rtol=1e-5, atol=1e-6)


def test_als_continues_from_a_loaded_model_with_new_readers():
    """A model loaded from its artifact keeps no reader factors, and the night brings
    readers it never saw: the fit solves every row from the start's papers and sweeps on."""
    C = _confidences()
    params = CollaborativeParams(factors=8, iterations=40, seed=0)
    full = CollaborativeModel.fit(C, params)
    loaded = CollaborativeModel.from_arrays(full.to_arrays(), params.to_dict())
    assert loaded.user_factors.shape == (0, 8)
    more = sp.vstack([C, _confidences(seed=5, n_users=10)]).tocsr()  # ten new readers
    one = CollaborativeModel.fit(more, params, start=loaded, iterations=1)
    scratch_one = CollaborativeModel.fit(more, params, iterations=1)
    assert one.user_factors.shape == (70, 8)

    def off(m):  # how far the known readers' scores are from the converged fit's
        return np.abs(m.user_factors[:60] @ m.item_factors.T - full.user_factors @ full.item_factors.T).max()
    assert off(one) < 0.25 * off(scratch_one)
    # the known readers' solved rows are close to the factors the full fit had for them
    rows = loaded.start_rows(more, 70)
    assert np.abs(rows[:60] - full.user_factors).max() < 0.1 * np.abs(full.user_factors).max()


def test_start_rows_in_blocks_equal_one_solve(monkeypatch):
    import recommender.model.collaborative as collaborative

    C = _confidences(seed=2, n_users=50)
    params = CollaborativeParams(factors=8, iterations=5, seed=0)
    loaded = CollaborativeModel.from_arrays(CollaborativeModel.fit(C, params).to_arrays(), params.to_dict())
    whole = loaded.start_rows(C, 50)
    monkeypatch.setattr(collaborative, "FOLD_IN_BLOCK_NNZ", 3)  # rows of 6 entries: one row a block
    np.testing.assert_allclose(loaded.start_rows(C, 50), whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole, loaded.fold_in(C, cg_steps=8), rtol=1e-5, atol=1e-6)


def _lexsort_top_k(M: sp.csr_matrix, k: int) -> sp.csr_matrix:
    M = sp.csr_matrix(M)
    counts = np.diff(M.indptr)
    rows = np.repeat(np.arange(M.shape[0]), counts)
    order = np.lexsort((-M.data, rows))
    rank = np.arange(M.nnz) - np.repeat(M.indptr[:-1], counts)
    keep = np.sort(order[rank < k])
    return sp.csr_matrix((M.data[keep], M.indices[keep], np.r_[0, np.cumsum(np.minimum(counts, k))]), shape=M.shape)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 12))
def test_top_k_per_row_equals_the_lexsort_it_replaced(seed, k):
    rng = np.random.default_rng(seed)
    M = sp.random(20, 30, density=0.4, random_state=rng, format="csr", dtype=np.float32)
    M.data = np.round(M.data, 1)  # many ties: the earlier stored one is kept, as lexsort did
    got, want = top_k_per_row(M, k), _lexsort_top_k(M, k)
    assert np.array_equal(got.indptr, want.indptr)
    assert np.array_equal(got.indices, want.indices)
    assert np.array_equal(got.data, want.data)


def test_shared_neighbour_search_is_exact_for_the_final_fit_and_close_for_the_slice():
    texts, *_ = synthetic(n_papers=80)
    _, X = ContentEncoder.fit_transform(texts, dim=8)
    rng = np.random.default_rng(1)
    pool = np.sort(rng.choice(80, 60, replace=False))
    thin = np.sort(rng.choice(80, 30, replace=False))
    cache = NeighborCache.build(X, np.arange(80), pool, k=10)
    fresh = content_neighbors(X[thin], X[pool], pool, 80, k=5, exclude=thin)
    shared = cache.neighbors(thin, pool, 5)
    # to the bit, in the same order: the smoothing sums a row's neighbours in stored order
    for a in ("data", "indices", "indptr"):
        assert np.array_equal(getattr(shared, a), getattr(fresh, a)), a
    smaller = pool[::2]  # a slice that lost half the pool: neighbours only from what is left
    K = cache.neighbors(thin, smaller, 5)
    assert set(K.indices) <= set(smaller)
    assert cache.neighbors(np.r_[thin, 200], pool, 5) is None  # rows it never searched


@pytest.mark.parametrize("rows_a_block", [1, 3])
def test_content_neighbours_searched_a_few_rows_at_a_time_are_the_whole_batch_s(rows_a_block, monkeypatch):
    """`top_cosines` cuts its argpartition into row blocks (`ranking.argpartition_rows`):
    the neighbours, their order and their cosines are those of one search over the batch."""
    from recommender.core import ranking
    from recommender.model.cold_start import top_cosines

    texts, *_ = synthetic(n_papers=80)
    _, X = ContentEncoder.fit_transform(texts, dim=8)
    X = sp.csr_matrix(X)
    X.data = np.round(X.data, 1)  # ties among the cosines
    pool = np.arange(0, 80, 2)
    thin = np.arange(80)
    monkeypatch.setattr(ranking, "ROW_BLOCK_CELLS", 10 ** 9)
    whole = top_cosines(X[thin], X[pool], pool, 80, k=5, exclude=thin)
    monkeypatch.setattr(ranking, "ROW_BLOCK_CELLS", rows_a_block * len(pool))
    blocked = top_cosines(X[thin], X[pool], pool, 80, k=5, exclude=thin)
    for a in ("data", "indices", "indptr"):
        assert np.array_equal(getattr(blocked, a), getattr(whole, a)), a
    assert whole.nnz > 0


def _batch(seed=0, B=6, n=50):
    rng = np.random.default_rng(seed)
    Fz = rng.standard_normal((len(FEATURES), B, n)).astype(np.float32)
    excl = rng.random((B, n)) < 0.2
    held = (rng.random((B, n)) < 0.1) & ~excl
    held[0] = False  # a reader with nothing held out gives no pair
    P = sp.csr_matrix(held.astype(np.float32))
    cold = rng.random(n) < 0.2
    h = np.log1p(rng.integers(1, 30, B)).astype(np.float32)
    return Fz, excl, held, P, cold, h


def test_pairs_put_a_held_out_paper_against_an_unseen_one():
    Fz, excl, held, P, cold, h = _batch()
    config = HybridConfig(negatives=20, pairs_per_user=30)
    X, y, w = pair_samples(Fz, excl, held, P, cold, h, config, np.random.default_rng(0))
    n = len(y) // 2
    assert np.array_equal(y, np.r_[np.ones(n), np.zeros(n)])
    np.testing.assert_allclose(X[:n], -X[n:])
    # every reader with held-out papers weighs the same: weights sum to 2 per reader
    readers = int((held.sum(1) > 0).sum())
    assert abs(w.sum() - 2 * readers) < 1e-6
    # rebuild the candidate differences by brute force: each pair row is one of them
    from recommender.model.blend import expand
    allowed = set()
    for r in range(held.shape[0]):
        pos, neg = np.nonzero(held[r])[0], np.nonzero(~held[r] & ~excl[r])[0]
        for a in pos:
            for b in neg:
                za = {f: Fz[k][r, [a]] for k, f in enumerate(FEATURES)}
                zb = {f: Fz[k][r, [b]] for k, f in enumerate(FEATURES)}
                d = expand(za, cold[[a]], h[[r]]) - expand(zb, cold[[b]], h[[r]])
                allowed.add(np.round(d[0], 4).tobytes())
    assert all(np.round(row, 4).tobytes() in allowed for row in X[:n])


def test_pools_are_compacted_without_losing_a_candidate():
    Fz, excl, held, P, cold, h = _batch(B=8, n=200)
    t = pool_task(Fz, excl, held, cold, h, ~cold, per_feature=15)
    for r in range(8):
        ok = ~excl[r] & ~cold
        want = set()
        for f in range(len(FEATURES)):
            s = np.where(ok, Fz[f, r], -np.inf)
            want |= set(np.argsort(-s)[:15][np.isfinite(s[np.argsort(-s)[:15]])].tolist())
        got = t.F[r, t.valid[r], 0]
        assert len(got) == len(want)
        assert np.allclose(np.sort(got), np.sort(Fz[0, r, sorted(want)]))
    assert t.F.shape[1] == t.valid.sum(1).max()
    assert (t.n_rel == (held & ~excl & ~cold).sum(1)).all()


def test_refit_keeps_encoder_and_blend_and_fits_the_new_events():
    texts, titles, users, items, _ = synthetic()
    n_users = int(users.max()) + 1
    past = np.arange(len(users)) < int(0.8 * len(users))
    m = HybridModel.fit(texts, users[past], items[past], n_users=n_users, titles=titles, config=CONFIG)
    r = m.refit(users, items, n_users=n_users)
    assert r.encoder is m.encoder and r.blender is m.blender
    # the capacity is kept too, though factors that follow the data size would grow here
    twice = np.r_[users, users + n_users], np.r_[items, items]
    assert collab_params(event_matrix(*twice, None, None, None, len(texts), None, m.conf_config)[0],
                         m.config).factors > m.comps.cf.factors
    assert m.refit(*twice).comps.cf.factors == m.comps.cf.factors == r.config.factors
    assert np.array_equal(r.comps.pop.observed > 0, np.bincount(items, minlength=len(texts)) > 0)
    assert r.stats["n_events"] == len(users)
    u = int(users[~past][0])
    hist = [(int(i), "read", None) for i in items[users == u]]
    assert np.isfinite(r.score_history(hist)).all()
    again = HybridModel.from_arrays(r.to_arrays(), r.manifest())
    np.testing.assert_allclose(again.score_history(hist), r.score_history(hist), rtol=1e-5, atol=1e-5)


def test_item_graph_in_blocks_equals_the_whole_product():
    C = _confidences(seed=3, n_users=200, n_items=120, density=0.1)
    whole = ItemGraph.fit(C, top_k=10, block_work=10**12).weights
    blocks = ItemGraph.fit(C, top_k=10, block_work=50).weights  # ~100 blocks, on the worker threads
    assert abs(whole - blocks).max() == 0
    for a, b in ((whole.indptr, blocks.indptr), (whole.indices, blocks.indices), (whole.data, blocks.data)):
        assert np.array_equal(a, b)
    assert (np.diff(whole.indptr) <= 10).all() and whole.diagonal().sum() == 0


def test_the_nightly_refits_share_one_neighbour_search_and_the_written_model_is_unchanged():
    """`refit_neighbors`: one search for the candidate (fewer events) and the model written
    (all events); the second refit is the same to the bit as with a search of its own."""
    texts, titles, users, items, _ = synthetic(n_papers=150, n_users=80, seed=3)
    n_users = int(users.max()) + 1
    order = np.arange(len(users))
    m = HybridModel.fit(texts, users[order < 0.6 * len(users)], items[order < 0.6 * len(users)],
                        n_users=n_users, titles=titles, config=CONFIG)
    past = order < 0.85 * len(users)
    fewer = SimpleNamespace(users=users[past], items=items[past], kinds=None, ts=None, n_users=n_users)
    more = SimpleNamespace(users=users, items=items, kinds=None, ts=None, n_users=n_users)
    cache = m.refit_neighbors(fewer, more)
    candidate = m.refit(fewer.users, fewer.items, n_users=n_users, neighbors=cache)
    assert np.isin(candidate.comps.cold.thin, cache.rows).all() and len(cache.rows) > 20
    read_before = np.unique(fewer.items)
    assert set(candidate.comps.cold.neighbors.indices) <= set(read_before)  # its own pool only
    shared = candidate.refit(users, items, n_users=n_users, neighbors=cache).to_arrays()
    alone = candidate.refit(users, items, n_users=n_users).to_arrays()
    assert shared.keys() == alone.keys()
    for key in alone:
        assert np.array_equal(shared[key], alone[key]), key
    # the refit takes its neighbours from the cache it is given (here one over half the papers)
    half = NeighborCache.build(m.X, cache.rows, np.arange(75), 2 * CONFIG.neighbors_k)
    narrowed = candidate.refit(users, items, n_users=n_users, neighbors=half)
    assert set(narrowed.comps.cold.neighbors.indices) <= set(range(75))
    assert not set(m.refit(users, items, n_users=n_users).comps.cold.neighbors.indices) <= set(range(75))
