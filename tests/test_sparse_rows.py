"""`times_rows`: a CSR matrix times a few dense rows, one csr_matvec a row up to FEW_ROWS rows
and scipy's multi-vector product above. The single-reader path (one or two rows) must give
the batch path's bits (many rows), so the two ways must agree exactly, not to a tolerance."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st

from recommender.core.sparse_rows import FEW_ROWS, times_rows


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
