"""Item-to-item collaborative graph: RP3beta (Paudel et al. 2017), kept sparse.

W[i, j] = (P_iu @ P_ui)[i, j]^... : the probability of a 3-step random walk item -> reader ->
item, with transition probabilities raised to `alpha`, divided by popularity(j) ** beta to
lift less popular neighbours, and pruned to the `top_k` strongest neighbours per item. A
reader's score for item j is `history_row @ W` -- cheap, and it complements the low-rank ALS
factors with sharp item-item co-occurrence (measured on CiteULike-a warm: RP3beta 0.268, ALS
0.283, blend > either).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recommender.core.memory import release_free_memory
from recommender.core.threads import WORKERS, in_threads

# the least work (multiply-adds) a block of the walk matrix is cut to for the worker threads
MIN_BLOCK_WORK = 1_000_000
# RP3beta's walk exponent and popularity penalty where the data has not chosen them
# (tuning.py searches around these): Paudel et al.'s region, and the best fixed pair on
# this project's data sets before the search existed
DEFAULT_ALPHA = 0.8
DEFAULT_BETA = 0.4


def top_k_per_row(M: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row; of equal ones, the earlier stored.

    One stable sort of a 64-bit key (row, then value descending: a non-negative float32's
    bit pattern orders like its value) rather than a lexsort of (row, -value), with the same
    result: 4x faster on the 42M-entry product of a 30,000-paper catalog (3.4 s against
    13.8 s), where this pruning was most of the graph's fit. Values must be non-negative
    (random-walk probabilities, cosines)."""
    M = sp.csr_matrix(M)
    M.sum_duplicates()
    counts = np.diff(M.indptr)
    if M.nnz == 0 or counts.max() <= k:
        return M
    rows = np.repeat(np.arange(M.shape[0], dtype=np.int64), counts)
    bits = np.asarray(M.data, np.float32).view(np.uint32).astype(np.int64)
    order = np.argsort((rows << 32) | (0xFFFFFFFF - bits), kind="stable")
    rank = np.arange(M.nnz) - np.repeat(M.indptr[:-1].astype(np.int64), counts)
    keep = np.sort(order[rank < k])
    return sp.csr_matrix((M.data[keep], M.indices[keep], np.r_[0, np.cumsum(np.minimum(counts, k))]),
                         shape=M.shape)


def grown(W: sp.csr_matrix, n_new: int) -> sp.csr_matrix:
    """An item x item matrix with `n_new` empty rows and columns for papers added since (they
    have no co-readers yet). Shared by the item graph and EASE."""
    return sp.csr_matrix((W.data, W.indices, np.r_[W.indptr, np.full(n_new, W.indptr[-1])]),
                         shape=(W.shape[0] + n_new, W.shape[1] + n_new))


def square_to_arrays(W: sp.csr_matrix, prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}data": W.data.astype(np.float32), f"{prefix}indices": W.indices.astype(np.int32),
            f"{prefix}indptr": W.indptr.astype(np.int64)}


def square_from_arrays(arrays, prefix: str) -> sp.csr_matrix:
    indptr = np.asarray(arrays[f"{prefix}indptr"], dtype=np.int64)
    n = len(indptr) - 1
    return sp.csr_matrix((np.asarray(arrays[f"{prefix}data"], np.float32),
                          np.asarray(arrays[f"{prefix}indices"], np.int32), indptr), shape=(n, n))


