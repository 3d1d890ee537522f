"""A weighted sum of a few rows of a CSR matrix, without building a sparse row.

The single-reader path sums the rows of a reader's papers (TF-IDF rows, the item graph's
and EASE's weights) for one list; scipy's one-row product spends more time building and
checking the row than multiplying."""
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
