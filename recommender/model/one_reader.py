"""Scoring one reader: the components and blend of `HybridModel.score_rows`, without the
sparse-matrix machinery.

Why a separate path: a live request scores one reader, and for one row scipy.sparse spent
more time building and checking small matrices (about 35 a request) than multiplying:
3.6 ms a list over the 787 demo papers, ~11 ms over CiteULike-a's 16,980. Here a reader is
a few (paper, confidence) pairs and every component is a gather over those papers' rows
plus one mat-vec over the catalog. What does not depend on the reader (standardised
popularity, the tie-break, papers' topic terms) is computed once per model state; the
model drops this object when a paper is added.

Scores equal the batch path's to the bit (each gather and product keeps the batch's
summation order), which tests/test_one_reader.py checks along with the order of the lists,
with EASE in both of its forms.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.core.sparse_rows import gather_rows
from recommender.core.threads import Alongside, RowBlocks
from recommender.model.blend import history_scale, zscore_rows


@dataclass(frozen=True)
class OneHistory:
    """One reader's confidence row in coordinate form (what `history_row` builds as CSR)."""

    items: np.ndarray  # paper indices with positive confidence, ascending
    conf: np.ndarray  # float32 confidences
    seen: np.ndarray  # paper indices to exclude
    # the reader's latest papers, ascending (`reading_order.latest_of_history`); None untimed
    latest: np.ndarray | None = None
    # the windows of their reading, each ascending (`reading_order.windows_of_history`)
    windows: tuple[np.ndarray, ...] | None = None

    @classmethod
    def from_row(cls, row: sp.csr_matrix, seen: np.ndarray, latest: np.ndarray | None = None,
                 windows: list[np.ndarray] | None = None) -> "OneHistory":
        return cls(np.asarray(row.indices, np.int64), np.asarray(row.data, np.float32),
                   np.asarray(seen, np.int64), None if latest is None else np.asarray(latest, np.int64),
                   None if not windows else tuple(np.asarray(w, np.int64) for w in windows))


