"""The blend's line search, ranked only over the pool slots that can reach a top k.

The blend's coordinate ascent (`blend.coordinate_ascent`) tries a handful of steps d on one
weight at a time: every trial ranks S + d * col over each validation reader's whole pool
(~700 slots on CiteULike-a) for NDCG@20, ~6,000 times in a first fit. Most slots cannot
get into any of those top 20s: with |d| <= reach a slot scores at least S - reach |col| and
at most S + reach |col| in every trial, so if k slots' lowest scores beat a slot's highest,
it is outside the top k in all of them. `LineSearch` drops those once per weight and ranks
each trial over what is left (~12% of CiteULike-a's pool): a slot above a top-k paper is in
the top k itself, so every held-out paper's rank is what the whole pool gives.

Exact ties are the one thing a narrower row could order differently: `top_k` leaves ties
in the order numpy's partition does, which depends on the whole row. So a reader whose
held-out paper ties another slot inside the top k (rare with continuous scores; common
among MovieLens's identical genre lists) is ranked on their whole row, as before. The
ascent therefore ends on the same weights to the bit (tested): CiteULike-a warm's seven
restarts take ~8 s instead of 23 s on one thread (5.8 s two at a time).
"""
from __future__ import annotations

import numpy as np

from recommender.core.ranking import ndcg_from_hits, pool_ndcg


class LineSearch:
    """NDCG@k of each step d along one weight's column for one task's readers.

    S: (U, P) the current scores (any value where `valid` is False); col: (U, P) the
    column the weight multiplies; label / valid: (U, P) held-out and rankable slots;
    n_rel: (U,) each reader's held-out count; reach: the largest |d| that will be asked."""

    def __init__(self, S: np.ndarray, col: np.ndarray, valid: np.ndarray, label: np.ndarray,
                 n_rel: np.ndarray, reach: float, k: int):
        self.S, self.col, self.valid, self.label, self.n_rel, self.k = S, col, valid, label, n_rel, k
        spread = np.abs(col)
        spread *= np.float32(reach)
        low = S - spread
        np.copyto(low, -np.inf, where=~valid)
        U, n = S.shape
        kk = min(k, n)
        # the kth best lowest score: k slots score at least this in every trial
        bar = np.partition(low, n - kk, axis=1)[:, n - kk]
        high = spread
        high += S
        keep = high >= bar[:, None]
        keep &= valid
        # packed to the left, by flat indices (2-d fancy indexing took twice as long)
        counts = np.count_nonzero(keep, axis=1)
        flat = np.flatnonzero(keep)
        width = int(counts.max()) if len(flat) else 0
        rows = np.repeat(np.arange(U), counts)
        dest = np.arange(len(flat)) + np.repeat(np.arange(U) * width - (np.cumsum(counts) - counts), counts)
        # an empty slot scores -inf in every trial (its column is 0)
        self.S_k = np.full(U * width, -np.inf, S.dtype)
        self.col_k = np.zeros(U * width, col.dtype)
        self.S_k[dest] = S.ravel()[flat]
        self.col_k[dest] = col.ravel()[flat]
        self.S_k, self.col_k = self.S_k.reshape(U, width), self.col_k.reshape(U, width)
        held = label.ravel()[flat]
        # the kept held-out slots: (reader, packed slot)
        self.pos_rows = rows[held]
        self.pos_slots = dest[held] - self.pos_rows * width

    def ndcg(self, d: float) -> np.ndarray:
        """Each reader's NDCG@k ranked by S + d * col, as `ranking.pool_ndcg` gives it."""
        d = np.float32(d)
        S_k = self.S_k + d * self.col_k
        U, k = S_k.shape[0], self.k
        hits = np.zeros((U, k), bool)
        if len(self.pos_rows):
            mine = S_k[self.pos_rows, self.pos_slots]
            above = S_k[self.pos_rows]
            rank = (above > mine[:, None]).sum(axis=1)
            tied = (above == mine[:, None]).sum(axis=1) > 1
            top = rank < k
            hits[self.pos_rows[top], rank[top]] = True
            uncertain = np.unique(self.pos_rows[top & tied])
        else:
            uncertain = np.zeros(0, np.int64)
        out = ndcg_from_hits(hits, self.n_rel, k)
        if len(uncertain):
            whole = self.S[uncertain] + d * self.col[uncertain]
            out[uncertain] = pool_ndcg(whole, self.valid[uncertain], self.label[uncertain],
                                       self.n_rel[uncertain], k)
        return out
