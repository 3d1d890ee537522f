"""The blend's validation data: the validation readers scored by the validation components,
turned into pairwise samples (the logistic regression) and candidate pools (the coordinate
ascent on NDCG@20), and the start points of that ascent."""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import scipy.sparse as sp

from recommender.core.ranking import argpartition_rows
from recommender.core.threads import in_threads
from recommender.model.blend import FEATURES, PERSONAL, RankingTask, expand, history_scale, zscore_rows
from recommender.model.components import Components, raw_features
from recommender.model.config import HybridConfig


def dense_mask(M: sp.csr_matrix) -> np.ndarray:
    """(B x n) bool of the stored positive entries of a few sparse rows."""
    out = np.zeros(M.shape, bool)
    r = np.repeat(np.arange(M.shape[0]), np.diff(M.indptr))
    out[r, M.indices] = M.data > 0
    return out


def validation_samples(X, V, comps: Components, C_fit: sp.csr_matrix, V_pos: sp.csr_matrix,
                        eligible: np.ndarray, config: HybridConfig, rng: np.random.Generator,
                        carved_new: np.ndarray | None = None, not_yet: np.ndarray | None = None,
                        ages=None, carved_in_joint: bool = False, reading=None, absent: tuple = ()):
    """Score the validation readers with the validation components, in batches sized so that
    no (batch x papers) array exceeds `config.dense_cells` (a 100,000-paper catalog gets
    batches of 100 readers, not 500), and keep only what the blend fit needs: pairwise
    samples for the logistic regression and each reader's candidate pool for the ascent.

    `carved_new`: the papers the slice made new on purpose (all their events held out),
    in the joint pool only with `carved_in_joint` (the slice made the most recently
    published papers new, as a feed meets them: `tuning.carve`);
    `not_yet`: papers published after the data's newest event, no reader's candidates;
    `ages`: readers -> each paper's age in days as those readers saw it (NaN unknown;
    `freshness.reader_ages`), carried into the pools for the freshness signal; `reading`: the
    readers of C_fit as the order features score them (`reading_order.reading_rows`), or None;
    `absent`: the features the components do not have, which propose no pool candidates.
    Besides the two regimes' pools ("warm": papers with readers; "cold": new papers among
    new papers) it returns a "joint" pool where papers with readers and new papers compete,
    the carved ones left out: there, new papers are only those the data itself leaves
    unread (no event, or every event held out), so their share of the readers' next papers
    is the data's own (`calibrate_new_offset`).

    Why the cold pool is the papers new to the slice that its readers read (the carved
    ones, and those whose every event the slice held out), not every paper the training
    data leaves unread: among those, the read ones were a few needles (MovieLens with a
    fifth of its films new: 247 carved among ~5,400 unread, most of which nobody ever
    liked), and the weights learnt to find them leaned on the genres; ranking new films
    among new films, the question a new-items split asks and what the cold weights decide
    in a list, it was the other way round. Measured, NDCG@20 on new papers ranked among
    themselves: MovieLens 0.1375 -> 0.1636 (`collaborative` 0.1610, `make bench-derived`
    set ml-cold); 800 CiteULike-a readers 0.3858 -> 0.3848. Tried: the carved papers alone
    (0.1654 and 0.3835, and their warm sets 0.003-0.005 lower: 0.2577 -> 0.2544, titles
    only 0.2027 -> 0.1978, against 0.2555 and 0.2021 with this pool); the carved papers and
    unread ones in the catalog's own proportion (0.1573 and 0.3834)."""
    n_items = C_fit.shape[1]
    cold = comps.cold_mask
    carved = np.isin(np.arange(n_items), np.asarray(carved_new if carved_new is not None else [], np.int64))
    joint = np.ones(n_items, bool) if carved_in_joint else (~cold | ~carved)
    # new papers are ranked among those the slice's readers read (see the docstring), not
    # among every paper the training data leaves unread
    read_in_slice = np.asarray(V_pos.sum(axis=0)).ravel() > 0
    new_pool = cold & (carved | read_in_slice) if carved.any() else cold
    batch = int(max(1, min(config.batch, config.dense_cells // max(n_items, 1))))
    rows_X, rows_y, rows_w = [], [], []
    pools: dict[str, list] = {}
    skip = tuple(FEATURES.index(f) for f in absent)
    # the readers' windows are several rows a reader through the windows' EASE: there its
    # list form (XᵀK) pays where it does for a holdout's readers (`in_list_form_for`)
    windows = reading.windows if reading is not None else None
    with (comps.order.in_list_form_for(windows) if comps.order is not None and windows is not None
          else nullcontext()):
        for s in range(0, len(eligible), batch):
            ub = eligible[s:s + batch]
            R = C_fit[ub]
            raw = raw_features(comps, X, V, R, reading.take(ub) if reading is not None else None)
            Fz = np.empty((len(FEATURES), len(ub), n_items), np.float32)
            for j, f in enumerate(FEATURES):
                S = raw.pop(f)
                if S.flags.c_contiguous or S.strides[0] == 0:
                    zscore_rows(S, out=Fz[j])
                else:  # column-major (the TF-IDF product): z-scored in its own order, as before, since
                    # its squares summed row-major would differ in the last bits
                    Fz[j] = zscore_rows(S)
            del raw
            h = history_scale(np.diff(R.indptr)).astype(np.float32)
            excl = dense_mask(R)
            if not_yet is not None:  # papers nobody could have read yet (hybrid.not_yet_published)
                excl |= not_yet[None, :]
            P = V_pos[ub]
            Pd = dense_mask(P)
            age = ages(ub) if ages is not None else None
            # ranking tasks: papers with readers among themselves, new papers among themselves,
            # and both together without the carved new papers (for the new papers' offset)
            for name, allowed in (("warm", ~cold), ("cold", new_pool), ("joint", joint)):
                pools.setdefault(name, []).append(pool_task(Fz, excl, Pd, cold, h, allowed, config.pool_per_feature,
                                                            age, skip))
            Xb, yb, wb = pair_samples(Fz, excl, Pd, P, cold, h, config, rng)
            rows_X.append(Xb)
            rows_y.append(yb)
            rows_w.append(wb)
    return rows_X, rows_y, rows_w, pools


# at most this share of the validation readers stand in for one-paper readers
MAX_STAND_IN_SHARE = 0.5


def one_paper_share(C: sp.csr_matrix) -> float:
    """The share of the readers with any paper in C who have exactly one."""
    lengths = np.diff(sp.csr_matrix(C).indptr)
    return float((lengths == 1).sum()) / max(int((lengths > 0).sum()), 1)


def stand_in_one_paper_readers(C_fit: sp.csr_matrix, V_pos: sp.csr_matrix, Cp_fit: sp.csr_matrix, share: float,
                                rng: np.random.Generator) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix, int]:
    """The slice with `share` of its validation readers (those with two papers or more left
    to fit on) made one-paper readers: one of their fit papers, drawn at random, stays; the
    others leave the fit matrices (C_fit and the popularity matrix Cp_fit) and join their
    held-out papers (V_pos). Returns the three matrices and how many readers were cut. At
    most `MAX_STAND_IN_SHARE` of them: where most readers have one paper, the readers with
    many are nearly all the co-reading the validation components learn from, and cutting
    70% of them (MovieLens, new films, 70% of readers at one film) left components so much
    weaker than the final fit's that the blend fell below `collaborative` (0.0758 against
    0.0816 NDCG@20); at half, 0.0867 (0.0842), with MovieLens 60% at one film 0.2910 ->
    0.2769 (`collaborative` 0.2636) and CiteULike-a 90% at one paper 0.1497 -> 0.1518.

    Why: a reader with one paper cannot hold one out, so none is ever a validation reader,
    and the blend learnt its weights (and their change with history length) from readers
    with many, then extrapolated to the rest. Cut in the slice, a stand-in is what a
    one-paper reader is to the final fit: one paper to be scored from, no other reading of
    theirs in any component, and everything else they read still to find. Measured before
    the cap, NDCG@20 (the data's one-paper readers in train, the others split 80/20): MovieLens with 60% of
    its readers at one film 0.2343 -> 0.2910 (`collaborative` 0.2673, `popular` 0.2465);
    CiteULike-a with 90% at one paper 0.1486 -> 0.1497 (`collaborative` 0.1404), with 60%
    0.2041 -> 0.2057. Tried first: the stand-ins scored from one paper while their other
    papers stayed in the components' fit (0.2661 and 0.1373: the components had learnt
    from each stand-in's own reading, so one paper found their held-out ones far more
    easily, 0.23 NDCG@20 on the slice against 0.14 on the test, and the blend trusted the
    item-to-item signals for one-paper readers more than the test bore out)."""
    hist = np.diff(C_fit.indptr)
    posn = np.diff(V_pos.indptr)
    candidates = np.flatnonzero((hist >= 2) & (posn > 0))
    n = int(round(min(share, MAX_STAND_IN_SHARE) * len(candidates)))
    if not n:
        return C_fit, V_pos, Cp_fit, 0
    chosen = np.zeros(C_fit.shape[0], bool)
    chosen[rng.choice(candidates, n, replace=False)] = True
    C_fit = sp.csr_matrix(C_fit, copy=True)
    row_of = np.repeat(np.arange(C_fit.shape[0]), np.diff(C_fit.indptr))
    kept_at = C_fit.indptr[:-1] + (rng.random(C_fit.shape[0]) * np.maximum(hist, 1)).astype(np.int64)
    moved = chosen[row_of] & (np.arange(C_fit.nnz) != kept_at[row_of])
    M = sp.csr_matrix((np.ones(int(moved.sum()), np.float32), (row_of[moved], C_fit.indices[moved])),
                      shape=C_fit.shape)
    C_fit.data[moved] = 0.0
    C_fit.eliminate_zeros()
    V_pos = sp.csr_matrix(V_pos + M)
    V_pos.data[:] = 1.0
    Cp_fit = sp.csr_matrix(Cp_fit - Cp_fit.multiply(M))
    Cp_fit.eliminate_zeros()
    return C_fit, V_pos, Cp_fit, n


def pair_samples(Fz: np.ndarray, excl: np.ndarray, Pd: np.ndarray, P: sp.csr_matrix, cold: np.ndarray,
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


def pool_task(Fz, excl, Pd, cold, h, allowed, per_feature, age: np.ndarray | None = None,
              skip: tuple = ()) -> RankingTask:
    """Each reader's candidate pool: the union of the top `per_feature` papers by every
    component (optionally only among `allowed` papers), and with `age` (readers x papers,
    days) each reader's `per_feature` most recently published. Fz is (features, readers, papers);
    `skip`: the indices of features the model does not have (all zero), which propose none:
    the top of a plane of ties is whichever papers the partition leaves first, and a
    partition of ties is slow (500 readers x 16,980 papers, 150 kept: 1.68 s against 0.22 s
    for distinct scores; CiteULike-a's features stage 20-23 s -> 9-10 s without its three).
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

    def smallest(key) -> np.ndarray:
        """Each reader's m smallest of `key(a, b)` (rows a..b, the searched columns), in
        argpartition's order, a block of rows at a time (the index array of a whole batch
        was fresh memory every call)."""
        if m <= 0:
            return np.zeros((B, 0), np.int64)
        return argpartition_rows(key, B, okc.shape[1], m, m)

    def best_of(f: int) -> np.ndarray:
        F = Fz[f] if cols is None else Fz[f][:, cols]
        top = smallest(lambda a, b: np.where(okc[a:b], -F[a:b], np.inf))
        return top if cols is None else cols[top]

    def newest(first: np.ndarray) -> np.ndarray:
        # the freshness signal's candidates: a paper it lifts must be in the pool to be weighed
        A = age if cols is None else age[:, cols]
        top = smallest(lambda a, b: np.where(okc[a:b] & np.isfinite(A[a:b]), A[a:b], np.inf))
        dated = np.isfinite(np.take_along_axis(A, top, 1)) & np.take_along_axis(okc, top, 1)
        top = top if cols is None else cols[top]
        # a reader with fewer dated candidates than m: the rest of the picks (no age, or not
        # allowed) repeat the reader's first candidate by the first component, and are dropped
        return np.where(dated, top, first[:, :1]) if top.shape[1] else top

    pools = in_threads(best_of, [f for f in range(nf) if f not in skip])  # one feature a thread: argpartition releases the GIL
    if age is not None and pools:
        pools.append(newest(pools[0]))
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
                       n_rel=rel.sum(1), h=np.asarray(h, np.float32),
                       age=None if age is None else np.take_along_axis(age, idx, 1))


def neutral_weights(only: str | None = None, absent: tuple = ()) -> np.ndarray:
    """Every personal signal (`blend.PERSONAL`) at weight 1 in both regimes, or `only` that
    one: the ascent also starts from each single signal, so among the ends it averages
    (blend.restarted_ascent) is one at least as good on validation as the best component
    alone. `absent`: signals left at 0 (ones the model does not have)."""
    W = np.zeros(4 * len(FEATURES) + 2, np.float32)
    for j, f in enumerate(FEATURES):
        if f in PERSONAL and f not in absent and (only is None or f == only):
            W[4 * j] = W[4 * j + 2] = 1.0
    return W


def share_warm_weights(W: np.ndarray) -> np.ndarray:
    """Cold-regime weights := warm-regime weights, without observed popularity or offset."""
    W = np.array(W, dtype=np.float32, copy=True)
    for j, f in enumerate(FEATURES):
        W[4 * j + 2: 4 * j + 4] = 0.0 if f == "pop" else W[4 * j: 4 * j + 2]
    W[-2:] = 0.0
    return W


def concat_tasks(parts: list[RankingTask]) -> RankingTask:
    """One task from per-batch parts (pools padded to the widest), readers with no held-out
    paper in the task dropped."""
    width = max(p.F.shape[1] for p in parts)

    def pad(a: np.ndarray) -> np.ndarray:
        extra = width - a.shape[1]
        return a if extra == 0 else np.pad(a, [(0, 0), (0, extra)] + [(0, 0)] * (a.ndim - 2))

    aged = all(p.age is not None for p in parts)
    t = RankingTask(*(np.concatenate([pad(getattr(p, a)) for p in parts]) for a in ("F", "cold", "valid", "label")),
                    np.concatenate([p.n_rel for p in parts]), np.concatenate([p.h for p in parts]),
                    np.concatenate([pad(p.age) for p in parts]) if aged else None)
    return t.readers(np.flatnonzero(t.n_rel > 0))
