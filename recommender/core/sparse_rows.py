"""Products of a CSR matrix with a few rows, shaped for the single-reader path.

- `gather_rows`: a weighted sum of a few rows of a CSR matrix, without building a sparse
  row. The single-reader path sums the rows of a reader's papers (TF-IDF rows, the item
  graph's and EASE's weights) for one list; scipy's one-row product spends more time
  building and checking the row than multiplying.
- `times_rows`: M times each of a few dense rows. scipy's product with a dense matrix
  (`csr_matvecs`) runs an inner loop over the matrix's columns for every stored entry, which
  costs ~3x its one-vector product (`csr_matvec`) when there are one or two of them."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def gather_rows(M: sp.csr_matrix, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum_k weights[k] * M[rows[k]] as a dense float32 vector, from M's CSR arrays.

    Accumulated in float32 in the order of scipy's CSR product (row by row, each row in
    stored order), so it equals `csr_row @ M` to the bit."""
    starts = M.indptr[rows]
    lens = M.indptr[rows + 1] - starts
    out = np.zeros(M.shape[1], np.float32)
    total = int(lens.sum())
    if total == 0:
        return out
    # positions of every stored entry of the chosen rows, without a Python loop
    pos = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(total)
    vals = M.data[pos] * np.repeat(np.asarray(weights, np.float32), lens)
    np.add.at(out, M.indices[pos], vals)
    return out


FEW_ROWS = 16  # up to this many rows, one csr_matvec a row beats scipy's multi-vector product


def times_rows(M: sp.csr_matrix, S: np.ndarray) -> np.ndarray:
    """(M @ S.T).T as a C-contiguous float32 (B, M.shape[0]) array, for dense rows S (B, M.shape[1]).

    Up to FEW_ROWS rows, one `M @ row` each: on CiteULike-a's cold-start neighbours (231,730
    entries) two rows took 0.55 ms this way against 1.5 ms as one product, while for 500 rows
    the one product is faster (133 against 240 ms). Both accumulate each output in float32 in
    M's stored order, so the two ways give the same bits (tests/test_sparse_rows.py), and the
    single-reader path still equals the batch path."""
    S = np.asarray(S, np.float32)
    if S.shape[0] <= FEW_ROWS:
        out = np.empty((S.shape[0], M.shape[0]), np.float32)
        for i in range(S.shape[0]):
            out[i] = M @ S[i]
        return out
    return np.ascontiguousarray(np.asarray(M @ S.T, np.float32).T)
