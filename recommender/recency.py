"""Recency within a reader's own history: what a reader did last counts more when their
next papers are chosen.

This weighs the *query* -- the history row a reader is scored from -- not the data the
models learn from. A paper's weight in the row is

    floor + (1 - floor) * 0.5 ** (position / half_life_events)

where `position` is how many of the reader's papers they acted on more recently (0 for the
newest). Measured on MovieLens-small (ALS fit on undecayed data, 248 factors): weighing the
query this way (half-life 5 papers, floor 0.1) lifts each reader's next 20% from NDCG@20
0.1153 to 0.1247, while decaying the training data the same way drops it to 0.0802. It is
counted in papers, not days, so it needs no time scale: a reader who saves forty papers in
one evening and one who saves a paper a month are treated alike.

Whether and how much recency a data set wants is chosen in `tuning.choose` on the
validation slice; pairs without a known time, and data without times, get weight 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Recency:
    half_life_events: float = 0.0  # 0: no recency weighting
    floor: float = 1.0

    @property
    def active(self) -> bool:
        return self.half_life_events > 0 and self.floor < 1.0

    def describe(self) -> str:
        if not self.active:
            return "none"
        return f"half-life {self.half_life_events:g} papers, floor {self.floor:g}"

    def to_dict(self) -> dict:
        return {"half_life_events": self.half_life_events, "floor": self.floor}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Recency":
        d = d or {}
        return cls(float(d.get("half_life_events") or 0.0), float(d.get("floor", 1.0)))

    def weights(self, position: np.ndarray) -> np.ndarray:
        """Weight per position (0 = newest); NaN positions (no known time) weigh 1."""
        position = np.asarray(position, np.float64)
        if not self.active:
            return np.ones(position.shape, np.float32)
        w = self.floor + (1.0 - self.floor) * np.power(0.5, np.nan_to_num(position) / self.half_life_events)
        return np.where(np.isnan(position), 1.0, w).astype(np.float32)


NONE = Recency()


def pair_keys(M: sp.csr_matrix) -> np.ndarray:
    """row * n_cols + col of every stored entry, in CSR order."""
    rows = np.repeat(np.arange(M.shape[0], dtype=np.int64), np.diff(M.indptr))
    return rows * M.shape[1] + M.indices.astype(np.int64)


def latest_pair_times(users, items, ts, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted pair keys, newest known time of each pair: NaN when none is known)."""
    keys = np.asarray(users, np.int64) * n_items + np.asarray(items, np.int64)
    ts = np.asarray(ts, np.float64) if ts is not None else np.full(len(keys), np.nan)
    t = np.where(np.isfinite(ts), ts, -np.inf)
    order = np.lexsort((t, keys))
    k, t = keys[order], t[order]
    last = np.r_[k[1:] != k[:-1], True] if len(k) else np.zeros(0, bool)
    k, t = k[last], t[last]
    return k, np.where(np.isfinite(t), t, np.nan)


def entry_times(M: sp.csr_matrix, users, items, ts) -> np.ndarray:
    """The newest event time of each stored entry of M (CSR order), NaN when unknown."""
    M = sp.csr_matrix(M)
    if ts is None or M.nnz == 0:
        return np.full(M.nnz, np.nan)
    keys, last = latest_pair_times(users, items, ts, M.shape[1])
    if len(keys) == 0:
        return np.full(M.nnz, np.nan)
    want = pair_keys(M)
    where = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
    return np.where(keys[where] == want, last[where], np.nan)


def order_matrix(M: sp.csr_matrix, times: np.ndarray) -> sp.csr_matrix:
    """A matrix with M's entries holding 1 + each entry's position from its row's newest
    (NaN for an entry with no time): a float32 that survives `ValidationSlice.split`, from
    which positions among the entries left after a split are recomputed (`weigh`)."""
    M = sp.csr_matrix(M)
    pos = positions(M.indptr, np.asarray(times, np.float64))
    return sp.csr_matrix((np.where(np.isnan(pos), np.nan, pos + 1.0).astype(np.float32), M.indices.copy(),
                          M.indptr.copy()), shape=M.shape)


def positions(indptr: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Per entry, how many entries of its row have a larger `key` (newer) -- ties in
    storage order; NaN keys get NaN."""
    n = len(key)
    counts = np.diff(indptr)
    rows = np.repeat(np.arange(len(counts)), counts)
    known = ~np.isnan(key)
    k = np.where(known, key, -np.inf)
    order = np.lexsort((np.arange(n), -k, rows))
    rank = np.empty(n, np.float64)
    rank[order] = np.arange(n) - np.repeat(np.asarray(indptr[:-1], np.int64), counts)
    return np.where(known, rank, np.nan)


def weigh(M: sp.csr_matrix, order: sp.csr_matrix | None, recency: Recency) -> sp.csr_matrix:
    """M's rows as queries: each entry times its recency weight. `order` holds the entries'
    order keys (`order_matrix`, same stored entries as M; smaller = newer)."""
    M = sp.csr_matrix(M, dtype=np.float32)
    if not recency.active or order is None or M.nnz == 0:
        return M
    order = sp.csr_matrix(order)
    M.sort_indices()
    order.sort_indices()
    if order.nnz != M.nnz or not np.array_equal(order.indptr, M.indptr):
        raise ValueError("the order matrix does not hold the same entries as the rows it orders")
    pos = positions(M.indptr, -np.asarray(order.data, np.float64))
    out = M.copy()
    out.data = (out.data * recency.weights(pos)).astype(np.float32)
    return out


def query_rows(M: sp.csr_matrix, users, items, ts, recency: Recency) -> sp.csr_matrix:
    """M (a confidence matrix of these events) as query rows weighed by recency."""
    if not recency.active:
        return sp.csr_matrix(M, dtype=np.float32)
    M = sp.csr_matrix(M, dtype=np.float32)
    M.sort_indices()
    return weigh(M, order_matrix(M, entry_times(M, users, items, ts)), recency)
