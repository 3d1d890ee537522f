"""`ColdStartMap.smooth_scores`: a thin paper's score mixes its own with its content
neighbours' (w = mass / (mass + shrink) its own share); every other paper keeps its score.
One reader's row must come out as its row of a batch, to the bit (the single-reader path)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st

from recommender.model.cold_start import ColdStartMap


def cold_map(seed: int, n_items: int, n_thin: int) -> ColdStartMap:
    rng = np.random.default_rng(seed)
    thin = np.sort(rng.choice(n_items, n_thin, replace=False)).astype(np.int64)
    K = sp.random(n_thin, n_items, density=0.3, format="csr", dtype=np.float32, random_state=seed)
    mass = (rng.random(n_items) * 20).astype(np.float32)
    return ColdStartMap(thin, K, mass, np.zeros((4, 3), np.float32), np.zeros(3, np.float32), shrink=2.0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1000), n_items=st.integers(2, 60), thin_share=st.floats(0.0, 1.0),
       batch=st.integers(1, 25))
def test_smoothing_mixes_thin_papers_with_their_neighbours_and_leaves_the_rest(seed, n_items, thin_share, batch):
    cold = cold_map(seed, n_items, int(round(thin_share * n_items)))
    S = np.random.default_rng(seed + 1).standard_normal((batch, n_items)).astype(np.float32)
    before = S.copy()
    out = cold.smooth_scores(S)
    np.testing.assert_array_equal(S, before)  # the caller's scores are not changed
    others = np.setdiff1d(np.arange(n_items), cold.thin)
    np.testing.assert_array_equal(out[:, others], S[:, others])
    m = cold.mass[cold.thin].astype(np.float64)
    w = m / (m + cold.shrink)
    expected = w * S[:, cold.thin] + (1 - w) * (S.astype(np.float64) @ cold.neighbors.toarray().T)
    scale = w * np.abs(S[:, cold.thin]) + (1 - w) * (np.abs(S).astype(np.float64) @ np.abs(cold.neighbors.toarray()).T)
    assert np.all(np.abs(out[:, cold.thin] - expected) <= 1e-5 * scale + 1e-30)
    for i in range(batch):
        np.testing.assert_array_equal(cold.smooth_scores(S[i:i + 1])[0], out[i])


# --- the map's fit, written out from its definition ------------------------------------

from sklearn.preprocessing import normalize  # noqa: E402

from recommender.model.cold_start import (NeighborCache, THIN_BELOW, content_neighbors,  # noqa: E402
                                          neighbor_pool, top_cosines)


def catalog(seed=0, n_items=30, n_terms=12, dim=4, f=3):
    """TF-IDF-like rows (l2-normalised, so a product is a cosine), dense content vectors,
    item factors and a reading mass with thin (under 10), unread and well-read papers."""
    rng = np.random.default_rng(seed)
    X = sp.random(n_items, n_terms, density=0.3, format="csr", dtype=np.float64, random_state=seed)
    X = normalize(X + sp.csr_matrix((np.ones(n_items), (np.arange(n_items), rng.integers(0, n_terms, n_items))),
                                    shape=X.shape)).tocsr()
    V = rng.standard_normal((n_items, dim)).astype(np.float32)
    Y = rng.standard_normal((n_items, f)).astype(np.float32)
    mass = np.r_[np.zeros(6), rng.uniform(0.5, 9.5, 8), rng.uniform(10, 40, n_items - 14)].astype(np.float32)
    return X, V, Y, mass


def dense_neighbours(X, rows, pool, k):
    """Each row's k largest positive cosines among the pool, itself left out, summing to 1."""
    S = (X[rows] @ X[pool].T).toarray()
    S[rows[:, None] == pool[None, :]] = 0.0
    out = np.zeros((len(rows), X.shape[0]))
    for r, s in enumerate(S):
        top = np.argsort(-s, kind="stable")[:k]
        top = top[s[top] > 0]
        out[r, pool[top]] = s[top] / s[top].sum()
    return out


