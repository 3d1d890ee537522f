"""`times_rows`: a CSR matrix times a few dense rows, one csr_matvec a row up to FEW_ROWS rows
and scipy's multi-vector product above. `times_dense`: many CSR rows times a wide dense matrix,
a block of its columns at a time. The single-reader path (one or two rows) must give the batch
path's bits (many rows), so the ways must agree exactly, not to a tolerance."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st

from recommender.core import sparse_rows
from recommender.core.sparse_rows import FEW_ROWS, times_dense, times_rows


def matrix(seed: int, n_rows: int, n_cols: int, density: float) -> sp.csr_matrix:
    M = sp.random(n_rows, n_cols, density=density, format="csr", dtype=np.float32, random_state=seed)
    M.data = (M.data * 10 - 5).astype(np.float32)  # signed, so sums cancel and round
    return M


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n_rows=st.integers(1, 60), n_cols=st.integers(1, 80),
       density=st.floats(0.0, 0.6), batch=st.integers(1, 2 * FEW_ROWS + 3))
def test_times_rows_gives_the_multi_vector_products_bits_for_any_number_of_rows(seed, n_rows, n_cols, density, batch):
    rng = np.random.default_rng(seed)
    M = matrix(seed, n_rows, n_cols, density)
    S = rng.standard_normal((batch, n_cols)).astype(np.float32) * 100
    out = times_rows(M, S)
    assert out.shape == (batch, n_rows) and out.dtype == np.float32 and out.flags.c_contiguous
    # scipy's one product over all rows: what the batch path computed before
    np.testing.assert_array_equal(out, np.asarray(M @ S.T, np.float32).T)
    # each row alone: what the single-reader path computes
    for i in range(batch):
        np.testing.assert_array_equal(out[i], times_rows(M, S[i:i + 1])[0])
    # and it is the product: float32 rounding bounded by the sum of the terms' magnitudes
    exact = S.astype(np.float64) @ M.toarray().T.astype(np.float64)
    scale = np.abs(S).astype(np.float64) @ np.abs(M.toarray()).T.astype(np.float64)
    assert np.all(np.abs(out - exact) <= 1e-5 * scale + 1e-30)


def test_times_rows_returns_a_fresh_array_the_caller_may_change():
    M = matrix(0, 5, 7, 0.5)
    S = np.ones((2, 7), np.float32)
    a = times_rows(M, S)
    a += 1
    np.testing.assert_array_equal(times_rows(M, S), a - 1)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n_rows=st.integers(1, 90), inner=st.integers(1, 70),
       n_cols=st.integers(1, 700), density=st.floats(0.0, 0.7), shuffled=st.booleans())
def test_times_dense_gives_scipys_whole_product_bits(seed, n_rows, inner, n_cols, density, shuffled):
    """Blocked or not (at least BLOCKED_ROWS rows and more than DENSE_COLUMNS columns), each
    output sums the same terms in A's stored order: scipy's whole product to the bit, for
    rows whose entries are stored out of column order too (a sparse product's rows are)."""
    rng = np.random.default_rng(seed)
    A = matrix(seed, n_rows, inner, density)
    if shuffled:  # the same matrix, each row's entries stored in another order
        for i in range(n_rows):
            lo, hi = A.indptr[i], A.indptr[i + 1]
            order = lo + rng.permutation(hi - lo)
            A.indices[lo:hi], A.data[lo:hi] = A.indices[order], A.data[order]
        A.has_sorted_indices = False
    D = (rng.standard_normal((inner, n_cols)) * 100).astype(np.float32)
    out = times_dense(A, D)
    whole = np.asarray(A @ D)
    assert out.shape == (n_rows, n_cols) and out.dtype == np.float32
    np.testing.assert_array_equal(out, whole)
    # one row alone (the single-reader path) gives that row of the batch
    i = int(rng.integers(n_rows))
    np.testing.assert_array_equal(times_dense(A[i], D)[0], out[i])
    exact = A.toarray().astype(np.float64) @ D.astype(np.float64)
    scale = np.abs(A.toarray()).astype(np.float64) @ np.abs(D).astype(np.float64)
    assert np.all(np.abs(out - exact) <= 1e-5 * scale + 1e-30)


def test_times_dense_cuts_a_wide_matrix_into_column_blocks(monkeypatch):
    """A batch against a wide matrix takes the blocked way: with blocks of 4 columns, 40 rows
    times 30 columns are 8 blocks starting every 4 columns, and the same bits as the whole."""
    A = matrix(1, 40, 30, 0.3)
    D = (np.random.default_rng(1).standard_normal((30, 30)) * 100).astype(np.float32)
    starts = []
    real = sparse_rows.in_threads

    def recording(fn, items):
        items = list(items)
        starts.extend(items)
        return real(fn, items)

    monkeypatch.setattr(sparse_rows, "DENSE_COLUMNS", 4)
    monkeypatch.setattr(sparse_rows, "in_threads", recording)
    out = times_dense(A, D)
    assert starts == list(range(0, 30, 4))
    np.testing.assert_array_equal(out, np.asarray(A @ D))
    starts.clear()
    times_dense(A[:sparse_rows.BLOCKED_ROWS - 1], D)  # too few rows to pay for the copies
    assert starts == []
