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
    S = np.array(scores, dtype=scores.dtype if scores.dtype in (np.float32, np.float64) else np.float64, copy=True)
    single = S.ndim == 1
    if single:
        S = S[None, :]
    B, n = S.shape
    if candidates is not None:
        mask = np.ones(n, bool)
        mask[np.asarray(candidates, np.int64)] = False
        S[:, mask] = -np.inf
    if excluded is not None:
        if sp.issparse(excluded):
            ex = sp.csr_matrix(excluded)
            S[np.repeat(np.arange(ex.shape[0]), np.diff(ex.indptr)), ex.indices] = -np.inf
        else:
            ex = np.asarray(excluded, np.int64)
            if len(ex):
                S[:, ex] = -np.inf
    allowed = np.isfinite(S).sum(axis=1)
    kk = int(min(k, n))
    if kk <= 0:
        return np.zeros(0 if single else (B, 0), np.int64)
    # S is our own copy: negated in place, not into a second array (the validation search
    # ranks 2,000 readers x the catalog many times; the copy was a third of this function)
    np.negative(S, out=S)
    top = _select(S, kk)
    if single:
        return top[0, :int(min(kk, allowed[0]))]
    if (allowed < kk).any():
        top = np.where(np.arange(kk)[None, :] < allowed[:, None], top, -1)
    return top


# A batch this large (readers x papers) is cut into row blocks ranked on several threads:
# numpy's argpartition releases the GIL and ranks each row on its own, so the indices are
# those of one call (the tuning search ranks 2,000 readers x the catalog dozens of times in
# a fit, the blend's ascent 2,000 x ~800 a thousand times: 6.5 -> 4.7 ms a call on 2 cores).
PARALLEL_CELLS = 500_000


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
    return _select(N, int(min(kk, N.shape[1])))


def _select(S: np.ndarray, kk: int) -> np.ndarray:
    if S.size < PARALLEL_CELLS or WORKERS < 2 or S.shape[0] < 2:
        return _select_rows(S, kk)
    bounds = np.linspace(0, S.shape[0], WORKERS + 1).astype(int)
    blocks = [S[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    return np.concatenate(in_threads(lambda block: _select_rows(block, kk), blocks), axis=0)


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