def test_thin_papers_are_those_under_the_mass_and_their_neighbours_are_read_papers():
    X, V, Y, mass = catalog()
    cold = ColdStartMap.fit(X, V, Y, mass, k=4)
    assert THIN_BELOW == 10.0
    np.testing.assert_array_equal(cold.thin, np.nonzero(mass < 10.0)[0])
    pool = np.nonzero(mass > 0)[0]
    np.testing.assert_allclose(cold.neighbors.toarray(), dense_neighbours(X, cold.thin, pool, 4), rtol=1e-5, atol=1e-7)
    assert set(cold.neighbors.indices) <= set(pool.tolist())
    stricter = ColdStartMap.fit(X, V, Y, mass, k=4, thin_below=1.0)
    np.testing.assert_array_equal(stricter.thin, np.nonzero(mass < 1.0)[0])
    assert (cold.k, cold.shrink, cold.thin_below, cold.own_floor) == (4, 1.0, 10.0, 0.0)


def test_the_ridge_map_places_a_paper_no_read_paper_shares_a_word_with():
    """The fallback map is a ridge regression content -> factors over the read papers: where
    the factors are a linear function of the content, a tiny ridge recovers it."""
    X, V, _, mass = catalog(seed=1)
    rng = np.random.default_rng(7)
    A, b = rng.standard_normal((V.shape[1], 3)), rng.standard_normal(3)
    Y = (V @ A + b).astype(np.float32)
    X = X.tolil()
    X[0, :] = 0.0  # an unread paper with no words: no neighbour
    X = X.tocsr()
    cold = ColdStartMap.fit(X, V, Y, mass, k=4, ridge_alpha=1e-6)
    np.testing.assert_allclose(cold.ridge_coef, A, atol=1e-3)
    np.testing.assert_allclose(cold.ridge_intercept, b, atol=1e-3)
    mapped = cold.mapped_factors(Y, V)
    assert np.diff(cold.neighbors.indptr)[0] == 0
    np.testing.assert_allclose(mapped[0], V[0] @ A + b, atol=1e-3)
    rest = np.diff(cold.neighbors.indptr) > 0
    np.testing.assert_allclose(mapped[rest], cold.neighbors[rest] @ Y, rtol=1e-5, atol=1e-6)
    heavy = ColdStartMap.fit(X, V, Y, mass, k=4, ridge_alpha=1e4)  # a strong ridge shrinks toward the mean
    assert np.abs(heavy.ridge_coef).max() < 0.5 * np.abs(A).max()
    few = ColdStartMap.fit(X, V, Y, np.r_[np.zeros(29), 20.0].astype(np.float32), k=4)  # one read paper
    assert not few.ridge_coef.any() and not few.ridge_intercept.any()



def test_the_ridge_map_is_the_closed_form_over_every_read_paper():
    """coef = (Vc^T Vc + alpha I)^-1 Vc^T Yc over the papers with any reading (centred), at a
    ridge that matters; two read papers are enough to fit it; a mass of exactly 10 is not thin."""
    X, V, Y, mass = catalog(seed=7)
    mass[14] = 10.0
    cold = ColdStartMap.fit(X, V, Y, mass, k=4, ridge_alpha=5.0)
    read = mass > 0
    Vc, Yc = V[read] - V[read].mean(0), Y[read] - Y[read].mean(0)
    coef = np.linalg.solve(Vc.T @ Vc + 5.0 * np.eye(V.shape[1]), Vc.T @ Yc)
    np.testing.assert_allclose(cold.ridge_coef, coef, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cold.ridge_intercept, Y[read].mean(0) - V[read].mean(0) @ coef, rtol=1e-4, atol=1e-5)
    assert 14 not in cold.thin and 13 in cold.thin
    two = ColdStartMap.fit(X, V, Y, np.r_[np.zeros(28), 20.0, 30.0].astype(np.float32), k=4, ridge_alpha=5.0)
    assert two.ridge_coef.any()


