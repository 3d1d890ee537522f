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
from recommender.model.ease import (FIRST_LAMBDAS, LAMBDA_BOUNDS, LAMBDA_STEP, Gram, covers_reading, fit as fit_ease,
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


def closed_form(C: sp.csr_matrix, lam: float, W: sp.csr_matrix | None = None, w: float = 0.0) -> np.ndarray:
    """B over the papers C reads (0/1), inverted in float64 on the papers' side, as a full
    matrix; with word rows W at weight w stacked under the readers, over the papers either
    part covers: what the papers' words as extra readers mean."""
    A = sp.csr_matrix(C, dtype=np.float64)
    A.data[:] = 1.0
    if W is not None:
        A = sp.vstack([A, w * sp.csr_matrix(W, dtype=np.float64)]).tocsr()
    covered = np.nonzero(np.diff(sp.csc_matrix(A).indptr) > 0)[0]
    G = (A[:, covered].T @ A[:, covered]).toarray() + lam * np.eye(len(covered))
    P = np.linalg.inv(G)
    Bs = P / -np.diag(P)
    np.fill_diagonal(Bs, 0.0)
    B = np.zeros((C.shape[1], C.shape[1]))
    B[np.ix_(covered, covered)] = Bs
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


@pytest.mark.parametrize("block_cells, left_cells", [(3 * 15, 8 * 15), (4 * 15, 10 * 15), (15, 15)])
def test_many_rows_score_alike_whatever_blocks_and_chunks_they_go_through(monkeypatch, block_cells, left_cells):
    """The readers' side scores rows in chunks of LEFT_CELLS and blocks of BLOCK_CELLS; a
    chunk need not be a whole number of blocks (8 rows a chunk, 3 a block), and the last
    block of each chunk must still land on that chunk's rows: the scores of 40 rows are
    each row's closed form, as with one block for all."""
    C = with_readers(15, seed=5)
    m = Gram(C, max_solve=100).solve(10.0, top_k=1000)
    assert isinstance(m, ease_module.FactoredEase)
    rows = sp.vstack([C] * 3)[:40].tocsr()
    whole = m.scores(rows)
    monkeypatch.setattr(ease_module, "BLOCK_CELLS", block_cells)
    monkeypatch.setattr(ease_module, "LEFT_CELLS", left_cells)
    np.testing.assert_allclose(m.scores(rows), whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole, rows.toarray().astype(np.float64) @ closed_form(C, 10.0), rtol=1e-3, atol=1e-4)


def test_factored_ease_round_trips_and_grows_for_new_papers():
    C = with_readers(15, seed=6)
    m = fit_ease(C, 25.0, max_solve=100)
    arrays = {k: np.asarray(v) for k, v in m.to_arrays().items()}
    loaded = ease_module.from_arrays(arrays, json.loads(json.dumps(m.params())))
    assert loaded.params() == m.params() == {"lambda": 25.0, "covered_items": 68, "form": "factored"}  # the read papers
    assert (loaded.words, loaded.word_rows) == (0.0, 0)
    rows = C[:5]
    np.testing.assert_array_equal(loaded.scores(rows), m.scores(rows))
    # K is stored as its upper triangle, and comes back the same matrix to the bit; an
    # artifact written before, with the whole K, still loads
    n = m.K.shape[0]
    assert "ease_K" not in arrays and arrays["ease_K_upper"].shape == (n * (n + 1) // 2,)
    np.testing.assert_array_equal(loaded.K.view(np.uint32), m.K.view(np.uint32))
    older = {**{k: v for k, v in arrays.items() if k != "ease_K_upper"}, "ease_K": m.K}
    np.testing.assert_array_equal(ease_module.from_arrays(older, m.params()).K, m.K)
    with pytest.raises(ValueError):
        ease_module.unpacked_upper(arrays["ease_K_upper"][:-1], n)
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
    monkeypatch.setattr(ease_module, "LIST_FORM_BYTES", 70 * 15 * 4)  # exactly its size: kept
    assert fit_ease(C, 10.0, max_solve=100).for_lists().XK.shape == (70, 15)


def test_a_copy_of_the_same_ease_shares_its_list_form_and_another_ease_builds_its_own(monkeypatch):
    """`for_lists(like=...)`: a copy of a serving model (made before papers were added, as
    the model slot makes one) takes the original's XᵀK, the same array, instead of building
    543 MB again; an EASE over other readers does not, and with no room for a list form
    (`LIST_FORM_BYTES`) a shared one is still taken, since it costs nothing more."""
    C = with_readers(15, seed=8)
    listed = fit_ease(C, 10.0, max_solve=100).for_lists()
    copy = fit_ease(C, 10.0, max_solve=100)
    assert copy.for_lists(like=listed).XK is listed.XK
    other = fit_ease(with_readers(16, seed=8), 10.0, max_solve=100)
    other.for_lists(like=listed)
    assert other.XK is not listed.XK and other.XK.shape == (70, 16)
    monkeypatch.setattr(ease_module, "LIST_FORM_BYTES", 0)
    assert fit_ease(C, 10.0, max_solve=100).for_lists(like=listed).XK is listed.XK
    assert fit_ease(C, 10.0, max_solve=100).for_lists(like=copy).XK is listed.XK
    assert fit_ease(C, 10.0, max_solve=100).for_lists(like=fit_ease(C, 10.0, max_solve=100)).XK is None


def test_a_scoring_of_many_readers_builds_the_list_form_for_its_time_only():
    """`in_list_form_for` builds XᵀK where reading it costs less than reading K
    (`list_form_pays`: many readers whose papers have many co-readers), and drops it after;
    a model that keeps XᵀK already keeps it, and one reader is scored through K."""
    C = with_readers(15, seed=8)  # 15 readers of 68 papers: each paper's column is long
    model = fit_ease(C, 10.0, max_solve=100)
    assert model.list_form_pays(C) and not model.list_form_pays(C[[3]])
    by_k = model.scores(C)
    with model.in_list_form_for(C) as inside:
        assert inside.XK is not None and inside.XK.shape == (70, 15)
        np.testing.assert_allclose(inside.scores(C), by_k, rtol=1e-5, atol=1e-5)
    assert model.XK is None
    with model.in_list_form_for(C[[3]]):
        assert model.XK is None
    model.for_lists()
    kept = model.XK
    with model.in_list_form_for(C):
        assert model.XK is kept
    assert model.XK is kept


def test_the_list_form_pays_where_the_rows_of_k_read_exceed_twice_its_build_and_reads():
    """`list_form_pays`'s count, written out: through K a reader's paper reads one row of
    K per reader of that paper; XᵀK costs one read per stored entry of X to build and one
    per paper of the readers' to read, and is taken where K's reads are more than twice
    that. 15 readers of 68 papers: the first 12 readers read 878 rows of K against twice
    (258 + their 200 papers); the 13th tips it."""
    C = with_readers(15, seed=8)
    model = fit_ease(C, 10.0, max_solve=100)
    readers_of = np.diff(sp.csc_matrix(C).indptr)
    assert model.XT.nnz == C.nnz == 258
    for n in range(1, 16):
        rows = C[:n]
        through_k = int(readers_of[rows.indices].sum())
        assert model.list_form_pays(rows) == (through_k > 2 * (C.nnz + rows.nnz)) == (n >= 13), n


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



@pytest.mark.parametrize("words", [0.0, 1.5])
def test_pruned_ease_round_trips_with_its_settings_and_scores(words):
    """More readers than papers: the papers' side, B pruned. What the manifest says of it
    (λ, the papers it covers, the weights kept a paper, the words' weight) comes back as
    the model it was, and so do its scores."""
    C = random_matrix(n_users=90, n_items=70, seed=4)
    m = fit_ease(C, 10.0, max_solve=60, top_k=7, text=paper_terms(), words=words)
    assert type(m).__name__ == "EaseModel"
    assert (m.lam, m.covered, m.top_k, m.words) == (10.0, 60, 7, words)
    arrays = {k: np.asarray(v) for k, v in m.to_arrays().items()}
    loaded = ease_module.from_arrays(arrays, json.loads(json.dumps(m.params())))
    assert type(loaded) is type(m)
    assert (loaded.lam, loaded.covered, loaded.top_k, loaded.words) == (10.0, 60, 7, words)
    assert loaded.params() == m.params()
    np.testing.assert_array_equal(loaded.scores(C[:9]), m.scores(C[:9]))

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
    assert grid[0] >= min(min(FIRST_LAMBDAS), peak / LAMBDA_STEP)
    assert grid[-1] <= max(max(FIRST_LAMBDAS), peak * LAMBDA_STEP)


def test_the_lambda_walk_stops_at_its_bounds_and_breaks_ties_by_the_first_tried():
    # a flat score: the first tried (100) wins, the step above it is looked at, then it stops
    best, tried = walk_lambdas(lambda lam: 0.0)
    assert best == 100.0 and sorted(tried) == [25.0, 100.0, 400.0]
    lo, hi = LAMBDA_BOUNDS
    best, tried = walk_lambdas(lambda lam: -lam)
    assert best == lo == min(tried) and max(tried) == max(FIRST_LAMBDAS)
    best, tried = walk_lambdas(lambda lam: lam)
    assert best == hi == max(tried) and min(tried) == min(FIRST_LAMBDAS)


HISTORY = [(3, "upvote", None), (10, "read", None), (11, "click", None)]


def serves_one_reader_as_the_batch_and_loads(m: HybridModel) -> dict:
    """The single-reader path gives the batch's scores to the bit, and the artifact loads
    to the same scores; returns the manifest as JSON gives it back."""
    manifest = json.loads(json.dumps(m.manifest()))
    row, seen = m.history_row(HISTORY)
    np.testing.assert_array_equal(m.one_reader().scores(OneHistory.from_row(row, seen), "hybrid")[0],
                                  m.score_batch(row, "hybrid")[0])
    loaded = HybridModel.from_arrays(m.to_arrays(), manifest)
    np.testing.assert_allclose(loaded.score_history(HISTORY), m.score_history(HISTORY), rtol=1e-5, atol=1e-6)
    return manifest


def test_the_hybrid_with_ease_serves_one_reader_as_the_batch():
    texts, titles, users, items, _ = synthetic()
    m = HybridModel.fit(texts, users, items, n_users=int(users.max()) + 1, titles=titles,
                        config=replace(CONFIG, ease=True))
    manifest = serves_one_reader_as_the_batch_and_loads(m)
    assert manifest["ease"]["lambda"] == manifest["config"]["ease_lambda"] == m.stats["validation"]["ease_lambda"]
    new = m.add_paper("graph network study 80", "graph network node edge community clustering")
    assert m.comps.ease.n_items == m.n_items == new + 1
    assert np.isfinite(m.score_history(HISTORY)).all()


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
    assert covers_reading(wide, 2, 0.99) == covers_reading(wide, 2, 1.0) == (True, 1.0)
    assert covers_reading(wide, 1, 0.99) == (False, 0.25)
    # readers are those with a paper: reader 0 reads two, readers 1 and 2 one each, reader 3 none
    some = sp.csr_matrix((np.ones(4, np.float32), ([0, 0, 1, 2], [0, 1, 2, 3])), shape=(4, 5))
    assert covers_reading(some, 3, 0.99) == (True, 1.0)  # 3 readers of 4 papers: all covered
    assert covers_reading(some, 2, 0.99) == (False, 0.5)  # 3 readers are too many: the 2 most read


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


def paper_terms(n_papers: int = 70, n_terms: int = 30, seed: int = 3) -> sp.csr_matrix:
    """(papers x terms) TF-IDF-like rows: every term in 5 or more papers, term t used by more
    papers the smaller t is."""
    rng = np.random.default_rng(seed)
    use = rng.random((n_papers, n_terms)) < np.linspace(0.5, 0.1, n_terms)[None, :]
    use[np.arange(n_terms) % n_papers, np.arange(n_terms)] = True
    use[:, (use.sum(axis=0) < 5)] |= rng.random((n_papers, 1)) < 0.3
    T = sp.csr_matrix(use * rng.uniform(0.05, 0.6, use.shape), dtype=np.float32)
    return T


def test_word_rows_are_the_terms_most_used_first_at_their_tf_idf():
    T = paper_terms()
    W = ease_module.word_rows(T, min_df=5)
    df = np.diff(sp.csc_matrix(T).indptr)
    assert W.shape == (int((df >= 5).sum()), 70)
    assert (np.diff(np.diff(W.indptr)) <= 0).all()  # most used first
    top = int(np.argmax(df))
    np.testing.assert_array_equal(W[0].toarray().ravel(), T[:, top].toarray().ravel())
    assert ease_module.word_rows(T, min_df=71) is None and ease_module.word_rows(None) is None
    unit = ease_module._unit_mean(W * 7.0)
    assert unit.data.mean() == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("n_users", [15, 120])
def test_the_words_are_extra_readers_on_either_side_of_the_solve(n_users):
    """15 readers (readers' side, the word rows fill the room under max_solve) and 120
    (papers' side, WᵀW added to the Gram matrix): the weights are EASE's closed form over
    the readers stacked on the word rows at weight w (each row of words scaled to a unit
    mean), and two papers nobody read are covered through their words on the readers' side."""
    C = with_readers(n_users, seed=9)
    T = paper_terms()
    words = ease_module.word_rows(T)
    gram = Gram(C, max_solve=100, words=words)
    assert gram.by_readers == (n_users == 15) and gram.has_words
    for w in (0.5, 2.0):
        m = gram.solve(10.0, top_k=1000, words=w)
        unit = ease_module._unit_mean(words[:100 - n_users] if n_users == 15 else words)
        expected = closed_form(C, 10.0, unit, w)
        if n_users == 120:  # the papers' side covers the read papers only; WᵀW over them
            read = np.asarray(C.sum(axis=0)).ravel() > 0
            Ws = ease_module._unit_mean(sp.csr_matrix(words)[:, np.nonzero(read)[0]])
            sub = closed_form(C[:, read], 10.0, Ws, w)
            expected = np.zeros((70, 70))
            expected[np.ix_(read, read)] = sub
        np.testing.assert_allclose(weights_of(m, 70), expected, rtol=2e-3, atol=2e-5)
        assert m.words == w
    plain = gram.solve(10.0, top_k=1000)
    np.testing.assert_allclose(weights_of(plain, 70), closed_form(C, 10.0), rtol=1e-3, atol=1e-5)
    if n_users == 15:
        assert gram.solve(10.0, 1000, 2.0).covered == 70 and plain.covered == 68
        # no room under the bound: readers alone
        assert not Gram(C, max_solve=15, words=words).has_words
        narrow = Gram(C, max_solve=20, words=words)
        assert narrow.W.shape[0] == 5 and narrow.solve(10.0, 1000, 1.0).K.shape == (20, 20)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_word_weights_scores_from_the_readers_solve_are_each_weights_own_solve(seed):
    """`WordWeightScores` (the walk's trials through a Schur complement of the readers'
    solve at λ) scores weighted history rows as the whole (readers + words)² solve at each
    weight does: rows with confidences, not 0/1, so the r ∘ q term is checked too."""
    C = with_readers(15, seed=seed)
    gram = Gram(C, max_solve=100, words=ease_module.word_rows(paper_terms()))
    assert gram.by_readers and gram.has_words
    rng = np.random.default_rng(seed)
    rows = sp.csr_matrix(C[:12], dtype=np.float32)
    rows.data = rng.uniform(0.5, 3.0, rows.nnz).astype(np.float32)
    for lam in (4.0, 25.0):
        at_zero = gram.solve(lam, 1000)
        trials = ease_module.WordWeightScores(gram, at_zero, rows, at_zero.scores(rows))
        np.testing.assert_allclose(trials.scores(0.0), at_zero.scores(rows), rtol=1e-4, atol=1e-5)
        for w in (0.25, 1.0, 3.0):
            whole = gram.solve(lam, 1000, w).scores(rows)
            np.testing.assert_allclose(trials.scores(w), whole, rtol=2e-3, atol=2e-4 * np.abs(whole).max())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_word_weights_walk_chooses_as_with_every_weight_solved_whole(seed, monkeypatch):
    """The walk over the words' weights, its trials scored from λ's solve, and the same walk
    with every trial solved whole (what a catalog past `WORD_TRIALS_BYTES` gets): the same
    trials, NDCG to rounding, the same weight and the same model."""
    from recommender.model.tuning import validation_ndcg
    C_fit, V_pos, T = topical(seed, True, 80)
    readers = np.arange(C_fit.shape[0])

    def ndcg(S):
        return validation_ndcg(S, C_fit, V_pos)

    assert ease_module.WordWeightScores.fits(Gram(C_fit, 1000, ease_module.word_rows(T)))
    # more word rows than readers: solved whole (the eigendecomposition would cost more)
    many_words = Gram(with_readers(15, seed=seed), max_solve=100, words=ease_module.word_rows(paper_terms()))
    assert many_words.W.shape[0] > 15 and not ease_module.WordWeightScores.fits(many_words)
    model, trials = fit_on_validation(C_fit, V_pos, readers, 1000, 50, ndcg, text=T, words=None)
    monkeypatch.setattr(ease_module, "WORD_TRIALS_BYTES", 0)
    assert not ease_module.WordWeightScores.fits(Gram(C_fit, 1000, ease_module.word_rows(T)))
    whole, whole_trials = fit_on_validation(C_fit, V_pos, readers, 1000, 50, ndcg, text=T, words=None)
    assert [t.get("words") for t in trials] == [t.get("words") for t in whole_trials]
    for a, b in zip(trials, whole_trials):
        assert a["ndcg"] == pytest.approx(b["ndcg"], abs=1e-4)
    assert model.words == whole.words > 0 and model.lam == whole.lam
    np.testing.assert_array_equal(model.scores(C_fit), whole.scores(C_fit))


def test_ease_with_words_round_trips_through_arrays_and_serves_one_row_as_the_batch():
    C = with_readers(15, seed=6)
    m = fit_ease(C, 25.0, max_solve=100, text=paper_terms(), words=1.5)
    assert m.word_rows > 0 and m.params()["words"] == 1.5
    arrays = {k: np.asarray(v) for k, v in m.to_arrays().items()}
    loaded = ease_module.from_arrays(arrays, json.loads(json.dumps(m.params())))
    assert loaded.params() == m.params()
    assert (loaded.lam, loaded.covered, loaded.words, loaded.word_rows) == (25.0, m.covered, 1.5, m.word_rows)
    rows = C[:5]
    np.testing.assert_array_equal(loaded.scores(rows), m.scores(rows))
    listed = loaded.for_lists()
    S = listed.scores(rows)
    for i in range(5):
        np.testing.assert_array_equal(listed.row_scores(rows[i].indices, rows[i].data), S[i])
    # without words nothing changes in the artifact: 0/1 rows, no data array
    plain = fit_ease(C, 25.0, max_solve=100, text=paper_terms(), words=0.0)
    assert "ease_X_data" not in plain.to_arrays() and "words" not in plain.params()


@pytest.mark.parametrize("peak,expected", [(3.0, 4.0), (1.9, 2.0), (0.3, 0.25), (0.0, 0.0), (1.0, 1.0)])
def test_the_word_weight_walk_doubles_or_halves_to_the_best(peak, expected):
    calls = []

    def score_of(w):
        calls.append(w)
        return -abs(np.log((w + 1e-9) / (peak + 1e-9)))

    best, tried = ease_module.walk_word_weights(score_of)
    assert best == expected and 0.0 in tried and 1.0 in tried
    assert len(calls) == len(set(calls))
    if peak == 0.0:  # the first weight loses to none: halved while that gains, never doubled
        assert calls[:3] == [0.0, 1.0, 0.5] and max(calls) == 1.0
    lo, hi = ease_module.WORD_WEIGHT_BOUNDS
    assert all(w == 0.0 or lo <= w <= hi for w in tried)


def test_the_word_weight_walk_stops_at_a_tie_and_keeps_the_first_tried():
    """A weight that scores the same as the one before it ends the walk (ties go to the
    first tried), the other way is not tried once the walk has moved."""
    scores = {0.0: 0.1, 1.0: 0.2, 2.0: 0.3, 4.0: 0.3, 8.0: 0.5}
    calls = []

    def score_of(w):
        calls.append(w)
        return scores.get(w, 0.0)

    best, tried = ease_module.walk_word_weights(score_of)
    assert calls == [0.0, 1.0, 2.0, 4.0] and best == 2.0


def topical(seed: int, words_follow_topics: bool, n_users: int = 160):
    """Readers who each read 5 papers of one of 8 topics (each paper read by a few), one held
    out; each paper's terms are its topic's 4 (or, when the words do not follow the topics,
    4 drawn at random from all 32)."""
    rng = np.random.default_rng(seed)
    n_topics, per_topic = 8, 15
    n_papers = n_topics * per_topic
    topic = np.repeat(np.arange(n_topics), per_topic)
    rows, cols = [], []
    for u in range(n_users):
        t = u % n_topics
        for j in rng.choice(np.nonzero(topic == t)[0], 5, replace=False):
            rows.append(u)
            cols.append(j)
    full = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_papers))
    held = full.copy().tolil()
    fit = full.copy().tolil()
    for u in range(n_users):
        j = full[u].indices[0]
        fit[u, j] = 0
        held[u] = 0
        held[u, j] = 1
    T = np.zeros((n_papers, 4 * n_topics), np.float32)
    for j in range(n_papers):
        terms = (4 * topic[j] + np.arange(4) if words_follow_topics
                 else rng.choice(4 * n_topics, 4, replace=False))
        T[j, terms] = rng.uniform(0.3, 0.6, 4)
    return sp.csr_matrix(fit), sp.csr_matrix(held), sp.csr_matrix(T)