@dataclass
class ItemGraph:
    weights: sp.csr_matrix  # (n_items, n_items): row = from item, col = to item
    alpha: float = DEFAULT_ALPHA
    beta: float = DEFAULT_BETA
    top_k: int = 200

    @classmethod
    def fit(cls, C: sp.csr_matrix, alpha: float | None = DEFAULT_ALPHA, beta: float | None = DEFAULT_BETA,
            top_k: int = 200, block_work: int = 10_000_000) -> "ItemGraph":
        """`alpha`, `beta`: None takes the default (0 is a setting: beta 0 is the walk with no
        popularity penalty). The walk matrix is computed a block of item rows at a time and
        each block pruned to its top_k before more are taken: the unpruned product of a
        100,000-paper, 5M-event log has hundreds of millions of entries (several GB), the
        pruned one n_items x top_k. Blocks hold about `block_work` multiply-adds, an upper
        bound on their entries."""
        alpha = DEFAULT_ALPHA if alpha is None else alpha
        beta = DEFAULT_BETA if beta is None else beta
        R = sp.csr_matrix(C, dtype=np.float32)
        R.data = np.ones_like(R.data)
        n_items = R.shape[1]
        if R.nnz == 0:  # no reading yet (a catalog before its first reader event): no walk to take
            return cls(sp.csr_matrix((n_items, n_items), dtype=np.float32), alpha, beta, top_k)
        pop = np.asarray(R.sum(axis=0)).ravel()
        Pui = normalize(R, norm="l1")
        Piu = normalize(R.T.tocsr(), norm="l1")
        if alpha != 1.0:
            Pui.data **= alpha
            Piu.data **= alpha
        scale = (1.0 / np.maximum(pop, 1.0) ** beta).astype(np.float32)
        # each item row's product work: the summed history lengths of its readers
        work = np.asarray(R.T.tocsr() @ np.diff(R.indptr).astype(np.float64)).ravel()
        # the blocks run on the worker threads, `block_work` in flight at most, and at least
        # two a worker where there is work enough (CiteULike-a's 11M multiply-adds were one
        # block of 10M and one of 1M, leaving a core idle: 0.70 -> 0.39-0.46 s a fit on 2
        # cores); a row's product and pruning do not depend on its block, so neither does W
        step = min(block_work / WORKERS, max(MIN_BLOCK_WORK, work.sum() / (2 * WORKERS)))
        cuts = np.searchsorted(np.cumsum(work), np.arange(step, work.sum() + step, step))
        bounds = np.unique(np.r_[0, np.minimum(cuts + 1, n_items), n_items])

        def block(s: int, e: int) -> sp.csr_matrix:
            Wb = sp.csr_matrix(Piu[s:e] @ Pui, dtype=np.float32)
            Wb.data *= scale[Wb.indices]  # divide by popularity(j) ** beta
            Wb.data[Wb.indices == np.repeat(np.arange(s, e), np.diff(Wb.indptr))] = 0.0  # no self-loops
            Wb.eliminate_zeros()
            return top_k_per_row(Wb, top_k)

        blocks = in_threads(lambda se: block(*se), zip(bounds[:-1], bounds[1:]))
        W = sp.vstack(blocks, format="csr")
        del blocks
        release_free_memory()  # the workers' arenas keep their blocks' temporaries otherwise
        # Row-normalise so the weight a reader's history spreads is comparable across items:
        # in place (sklearn's own in-place function either way, so the same bits), since a
        # copy of the pruned graph is ~160 MB at 100,000 papers and the fit's peak is here
        W = normalize(W, norm="l1", copy=False).astype(np.float32, copy=False)
        return cls(W, alpha, beta, top_k)

    @property
    def n_items(self) -> int:
        return int(self.weights.shape[0])

    def scores(self, rows: sp.csr_matrix) -> np.ndarray:
        """(B x n_items) history rows -> dense (B x n_items) scores."""
        return np.asarray((sp.csr_matrix(rows, dtype=np.float32) @ self.weights).toarray(), dtype=np.float32)

    def add_items(self, n_new: int) -> None:
        """New papers have no co-occurrence yet: grow the graph with empty rows/columns."""
        self.weights = grown(self.weights, n_new)

    def to_arrays(self, prefix: str = "graph_") -> dict[str, np.ndarray]:
        return square_to_arrays(self.weights, prefix)

    @classmethod
    def from_arrays(cls, arrays, params: dict, prefix: str = "graph_") -> "ItemGraph":
        W = square_from_arrays(arrays, prefix)
        return cls(W, float(params.get("alpha", 0.8)), float(params.get("beta", 0.4)), int(params.get("top_k", 200)))