def test_a_thin_paper_moves_from_its_mapped_place_to_its_own_as_readers_come():
    X, V, Y, mass = catalog(seed=2)
    cold = ColdStartMap.fit(X, V, Y, mass, k=4, shrink=3.0)
    m = mass[cold.thin]
    np.testing.assert_allclose(cold.own_weight(), m / (m + 3.0), rtol=1e-6)
    np.testing.assert_allclose(cold.factor_weight(), cold.own_weight())
    eff = cold.effective_factors(Y, V)
    w = (m / (m + 3.0))[:, None]
    np.testing.assert_allclose(eff[cold.thin], w * Y[cold.thin] + (1 - w) * cold.mapped_factors(Y, V), rtol=1e-5, atol=1e-6)
    well_read = np.setdiff1d(np.arange(len(mass)), cold.thin)
    np.testing.assert_array_equal(eff[well_read], Y[well_read])
    # factors fit with the words: a read paper keeps its own whole, an unread one own_floor of them
    cold.own_floor = 0.5
    np.testing.assert_array_equal(cold.factor_weight(), np.where(m > 0, 1.0, 0.5).astype(np.float32))
    eff = cold.effective_factors(Y, V)
    read = cold.thin[m > 0]
    np.testing.assert_array_equal(eff[read], Y[read])
    unread = cold.thin[m == 0]
    np.testing.assert_allclose(eff[unread], 0.5 * Y[unread] + 0.5 * cold.mapped_factors(Y, V)[m == 0], rtol=1e-5, atol=1e-6)


def test_a_paper_added_after_the_fit_is_thin_unread_and_placed_among_the_read_ones():
    X, V, Y, mass = catalog(seed=3)
    cold = ColdStartMap.fit(X, V, Y, mass, k=4)
    n_thin = len(cold.thin)
    X_new = X[[20, 25]]  # the words of two well-read papers
    X_all = sp.vstack([X, X_new]).tocsr()
    cold.add_items(X_new, X_all)
    assert len(cold.thin) == n_thin + 2 and cold.thin[-2:].tolist() == [30, 31]
    assert cold.mass.shape == (32,) and not cold.mass[30:].any()
    assert cold.neighbors.shape == (n_thin + 2, 32)
    pool = np.nonzero(mass > 0)[0]
    np.testing.assert_allclose(cold.neighbors[-2:].toarray(),
                               dense_neighbours(X_all, np.array([30, 31]), pool, 4), rtol=1e-5, atol=1e-7)
    assert cold.neighbors[-2, 20] == cold.neighbors[-2].max()  # its twin is its nearest
    assert cold.own_weight()[-2:].tolist() == [0.0, 0.0]


def test_a_saved_map_comes_back_with_its_settings():
    X, V, Y, mass = catalog(seed=4)
    mass[-1] = 0.0  # the last paper unread: no paper's neighbour, yet a column of the map
    cold = ColdStartMap.fit(X, V, Y, mass, k=3, shrink=2.5, thin_below=5.0)
    cold.own_floor = 0.5
    assert cold.params() == {"shrink": 2.5, "k": 3, "thin_below": 5.0, "own_floor": 0.5}
    back = ColdStartMap.from_arrays(cold.to_arrays(), cold.params())
    for a, b in ((back.thin, cold.thin), (back.mass, cold.mass), (back.ridge_coef, cold.ridge_coef),
                 (back.ridge_intercept, cold.ridge_intercept), (back.neighbors.toarray(), cold.neighbors.toarray())):
        np.testing.assert_array_equal(a, b)
    assert back.params() == cold.params() and back.neighbors.shape == cold.neighbors.shape
    np.testing.assert_array_equal(back.effective_factors(Y, V), cold.effective_factors(Y, V))
    assert cold.neighbors.indices.max() < 29 and back.neighbors.shape == (len(cold.thin), 30)
    wide = ColdStartMap.from_arrays({k: v.astype(np.float64 if v.dtype.kind == "f" else np.int64)
                                     for k, v in cold.to_arrays().items()}, cold.params())
    assert (wide.mass.dtype, wide.ridge_coef.dtype, wide.ridge_intercept.dtype, wide.neighbors.dtype,
            wide.thin.dtype) == (np.float32, np.float32, np.float32, np.float32, np.int64)
    older = ColdStartMap.from_arrays(cold.to_arrays(), {})
    assert older.params() == {"shrink": 1.0, "k": 20, "thin_below": 10.0, "own_floor": 0.0}


