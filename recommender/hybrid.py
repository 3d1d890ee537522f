"""HybridModel: content + collaborative + cold-start map + popularity, blended by a learned
logistic regression. One object serves every strategy (`popular`, `content`,
`collaborative`, `hybrid`) through `score_rows`, scores a single reader from their raw event
history (with ALS fold-in, so the next list reflects the last event without a retrain),
accepts new papers from their text, explains each item, and round-trips through plain
numpy arrays plus a JSON manifest.

Fit (`HybridModel.fit`):
1. the validation slice and what is chosen on it (`tuning.py`): a share of the papers with
   readers become "new" (all their events held out), and a share of each remaining reader's
   papers is held out (their latest when events carry times); on it the time decay, ALS's
   alpha and regularisation and how popularity is counted are chosen;
2. content: TF-IDF (uni+bigrams) + SVD over every paper's text; the confidence matrix from
   events with the chosen weighting;
3. components are fit on the rest of the slice; the blend is fit on held-out
   positives against sampled negatives as a pairwise logistic regression (RankNet with a
   linear scorer: the held-out paper should outrank the negative), refined by coordinate
   ascent on validation NDCG@20;
4. components refit on all training events; the learned blend is kept. ALS continues from
   the validation factors for `refine_sweeps` sweeps instead of starting again, and the
   content-neighbour search of the cold-start map is done once for both fits.
Hyperparameters that depend on scale (number of factors) follow the data size, and so do
the costs: validation readers x papers scored, and readers per scoring batch, are capped
(`val_cells`, `dense_cells`), so a 100,000-paper catalog is scored in small batches.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from recommender.blend import FEATURES, PERSONAL, Blender, RankingTask, coordinate_ascent, expand, history_scale, zscore_rows
from recommender.ease import EaseModel, fit_on_validation
from recommender.cold_start import THIN_BELOW, ColdStartMap, NeighborCache, neighbor_pool
from recommender.collaborative import CollaborativeModel, CollaborativeParams, default_params
from recommender.confidence import ConfidenceConfig, confidence_matrix, history_rows
from recommender.tuning import NO_DECAY, validation_ndcg, PopularityConfig, ValidationSlice, carve, choose, latest_pair_times, \
    pair_keys, popularity_matrix
from recommender.content import ContentEncoder, paper_text
from recommender.item_graph import ItemGraph
from recommender.popularity import Popularity, text_lengths
from recommender.one_reader import OneHistory, OneReaderScorer
from recommender.profiles import dense_scores, tfidf_scores
from recommender.text_rows import TextRows

STRATEGIES = ("popular", "content", "collaborative", "hybrid")
FORMAT_VERSION = 2  # 2: the blend has an EASE feature


@dataclass
class HybridConfig:
    seed: int = 0
    content_dim: int = 128
    neighbors_k: int = 20
    shrink: float = 1.0
    val_item_frac: float = 0.05
    val_user_frac: float = 0.1
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
    tune_budget_s: float = 25.0  # the search of tuning.choose stops after this long
    # EASE as a blend component (λ chosen on the validation slice). Off: measured, it does
    # not pay yet (README, "What each component adds")
    ease: bool = False
    ease_lambda: float | None = None  # None: chosen; set by fit
    ease_max_items: int = 5000  # the n³ solve covers the papers with most readers only
    ease_top_k: int = 300  # weights kept per paper
    batch: int = 500

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> "HybridConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class Recommendation:
    index: int
    score: float
    reason: str


@dataclass
class _Collab:
    """Everything fit on one confidence matrix (the validation fit or the final fit)."""
    cf: CollaborativeModel | None
    graph: ItemGraph | None
    cold: ColdStartMap | None
    pop: Popularity
    item_factors: np.ndarray | None  # effective (cold-mapped) item factors
    ease: EaseModel | None = None
    text_rows: TextRows | None = None  # the words ALS factorised with the readers, if any

    @property
    def cold_mask(self) -> np.ndarray:
        return self.pop.observed <= 0


def _collab_params(C: sp.csr_matrix, config: HybridConfig) -> CollaborativeParams:
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


def _latest(ts) -> float | None:
    """The newest event time (the default `now` that confidences decay from), or None."""
    if ts is None:
        return None
    tsa = np.asarray(ts, np.float64)
    return float(np.nanmax(tsa)) if np.isfinite(tsa).any() else None


def _event_matrix(users, items, kinds, ts, n_users: int | None, n_items: int, now: float | None,
                  config: ConfidenceConfig) -> tuple[sp.csr_matrix, int, float | None]:
    """(confidence matrix, number of readers, the `now` it decays from) for fit and refit:
    readers default to the largest index + 1, `now` to the newest event."""
    users = np.asarray(users, np.int64)
    items = np.asarray(items, np.int64)
    n_users = int(n_users if n_users is not None else (users.max() + 1 if len(users) else 0))
    now = _latest(ts) if now is None else now
    C, _seen = confidence_matrix(users, items, kinds, ts, (n_users, n_items), now=now, config=config)
    return C, n_users, now


def _dense_mask(M: sp.csr_matrix) -> np.ndarray:
    """(B x n) bool of the stored positive entries of a few sparse rows."""
    out = np.zeros(M.shape, bool)
    r = np.repeat(np.arange(M.shape[0]), np.diff(M.indptr))
    out[r, M.indices] = M.data > 0
    return out


def _validation_samples(cls, X, V, comps: _Collab, C_fit: sp.csr_matrix, V_pos: sp.csr_matrix,
                        eligible: np.ndarray, config: HybridConfig, rng: np.random.Generator):
    """Score the validation readers with the validation components, in batches sized so that
    no (batch x papers) array exceeds `config.dense_cells` (a 100,000-paper catalog gets
    batches of 100 readers, not 500), and keep only what the blend fit needs: pairwise
    samples for the logistic regression and each reader's candidate pool for the ascent."""
    n_items = C_fit.shape[1]
    probe = cls.__new__(cls)  # a light model sharing the scoring code
    probe.X, probe.V, probe.comps, probe.config = X, V, comps, config
    cold = comps.cold_mask
    batch = int(max(1, min(config.batch, config.dense_cells // max(n_items, 1))))
    rows_X, rows_y, rows_w = [], [], []
    pools: dict[str, list] = {}
    for s in range(0, len(eligible), batch):
        ub = eligible[s:s + batch]
        R = C_fit[ub]
        raw = probe._raw_features(R)
        Fz = np.empty((len(FEATURES), len(ub), n_items), np.float32)
        for j, f in enumerate(FEATURES):
            Fz[j] = zscore_rows(raw.pop(f))
        del raw
        h = history_scale(np.diff(R.indptr)).astype(np.float32)
        excl = _dense_mask(R)
        P = V_pos[ub]
        Pd = _dense_mask(P)
        # two ranking tasks: papers with readers among themselves, new papers among themselves
        for name, allowed in (("warm", ~cold), ("cold", cold)):
            pools.setdefault(name, []).append(_pool_task(Fz, excl, Pd, cold, h, allowed, config.pool_per_feature))
        Xb, yb, wb = _pair_samples(Fz, excl, Pd, P, cold, h, config, rng)
        rows_X.append(Xb)
        rows_y.append(yb)
        rows_w.append(wb)
    return rows_X, rows_y, rows_w, pools


def _pair_samples(Fz: np.ndarray, excl: np.ndarray, Pd: np.ndarray, P: sp.csr_matrix, cold: np.ndarray,
                  h: np.ndarray, config: HybridConfig, rng: np.random.Generator, max_pos: int = 50):
    """Pairwise samples for one batch of readers, all readers at once: each reader's held-out
    papers (at most `max_pos`) against `negatives` sampled papers (uniform, plus a
    `hard_share` from the top of the unweighted component sum) the reader has not seen and
    did not hold out; at most `pairs_per_user` (positive, negative) pairs a reader, and each
    reader weighs the same. Returns (x(pos) - x(neg) and its mirror, labels, weights)."""
    nf, B, n = Fz.shape
    counts = np.diff(P.indptr)
    r_of = np.repeat(np.arange(B), counts)
    order = np.lexsort((rng.random(P.nnz), r_of))  # rows in place, shuffled within each row
    rank = np.arange(P.nnz) - np.repeat(P.indptr[:-1], counts)
    keep = order[rank < max_pos]
    pos_j = P.indices[keep].astype(np.int64)
    n_pos = np.minimum(counts, max_pos)
    pos_start = np.r_[0, np.cumsum(n_pos)[:-1]]
    neg = rng.integers(0, n, (B, config.negatives))
    n_hard = int(min(round(config.hard_share * config.negatives), config.negatives))
    if n_hard:
        base = Fz.sum(axis=0)
        base[excl] = -np.inf
        hp = int(max(1, min(config.hard_pool, n - 1)))
        pool = np.argpartition(-base, hp, axis=1)[:, :hp]
        pick = np.argsort(rng.random(pool.shape), axis=1)[:, :n_hard]
        neg[:, :n_hard] = np.take_along_axis(pool, pick, 1)
    rows = np.arange(B)[:, None]
    bad = excl[rows, neg] | Pd[rows, neg]
    neg = np.take_along_axis(neg, np.argsort(bad, axis=1, kind="stable"), 1)  # usable ones first
    n_neg = (~bad).sum(axis=1)
    m = np.where((n_pos > 0) & (n_neg > 0), np.minimum(n_pos * n_neg, config.pairs_per_user), 0)
    rr = np.repeat(np.arange(B), m)
    jp = pos_j[pos_start[rr] + (rng.random(len(rr)) * n_pos[rr]).astype(np.int64)]
    jn = neg[rr, (rng.random(len(rr)) * n_neg[rr]).astype(np.int64)]
    hr = h[rr]
    Ep = expand({f: Fz[k][rr, jp] for k, f in enumerate(FEATURES)}, cold[jp], hr)
    En = expand({f: Fz[k][rr, jn] for k, f in enumerate(FEATURES)}, cold[jn], hr)
    D = Ep - En
    w = (1.0 / np.maximum(m[rr], 1)).astype(np.float64)
    return np.r_[D, -D], np.r_[np.ones(len(rr)), np.zeros(len(rr))], np.r_[w, w]


def _pool_task(Fz, excl, Pd, cold, h, allowed, per_feature) -> RankingTask:
    """Each reader's candidate pool: the union of the top `per_feature` papers by every
    component (optionally only among `allowed` papers). Fz is (features, readers, papers).
    Duplicates are dropped and the pool is cut to the widest reader's real candidates, so
    the ascent does not score padding."""
    nf, B, n = Fz.shape
    ok = ~excl
    if allowed is not None:
        ok = ok & allowed[None, :]
    # a task over a minority of papers (the new ones) searches only their columns
    n_allowed = int(allowed.sum()) if allowed is not None else n
    cols = np.nonzero(allowed)[0] if per_feature < n_allowed and n_allowed * 2 < n else None
    okc = ok if cols is None else ok[:, cols]
    m = int(min(per_feature, okc.shape[1] - 1))
    pools = []
    for f in range(nf):
        S = np.where(okc, Fz[f] if cols is None else Fz[f][:, cols], -np.inf)
        top = np.argpartition(-S, m, axis=1)[:, :m] if m > 0 else np.zeros((B, 0), np.int64)
        pools.append(top if cols is None else cols[top])
    idx = np.concatenate(pools, axis=1) if pools else np.zeros((B, 0), np.int64)
    idx.sort(axis=1)
    dup = np.zeros(idx.shape, bool)
    dup[:, 1:] = idx[:, 1:] == idx[:, :-1]
    valid = ~dup & np.take_along_axis(ok, idx, 1)
    first = np.argsort(~valid, axis=1, kind="stable")
    idx = np.take_along_axis(idx, first, 1)
    valid = np.take_along_axis(valid, first, 1)
    width = int(max(1, valid.sum(axis=1).max())) if B else 1
    idx, valid = idx[:, :width], valid[:, :width]
    rel = Pd & ok
    F = np.stack([np.take_along_axis(Fz[f], idx, 1) for f in range(nf)], axis=2)
    return RankingTask(F=F, cold=cold[idx], valid=valid, label=np.take_along_axis(rel, idx, 1),
                       n_rel=rel.sum(1), h=np.asarray(h, np.float32))


def _neutral_weights(only: str | None = None) -> np.ndarray:
    """Every personal signal (cf, graph, ease, tfidf, dense) at weight 1 in both regimes, or
    `only` that one: the ascent also starts from each single signal, so the blend it returns
    is at least as good on validation as the best component alone."""
    W = np.zeros(4 * len(FEATURES) + 2, np.float32)
    for j, f in enumerate(FEATURES):
        if f in PERSONAL and (only is None or f == only):
            W[4 * j] = W[4 * j + 2] = 1.0
    return W


def _share_warm_weights(W: np.ndarray) -> np.ndarray:
    """Cold-regime weights := warm-regime weights, without observed popularity or offset."""
    W = np.array(W, dtype=np.float32, copy=True)
    for j, f in enumerate(FEATURES):
        W[4 * j + 2: 4 * j + 4] = 0.0 if f == "pop" else W[4 * j: 4 * j + 2]
    W[-2:] = 0.0
    return W


def _concat_tasks(parts: list[RankingTask]) -> RankingTask:
    """One task from per-batch parts (pools padded to the widest), readers with no held-out
    paper in the task dropped."""
    width = max(p.F.shape[1] for p in parts)

    def pad(a: np.ndarray) -> np.ndarray:
        extra = width - a.shape[1]
        return a if extra == 0 else np.pad(a, [(0, 0), (0, extra)] + [(0, 0)] * (a.ndim - 2))

    t = RankingTask(*(np.concatenate([pad(getattr(p, a)) for p in parts]) for a in ("F", "cold", "valid", "label")),
                    np.concatenate([p.n_rel for p in parts]), np.concatenate([p.h for p in parts]))
    m = t.n_rel > 0
    return RankingTask(t.F[m], t.cold[m], t.valid[m], t.label[m], t.n_rel[m], t.h[m])


def _progress(progress, msg: str):
    if progress is not None:
        progress(msg)


class HybridModel:
    def __init__(self, encoder: ContentEncoder, X: sp.csr_matrix, V: np.ndarray, lengths: np.ndarray,
                 titles: list[str], comps: _Collab, blender: Blender, config: HybridConfig,
                 conf_config: ConfidenceConfig, now: float | None, stats: dict | None = None,
                 pop_config: PopularityConfig | None = None):
        self.encoder = encoder
        self.X = sp.csr_matrix(X, dtype=np.float32)
        self.V = np.asarray(V, np.float32)
        self.lengths = np.asarray(lengths, np.float32)
        self.titles = list(titles)
        self.comps = comps
        self.blender = blender
        self.config = config
        self.conf_config = conf_config
        self.now = now
        self.stats = stats or {}
        self.pop_config = pop_config or PopularityConfig()

    # ------------------------------------------------------------------ fitting
    @property
    def n_items(self) -> int:
        return int(self.X.shape[0])

    @classmethod
    def fit(cls, texts: list[str], users, items, kinds=None, ts=None, n_users: int | None = None,
            titles: list[str] | None = None, prior_upvotes=None, now: float | None = None,
            config: HybridConfig | None = None, strategies=STRATEGIES, progress=None) -> "HybridModel":
        """Fit from paper texts (index = paper index) and event arrays.

        `strategies` limits what is fit (e.g. ("content",) skips the collaborative parts and
        the validation slice), so each single-signal strategy can be timed on its own."""
        config = config or HybridConfig()
        strategies = tuple(strategies)
        t0 = time.perf_counter()
        n_items = len(texts)
        timings: dict = {}
        collab = any(s in strategies for s in ("collaborative", "hybrid"))
        _progress(progress, "content")
        t = time.perf_counter()
        encoder, X = ContentEncoder.fit_transform(list(texts), dim=config.content_dim, seed=config.seed)
        V = encoder.encode_tfidf(X)
        lengths = text_lengths(list(texts))
        timings["content_s"] = time.perf_counter() - t
        t = time.perf_counter()
        config, conf_config, pop_config, vslice, tuning = cls._choose_settings(
            users, items, kinds, ts, n_users, n_items, now, config, strategies, progress, text=X)
        timings["tuning_s"] = time.perf_counter() - t
        C, n_users, now = _event_matrix(users, items, kinds, ts, n_users, n_items, now, conf_config)
        Cp = popularity_matrix(users, items, kinds, ts, C.shape, now, pop_config)
        stats: dict = {"n_items": n_items, "n_users": n_users, "n_events": int(len(users)),
                       "nnz": int(C.nnz), "tuning": tuning}

        blender = Blender.prior("hybrid not fit")
        start, neighbors = None, None
        if "hybrid" in strategies:
            t = time.perf_counter()
            blender, vstats, vcomps, neighbors = cls._fit_blend(C, Cp, vslice, X, V, lengths, prior_upvotes,
                                                                config, progress)
            stats["validation"] = vstats
            if vstats.get("ease_lambda") is not None:
                config = replace(config, ease_lambda=float(vstats["ease_lambda"]))
            timings["blend_s"] = time.perf_counter() - t
            if vcomps is not None and vcomps.cf is not None and vcomps.cf.params.algorithm == "als":
                start = vcomps.cf
            del vcomps
        _progress(progress, "final components")
        t = time.perf_counter()
        sweeps = config.refine_sweeps if start is not None else None
        comps = cls._fit_components(C, Cp, X, V, lengths, prior_upvotes, config, collab=collab, start=start,
                                    sweeps=sweeps, neighbors=neighbors)
        stats["als_sweeps"] = {"validation": stats.get("validation", {}).get("als_sweeps"), "final": sweeps}
        timings["components_s"] = time.perf_counter() - t
        timings["total_s"] = time.perf_counter() - t0
        stats["timings"] = timings
        return cls(encoder, X, V, lengths, titles if titles is not None else list(texts), comps, blender,
                   config, conf_config, now, stats, pop_config)

    @staticmethod
    def _choose_settings(users, items, kinds, ts, n_users, n_items, now, config: HybridConfig, strategies,
                         progress=None, text: sp.csr_matrix | None = None):
        """The validation slice and what is chosen on it (`tuning.py`): returns (config with
        the chosen ALS settings filled in, confidence config, popularity config, the slice,
        the record for the manifest). Settings the config fixes are kept as they are."""
        users = np.asarray(users, np.int64)
        items = np.asarray(items, np.int64)
        n_users = int(n_users if n_users is not None else (users.max() + 1 if len(users) else 0))
        now = _latest(ts) if now is None else now
        fixed_conf = None
        if config.half_life_days is not None:
            fixed_conf = ConfidenceConfig(half_life_days=config.half_life_days,
                                          decay_from=config.decay_from or "newest")
        fixed_pop = PopularityConfig.from_dict(config.popularity) if config.popularity is not None else None
        C0, _ = confidence_matrix(users, items, kinds, ts, (n_users, n_items), now=now, config=NO_DECAY)
        rng = np.random.default_rng(config.seed)
        pair_time = None
        if ts is not None:
            keys, last = latest_pair_times(users, items, ts, n_items)
            where = np.searchsorted(keys, pair_keys(C0))
            pair_time = last[np.minimum(where, len(last) - 1)] if len(last) else np.zeros(0)
        vslice = carve(C0, pair_time, config.val_item_frac, config.val_user_frac, rng)
        wanted = any(s in strategies for s in ("popular", "collaborative", "hybrid"))
        if not wanted or (fixed_conf is not None and fixed_pop is not None and config.als_alpha is not None
                          and config.als_regularization is not None and config.graph_alpha is not None
                          and config.graph_beta is not None and config.text_weight is not None):
            return (config, fixed_conf or NO_DECAY, fixed_pop or PopularityConfig(), vslice,
                    {"searched": False, "slice": vslice.stats()})
        _progress(progress, "validation: choosing decay, ALS settings, popularity")
        fixed = {"half_life_days": config.half_life_days, "decay_from": config.decay_from,
                 "regularization": config.als_regularization, "alpha": config.als_alpha,
                 "graph_alpha": config.graph_alpha, "graph_beta": config.graph_beta,
                 "text_weight": config.text_weight}
        choice = choose((users, items, kinds, ts), n_users, n_items, now, vslice, fixed,
                        budget_s=config.tune_budget_s, seed=config.seed,
                        collaborative=any(s in strategies for s in ("collaborative", "hybrid")), text=text)
        if config.algorithm == "als":
            config = replace(config, als_regularization=choice.regularization, als_alpha=choice.alpha)
        config = replace(config, graph_alpha=choice.graph_alpha, graph_beta=choice.graph_beta,
                         text_weight=choice.text_weight)
        record = {"searched": True, "slice": vslice.stats(), **choice.to_dict()}
        return (config, fixed_conf or choice.confidence, fixed_pop or choice.popularity, vslice, record)

    @staticmethod
    def _fit_components(C, Cp, X, V, lengths, prior, config: HybridConfig, collab: bool = True,
                        start: CollaborativeModel | None = None, sweeps: int | None = None,
                        neighbors: NeighborCache | None = None, ease: EaseModel | None = None) -> _Collab:
        """Every component on one confidence matrix. `start` and `sweeps`: continue ALS from
        those factors for that many sweeps (see `CollaborativeModel.fit`); `neighbors`: the
        content-neighbour candidates shared by the validation and the final fit. `Cp`: the
        matrix popularity is counted from (see `tuning.PopularityConfig`)."""
        pop = Popularity.fit(Cp, X, lengths, prior)
        if not collab:
            return _Collab(None, None, None, pop, None)
        params = _collab_params(C, config)
        text_rows = TextRows.fit(X, config.text_weight or 0.0, config.text_min_df)
        side = text_rows.matrix(X) if text_rows.active and params.algorithm == "als" else None
        cf = CollaborativeModel.fit(C, params, start=start, iterations=sweeps, side=side)
        graph = ItemGraph.fit(C, alpha=config.graph_alpha or 0.8, beta=config.graph_beta or 0.4)
        mass = np.asarray(C.sum(axis=0)).ravel()
        cold = ColdStartMap.fit(X, V, cf.item_factors, mass, k=config.neighbors_k, shrink=config.shrink,
                                candidates=neighbors)
        if cf.side_factors is not None:  # papers nobody read have factors of their own, from their words
            cold.own_floor = float(config.cold_own_floor)
        Y = cold.effective_factors(cf.item_factors, V)
        if ease is None and config.ease and config.ease_lambda is not None:
            ease = EaseModel.fit(C, config.ease_lambda, config.ease_max_items, config.ease_top_k)
        return _Collab(cf, graph, cold, pop, Y, ease, text_rows if cf.side_factors is not None else None)

    def refit(self, users, items, kinds=None, ts=None, n_users: int | None = None, prior_upvotes=None,
              now: float | None = None) -> "HybridModel":
        """The same model on more events: components refit on the new confidence matrix,
        ALS continuing from this model's factors for `config.refine_sweeps` sweeps; the
        content encoder and the learned blend are kept (the papers are the same, and the blend
        was learned on a held-out slice, which is what it is for). The nightly job uses this
        to turn the candidate it checked on the recent slice into the model it promotes,
        instead of a second fit from scratch."""
        t0 = time.perf_counter()
        C, n_users, now = _event_matrix(users, items, kinds, ts, n_users, self.n_items, now, self.conf_config)
        Cp = popularity_matrix(users, items, kinds, ts, C.shape, now, self.pop_config)
        cf = self.comps.cf
        comps = self._fit_components(C, Cp, self.X, self.V, self.lengths, prior_upvotes, self.config,
                                     collab=cf is not None, start=cf,
                                     sweeps=self.config.refine_sweeps if cf is not None else None)
        stats = {**self.stats, "n_users": n_users, "n_events": int(len(users)), "nnz": int(C.nnz),
                 "refit": {"from_events": self.stats.get("n_events"), "total_s": round(time.perf_counter() - t0, 2),
                           "als_sweeps": self.config.refine_sweeps}}
        return HybridModel(self.encoder, self.X, self.V, self.lengths, self.titles, comps, self.blender,
                           self.config, self.conf_config, now, stats, self.pop_config)

    @classmethod
    def _fit_blend(cls, C: sp.csr_matrix, Cp: sp.csr_matrix, vslice: ValidationSlice, X, V, lengths, prior,
                   config: HybridConfig, progress=None):
        """Learn the blend on the validation slice `vslice` of C (and of the popularity matrix
        Cp). Returns (blender, stats, the validation components or None, the content-neighbour
        cache): the final fit continues ALS from the validation factors."""
        _progress(progress, "validation: slice + components")
        rng = np.random.default_rng(config.seed + 1)
        n_users, n_items = C.shape
        C_fit, V_pos = vslice.split(C)
        Cp_fit, _ = vslice.split(Cp)
        n_cold = len(vslice.cold_items)
        hist = np.diff(C_fit.indptr)
        posn = np.diff(V_pos.indptr)
        eligible = np.nonzero((hist > 0) & (posn > 0))[0]
        vstats = {"cold_items": int(n_cold), "held_out": int(V_pos.nnz), "eligible_users": int(len(eligible))}
        if int(posn[eligible].sum()) < config.min_val_positives:
            vstats["fallback"] = "too few held-out positives with a history"
            return (Blender.prior("too few validation positives", words=bool(config.text_weight)), vstats, None,
                    None)
        if len(eligible) < config.min_task_users:
            vstats["fallback"] = "too few validation readers: neutral blend"
            return Blender(_neutral_weights(), False, {"reason": "too few validation readers"}), vstats, None, None
        # readers x papers scored is the cost: fewer readers when there are many papers
        max_users = int(max(config.min_task_users, min(config.max_val_users, config.val_cells // max(n_items, 1))))
        if len(eligible) > max_users:
            eligible = np.sort(rng.choice(eligible, max_users, replace=False))
        # the validation components get the capacity and the ALS sweeps the final fit will
        # have. (Fewer sweeps here, 11 of 15, with the final fit making up the rest, gave
        # the same validation NDCG but a blend 0.005 NDCG@20 worse on CiteULike-a warm: the
        # weights are learned for factors at this stage of convergence.)
        params = _collab_params(C, config)
        sweeps = params.iterations if params.algorithm == "als" else None
        vconfig = replace(config, factors=params.factors)
        tt = time.perf_counter()
        # one content-neighbour search for both fits: the slice's thin papers over the final pool
        mass_fit = np.asarray(C_fit.sum(axis=0)).ravel()
        neighbors = NeighborCache.build(X, np.nonzero(mass_fit < THIN_BELOW)[0],
                                        neighbor_pool(np.asarray(C.sum(axis=0)).ravel()), 2 * config.neighbors_k)
        vstats["neighbors_s"] = round(time.perf_counter() - tt, 2)
        ease = None
        if config.ease:
            te = time.perf_counter()
            ease_config = config.ease_lambda
            if ease_config is None:
                def ndcg(S, readers=eligible):
                    return validation_ndcg(S, C_fit[readers], V_pos[readers])
                ease, vstats["ease_trials"] = fit_on_validation(C_fit, V_pos, eligible, config.ease_max_items,
                                                                config.ease_top_k, ndcg)
            else:
                ease = EaseModel.fit(C_fit, ease_config, config.ease_max_items, config.ease_top_k)
            vstats["ease_lambda"] = ease.lam
            vstats["ease_s"] = round(time.perf_counter() - te, 2)
        comps = cls._fit_components(C_fit, Cp_fit, X, V, lengths, prior, vconfig, sweeps=sweeps, neighbors=neighbors,
                                    ease=ease)
        vstats["components_s"] = round(time.perf_counter() - tt, 2)
        vstats["als_sweeps"] = sweeps
        _progress(progress, "validation: features")
        tt = time.perf_counter()
        rows_X, rows_y, rows_w, pools = _validation_samples(cls, X, V, comps, C_fit, V_pos, eligible, config, rng)
        Xs = np.concatenate(rows_X)
        y = np.concatenate(rows_y)
        w = np.concatenate(rows_w)
        w = w * (len(w) / w.sum())
        vstats["features_s"] = round(time.perf_counter() - tt, 2)
        _progress(progress, "validation: blend (LR + ascent)")
        tt = time.perf_counter()
        blender = Blender.fit(Xs, y, sample_weight=w, seed=config.seed, fit_intercept=False)
        vstats["lr_s"] = round(time.perf_counter() - tt, 2)
        tt = time.perf_counter()
        # refine the pairwise-LR weights by direct search on validation NDCG@20
        tasks = {name: _concat_tasks(v) for name, v in pools.items()}
        cold_users = int(len(tasks["cold"].n_rel))
        if cold_users < config.min_task_users:
            # too few new papers in the slice to learn their own weights: share the warm ones
            # (observed popularity is meaningless for a paper nobody has seen yet)
            blender = Blender(_share_warm_weights(blender.weights), True, blender.info)
            tasks.pop("cold")
        vstats["cold_task_users"] = cold_users
        vstats["pool_width"] = {name: int(t.F.shape[1]) for name, t in tasks.items()}
        tasks = [t for t in tasks.values() if len(t.n_rel) >= config.min_task_users]
        starts = [_neutral_weights()] + [_neutral_weights(f) for f in PERSONAL]
        if cold_users < config.min_task_users:
            starts = [_share_warm_weights(w) for w in starts]
        W, before, after = coordinate_ascent(tasks, [blender.weights, *starts], passes=config.ascent_passes)
        if cold_users < config.min_task_users:
            W = _share_warm_weights(W)
        blender = Blender(W, True, {**blender.info, "val_ndcg_lr": round(before, 4), "val_ndcg": round(after, 4)})
        vstats["ascent_s"] = round(time.perf_counter() - tt, 2)
        vstats.update(blender.info)
        vstats["val_users"] = int(len(eligible))
        return blender, vstats, comps, neighbors

    # ------------------------------------------------------------------ scoring
    def _raw_features(self, rows: sp.csr_matrix) -> dict[str, np.ndarray]:
        """(B x n_items) confidence rows -> raw component scores, each (B x n_items)."""
        c = self.comps
        B = rows.shape[0]
        feats = {}
        if c.cf is not None:
            U = c.cf.fold_in(rows, cg_steps=6)
            feats["cf"] = np.ascontiguousarray((c.item_factors @ U.T).T)
            feats["graph"] = c.cold.smooth_scores(c.graph.scores(rows))
            feats["ease"] = (c.cold.smooth_scores(c.ease.scores(rows)) if c.ease is not None
                             else np.zeros((B, self.n_items), np.float32))
        else:
            for f in ("cf", "graph", "ease"):
                feats[f] = np.zeros((B, self.n_items), np.float32)
        feats["tfidf"] = tfidf_scores(rows, self.X)
        feats["dense"] = dense_scores(rows, self.V)
        feats["pop"] = np.broadcast_to(c.pop.observed[None, :], (B, self.n_items))
        feats["pop_text"] = np.broadcast_to(c.pop.predicted[None, :], (B, self.n_items))
        return feats

    def popular_scores(self) -> np.ndarray:
        p = self.comps.pop
        pt = p.predicted - p.predicted.min() if len(p.predicted) else p.predicted
        return (p.observed + 1e-3 * pt / (pt.max() + 1e-9)).astype(np.float32)

    def score_rows(self, rows: sp.csr_matrix, strategy: str = "hybrid") -> np.ndarray:
        """Scores (B x n_items) for readers given as confidence rows. Readers with an empty
        history get the popularity order under every strategy. One reader goes through
        `one_reader.py` (same scores, without sparse-matrix overhead)."""
        rows = sp.csr_matrix(rows, dtype=np.float32)
        B = rows.shape[0]
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
        if B == 1:
            S, _ = self.one_reader().scores(OneHistory.from_row(rows, np.zeros(0, np.int64)), strategy)
            return S[None, :]
        return self._score_batch(rows, strategy)

    def _score_batch(self, rows: sp.csr_matrix, strategy: str) -> np.ndarray:
        """score_rows for B readers at once (offline evaluation): sparse products over the
        batch. For B = 1 it gives what the single-reader path gives, to the bit."""
        B = rows.shape[0]
        pop = self.popular_scores()
        if strategy == "popular":
            return np.tile(pop, (B, 1))
        if strategy == "content":
            S = tfidf_scores(rows, self.X)
        elif strategy == "collaborative":
            c = self.comps
            if c.cf is None:
                raise ValueError("model was fit without the collaborative component")
            S = c.cf.fold_in(rows, cg_steps=6) @ c.item_factors.T
        else:
            feats = self._raw_features(rows)
            z = {f: zscore_rows(S) for f, S in feats.items()}
            S = self.blender.combine(z, self.comps.cold_mask, history_scale(np.diff(rows.indptr)))
        S = np.asarray(S, np.float32)
        empty = np.diff(rows.indptr) == 0
        if empty.any():
            S[empty] = pop
        # tiny popularity tie-break keeps the order total and deterministic
        return S + np.float32(1e-6) * (pop / (np.abs(pop).max() + 1e-9))[None, :]

    def one_reader(self) -> OneReaderScorer:
        """The single-reader scorer for the model as it is now (rebuilt after add_paper)."""
        scorer = getattr(self, "_one_reader", None)
        if scorer is None or not scorer.fresh_for(self):
            scorer = self._one_reader = OneReaderScorer(self)
        return scorer

    def top_k(self, S: np.ndarray, k: int, exclude: sp.csr_matrix | None = None,
              candidates: np.ndarray | None = None) -> np.ndarray:
        """Top-k indices per row (B x min(k, allowed)), best first; excluded items never appear."""
        S = np.array(S, dtype=np.float32, copy=True)
        if candidates is not None:
            mask = np.ones(S.shape[1], bool)
            mask[np.asarray(candidates, np.int64)] = False
            S[:, mask] = -np.inf
        if exclude is not None:
            ex = sp.csr_matrix(exclude)
            r = np.repeat(np.arange(ex.shape[0]), np.diff(ex.indptr))
            S[r, ex.indices] = -np.inf
        n_allowed = np.isfinite(S).sum(axis=1)
        kk = int(min(k, S.shape[1]))
        if kk <= 0:
            return np.zeros((S.shape[0], 0), np.int64)
        top = np.argpartition(-S, kk - 1, axis=1)[:, :kk] if kk < S.shape[1] else np.tile(np.arange(S.shape[1]), (S.shape[0], 1))
        vals = np.take_along_axis(S, top, 1)
        order = np.argsort(-vals, axis=1, kind="stable")
        top = np.take_along_axis(top, order, 1)
        if (n_allowed < kk).any():  # callers slice per row with `n_allowed`
            top = np.where(np.arange(kk)[None, :] < n_allowed[:, None], top, -1)
        return top

    # ------------------------------------------------------------------ one reader
    def history_row(self, history, now: float | None = None):
        return history_rows(history, self.n_items, now=now if now is not None else self.now, config=self.conf_config)

    def score_history(self, history, strategy: str = "hybrid", now: float | None = None) -> np.ndarray:
        """Scores over all papers for one reader's history [(paper index, kind, ts), ...]."""
        row, _ = self.history_row(history, now)
        return self.score_rows(row, strategy)[0]

    def recommend(self, history, k: int = 20, strategy: str = "hybrid", exclude_seen: bool = True,
                  candidates=None, now: float | None = None, with_reasons: bool = True) -> list[Recommendation]:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
        row, seen = self.history_row(history, now)
        one = self.one_reader()
        h = OneHistory.from_row(row, seen)
        S, z = one.scores(h, strategy)
        top = one.top_k(S, k, h.seen if exclude_seen else np.zeros(0, np.int64),
                        None if candidates is None else np.asarray(candidates, np.int64))
        verbs = {}
        for item in history or []:
            kind = str(item[1]).lower() if len(item) > 1 else "read"
            verb = {"upvote": "upvoted", "read": "read", "click": "opened"}.get(kind)
            rank = {"upvoted": 3, "read": 2, "opened": 1}
            if verb and rank[verb] > rank.get(verbs.get(int(item[0])), 0):
                verbs[int(item[0])] = verb
        reasons = self.reasons(row, top, strategy, verbs, z) if with_reasons else [""] * len(top)
        return [Recommendation(int(j), float(S[j]), r) for j, r in zip(top, reasons)]

    def reasons(self, row: sp.csr_matrix, items: np.ndarray, strategy: str = "hybrid",
                verbs: dict[int, str] | None = None, z: dict[str, np.ndarray] | None = None) -> list[str]:
        """A short reason per recommended item, from its largest blend contribution.
        `z`: the reader's standardised features when the caller has them (hybrid)."""
        items = np.asarray(items, np.int64)
        if len(items) == 0:
            return []
        one = self.one_reader()
        hist = row.indices
        if len(hist) == 0 or strategy == "popular":
            return [one.trending_reason(int(j)) for j in items]
        if strategy == "content":
            kinds = ["content"] * len(items)
        elif strategy == "collaborative":
            kinds = ["collab"] * len(items)
        else:
            if z is None:
                z = one.features(OneHistory.from_row(row, np.zeros(0, np.int64)))
            z = {f: S[0, items] for f, S in z.items()}
            contrib = self.blender.contributions(z, self.comps.cold_mask[items], float(history_scale([len(hist)])[0]))
            best = np.argmax(np.stack([contrib[f] for f in FEATURES]), axis=0)  # first on ties
            kind_of = {"tfidf": "content", "dense": "content", "cf": "collab", "graph": "collab", "ease": "collab"}
            kinds = [kind_of.get(FEATURES[b], "trend") for b in best]
        content = [n for n, kind in enumerate(kinds) if kind == "content"]
        if content:  # only the papers explained by content need their similarities
            sims = np.asarray((self.X[items[content]] @ self.X[hist].T).toarray())  # (., |hist|)
            best_hist = hist[np.argmax(sims * row.data[None, :], axis=1)]
        out = []
        for n, j in enumerate(items):
            if kinds[n] == "content":
                h = best_hist[content.index(n)]
                verb = (verbs or {}).get(int(h), "read")
                out.append(f"similar to \"{_short(self.titles[h])}\" you {verb}")
            elif kinds[n] == "collab":
                out.append("popular with readers like you")
            else:
                out.append(one.trending_reason(int(j)))
        return out

    def _trending_reason(self, j: int) -> str:
        terms = self.encoder.top_terms(self.V[j], n=3) if self.encoder is not None else []
        return f"trending in {', '.join(terms)}" if terms else "trending"

    # ------------------------------------------------------------------ new papers
    def add_paper(self, title: str, abstract: str | None = None, upvotes: float = 0.0) -> int:
        """Make a new paper recommendable at once from its text; returns its index."""
        return int(self.add_papers([(title, abstract, upvotes)])[0])

    def add_papers(self, papers: list[tuple]) -> np.ndarray:
        """Make new papers [(title, abstract, upvotes), ...] recommendable at once from their
        text; returns their indices. A batch is encoded, searched for content neighbours and
        mapped into the factor space in one pass: the map's cost (every thin paper's mapped
        factors) is paid once per batch, not once per paper."""
        m = len(papers)
        n0 = self.n_items
        if m == 0:
            return np.zeros(0, np.int64)
        self._one_reader = None  # its precomputations describe the catalog before these papers
        texts = [paper_text(p[0], p[1] if len(p) > 1 else None) for p in papers]
        x = self.encoder.tfidf(texts)
        self.X = sp.vstack([self.X, x]).tocsr()
        self.V = np.vstack([self.V, self.encoder.encode_tfidf(x)])
        lengths = text_lengths(texts)
        self.lengths = np.r_[self.lengths, lengths]
        self.titles.extend(p[0] or "" for p in papers)
        c = self.comps
        c.pop.add_items(x, lengths)
        upvotes = np.asarray([float(p[2] or 0.0) if len(p) > 2 else 0.0 for p in papers], np.float64)
        given = upvotes != 0
        c.pop.observed[n0:][given] = np.log1p(np.maximum(0.0, upvotes[given])).astype(np.float32)
        if c.cf is not None:
            c.cold.add_items(x, self.X)
            f = c.cf.item_factors
            if c.text_rows is not None and c.cf.side_factors is not None:
                own = c.cf.fold_in_items(c.text_rows.columns(x))  # what ALS would give their words
            else:
                own = np.zeros((m, f.shape[1]), f.dtype)
            padded = np.vstack([f, own]).astype(f.dtype)
            mapped = c.cold.mapped_factors(padded, self.V)[-m:]
            w = c.cold.factor_weight()[-m:][:, None]
            effective = (w * own + (1.0 - w) * mapped).astype(f.dtype)
            padded[n0:] = effective
            c.cf.item_factors = padded
            c.cf.reset_cache()
            c.item_factors = np.vstack([c.item_factors, effective])
            c.graph.add_items(m)
            if c.ease is not None:
                c.ease.add_items(m)
        return np.arange(n0, n0 + m, dtype=np.int64)

    # ------------------------------------------------------------------ persistence
    def to_arrays(self) -> dict[str, np.ndarray]:
        a = dict(self.encoder.to_arrays())
        a.update({"X_data": self.X.data, "X_indices": self.X.indices.astype(np.int32),
                  "X_indptr": self.X.indptr.astype(np.int64), "V": self.V, "lengths": self.lengths,
                  "titles": np.asarray(self.titles, dtype=np.str_)})
        c = self.comps
        a.update(c.pop.to_arrays())
        if c.cf is not None:
            a.update(c.cf.to_arrays())
            a.update(c.graph.to_arrays())
            a.update(c.cold.to_arrays())
            a["cf_effective_factors"] = c.item_factors
            if c.text_rows is not None:
                a.update(c.text_rows.to_arrays())
            if c.ease is not None:
                a.update(c.ease.to_arrays())
        a.update(self.blender.to_arrays())
        return a

    def manifest(self) -> dict:
        c = self.comps
        return {
            "kind": "paperrec.hybrid", "format_version": FORMAT_VERSION,
            "n_items": self.n_items, "n_terms": len(self.encoder.terms), "content_dim": self.encoder.dim,
            "now": self.now, "config": self.config.to_dict(), "confidence": self.conf_config.to_dict(),
            "popularity": self.pop_config.to_dict(),
            "collaborative": None if c.cf is None else c.cf.params.to_dict(),
            "graph": None if c.graph is None else {"alpha": c.graph.alpha, "beta": c.graph.beta, "top_k": c.graph.top_k},
            "cold_start": None if c.cold is None else c.cold.params(),
            "ease": None if c.ease is None else c.ease.params(),
            "text_rows": None if c.text_rows is None else c.text_rows.params(),
            "blend": {"learned": self.blender.learned, "info": self.blender.info,
                      "coefficients": self.blender.coefficients()},
            "stats": self.stats,
        }

    @classmethod
    def from_arrays(cls, arrays, manifest: dict) -> "HybridModel":
        if manifest.get("kind") != "paperrec.hybrid":
            raise ValueError(f"not a hybrid model manifest (kind={manifest.get('kind')!r})")
        if int(manifest.get("format_version", -1)) != FORMAT_VERSION:
            raise ValueError(f"unsupported model format_version {manifest.get('format_version')!r}")
        n = int(manifest["n_items"])
        encoder = ContentEncoder.from_arrays(arrays)
        X = sp.csr_matrix((np.asarray(arrays["X_data"], np.float32), np.asarray(arrays["X_indices"], np.int32),
                           np.asarray(arrays["X_indptr"], np.int64)), shape=(n, len(encoder.terms)))
        V = np.asarray(arrays["V"], np.float32)
        if V.shape != (n, encoder.dim) or len(arrays["titles"]) != n:
            raise ValueError("model arrays do not match the manifest (item count / content dim)")
        pop = Popularity.from_arrays(arrays)
        if manifest.get("collaborative"):
            cf = CollaborativeModel.from_arrays(arrays, manifest["collaborative"])
            graph = ItemGraph.from_arrays(arrays, manifest["graph"])
            cold = ColdStartMap.from_arrays(arrays, manifest["cold_start"])
            ease = EaseModel.from_arrays(arrays, manifest["ease"]) if manifest.get("ease") else None
            text_rows = TextRows.from_arrays(arrays, manifest["text_rows"]) if manifest.get("text_rows") else None
            if (text_rows is None) != (cf.side_factors is None) or (
                    text_rows is not None and cf.side_factors.shape != (len(text_rows.terms), cf.factors)):
                raise ValueError("the word rows of the collaborative model do not match its factors")
            comps = _Collab(cf, graph, cold, pop, np.asarray(arrays["cf_effective_factors"], np.float32), ease,
                            text_rows)
            if cf.item_factors.shape[0] != n or graph.n_items != n or (ease is not None and ease.n_items != n):
                raise ValueError("collaborative arrays do not match the manifest item count")
        else:
            comps = _Collab(None, None, None, pop, None)
        blender = Blender.from_arrays(arrays, manifest.get("blend", {}))
        return cls(encoder, X, V, np.asarray(arrays["lengths"], np.float32), [str(t) for t in arrays["titles"]],
                   comps, blender, HybridConfig.from_dict(manifest.get("config", {})),
                   ConfidenceConfig.from_dict(manifest.get("confidence", {})), manifest.get("now"),
                   manifest.get("stats", {}), PopularityConfig.from_dict(manifest.get("popularity")))


def _short(title: str, n: int = 60) -> str:
    title = " ".join((title or "").split())
    return title if len(title) <= n else title[: n - 1] + "…"
