"""The item graph (RP3beta) held to its definition, written out densely.

The other tests of the graph compare it with itself (in blocks against whole, a fixed penalty
against the one the search chose); these say what each entry is, so a wrong exponent, a
penalty on the wrong side or a self-loop left in fails here.
"""
import numpy as np
import pytest
import scipy.sparse as sp

from recommender.model.item_graph import (DEFAULT_ALPHA, DEFAULT_BETA, ItemGraph, grown, square_from_arrays,
                                          square_to_arrays, top_k_per_row)


def confidences(seed=0, n_users=40, n_items=25, density=0.2):
    """Confidences of several sizes (1-5), as a decayed, kind-weighted matrix has them."""
    rng = np.random.default_rng(seed)
    M = sp.random(n_users, n_items, density=density, random_state=rng, format="csr", dtype=np.float32)
    M.data = 1.0 + 4.0 * M.data
    return M


def rp3beta(C: sp.csr_matrix, alpha: float, beta: float, top_k: int) -> np.ndarray:
    """Paudel et al.'s walk from the definition: who read a paper (0/1), item -> reader ->
    item with each step's probability raised to alpha, the target's readers to the -beta,
    no self-loops, each row's top_k, rows summing to 1."""
    R = (C.toarray() > 0).astype(np.float64)
    reads = R.sum(axis=1, keepdims=True)
    readers = R.sum(axis=0)
    to_paper = np.divide(R, reads, out=np.zeros_like(R), where=reads > 0) ** alpha  # reader -> paper
    to_reader = np.divide(R.T, readers[:, None], out=np.zeros_like(R.T), where=readers[:, None] > 0) ** alpha
    W = to_reader @ to_paper / np.maximum(readers, 1.0)[None, :] ** beta
    np.fill_diagonal(W, 0.0)
    for row in W:
        if (row > 0).sum() > top_k:
            row[row < np.sort(row)[-top_k]] = 0.0
    sums = W.sum(axis=1, keepdims=True)
    return np.divide(W, sums, out=np.zeros_like(W), where=sums > 0)


@pytest.mark.parametrize("alpha, beta", [(1.0, 0.0), (0.5, 0.3), (0.8, 0.4), (1.3, 0.9), (2.0, 0.5)])
@pytest.mark.parametrize("density", [0.2, 0.04])  # 0.04: many papers with one reader
def test_the_graph_is_the_walk_of_its_definition(alpha, beta, density):
    C = confidences(seed=1, density=density)
    if density < 0.1:
        assert (np.diff(sp.csc_matrix(C).indptr) == 1).sum() >= 5
    got = ItemGraph.fit(C, alpha=alpha, beta=beta, top_k=1000).weights.toarray()
    np.testing.assert_allclose(got, rp3beta(C, alpha, beta, top_k=1000), rtol=2e-5, atol=1e-7)


def test_a_graph_fit_a_few_papers_at_a_time_is_still_the_walk_of_its_definition():
    """The walk is computed in blocks of paper rows, each pruned before the next (a block's
    multiply-adds bounded by `block_work`): with a paper or two a block, every row, the
    last block's included, is the definition's, and no block keeps its own self-loops."""
    C = confidences(seed=3, n_users=50, n_items=30, density=0.25)
    want = rp3beta(C, 0.8, 0.4, top_k=1000)
    for block_work in (1, 300, 10**12):
        got = ItemGraph.fit(C, alpha=0.8, beta=0.4, top_k=1000, block_work=block_work).weights
        assert got.shape == (30, 30)
        np.testing.assert_allclose(got.toarray(), want, rtol=2e-5, atol=1e-7)


def test_by_default_a_paper_keeps_its_200_strongest_neighbours():
    """One reader of 230 papers: each paper has 229 equal neighbours, and keeps 200 of them."""
    C = sp.csr_matrix(np.ones((1, 230), np.float32))
    g = ItemGraph.fit(C)
    assert g.top_k == 200 and (np.diff(g.weights.indptr) == 200).all()
    assert (g.alpha, g.beta) == (DEFAULT_ALPHA, DEFAULT_BETA)


def test_a_catalog_nobody_has_read_yet_has_an_empty_graph():
    """A new store's first fit: papers, no reader events (a matrix of no rows), or none at all."""
    for C in (sp.csr_matrix((0, 5), dtype=np.float32), sp.csr_matrix((3, 5), dtype=np.float32),
              sp.csr_matrix((3, 0), dtype=np.float32)):
        g = ItemGraph.fit(C, alpha=0.5, beta=0.2, top_k=7)
        assert g.weights.shape == (C.shape[1],) * 2 and g.weights.nnz == 0
        assert (g.alpha, g.beta, g.top_k) == (0.5, 0.2, 7)
        assert g.scores(sp.csr_matrix((2, C.shape[1]), dtype=np.float32)).shape == (2, C.shape[1])
    g.add_items(2)
    assert g.weights.shape == (2, 2) and g.weights.nnz == 0


def test_each_paper_keeps_its_strongest_neighbours_only():
    C = confidences(seed=2, n_users=60, n_items=30, density=0.3)
    g = ItemGraph.fit(C, alpha=0.7, beta=0.5, top_k=4)
    counts = np.diff(g.weights.indptr)
    assert counts.max() == 4 and (counts <= 4).all()
    np.testing.assert_allclose(g.weights.toarray(), rp3beta(C, 0.7, 0.5, top_k=4), rtol=2e-5, atol=1e-7)
    assert (g.alpha, g.beta, g.top_k) == (0.7, 0.5, 4)