def test_the_neighbour_pool_is_every_read_paper_or_the_most_read():
    mass = np.array([0, 5, 2, 0, 9, 5, 1], np.float32)
    np.testing.assert_array_equal(neighbor_pool(mass), [1, 2, 4, 5, 6])
    np.testing.assert_array_equal(neighbor_pool(mass, max_pool=3), [1, 4, 5])  # 9, 5, 5
    np.testing.assert_array_equal(neighbor_pool(mass, max_pool=2), [1, 4])  # of the equal 5s, the first
    np.testing.assert_array_equal(neighbor_pool(mass, max_pool=5), [1, 2, 4, 5, 6])
    np.testing.assert_array_equal(neighbor_pool(mass, max_pool=0), [1, 2, 4, 5, 6])  # 0: no cap


def test_cosines_are_searched_in_batches_and_a_row_never_picks_itself():
    X, _, _, mass = catalog(seed=5, n_items=40)
    rows, pool = np.arange(40), np.nonzero(mass > 0)[0]
    whole = top_cosines(X[rows], X[pool], pool, 40, k=6, exclude=rows)
    small = top_cosines(X[rows], X[pool], pool, 40, k=6, exclude=rows, cells=len(pool) * 3)  # 3 rows a batch
    np.testing.assert_array_equal(whole.toarray(), small.toarray())
    assert all(i not in whole[i].indices for i in rows)
    everyone = np.arange(40)  # paper 0 in the pool too: it must not pick itself either
    self_free = top_cosines(X, X, everyone, 40, k=6, exclude=everyone)
    assert all(i not in self_free[i].indices for i in everyone)
    S = (X @ X[pool].T).toarray()
    for i in (0, 17, 39):
        s = np.where(pool == i, 0.0, S[i])
        want = np.sort(s[s > 0])[::-1][:6]
        np.testing.assert_allclose(np.sort(whole[i].data)[::-1], want, rtol=1e-5)
    assert top_cosines(X[:0], X[pool], pool, 40).shape == (0, 40)
    assert top_cosines(X[:3], X[:0], pool[:0], 40).nnz == 0
    wide = top_cosines(X[:2], X[pool], pool, 40, k=1000)  # k over the pool: every positive cosine
    assert wide[0].nnz == (S[0] > 0).sum()
    nb = content_neighbors(X[:2], X[pool], pool, 40, k=3, exclude=np.array([0, 1]))
    np.testing.assert_allclose(np.asarray(nb.sum(axis=1)).ravel(), 1.0, rtol=1e-6)


def test_cached_candidates_serve_a_fit_only_when_they_hold_all_its_thin_papers():
    X, _, _, mass = catalog(seed=6, n_items=40)
    cache = NeighborCache.for_two_fits(X, mass, mass, k=3)
    np.testing.assert_array_equal(cache.rows, np.nonzero(mass < THIN_BELOW)[0])
    np.testing.assert_array_equal(cache.pool, neighbor_pool(mass))
    assert np.diff(cache.sims.indptr).max() <= 6  # 2k candidates each
    thin = cache.rows
    narrower = np.delete(cache.pool, [0, 5])  # fewer than k of a paper's candidates leave: exact
    got = cache.neighbors(thin, narrower, 3)
    want = content_neighbors(X[thin], X[narrower], narrower, 40, k=3, exclude=thin)
    np.testing.assert_allclose(got.toarray(), want.toarray(), rtol=1e-5, atol=1e-7)
    assert abs(got - cache.neighbors(thin, cache.pool, 3)).max() > 0.1  # the two left papers were picked
    assert cache.neighbors(np.r_[thin, 39], cache.pool, 3) is None  # 39 is well read: not cached
