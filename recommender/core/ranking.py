"""Ranking primitives every part uses: a ranked list, the one top-k, and NDCG.

`top_k` is the only place a list is cut from scores (serving, the model's single-reader and
batch paths, offline evaluation, the blend's validation search); `ndcg_from_hits` the only
definition of NDCG (offline metrics, the tuning proxies, the blend's coordinate ascent).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.core.threads import WORKERS, in_threads


@dataclass(frozen=True, eq=False)
class Ranked:
    """One ranked list: catalog rows, scores and a reason per row. Compared and hashed by
    identity: a kept list is the same object on every request that reuses it."""

    rows: np.ndarray
    scores: np.ndarray
    reasons: list[str]


EMPTY_ROWS = np.zeros(0, dtype=np.int64)


def top_k(scores: np.ndarray, k: int, excluded=None, candidates=None) -> np.ndarray:
    """Indices of the k best scores, best first.

    Ties keep the order numpy's argpartition leaves them in: deterministic for the same
    scores, and the order the model's fit was tuned with (the blend's validation search
    ranks pools full of ties; ordering them by index instead moved its NDCG@20 by 0.001).

    `scores` is one row (n,) or a batch (B, n). `excluded`: indices never returned (an
    array for one row; for a batch a sparse B x n matrix of its stored entries); a score
    of -inf is never returned either. `candidates`: only these indices may be returned.
    One row gives at most k indices (fewer when fewer are allowed); a batch gives a
    (B, min(k, n)) array padded with -1 where a row allows fewer."""
    scores = np.asarray(scores)
    # float32 scores stay float32 (half the memory to rank; the order and ties are the same)
    dtype = scores.dtype if scores.dtype in (np.float32, np.float64) else np.float64
    single = scores.ndim == 1
    rows = scores[None, :] if single else scores
    B, n = rows.shape
    kk = int(min(k, n))
    if kk <= 0 or B == 0:
        return np.zeros(0 if single else (B, max(kk, 0)), np.int64)
    masked = None
    if candidates is not None:
        masked = np.ones(n, bool)
        masked[np.asarray(candidates, np.int64)] = False
    ex = None
    if excluded is not None:
        ex = sp.csr_matrix(excluded) if sp.issparse(excluded) else np.asarray(excluded, np.int64)

    def rank(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        # a copy of the block's rows, negated in place, not a second array (the validation
        # search ranks 2,000 readers x the catalog many times)
        S = np.array(rows[a:b], dtype=dtype, copy=True)
        if masked is not None:
            S[:, masked] = -np.inf
        if sp.issparse(ex):
            part = ex[a:b]
            S[np.repeat(np.arange(b - a), np.diff(part.indptr)), part.indices] = -np.inf
        elif ex is not None and len(ex):
            S[:, ex] = -np.inf
        allowed = np.isfinite(S).sum(axis=1)
        np.negative(S, out=S)
        return _select_rows(S, kk), allowed

    parts = _by_row_blocks(rank, B, n)
    if len(parts) == 1:  # one reader's list: no copies
        top, allowed = parts[0]
    else:
        top = np.concatenate([t for t, _ in parts], axis=0)
        allowed = np.concatenate([c for _, c in parts])
    if single:
        return top[0, :int(min(kk, allowed[0]))]
    if (allowed < kk).any():
        top = np.where(np.arange(kk)[None, :] < allowed[:, None], top, -1)
    return top


# A batch this large (readers x papers) is ranked on several threads: numpy's argpartition
# releases the GIL and ranks each row on its own, so the indices are those of one call (the
# tuning search ranks 2,000 readers x the catalog dozens of times in a fit, the blend's
# ascent 2,000 x ~800 a thousand times: 6.5 -> 4.7 ms a call on 2 cores).
PARALLEL_CELLS = 500_000
# Rows are ranked a block of about this many cells at a time. argpartition returns an int64
# index for every cell it is given: on a whole 2,000 x 16,980 batch that is 272 MB of fresh
# memory the kernel faults in on each call, and ranking the batch took 0.11-2.0 s on one
# thread where 64-row blocks took 0.07 s, the same indices (each row is ranked on its own).
ROW_BLOCK_CELLS = 1 << 20


def argpartition_rows(key, n_rows: int, n_cols: int, kth: int, keep: int) -> np.ndarray:
    """`np.argpartition(key(0, n_rows), kth, axis=1)[:, :keep]`, computed a block of rows
    (a..b, `key(a, b)`) of ~ROW_BLOCK_CELLS cells at a time: the same indices, without a
    whole batch's index array (the blend's candidate pools, the content neighbours of the
    cold-start map)."""
    top = np.empty((n_rows, keep), np.int64)
    step = max(1, ROW_BLOCK_CELLS // max(1, n_cols))
    for a in range(0, n_rows, step):
        b = min(a + step, n_rows)
        top[a:b] = np.argpartition(key(a, b), kth, axis=1)[:, :keep]
    return top


def _by_row_blocks(fn, n_rows: int, n_cols: int) -> list:
    """[fn(a, b)] over consecutive row blocks of ~ROW_BLOCK_CELLS cells, in order; on the
    worker threads when the batch has at least PARALLEL_CELLS cells."""
    step = max(1, min(ROW_BLOCK_CELLS // max(1, n_cols), -(-n_rows // WORKERS)))  # every worker busy
    blocks = [(a, min(a + step, n_rows)) for a in range(0, n_rows, step)]
    if n_rows * n_cols < PARALLEL_CELLS or WORKERS < 2 or len(blocks) < 2:
        return [fn(a, b) for a, b in blocks]
    return in_threads(lambda ab: fn(*ab), blocks)


def _select_rows(S: np.ndarray, kk: int) -> np.ndarray:
    """The kk smallest of each row of S, smallest first (ties as argpartition leaves them)."""
    n = S.shape[1]
    top = np.argpartition(S, kk - 1, axis=1)[:, :kk] if kk < n else np.tile(np.arange(n), (S.shape[0], 1))
    order = np.argsort(np.take_along_axis(S, top, 1), axis=1, kind="stable")
    return np.take_along_axis(top, order, 1)


def smallest_k(N: np.ndarray, kk: int) -> np.ndarray:
    """Column indices of the kk smallest entries of each row of N (B, n), smallest first, in
    place of `top_k` on -N for a caller that already holds its own negated scores (+inf
    where a column is not allowed; such columns come last and are the caller's to mask):
    the same indices, without `top_k`'s copy, exclusions and padding."""
    kk = int(min(kk, N.shape[1]))
    if N.shape[0] == 0:
        return np.zeros((0, kk), np.int64)
    return np.concatenate(_by_row_blocks(lambda a, b: _select_rows(N[a:b], kk), *N.shape), axis=0)


def discounts(k: int) -> np.ndarray:
    """1 / log2(rank + 1) for ranks 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def ndcg_from_hits(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per-row NDCG@k with binary gains: `hits` (B, >=k) says which ranks hit, `n_relevant`
    how many relevant items each row has; the ideal DCG counts min(k, n_relevant) hits. A
    row with nothing relevant scores 0."""
    hits = np.asarray(hits, dtype=bool)[:, :k]
    if hits.shape[1] < k:
        hits = np.pad(hits, ((0, 0), (0, k - hits.shape[1])))
    n_relevant = np.asarray(n_relevant, dtype=np.int64)
    d = discounts(k)
    idcg = np.r_[0.0, np.cumsum(d)][np.minimum(n_relevant, k)]
    return np.where(n_relevant > 0, (hits * d).sum(axis=1) / np.where(idcg > 0, idcg, 1.0), 0.0)


def pool_ndcg(S: np.ndarray, valid: np.ndarray, label: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k of each row of S (B, n) over its `valid` slots, `label` marking the relevant
    ones (a validation reader's candidate pool; `n_relevant` counts their relevant papers
    in or out of it)."""
    # ranks as top_k(where(valid, S, -inf), k) does, without its copy and padding: a slot
    # that is not valid is never labelled, so it cannot count as a hit (the blend's ascent
    # ranks pools thousands of times a fit)
    top = smallest_k(np.where(valid, -S, np.inf), k)
    hits = np.take_along_axis(label & valid, top, 1)
    return ndcg_from_hits(hits, n_relevant, k)