@pytest.mark.parametrize("seed,n_users", [(0, 160), (1, 80), (2, 80)])
def test_the_words_weight_is_chosen_on_the_slice_where_they_tell_topics_apart(seed, n_users):
    """The papers' words enter EASE where they rank the held-out papers better (terms that
    follow the readers' topics), and stay out where they are noise (terms drawn at random);
    on the papers' side of the solve (160 readers, 120 papers) and the readers' (80)."""
    from recommender.model.tuning import validation_ndcg
    for follow in (True, False):
        C_fit, V_pos, T = topical(seed, follow, n_users)
        assert Gram(C_fit, 1000).by_readers == (n_users < 120)
        readers = np.arange(C_fit.shape[0])

        def ndcg(S):
            return validation_ndcg(S, C_fit, V_pos)

        model, trials = fit_on_validation(C_fit, V_pos, readers, 1000, 50, ndcg, text=T, words=None)
        by_weight = {t["words"]: t["ndcg"] for t in trials if "words" in t}
        plain = max(t["ndcg"] for t in trials if "words" not in t)
        if follow:
            assert model.words > 0 and by_weight[model.words] > plain + 0.05
        else:
            assert model.words == 0.0 and max(by_weight.values()) < plain
        # fixed: no walk; none: no words at all
        for w in (2.0, 1.0):  # a weight fixed at any value, 1 included, is that weight
            fixed, log = fit_on_validation(C_fit, V_pos, readers, 1000, 50, ndcg, text=T, words=w)
            assert fixed.words == w and not any("words" in t for t in log)
            assert ("word_rows" in fixed.params()) == Gram(C_fit, 1000).by_readers
        # the words' trials are logged at the λ chosen, four digits
        assert all(t["ease_lambda"] == model.lam for t in trials if "words" in t)
        assert all(t["ndcg"] == round(t["ndcg"], 4) for t in trials)
        none, _ = fit_on_validation(C_fit, V_pos, readers, 1000, 50, ndcg, text=T, words=0.0)
        assert none.words == 0.0 and "words" not in none.params()


