"""The hybrid model's settings, and the collaborative settings they imply for a data set."""
from __future__ import annotations

from dataclasses import dataclass, replace

import scipy.sparse as sp

from recommender.model.collaborative import CollaborativeParams, default_params
from recommender.model.reading_order import LATEST


@dataclass
class HybridConfig:
    seed: int = 0
    content_dim: int = 128
    neighbors_k: int = 20
    shrink: float = 1.0
    val_item_frac: float = 0.05
    val_user_frac: float = 0.1
    val_latest_share: float = 0.5  # of a reader's held-out papers, the share that are their latest (timed data)
    max_val_users: int = 2000
    val_cells: int = 150_000_000  # validation readers x papers scored, at most
    dense_cells: int = 10_000_000  # readers x papers in one scoring batch, at most
    refine_sweeps: int = 4  # ALS sweeps of the final fit (and of a refit), continuing from the validation factors
    negatives: int = 20
    pairs_per_user: int = 100
    hard_share: float = 0.0
    hard_pool: int = 500
    pool_per_feature: int = 150
    ascent_passes: int = 3
    min_task_users: int = 100
    min_val_positives: int = 200
    algorithm: str = "als"
    factors: int | None = None  # None: from data size
    # None: chosen inside fit on the validation slice (tuning.py); a value fixes it
    half_life_days: float | None = None  # 0: no decay
    decay_from: str | None = None  # "newest" | "reader"
    repeats: str | None = None  # how a reader's repeated events add up: "sum" | "log" | "once" (confidence.REPEATS); None: chosen
    als_regularization: float | None = None
    als_alpha: float | None = None
    popularity: dict | None = None  # PopularityConfig.to_dict()
    graph_alpha: float | None = None  # the item graph's walk exponent (RP3beta alpha)
    graph_beta: float | None = None  # and its popularity penalty (beta)
    text_weight: float | None = None  # the papers' words as ALS pseudo-readers (text_rows.py); 0: none
    text_min_df: int = 5  # a word becomes a pseudo-reader when this many papers use it
    # with text rows, the share of an unread paper's own (word-made) factors in its position;
    # the rest comes from its content neighbours (cold_start.py). A product default: on the
    # validation slice of CiteULike-a cold-items 0.25 and 0.5 score alike (0.270 / 0.269),
    # on its test 0.5 is better (ALS alone 0.3751 against 0.3661)
    cold_own_floor: float = 0.5
    # the search of tuning.choose stops after this much CPU time (all threads): the same
    # data gets the same search however busy the machine is. CiteULike-a's whole search
    # takes about 20 CPU seconds (17 s of wall time on 2 quiet cores)
    tune_budget_s: float = 90.0
    # EASE as a blend component (λ chosen on the validation slice). None: on where the
    # papers it covers hold `ease_min_share` of the reading (ease.covers_reading),
    # since a paper outside them gets no EASE score; True / False fix it
    ease: bool | None = None
    ease_lambda: float | None = None  # None: chosen; set by fit
    # the papers' words as extra rows of EASE's input, at this weight (ease.word_rows;
    # 0: none). None: chosen on the validation slice with λ; set by fit
    ease_words: float | None = None
    # the n³ solve's side (readers or papers, whichever is smaller; ease.Gram): ~3 s a λ at
    # 5,551 readers on 2 cores; beyond it on both sides, the most-read papers only
    ease_max_solve: int = 8000
    ease_top_k: int = 300  # weights kept per paper on the papers' side (the readers' side is exact)
    ease_min_share: float = 0.9
    # the reading's order as a second EASE (reading_order.py), where the data has event
    # times and EASE is in; False: never
    reading_order: bool = True
    # the reader's latest papers (this many) through the windows' EASE as one more blend
    # feature (reading_order.latest_rows); 0: none. Wherever the windows' feature is in (so
    # never in a feed with trusted publication times): it takes MovieLens user-temporal over
    # its target (a live list's question) at a small cost to random-holdout sets (README, "The
    # reader's latest papers")
    reading_latest: int = LATEST
    # the windows of the reader's own reading, each scored alone through the windows' EASE,
    # the best per paper (components.best_window_scores), as one more blend feature; False:
    # none. Wherever the windows' EASE is in (so never in a feed): it takes MovieLens warm over
    # its target without costing user-temporal (README, "The reader's windows")
    reading_windows: bool = True
    batch: int = 500

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> "HybridConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def collab_params(C: sp.csr_matrix, config: HybridConfig) -> CollaborativeParams:
    """The collaborative settings for C: the configured factors, or ones that follow the data size."""
    if config.factors:
        params = CollaborativeParams(factors=config.factors, seed=config.seed, algorithm=config.algorithm)
    else:
        params = default_params(C.shape[0], C.shape[1], C.nnz, seed=config.seed)
        params.algorithm = config.algorithm
    if config.als_regularization is not None:
        params.regularization = float(config.als_regularization)
    if config.als_alpha is not None:
        params.alpha = float(config.als_alpha)
    if params.algorithm == "bpr":  # BPR's SGD wants its own scale of settings
        params = replace(params, regularization=0.01, learning_rate=0.05, iterations=100)
    return params
