"""EASE (recommender/model/ease.py): the closed form, its pruning, and the option in the hybrid.

The blend has an EASE feature, on where EASE's papers hold most of the reading (the
README's ablation says why not elsewhere); with it on, the single-reader path still equals
the batch path, the model round-trips through plain arrays and a paper added at serve time
is scored."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from dataclasses import replace

from recommender.model import ease as ease_module
from recommender.model.ease import (LAMBDA_BOUNDS, LAMBDA_STEP, Gram, covers_reading, fit as fit_ease,
                                    fit_on_validation, walk_lambdas)
from recommender.model.hybrid import HybridModel
from recommender.model.one_reader import OneHistory
from tests.helpers import CONFIG, synthetic


def random_matrix(n_users=60, n_items=25, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.random((n_users, n_items)) < 0.2).astype(np.float32)
    return sp.csr_matrix(X)


def test_weights_are_the_closed_form():
    C = random_matrix()
    lam = 10.0
    G = (C.T @ C).toarray().astype(np.float64) + lam * np.eye(C.shape[1])
    P = np.linalg.inv(G)
    B = P / -np.diag(P)
    np.fill_diagonal(B, 0.0)
    m = fit_ease(C, lam, max_solve=100, top_k=1000)
    np.testing.assert_allclose(m.weights.toarray(), B, rtol=1e-3, atol=1e-5)
    assert m.covered == int((np.asarray(C.sum(0)).ravel() > 0).sum())


def closed_form(C: sp.csr_matrix, lam: float) -> np.ndarray:
    """B over the read papers, inverted in float64 on the papers' side, as a full matrix."""
    R = sp.csr_matrix(C, dtype=np.float64)
    R.data[:] = 1.0
    read = np.nonzero(np.asarray(R.sum(axis=0)).ravel() > 0)[0]
    G = (R[:, read].T @ R[:, read]).toarray() + lam * np.eye(len(read))
    P = np.linalg.inv(G)
    Bs = P / -np.diag(P)
    np.fill_diagonal(Bs, 0.0)
    B = np.zeros((C.shape[1], C.shape[1]))
    B[np.ix_(read, read)] = Bs
    return B


def weights_of(model, n: int) -> np.ndarray:
    """B as a full matrix, whatever EASE's form: the scores of the rows of the identity."""
    return model.scores(sp.identity(n, dtype=np.float32, format="csr"))


def with_readers(n_users: int, seed: int) -> sp.csr_matrix:
    """n_users readers, 68 papers each read at least once, 2 papers nobody read."""
    read = random_matrix(n_users=n_users, n_items=68, seed=seed).tolil()
    for j in range(68):
        read[j % n_users, j] = 1.0
    return sp.csr_matrix(sp.hstack([read.tocsr(), sp.csr_matrix((n_users, 2), dtype=np.float32)]))


@pytest.mark.parametrize("n,block", [(1, 128), (7, 3), (130, 128), (300, 64)])
def test_the_inverse_s_upper_triangle_is_mirrored_exactly(n, block):
    rng = np.random.default_rng(n)
    P = np.triu(rng.normal(size=(n, n)).astype(np.float32))
    expected = np.triu(P) + np.triu(P, 1).T
    for given in (P.copy(), np.asfortranarray(P)):  # LAPACK's inverse comes column-major
        mirrored = ease_module._mirror_upper(given, block)
        np.testing.assert_array_equal(mirrored, expected)
        assert mirrored.flags.c_contiguous


@pytest.mark.parametrize("block_cells", [2_000_000, 150])
def test_fewer_readers_than_papers_solve_on_the_readers_side_to_the_same_weights(monkeypatch, block_cells):
    """15 readers, 70 papers (two never read): the solve is 15 wide (Woodbury) and its
    factors give the papers' side weights exactly, unpruned, in one block or in many."""
    monkeypatch.setattr(ease_module, "BLOCK_CELLS", block_cells)
    C = with_readers(15, seed=4)
    gram = Gram(C, max_solve=100)
    assert gram.by_readers and gram.H.shape == (15, 15) and len(gram.items) == 68
    m = gram.solve(10.0, top_k=5)  # top_k prunes the papers' side only
    assert isinstance(m, ease_module.FactoredEase) and m.covered == 68
    B = weights_of(m, 70)
    np.testing.assert_allclose(B, closed_form(C, 10.0), rtol=1e-3, atol=1e-5)
    assert not B[68:].any() and not B[:, 68:].any()
    # more readers than the bound: the papers' side, over the most-read papers
    narrow = Gram(C, max_solve=10)
    assert not narrow.by_readers and len(narrow.items) == 10