@pytest.mark.parametrize("n_papers,n_users", [(80, 160), (240, 120)])
def test_the_hybrid_with_words_in_ease_keeps_them_in_its_manifest_its_refit_and_one_reader(n_papers, n_users):
    """A fit whose EASE takes the papers' words, on the papers' side of the solve (80
    papers, 160 readers) and the readers' (240 papers, 120 readers): the weight is the
    config's and the manifest's, the single-reader path equals the batch, the artifact
    round-trips to the same scores, and the nightly refit keeps the weight."""
    texts, titles, users, items, _ = synthetic(n_papers=n_papers, n_users=n_users)
    n_users = int(users.max()) + 1
    m = HybridModel.fit(texts, users, items, n_users=n_users, titles=titles,
                        config=replace(CONFIG, ease=True, ease_words=2.0))
    assert m.comps.ease.words == 2.0
    assert isinstance(m.comps.ease, ease_module.FactoredEase) == (n_users < n_papers)
    manifest = serves_one_reader_as_the_batch_and_loads(m)
    assert manifest["ease"]["words"] == manifest["config"]["ease_words"] == m.stats["validation"]["ease_words"] == 2.0
    assert m.refit(users, items, n_users=n_users).comps.ease.words == 2.0
    # searched: whatever the slice chose is what the model has
    searched = HybridModel.fit(texts, users, items, n_users=n_users, titles=titles, config=replace(CONFIG, ease=True))
    tried = [t for t in searched.stats["validation"]["ease_trials"] if "words" in t]
    assert tried and searched.config.ease_words == searched.comps.ease.words
    assert searched.comps.ease.words in {0.0} | {t["words"] for t in tried}