class OneReaderScorer:
    """Per-model-state precomputations plus the single-reader scoring code."""

    def __init__(self, model):
        self.model = model
        self.n_items = model.n_items
        pop = model.popular_scores()
        self.pop = pop
        self.tie = np.float32(1e-6) * (pop / (np.abs(pop).max() + 1e-9))
        c = model.comps
        self.z_pop = zscore_rows(c.pop.observed[None, :])
        self.z_pop_text = zscore_rows(c.pop.predicted[None, :])
        self.cold = c.cold_mask
        # the catalog-sized products, cut once per model state (see core/threads.py)
        self.X_rows = RowBlocks(model.X)
        self.V_rows = RowBlocks(model.V)
        self.Y_rows = RowBlocks(c.item_factors) if c.cf is not None else None
        self._topics: dict[int, str] = {}
        self._fresh: tuple | None = None  # (minute, freshness bonus) (`freshness_bonus`)

    def fresh_for(self, model) -> bool:
        return model is self.model and model.n_items == self.n_items

    # -- components (each the batch path's arithmetic on one row; see profiles.py) -----------
    def tfidf(self, h: OneHistory) -> np.ndarray:
        X = self.model.X
        profile = gather_rows(X, h.items, h.conf)
        # sklearn's l2 normalize: float32 squares summed in double, divided in double
        norm = np.sqrt(np.sum(profile * profile, dtype=np.float64))
        if norm > 0:
            profile = (profile / norm).astype(np.float32)
        return self.X_rows.matvec(profile)

    def dense(self, h: OneHistory) -> np.ndarray:
        V = self.model.V
        P = (h.conf[:, None] * V[h.items]).sum(axis=0, keepdims=True)
        n = np.linalg.norm(P, axis=1, keepdims=True)
        P = np.divide(P, n, out=np.zeros_like(P), where=n > 0)
        return self.V_rows.matvec(P[0])

    def fold_in(self, h: OneHistory) -> np.ndarray:
        return self.model.comps.cf.fold_in_one(h.items, h.conf, cg_steps=6)[None, :]

    def neighbours(self, h: OneHistory) -> tuple[np.ndarray, ...]:
        """The item graph's, EASE's and the reading order's EASE's rows (from the whole
        history, from the latest papers and the best of the reader's windows:
        `components.best_window_scores`), smoothed over thin papers in one pass (each
        1 x n): the product is bound by reading `neighbors`, so four rows cost about one."""
        c = self.model.comps
        # (model or None, the history's papers, their confidences: None for the latest, 0/1)
        wanted = [(c.ease, h.items, h.conf), (c.order, h.items, h.conf),
                  (c.order if h.latest is not None else None, h.latest, None)]
        windows = h.windows if c.order is not None and h.windows is not None else ()
        rows = [gather_rows(c.graph.weights, h.items, h.conf)]
        rows += [m.row_scores(items, np.ones(len(items), np.float32) if conf is None else conf)
                 for m, items, conf in wanted if m is not None]
        rows += [c.order.row_scores(w, np.ones(len(w), np.float32)) for w in windows]
        smoothed = c.cold.smooth_scores(np.stack(rows))
        graph = smoothed[:1]
        zeros = np.zeros((1, self.n_items), np.float32)
        at = iter(range(1, len(smoothed)))
        found = [smoothed[next(at)][None, :] if m is not None else zeros for m, _, _ in wanted]
        if windows:
            W = smoothed[len(smoothed) - len(windows):]
            best = zscore_rows(W, out=W).max(axis=0, keepdims=True)
        else:
            best = zeros
        return (graph, *found, best)

    def features(self, h: OneHistory) -> dict[str, np.ndarray]:
        """Standardised component scores, each (1 x n_items) like the batch path's rows.

        The components are independent until the z-scores, so the TF-IDF profile's product
        and then the item graph and EASE (a product with the reader's co-readers' rows of K)
        run on a helper (`threads.Alongside`) while this thread takes the dense vectors'
        product, folds the reader in and takes the item factors' product, last, when the
        helper is free to share its blocks. The order was measured (1,000 CiteULike-a
        readers, each arrangement in turn per reader, p50 / p99 ms): graph and EASE on the
        helper, fold-in, factors, TF-IDF and dense here (before) 3.31-3.34 / 4.45-4.81;
        TF-IDF first on the helper, dense, fold-in, factors here 2.83-2.88 / 4.12-4.35. The
        fold-in and the sparse gathers are many small numpy calls that hold the GIL, and
        two threads doing them at once wait for each other, while a whole-catalog product
        beside them does not. Each value is the same computation on either thread, so the
        scores keep their bits."""
        c = self.model.comps
        n = self.n_items
        if c.cf is not None:
            side = Alongside(lambda: (self.tfidf(h), *self.neighbours(h)))
            dense = self.dense(h)[None, :]
            cf = self.Y_rows.matvec(self.fold_in(h)[0])[None, :]
            tfidf, graph, ease, order, latest, windows = side.result()
            tfidf = tfidf[None, :]
        else:
            cf = graph = ease = order = latest = windows = np.zeros((1, n), np.float32)
            tfidf = self.tfidf(h)[None, :]
            dense = self.dense(h)[None, :]
        return {"cf": zscore_rows(cf), "graph": zscore_rows(graph), "ease": zscore_rows(ease), "order": zscore_rows(order),
                "latest": zscore_rows(latest), "windows": zscore_rows(windows),
                "tfidf": zscore_rows(tfidf), "dense": zscore_rows(dense),
                "pop": self.z_pop, "pop_text": self.z_pop_text}

    # -- the list --------------------------------------------------------------------------
    def freshness_bonus(self, now: float | None) -> np.ndarray | None:
        """The model's `freshness_bonus` at `now`, kept for the minute it was asked in: ages
        move by days, and a request should not pay for the catalog's exponentials."""
        key = None if now is None else int(now // 60)
        kept = self._fresh
        if kept is not None and kept[0] == key:
            return kept[1]
        bonus = self.model.freshness_bonus(now)
        self._fresh = (key, bonus)
        return bonus

    def scores(self, h: OneHistory, strategy: str, now: float | None = None) -> tuple[np.ndarray, dict | None]:
        """(n_items,) scores with the tie-break, and the standardised features (hybrid).
        `now`: the time the papers' ages are measured at (the model's newest event when
        None), for the blend's freshness signal."""
        if strategy == "popular":  # as the batch path: popularity alone, no tie-break
            return self.pop, None
        if len(h.items) == 0:
            return self.pop + self.tie, None
        z = None
        if strategy == "content":
            S = self.tfidf(h)
        elif strategy == "collaborative":
            if self.model.comps.cf is None:
                raise ValueError("model was fit without the collaborative component")
            S = self.Y_rows.matvec(self.fold_in(h)[0])
        else:
            z = self.features(h)
            S = self.model.blender.combine(z, self.cold, history_scale([len(h.items)]))[0]
            fresh = self.freshness_bonus(now)
            if fresh is not None:
                S = S + fresh
        return np.asarray(S, np.float32) + self.tie, z

    def trending_reason(self, j: int) -> str:
        """`HybridModel._trending_reason`, remembered per paper: top_terms projects onto the
        whole vocabulary (~3 ms a paper on CiteULike-a), and a paper's text never changes."""
        reason = self._topics.get(j)
        if reason is None:
            reason = self._topics[j] = self.model._trending_reason(j)
        return reason