@pytest.mark.parametrize("n_users", [15, 120])
def test_weighted_rows_score_as_the_closed_form_one_at_a_time_or_together(n_users):
    """Confidence rows (not 0/1) times B, on the readers' side (15 readers) and the papers'
    side (120): the batch equals the closed form, and each row scored alone equals its row
    of the batch to the bit (the single-reader path's promise)."""
    rng = np.random.default_rng(7)
    C = with_readers(n_users, seed=5)
    m = Gram(C, max_solve=100).solve(10.0, top_k=1000)
    assert isinstance(m, ease_module.FactoredEase) == (n_users == 15)
    rows = C[[0, 3, 4]].copy()
    rows.data = rng.uniform(0.5, 4.0, rows.nnz).astype(np.float32)
    S = m.scores(rows)
    np.testing.assert_allclose(S, rows.toarray().astype(np.float64) @ closed_form(C, 10.0), rtol=1e-3, atol=1e-4)
    for i in range(3):
        r = rows[i]
        np.testing.assert_array_equal(m.row_scores(r.indices, r.data), S[i])


def test_factored_ease_round_trips_and_grows_for_new_papers():
    C = with_readers(15, seed=6)
    m = fit_ease(C, 25.0, max_solve=100)
    arrays = {k: np.asarray(v) for k, v in m.to_arrays().items()}
    loaded = ease_module.from_arrays(arrays, json.loads(json.dumps(m.params())))
    rows = C[:5]
    np.testing.assert_array_equal(loaded.scores(rows), m.scores(rows))
    loaded.add_items(3)
    assert loaded.n_items == 73
    grown = loaded.scores(sp.hstack([rows, sp.csr_matrix((5, 3), dtype=np.float32)]).tocsr())
    np.testing.assert_array_equal(grown[:, :70], m.scores(rows))
    assert not grown[:, 70:].any()