def test_only_who_read_a_paper_counts_not_how_much():
    """The walk is over the reading itself: confidences of other sizes give the same graph."""
    C = confidences(seed=3)
    flat = C.copy()
    flat.data[:] = 1.0
    np.testing.assert_array_equal(ItemGraph.fit(C).weights.toarray(), ItemGraph.fit(flat).weights.toarray())


def test_the_penalty_lowers_popular_neighbours_and_unset_settings_take_the_defaults():
    # papers 0 and 1 are read together by 2 readers; paper 2, read by 8, is read with 0 by 2
    rows = [[0, 1], [0, 1], [0, 2], [0, 2]] + [[2]] * 6
    C = sp.csr_matrix((np.ones(sum(map(len, rows)), np.float32),
                       np.concatenate(rows), np.r_[0, np.cumsum([len(r) for r in rows])]), shape=(10, 3))
    walk = ItemGraph.fit(C, alpha=1.0, beta=0.0).weights.toarray()
    penalised = ItemGraph.fit(C, alpha=1.0, beta=1.0).weights.toarray()
    assert walk[0, 1] == pytest.approx(walk[0, 2])  # as many co-readers each
    assert penalised[0, 1] > 3 * penalised[0, 2]  # 2 readers against 8
    default = ItemGraph.fit(C, alpha=None, beta=None)
    assert (default.alpha, default.beta) == (DEFAULT_ALPHA, DEFAULT_BETA)
    np.testing.assert_array_equal(default.weights.toarray(), ItemGraph.fit(C).weights.toarray())
    zero = ItemGraph.fit(C, alpha=0.5, beta=0.0)  # 0 is a setting, not "unset"
    assert zero.beta == 0.0 and abs(zero.weights - ItemGraph.fit(C, alpha=0.5).weights).max() > 1e-3


def test_a_reader_scores_papers_through_their_history_and_new_papers_have_no_neighbours():
    C = confidences(seed=4)
    g = ItemGraph.fit(C, alpha=0.6, beta=0.2)
    rows = sp.csr_matrix(np.array([[1, 0, 2] + [0] * 22, [0] * 24 + [1]], np.float32))
    want = rows.toarray() @ g.weights.toarray()
    got = g.scores(rows)
    assert got.shape == (2, 25) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)
    g.add_items(3)
    assert g.n_items == 28 and g.weights.shape == (28, 28)
    assert g.weights[25:].nnz == 0 and g.weights[:, 25:].nnz == 0
    np.testing.assert_array_equal(g.weights[:25, :25].toarray(), ItemGraph.fit(C, alpha=0.6, beta=0.2).weights.toarray())


def test_a_saved_graph_comes_back_with_its_settings():
    g = ItemGraph.fit(confidences(seed=5), alpha=0.55, beta=0.35, top_k=7)
    arrays = g.to_arrays()
    assert set(arrays) == {"graph_data", "graph_indices", "graph_indptr"}
    back = ItemGraph.from_arrays(arrays, {"alpha": g.alpha, "beta": g.beta, "top_k": g.top_k})
    assert (back.alpha, back.beta, back.top_k) == (0.55, 0.35, 7)
    np.testing.assert_array_equal(back.weights.toarray(), g.weights.toarray())
    assert back.weights.data.dtype == np.float32 and back.weights.indices.dtype == np.int32
    older = ItemGraph.from_arrays(arrays, {})  # a manifest from before the settings were recorded
    assert (older.alpha, older.beta, older.top_k) == (0.8, 0.4, 200)


def test_a_square_matrix_grows_and_round_trips_under_any_prefix():
    W = sp.csr_matrix(np.array([[0, 2.0], [1.5, 0]], np.float32))
    G = grown(W, 2)
    assert G.shape == (4, 4) and G.nnz == 2
    np.testing.assert_array_equal(G.toarray()[:2, :2], W.toarray())
    back = square_from_arrays(square_to_arrays(G, "x_"), "x_")
    assert back.shape == (4, 4) and back.dtype == np.float32
    wide = square_from_arrays({k: v.astype(np.float64 if v.dtype.kind == "f" else np.int64)
                               for k, v in square_to_arrays(G, "x_").items()}, "x_")
    assert (wide.dtype, wide.indices.dtype, wide.shape) == (np.float32, np.int32, (4, 4))
    np.testing.assert_array_equal(back.toarray(), G.toarray())
    # the files hold float32 values, int32 columns and int64 row starts, whatever the matrix held
    G64 = sp.csr_matrix((G.data.astype(np.float64), G.indices.astype(np.int64), G.indptr.astype(np.int32)),
                        shape=G.shape)
    saved = square_to_arrays(G64, "x_")
    assert {k: v.dtype for k, v in saved.items()} == {"x_data": np.float32, "x_indices": np.int32,
                                                      "x_indptr": np.int64}


def test_of_equal_neighbours_the_earlier_stored_are_kept():
    M = sp.csr_matrix(np.array([[1.0, 3.0, 1.0, 1.0, 2.0], [0, 0, 0, 0, 0], [5.0, 0, 0, 0, 0]], np.float32))
    kept = top_k_per_row(M, 2).toarray()
    np.testing.assert_array_equal(kept[0], [0, 3.0, 0, 0, 2.0])
    kept = top_k_per_row(M, 3).toarray()
    np.testing.assert_array_equal(kept[0], [1.0, 3.0, 0, 0, 2.0])  # of the three 1s, the first
    np.testing.assert_array_equal(kept[2], [5.0, 0, 0, 0, 0])
    np.testing.assert_array_equal(top_k_per_row(M, 4).toarray()[0], [1.0, 3.0, 1.0, 0, 2.0])
    assert top_k_per_row(M, 5).nnz == 6  # no row over k: nothing to prune
