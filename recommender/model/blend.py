"""The learned blend: a logistic regression over per-reader standardised component scores.

Each component score (collaborative factors, item graph, EASE, TF-IDF profile, dense
profile, observed popularity, popularity predicted from text, and where events have times
EASE over the reading's order, from the reader's whole history, from their latest papers
and the best of the windows of their reading: `reading_order.py`) is z-scored across papers for each
reader, so a weight means the same thing for every reader. The regression sees every
feature twice -- once for papers with readers and once for papers without (the cold
regime, where "collaborative" means the content-mapped position) -- and each of those
also multiplied by log(1 + history length), so that readers with one saved paper and
readers with two hundred get different mixes. It is fit on held-out positives vs sampled
negatives from a validation slice (see `hybrid.py`), pairwise: on differences
x(positive) - x(negative), so it learns an ordering, not a calibrated probability; the ranking it induces is the linear
score w . x, computed without materialising the expanded features.

When the training data cannot supply a validation slice (e.g. every reader has a single
paper) nothing in it can say how to weigh text against popularity, so the blend falls back
to `PRIOR`: a fusion of the z-scored signals that do not need co-readers, content first
(both text profiles at weight 1) with popularity (observed and text-predicted) at half
that, so that a reader's own upvotes still move their list; no weight on the
collaborative signals, which have nothing to learn from when no reader has two papers,
and none on observed popularity for a paper nobody has read yet (so new papers surface).
These are product defaults, not fitted to any evaluation split.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recommender.core.ranking import ROW_BLOCK_CELLS, pool_ndcg
from recommender.core.threads import side_by_side
from recommender.model.freshness import Freshness
from recommender.model.top_reach import LineSearch

FEATURES = ("cf", "graph", "ease", "tfidf", "dense", "pop", "pop_text", "order", "latest", "windows")
PRIOR = {"cf": 0.0, "graph": 0.0, "ease": 0.0, "tfidf": 1.0, "dense": 1.0, "pop": 0.5, "pop_text": 0.5, "order": 0.0, "latest": 0.0, "windows": 0.0}
# how far above chance popularity's readers-out hit rate (`popularity.readers_out_hit_rate`)
# may be with PRIOR's weights; beyond it, both popularity weights grow in proportion
# (`prior_pop_scale`)
PRIOR_HIT_RATE = 0.01


PERSONAL = ("cf", "graph", "ease", "tfidf", "dense", "order", "latest", "windows")
# each restart of the blend's ascent searches this share of the validation readers
RESTART_SHARE = 0.5
# history lengths the blend must stay sensible over: one paper to a thousand
H_RANGE = (float(np.log1p(1.0)), float(np.log1p(1000.0)))


def personal_ok(W: np.ndarray, h_range=H_RANGE) -> bool:
    """Every personal signal (collaborative, graph, both text profiles) weighs >= 0 in both
    regimes for every history length in `h_range`: more similarity to what a reader chose
    never lowers a paper. Without this, a blend learned on a small validation slice could
    extrapolate to negative content weight for readers longer than those it saw (measured on
    a 160-reader synthetic catalog: top-20 share of an upvoted topic 0.45 against 0.75 for
    each component alone)."""
    for j in map(FEATURES.index, PERSONAL):
        for a, b in ((W[4 * j], W[4 * j + 1]), (W[4 * j + 2], W[4 * j + 3])):
            if a + b * h_range[0] < -1e-6 or a + b * h_range[1] < -1e-6:
                return False
    return True


def make_personal_ok(W: np.ndarray, h_range=H_RANGE) -> np.ndarray:
    """The nearest weights (per signal and regime) that pass `personal_ok`: the weight line
    a + b h through its values at both ends of `h_range`, each clipped at zero."""
    W = np.array(W, dtype=np.float32, copy=True)
    lo, hi = h_range
    for j in map(FEATURES.index, PERSONAL):
        for s in (4 * j, 4 * j + 2):
            a, b = float(W[s]), float(W[s + 1])
            v_lo, v_hi = max(a + b * lo, 0.0), max(a + b * hi, 0.0)
            b = (v_hi - v_lo) / (hi - lo)
            W[s], W[s + 1] = v_lo - b * lo, b
    return W


def zscore_rows(S: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Each row minus its mean, over its standard deviation (0 where a row is constant).

    The same float32 operations as `(S - S.mean(1)) / S.std(1)` in numpy (a test holds them
    to the bit), in fewer passes over the B x n array: the deviations are computed once and
    divided in place. Ranking a batch z-scores seven such arrays, and this was a third of
    `score_batch`'s time. A row broadcast down the batch (popularity: the same for every
    reader) is standardised once and broadcast back. `out`: where the result goes (S itself
    when the caller owns S, or a slice of the caller's array), instead of a new array.

    The squared deviations are summed a block of rows at a time (each row is reduced on its
    own, so the sums are the same bits): a whole batch's squares were a second B x n array
    of fresh memory a call."""
    S = np.asarray(S, dtype=np.float32)
    if S.ndim == 2 and S.shape[0] > 1 and S.strides[0] == 0:
        Z = np.broadcast_to(zscore_rows(S[:1]), S.shape)
        if out is None:
            return Z
        out[...] = Z
        return out
    n = np.intp(S.shape[1])
    mu = np.add.reduce(S, axis=1, keepdims=True)
    np.true_divide(mu, n, out=mu, casting="unsafe")
    D = np.subtract(S, mu, out=out)
    if D.ndim == 2 and D.flags.c_contiguous and D.size > ROW_BLOCK_CELLS:
        var = np.empty((D.shape[0], 1), np.float32)
        step = max(1, ROW_BLOCK_CELLS // max(1, D.shape[1]))
        for a in range(0, D.shape[0], step):
            var[a:a + step] = np.add.reduce(np.square(D[a:a + step]), axis=1, keepdims=True)
    else:
        var = np.add.reduce(np.square(D), axis=1, keepdims=True)
    np.true_divide(var, n, out=var, casting="unsafe")
    sd = np.sqrt(var, out=var)
    ok = sd > 1e-12
    np.divide(D, sd, out=D, where=ok)
    if not ok.all():
        D[~ok[:, 0]] = 0.0
    return D


def own_rows(S: np.ndarray) -> np.ndarray | None:
    """S itself as `zscore_rows`'s `out` where it is a plain writable float32 batch (a
    component's fresh scores the caller will not read again), else None (a new array)."""
    ok = (isinstance(S, np.ndarray) and S.dtype == np.float32 and S.ndim == 2 and S.flags.writeable
          and S.flags.c_contiguous and S.strides[0] != 0)
    return S if ok else None


def _zero_row_broadcast(Z: np.ndarray) -> bool:
    """Whether Z is one all-zero row broadcast down the batch (a component left out)."""
    return Z.ndim == 2 and Z.shape[0] > 1 and Z.strides[0] == 0 and not Z[0].any()


def history_scale(hist_len: np.ndarray) -> np.ndarray:
    return np.log1p(np.asarray(hist_len, dtype=np.float32))


def expanded_names() -> list[str]:
    names = []
    for f in FEATURES:
        names += [f"{f}:warm", f"{f}:warm*h", f"{f}:cold", f"{f}:cold*h"]
    return names + ["cold", "cold*h"]


def expand(z: dict[str, np.ndarray], cold: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Row-aligned samples: z[f] (m,), cold (m,) bool, h (m,) -> (m, n_expanded)."""
    c = cold.astype(np.float32)
    w = 1.0 - c
    cols = []
    for f in FEATURES:
        x = z[f]
        cols += [x * w, x * w * h, x * c, x * c * h]
    cols += [c, c * h]
    return np.stack(cols, axis=1).astype(np.float32)


def prior_pop_scale(hit_rate: float, n_items: int, k: int = 20) -> float:
    """How much `PRIOR`'s popularity weights are multiplied by, given how often popularity
    alone finds held-out readers' papers in its top k (`popularity.readers_out_hit_rate`):
    1 until that rate is `PRIOR_HIT_RATE` above chance (k / n_items, what any k papers find
    in a catalog that small), then in proportion.

    Why: `PRIOR` weighs the text profiles and factors at 1 and popularity at 0.5, set where
    popularity is weak (CiteULike-a's one-paper readers: it finds 1.3% of held-out readers'
    papers, and NDCG@20 is 0.027 for popularity against 0.108 for the text). On MovieLens
    with one film a reader, popularity finds 8.9% and scores 0.255 while that prior scored
    0.082: the data had said popularity was that much stronger. Measured NDCG@20 of the
    prior with popularity's weights multiplied by 1 / 2 / 4 / 8 / 16, one paper a reader:
    CiteULike-a 0.1203 / 0.1214 / 0.1015 / 0.0489 / 0.0337 (hit rate 1.3%, chance 0.1%); 800
    of its readers and their papers 0.1417 / 0.1222 / 0.0371 / 0.0126 / 0.0119 (0.6%, below
    the chance of 2.5%); MovieLens 0.0815 / 0.1401 / 0.2507 / 0.2757 / 0.2714 (8.9%, 0.2%);
    250 of its readers 0.0666 / 0.1330 / 0.1977 / 0.2028 / 0.2021 (7.7%). The scale this
    rule gives is near the best of each: 1.2, 1, 8.7, 7.5. It is a product default, like
    `PRIOR`: nothing in such data can check the text."""
    chance = min(1.0, k / max(int(n_items), 1))
    return float(max(1.0, (hit_rate - chance) / PRIOR_HIT_RATE))


@dataclass
class Blender:
    weights: np.ndarray  # (n_expanded,)
    learned: bool
    info: dict
    # a paper's age as a signal beside the weights (freshness.py); off unless learnt
    freshness: Freshness = field(default_factory=Freshness)

    @classmethod
    def prior(cls, reason: str = "no validation slice", words: bool = False, text: bool = True,
              pop_scale: float = 1.0) -> "Blender":
        """`PRIOR`; with `words` (ALS factorised the papers' words too, text_rows.py) the
        collaborative factors are one more signal that needs no co-readers, and weigh what
        the text profiles weigh. Without `text` (no term the papers share: `relates_papers`)
        the collaborative factors alone: the text profiles and text-predicted popularity
        would rank by noise (40 readers, titles that are ids: 0.1329 NDCG@20 with them,
        0.3795 for `collaborative`). `pop_scale` multiplies both popularity weights of the
        text branches (`prior_pop_scale`)."""
        if not text:
            weights = {f: (1.0 if f == "cf" else 0.0) for f in FEATURES}
        else:
            weights = dict(PRIOR, cf=PRIOR["tfidf"]) if words else dict(PRIOR)
            for f in ("pop", "pop_text"):
                weights[f] *= float(pop_scale)
        w = []
        for f in FEATURES:  # a paper nobody has read has no observed popularity to weigh
            w += [weights[f], 0.0, 0.0 if f == "pop" else weights[f], 0.0]
        info = {"reason": reason} if pop_scale == 1.0 else {"reason": reason, "pop_scale": round(float(pop_scale), 3)}
        return cls(np.asarray(w + [0.0, 0.0], np.float32), False, info)

    @classmethod
    def fit(cls, Xs: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None,
            C: float = 1.0, seed: int = 0, fit_intercept: bool = True, absent: tuple = ()) -> "Blender":
        """The pairwise logistic regression on expanded samples `Xs` (`expand`). `absent`:
        features the model does not have; their columns (all zero) stay out of the solve
        and weigh 0. The weight of a zero column is 0 at the optimum anyway, but lbfgs's
        arithmetic over more columns moves the others' last bits, and a data set without
        a signal should get the blend it got before that signal existed."""
        from sklearn.linear_model import LogisticRegression

        names = expanded_names()
        used = np.array([n.split(":")[0] not in absent for n in names])
        lr = LogisticRegression(C=C, max_iter=1000, random_state=seed, fit_intercept=fit_intercept)
        lr.fit(Xs[:, used], y, sample_weight=sample_weight)
        weights = np.zeros(len(names), np.float32)
        weights[used] = lr.coef_.ravel()
        return cls(weights, True, {"samples": int(len(y)), "positives": int(y.sum()), "C": C})

    def coefficients(self) -> dict[str, float]:
        return {n: float(w) for n, w in zip(expanded_names(), self.weights)}

    def combine(self, z: dict[str, np.ndarray], cold: np.ndarray, h: np.ndarray) -> np.ndarray:
        """z[f]: (B, n) standardised scores; cold: (n,) bool; h: (B,) history scale.

        Each paper's weight is its regime's, (warm) (1 - c) + (cold) c with c 0 or 1: every
        feature is multiplied by the reader's warm weight, and the few papers nobody has read
        get theirs after. The same float32 products as the formula (a test holds them to the
        bit), without a (B, n) array of weights per feature: 500 readers x 16,980 papers,
        0.27 -> 0.12 s a batch, 0.35 -> 0.21 ms one reader."""
        W = self.weights
        cold_cols = np.nonzero(np.asarray(cold, bool))[0]
        h = np.asarray(h, np.float32)[:, None]
        out = term = None
        for j, f in enumerate(FEATURES):
            Z = z[f]
            if _zero_row_broadcast(Z):  # a component the model does not have adds nothing
                continue
            ww, wwh, wc, wch = W[4 * j: 4 * j + 4]
            term = np.multiply(Z, ww + wwh * h, out=None if out is None else term)
            if len(cold_cols):
                term[:, cold_cols] = Z[:, cold_cols] * (wc + wch * h)
            if out is None:
                out, term = term, np.empty_like(term)
            else:
                out += term
        if out is None:
            out = np.zeros((h.shape[0], len(cold)), np.float32)
        if len(cold_cols):
            out[:, cold_cols] += W[-2] + W[-1] * h
        return out

    def contributions(self, z_row: dict[str, np.ndarray], cold: np.ndarray, h: float) -> dict[str, np.ndarray]:
        """Per-feature contribution for one reader over some papers (for reasons)."""
        W = self.weights
        c = cold.astype(np.float32)
        out = {}
        for j, f in enumerate(FEATURES):
            ww, wwh, wc, wch = W[4 * j: 4 * j + 4]
            out[f] = z_row[f] * ((ww + wwh * h) * (1 - c) + (wc + wch * h) * c)
        return out

    def to_arrays(self, prefix: str = "blend_") -> dict[str, np.ndarray]:
        return {f"{prefix}weights": self.weights}

    def manifest(self) -> dict:
        return {"learned": self.learned, "info": self.info, "coefficients": self.coefficients(),
                "freshness": self.freshness.to_dict()}

    @classmethod
    def from_arrays(cls, arrays, info: dict, prefix: str = "blend_", saved_features: int = len(FEATURES)) -> "Blender":
        """A saved blend of the first `saved_features` of `FEATURES` (a model of format 3 has
        all but `windows`): the later ones weigh 0, so it ranks as it did. Weights of any other
        length are kept as they are, for the model's own checks to refuse."""
        W = np.asarray(arrays[f"{prefix}weights"], np.float32)
        if saved_features < len(FEATURES) and len(W) == 4 * saved_features + 2:
            W = np.concatenate([W[:-2], np.zeros(4 * (len(FEATURES) - saved_features), np.float32), W[-2:]])
        return cls(W, bool(info.get("learned", True)),
                   dict(info.get("info", {})), Freshness.from_dict(info.get("freshness")))


@dataclass
class RankingTask:
    """Validation readers with a pool of candidate papers each (fixed width, padded).

    F: (U, P, n_features) standardised component scores; cold, valid, label: (U, P) bool;
    n_rel: (U,) number of held-out papers of the reader in this task (pool or not);
    h: (U,) history scale; age: (U, P) each slot's paper's age in days at the slice's time
    (NaN unknown), or None without publication times (`freshness.calibrate`)."""
    F: np.ndarray
    cold: np.ndarray
    valid: np.ndarray
    label: np.ndarray
    n_rel: np.ndarray
    h: np.ndarray
    age: np.ndarray | None = None

    def scores(self, W: np.ndarray) -> np.ndarray:
        c = self.cold.astype(np.float32)
        h = self.h[:, None]
        S = (W[-2] + W[-1] * h) * c
        for j in range(len(FEATURES)):
            ww, wwh, wc, wch = W[4 * j: 4 * j + 4]
            S = S + self.F[:, :, j] * ((ww + wwh * h) * (1.0 - c) + (wc + wch * h) * c)
        return np.where(self.valid, S, -np.inf)

    def ndcg(self, W: np.ndarray, k: int = 20) -> float:
        return _ndcg_from_scores(self, self.scores(W), k)

    def readers(self, idx: np.ndarray) -> "RankingTask":
        """The task over the readers `idx` only."""
        return RankingTask(self.F[idx], self.cold[idx], self.valid[idx], self.label[idx], self.n_rel[idx],
                           self.h[idx], None if self.age is None else self.age[idx])


def _column(t: RankingTask, j: int, by_feature: np.ndarray | None = None) -> np.ndarray:
    """The (U, P) expanded feature that weight j multiplies (same layout as `expand`).
    `by_feature`: t.F as (n_features, U, P), contiguous per feature (the ascent asks for
    every column of a task several times)."""
    c = t.cold.astype(np.float32)
    h = t.h[:, None]
    n = len(FEATURES)
    if j == 4 * n:
        return c
    if j == 4 * n + 1:
        return c * h
    f, slot = divmod(j, 4)
    x = t.F[:, :, f] if by_feature is None else by_feature[f]
    regime = (1.0 - c) if slot < 2 else c
    return x * regime * (h if slot % 2 else 1.0)


def per_reader_ndcg(t: RankingTask, S: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k of each of the task's readers ranked by S (pool slots, invalid ones never shown)."""
    return pool_ndcg(S, t.valid, t.label, t.n_rel, k)


def _ndcg_from_scores(t: RankingTask, S: np.ndarray, k: int) -> float:
    """Mean NDCG@k of the task's readers ranked by S."""
    return float(np.mean(per_reader_ndcg(t, S, k)))


def coordinate_ascent(tasks: list[RankingTask], W0: np.ndarray, passes: int = 2,
                      steps=(-1.0, -0.5, -0.25, 0.25, 0.5, 1.0), k: int = 20) -> tuple[np.ndarray, float, float]:
    """Maximise the mean validation NDCG@k over tasks by one-weight-at-a-time line search
    (Metzler & Croft's coordinate ascent for linear rankers) from the weights W0, moved
    inside `personal_ok` first; every step keeps it. Scores are updated incrementally per
    trial. Returns (weights, NDCG at the start, at the end); several starts are
    `restarted_ascent`'s."""
    tasks = [t for t in tasks if len(t.n_rel)]
    W = make_personal_ok(np.asarray(W0, np.float32))
    if not tasks:
        return W, 0.0, 0.0
    start = best = float(np.mean([t.ndcg(W, k) for t in tasks]))
    cur = [np.where(t.valid, t.scores(W), 0.0).astype(np.float32) for t in tasks]
    by_feature = [np.ascontiguousarray(np.moveaxis(t.F, 2, 0)) for t in tasks]
    for _ in range(passes):
        improved = False
        for j in range(len(W)):
            cols = [_column(t, j, F) for t, F in zip(tasks, by_feature)]
            if all(not np.any(c) for c in cols):
                continue
            scale = max(abs(float(W[j])), 0.1)
            # every trial below ranks only the slots that can reach a top k (`top_reach`)
            reach = scale * max(abs(s) for s in steps)
            lines = [LineSearch(S, c, t.valid, t.label, t.n_rel, reach, k) for t, S, c in zip(tasks, cur, cols)]
            best_delta = 0.0
            for s in steps:
                delta = s * scale
                trial = W.copy()
                trial[j] += delta
                if not personal_ok(trial):
                    continue
                val = float(np.mean([float(np.mean(line.ndcg(delta))) for line in lines]))
                if val > best + 1e-5:
                    best, best_delta = val, delta
            if best_delta:
                W = W.copy()
                W[j] += best_delta
                cur = [S + best_delta * c for S, c in zip(cur, cols)]
                improved = True
        if not improved:
            break
    return W, start, best


def restarted_ascent(tasks: list[RankingTask], starts: list, rng: np.random.Generator, passes: int = 2,
                     share: float = RESTART_SHARE, k: int = 20) -> tuple[np.ndarray, float, float, list[float]]:
    """Coordinate ascent from every start in turn, each on its own random `share` of every
    task's readers; the blend is the mean of where they end, each end scaled to unit L1
    norm first (a linear ranker's order does not depend on its scale) and the mean scaled
    back to the ends' mean norm (so the new-paper offset's shifts, `OFFSET_SHIFTS`, keep
    their size against the scores).

    Why not the best end, or one ascent from the best start (`coordinate_ascent`'s way, and
    RankLib's restarts): the ends score within 0.001 of each other on the validation slice,
    so the slice cannot choose among them, and on the test splits the choice moved NDCG@20
    by up to 0.01 (CiteULike-a warm, seeds 0 / 1 / 2: one ascent from the best start
    0.3161 / 0.3256 / 0.3224, seeds 0 and 2 stopping next to ALS alone). The mean of the
    ends is an ensemble of rankers each about as good on validation, and sits where they
    agree. Why half the readers each: the ends then differ by readers as well as by start
    (bagging), at half the cost of seven full ascents, and measured as good (CiteULike-a
    warm 0.3223 / 0.3255 / 0.3209 against 0.3225 / 0.3253 / 0.3226 with every reader; the
    means over three seeds on MovieLens warm and user-temporal within 0.0002 of each other;
    built, the benchmark's CiteULike-a warm is 0.3205 / 0.3263 / 0.3204, README "Offline
    quality"). The mean of ends that each pass `personal_ok` passes it too (the condition is linear).
    Returns (weights, NDCG of the best start, of the mean, and of each end), each on every
    reader of the tasks."""
    tasks = [t for t in tasks if len(t.n_rel)]
    if not tasks:
        return make_personal_ok(np.asarray(starts[0], np.float32)), 0.0, 0.0, []
    halves = [[np.sort(rng.choice(len(t.n_rel), max(1, int(round(share * len(t.n_rel)))), replace=False))
               for t in tasks] for _ in starts]

    def ascend(i: int) -> np.ndarray:
        return coordinate_ascent([t.readers(h) for t, h in zip(tasks, halves[i])], starts[i], passes=passes, k=k)[0]

    ends = list(side_by_side(ascend, range(len(starts))))
    kept = [(W, float(np.abs(W[:-2]).sum())) for W in ends]
    kept = [(W, n) for W, n in kept if n > 0]
    W = ends[0] if not kept else (np.mean([W / n for W, n in kept], axis=0) * np.mean([n for _, n in kept]))
    W = np.asarray(W, np.float32)
    before = max(float(np.mean([t.ndcg(make_personal_ok(np.asarray(w, np.float32)), k) for t in tasks]))
                 for w in starts)
    after = float(np.mean([t.ndcg(W, k) for t in tasks]))
    return W, before, after, [float(np.mean([t.ndcg(e, k) for t in tasks])) for e in ends]


# shifts tried for the new-paper offset: none, small to large either way, and "last resort"
OFFSET_SHIFTS = (0.0, *(-np.geomspace(0.05, 10.0, 12)), *np.geomspace(0.05, 10.0, 12), -100.0)


def calibrate_new_offset(task: RankingTask, W: np.ndarray, passes: int = 2, k: int = 20
                         ) -> tuple[np.ndarray, float, float]:
    """Set how new papers (no reader yet) rank against papers with readers: the offset
    weights ("cold", "cold*h") by line search on a task where both kinds compete.

    The ascent learns each regime's weights on papers of that regime only, where this
    offset moves nothing, and the regression learns it from a slice whose carved new
    papers hold a third of the held-out papers, far more than readers' next papers are new
    in most data: on MovieLens user-temporal (seed 1) 45% of every list was new papers and
    NDCG@20 fell to 0.074. `task` is the joint pool of `validation_samples`, whose new papers
    are those the data itself left unread. Returns (weights, NDCG before, after)."""
    W = np.array(W, dtype=np.float32, copy=True)
    if not len(task.n_rel) or not task.cold.any():
        return W, 0.0, 0.0
    c = task.cold.astype(np.float32)
    base = task.scores(W)
    start = _ndcg_from_scores(task, base, k)
    columns = {len(W) - 2: c, len(W) - 1: c * task.h[:, None]}
    _, best, moved = line_search(task, base, start, columns, lambda j, done: OFFSET_SHIFTS[1:], passes, k)
    for j, shift in moved.items():
        W[j] += np.float32(shift)
    return W, start, best


def line_search(task: RankingTask, S: np.ndarray, value: float, columns: dict, grid, passes: int,
                k: int) -> tuple[np.ndarray, float, dict]:
    """Coordinate ascent on the mean NDCG@k of `task`'s readers over scores S plus a step
    times each of `columns` ({name: (U, P) column}), one column at a time, `passes` times
    over them or until a pass gains nothing. `grid(name, moved)` is the steps tried for a
    column that has moved by `moved` so far (0 is passed over); a step is taken only where
    it beats the best so far by more than 1e-5. `value` is the NDCG of S. Returns (the
    scores, their NDCG, how far each column moved). The new-paper offset
    (`calibrate_new_offset`) and the papers' age (`freshness.calibrate`) are searched so."""
    moved = dict.fromkeys(columns, 0.0)
    for _ in range(passes):
        improved = False
        for name, col in columns.items():
            if not col.any():
                continue
            best_step = 0.0
            for step in grid(name, moved[name]):
                if step == 0.0:
                    continue
                v = _ndcg_from_scores(task, S + np.float32(step) * col, k)
                if v > value + 1e-5:
                    value, best_step = v, float(step)
            if best_step:
                moved[name] += best_step
                S = S + np.float32(best_step) * col
                improved = True
        if not improved:
            break
    return S, value, moved