def test_the_list_form_scores_as_the_factors_one_row_or_many_and_with_papers_added_later(monkeypatch):
    """`for_lists` keeps XᵀK: the same scores as (r Xᵀ) K to float32 rounding, each row alone
    equal to its batch row to the bit, a paper added later (no readers) adds nothing to
    the rows that hold it; past `LIST_FORM_BYTES` the model keeps K alone."""
    rng = np.random.default_rng(11)
    C = with_readers(15, seed=8)
    by_k = fit_ease(C, 10.0, max_solve=100)
    listed = fit_ease(C, 10.0, max_solve=100).for_lists()
    assert by_k.XK is None and listed.XK.shape == (70, 15)
    rows = C[[1, 2, 9]].copy()
    rows.data = rng.uniform(0.5, 4.0, rows.nnz).astype(np.float32)
    S = listed.scores(rows)
    np.testing.assert_allclose(S, by_k.scores(rows), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(S, rows.toarray().astype(np.float64) @ closed_form(C, 10.0), rtol=1e-3, atol=1e-4)
    for i in range(3):
        np.testing.assert_array_equal(listed.row_scores(rows[i].indices, rows[i].data), S[i])
    listed.add_items(2)
    assert listed.XK.shape == (70, 15)  # the new papers' rows would be zero
    r = rows[0]
    items, conf = np.r_[r.indices, 70, 71], np.r_[r.data, 3.0, 1.0].astype(np.float32)
    grown = listed.row_scores(items, conf)
    np.testing.assert_array_equal(grown[:70], S[0])
    assert not grown[70:].any()
    monkeypatch.setattr(ease_module, "LIST_FORM_BYTES", 70 * 15 * 4 - 1)
    assert fit_ease(C, 10.0, max_solve=100).for_lists().XK is None


def test_pruning_keeps_the_largest_magnitudes_and_only_covered_papers():
    C = random_matrix()
    full = fit_ease(C, 10.0, max_solve=100, top_k=1000).weights.toarray()
    pruned = fit_ease(C, 10.0, max_solve=100, top_k=5).weights.toarray()
    assert ((pruned != 0).sum(axis=1) <= 5).all()
    for r in range(full.shape[0]):
        kept = np.nonzero(pruned[r])[0]
        if len(kept):
            assert np.abs(full[r, kept]).min() >= np.sort(np.abs(full[r]))[-5] - 1e-6
            np.testing.assert_allclose(pruned[r, kept], full[r, kept], rtol=1e-5)
    few = fit_ease(C, 10.0, max_solve=8, top_k=1000)
    counts = np.asarray(C.sum(0)).ravel()
    outside = np.argsort(-counts, kind="stable")[8:]
    assert few.covered == 8 and few.weights[outside].nnz == 0 and few.weights[:, outside].nnz == 0


def test_lambda_is_chosen_by_the_validation_score():
    C = random_matrix()
    readers = np.arange(10)
    lo, hi = LAMBDA_BOUNDS
    # a score that prefers the largest λ: the search walks out to the upper bound
    model, trials = fit_on_validation(C, C, readers, 100, 50, evaluate=lambda S: -float(np.abs(S).sum()))
    assert model.lam == max(t["ease_lambda"] for t in trials) == hi
    model, trials = fit_on_validation(C, C, readers, 100, 50, evaluate=lambda S: float(np.abs(S).sum()))
    assert model.lam == min(t["ease_lambda"] for t in trials) == lo
    # the model returned is the chosen λ's: its scores are that solve's
    np.testing.assert_array_equal(model.scores(C[readers]), fit_ease(C, lo, 100, 50).scores(C[readers]))


@pytest.mark.parametrize("peak", [6.25, 100.0, 1600.0, 25_600.0])
def test_the_lambda_walk_goes_past_any_fixed_grid_to_an_interior_peak(peak):
    calls = []

    def score_of(lam):
        calls.append(lam)
        return -abs(np.log(lam / peak))

    best, tried = walk_lambdas(score_of)
    assert best == peak
    assert len(calls) == len(set(calls)) == len(tried)  # no λ solved twice
    grid = sorted(tried)
    # what was tried is contiguous on the grid and brackets the peak (it is not at an edge)
    assert all(b == a * LAMBDA_STEP for a, b in zip(grid, grid[1:]))
    assert grid[0] < peak < grid[-1]
    # it stopped one step past the peak on each side, never further
    assert grid[0] >= min(100.0, peak / LAMBDA_STEP) and grid[-1] <= max(1600.0, peak * LAMBDA_STEP)


def test_the_lambda_walk_stops_at_its_bounds_and_breaks_ties_by_the_first_tried():
    # a flat score: the first tried wins, one step below it is looked at, then it stops
    best, tried = walk_lambdas(lambda lam: 0.0)
    assert best == 100.0 and sorted(tried) == [25.0, 100.0, 400.0, 1600.0]
    lo, hi = LAMBDA_BOUNDS
    best, tried = walk_lambdas(lambda lam: -lam)
    assert best == lo == min(tried) and max(tried) == 1600.0


def test_the_hybrid_with_ease_serves_one_reader_as_the_batch():
    texts, titles, users, items, _ = synthetic()
    m = HybridModel.fit(texts, users, items, n_users=int(users.max()) + 1, titles=titles,
                        config=replace(CONFIG, ease=True))
    manifest = json.loads(json.dumps(m.manifest()))
    assert manifest["ease"]["lambda"] == manifest["config"]["ease_lambda"] == m.stats["validation"]["ease_lambda"]
    history = [(3, "upvote", None), (10, "read", None), (11, "click", None)]
    row, seen = m.history_row(history)
    np.testing.assert_array_equal(m.one_reader().scores(OneHistory.from_row(row, seen), "hybrid")[0],
                                  m.score_batch(row, "hybrid")[0])
    loaded = HybridModel.from_arrays(m.to_arrays(), manifest)
    np.testing.assert_allclose(loaded.score_history(history), m.score_history(history), rtol=1e-5, atol=1e-6)
    new = m.add_paper("graph network study 80", "graph network node edge community clustering")
    assert m.comps.ease.n_items == m.n_items == new + 1
    assert np.isfinite(m.score_history(history)).all()


def test_coverage_is_the_share_of_reader_paper_pairs_on_the_most_read_papers():
    # paper 0 read by 6 readers, paper 1 by 3, paper 2 by 1; repeated events count once
    rows = [0, 1, 2, 3, 4, 5, 0, 1, 2, 0]
    cols = [0, 0, 0, 0, 0, 0, 1, 1, 1, 2]
    C = sp.csr_matrix((np.full(10, 3.0, np.float32), (rows, cols)), shape=(6, 4))
    assert covers_reading(C, 1, 0.6) == (True, 0.6)
    assert covers_reading(C, 1, 0.61)[0] is False
    assert covers_reading(C, 2, 0.9) == (True, 0.9)
    assert covers_reading(sp.csr_matrix((3, 4), dtype=np.float32), 2, 0.5) == (False, 0.0)
    # fewer readers than read papers and within the bound: the readers' side covers them all
    wide = sp.csr_matrix((np.ones(4, np.float32), ([0, 0, 1, 1], [0, 1, 2, 3])), shape=(2, 5))
    assert covers_reading(wide, 2, 0.99) == (True, 1.0)
    assert covers_reading(wide, 1, 0.99) == (False, 0.25)


def test_the_hybrid_takes_ease_where_it_covers_the_reading_and_leaves_it_out_elsewhere():
    texts, titles, users, items, _ = synthetic()
    n_users = int(users.max()) + 1
    covered = HybridModel.fit(texts, users, items, n_users=n_users, titles=titles, config=CONFIG)
    assert CONFIG.ease is None and covered.stats["validation"]["ease_covered_share"] == 1.0
    assert covered.comps.ease is not None and covered.config.ease is True
    assert covered.manifest()["ease"]["lambda"] == covered.config.ease_lambda
    head_only = HybridModel.fit(texts, users, items, n_users=n_users, titles=titles,
                                config=replace(CONFIG, ease_max_solve=5))
    assert head_only.stats["validation"]["ease_covered_share"] < CONFIG.ease_min_share
    assert head_only.comps.ease is None and head_only.config.ease is False
    assert "ease_lambda" not in head_only.stats["validation"]
    # the decision is the model's: a refit keeps it
    assert head_only.refit(users, items, n_users=n_users).comps.ease is None
    assert covered.refit(users, items, n_users=n_users).comps.ease is not None
