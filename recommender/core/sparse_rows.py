"""Products of a CSR matrix with a few rows, shaped for the single-reader path.

- `gather_rows`: a weighted sum of a few rows of a CSR matrix, without building a sparse
  row. The single-reader path sums the rows of a reader's papers (TF-IDF rows, the item
  graph's and EASE's weights) for one list; scipy's one-row product spends more time
  building and checking the row than multiplying.
- `times_rows`: M times each of a few dense rows. scipy's product with a dense matrix
  (`csr_matvecs`) runs an inner loop over the matrix's columns for every stored entry, which
  costs ~3x its one-vector product (`csr_matvec`) when there are one or two of them.
- `times_dense`: many rows of a CSR matrix times a wide dense matrix (EASE's K), a block of
  the dense matrix's columns at a time, so that block stays in cache."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommender.core.threads import in_threads


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


# `times_dense` takes this many of the dense matrix's columns at a time: 1 KB of each of its
# rows, 8 MB of EASE's 8,000-row K, which stays in cache while every stored entry reads it.
DENSE_COLUMNS = 256
# Below this many rows the whole product is as fast: each block's copy is a pass over the
# dense matrix, which only pays back when many entries read the block.
BLOCKED_ROWS = 32


def times_dense(A: sp.csr_matrix, D: np.ndarray) -> np.ndarray:
    """A @ D for a CSR matrix A and a dense D with many columns, a block of DENSE_COLUMNS of
    D's columns at a time (each copied contiguous), the blocks on the worker threads.

    Why: scipy's product (`csr_matvecs`) adds, for every stored entry of A, that entry times a
    whole row of D. Against EASE's K (8,000 x 8,000 float32) a row is 32 KB and a batch of
    250 CiteULike-a readers holds ~850 co-readers and words each: 6.8 GB read from memory,
    0.99 s on one thread, against 0.38 s with the rows read a 1 KB block at a time from
    cache (copies included). Each output entry still sums the same terms in the same order,
    A's stored order, so the result equals scipy's whole product to the bit
    (tests/test_sparse_rows.py), and one reader's row, which takes the whole product, still
    equals a batch's."""
    A = sp.csr_matrix(A)
    n = D.shape[1]
    if A.shape[0] < BLOCKED_ROWS or n <= DENSE_COLUMNS:
        return np.asarray(A @ D)
    out = np.empty((A.shape[0], n), np.result_type(A.dtype, D.dtype))

    def block(a: int) -> None:
        out[:, a:a + DENSE_COLUMNS] = A @ np.ascontiguousarray(D[:, a:a + DENSE_COLUMNS])

    in_threads(block, range(0, n, DENSE_COLUMNS))
    return out
