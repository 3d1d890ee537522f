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

The pieces: config.py (HybridConfig), components.py (what is fit on one confidence matrix),
tuning.py (the validation slice and what is chosen on it), blend.py and blend_data.py (the
learned blend and its validation data), freshness.py (a paper's age, learnt beside the blend
where the catalog has publication times), one_reader.py (scoring one reader).
"""
from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from recommender.core import reasons
from recommender.core.kinds import strongest_interest
from recommender.core.papers import prior_upvotes
from recommender.core.ranking import top_k
from recommender.core.times import DAY_S
from recommender.core.threads import row_scores
from recommender.model import STRATEGIES
from recommender.model.blend import (FEATURES, PERSONAL, Blender, calibrate_new_offset, history_scale,
                                     prior_pop_scale, own_rows, restarted_ascent, zscore_rows)
from recommender.model.blend_data import (concat_tasks, neutral_weights, one_paper_share, share_warm_weights,
                                          stand_in_one_paper_readers, validation_samples)
from recommender.model.cold_start import ColdStartMap, NeighborCache
from recommender.model.collaborative import CollaborativeModel
from recommender.model.components import (Components, event_matrix, fit_components, latest_time, raw_features,
                                          words_for_als)
from recommender.model.config import HybridConfig, collab_params
from recommender.model.confidence import ConfidenceConfig, confidence_matrix, history_rows
from recommender.model.content import ContentEncoder, paper_text, relates_papers
from recommender.model.factors import choose_factors
from recommender.model.freshness import Freshness, calibrate as calibrate_freshness, reader_ages
from recommender.model.ease import (FactoredEase, covers_reading, fit_on_validation, fit as fit_ease,
                                    from_arrays as ease_from_arrays)
from recommender.model.item_graph import ItemGraph
from recommender.model.reading_order import ReadingRows, latest_of_history, reading_rows, windows_of_history
from recommender.model.one_reader import OneHistory, OneReaderScorer
from recommender.model.popularity import Popularity, readers_out_hit_rate, text_lengths
from recommender.model.profiles import tfidf_scores
from recommender.model.text_rows import TextRows
from recommender.model.tuning import (NO_DECAY, PopularityConfig, ValidationSlice, carve, choose,
                                      latest_pair_times, pair_keys, popularity_matrix, validation_ndcg)

__all__ = ["FORMAT_VERSION", "STRATEGIES", "HybridConfig", "HybridModel", "Recommendation"]

FORMAT_VERSION = 4  # 2: the blend has an EASE feature; 3: and the reading order's; 4: and the reader's windows
# a model of format 3 still loads: its blend weighs the `windows` feature 0 (`Blender.from_arrays`)
READABLE_FORMATS = (3, 4)
FEATURES_OF_FORMAT = {3: len(FEATURES) - 1, 4: len(FEATURES)}  # the blend's features saved


def config_of(manifest: dict, version: int) -> HybridConfig:
    """A saved model's settings; a format-3 model, saved before the `windows` feature, has
    it off, so it ranks as it did without paying for a feature it weighs 0."""
    config = HybridConfig.from_dict(manifest.get("config", {}))
    return replace(config, reading_windows=False) if version < 4 else config


@dataclass
class Recommendation:
    index: int
    score: float
    reason: str


def _progress(progress, msg: str):
    if progress is not None:
        progress(msg)


# the arrays of the reading order's EASE (`reading_order.py`) beside the first EASE's
ORDER_PREFIX = "order_"

# Publication times that came after more than this share of their papers' first readings
# are not publication times (a crawl or import date): `not_yet_published` leaves them out.
MAX_READ_BEFORE_PUBLISHED = 0.05


def not_yet_published(published, C: sp.csr_matrix, now: float | None,
                      first_read: np.ndarray | None = None) -> tuple[np.ndarray | None, str | None]:
    """Papers published after the newest event (`now`) that nobody has read: in an offline
    split whose catalog holds the papers of the test period, the papers the test asks about.
    Returns (that mask or None, why the times were not used or None).

    Why the blend must not see them: it learns how new papers rank against read ones (the
    new-paper offset, `blend.calibrate_new_offset`) from the slice's readers, and a paper
    that did not exist yet is a new paper none of them read. A live catalog has no such
    papers (a paper published after training arrives through `add_papers`), so counting
    them teaches the blend what no list will meet. Measured on `make bench-derived`'s
    feed (`cul800-feed`: 2,226 of 12,931 papers published after the cut, 80% of the test's
    readings): with them in the slice the offset was -0.47, 23% of each top 20 new papers
    and NDCG@20 0.2322; left out, +4.05, 77% and 0.3351. None without publication times or
    event times (the offline sets without them are unchanged).

    The times are trusted only if the papers were not read before them (`first_read`: each
    paper's first event time, NaN unread): a catalog stamped with the day it was crawled
    would otherwise hide every unread paper from the blend, which would then fill lists
    with papers nobody wants. A day's slack allows for dates without a time of day."""
    if published is None or now is None:
        return None, None
    published = np.asarray(published, np.float64)
    if published.shape != (C.shape[1],):
        raise ValueError(f"published: {published.shape[0]} times for {C.shape[1]} papers")
    if first_read is not None:
        why = publication_times_ignored(published, first_read)
        if why:
            return None, why
    unread = np.diff(sp.csc_matrix(C).indptr) == 0
    with np.errstate(invalid="ignore"):
        return unread & (published > now), None


def publication_times_ignored(published: np.ndarray, first_read: np.ndarray | None) -> str | None:
    """Why the catalog's publication times are not publication times, or None: more than
    `MAX_READ_BEFORE_PUBLISHED` of the read papers were first read (`first_read`, NaN
    unread) over a day before them (`not_yet_published`)."""
    if first_read is None:
        return None
    published = np.asarray(published, np.float64)
    known = np.isfinite(published) & np.isfinite(first_read)
    early = float(np.mean(first_read[known] < published[known] - 86400.0)) if known.any() else 0.0
    if early > MAX_READ_BEFORE_PUBLISHED:
        return f"{early:.0%} of the read papers were read before their publication time"
    return None


def first_reads(items, ts, n_items: int) -> np.ndarray | None:
    """Each paper's first event time (NaN for papers without a timed event), or None without times."""
    if ts is None:
        return None
    ts = np.asarray(ts, np.float64)
    first = np.full(n_items, np.inf)
    timed = np.isfinite(ts)
    np.minimum.at(first, np.asarray(items, np.int64)[timed], ts[timed])
    first[np.isinf(first)] = np.nan
    return first


def _published(arrays) -> np.ndarray | None:
    """The papers' publication times from a model's arrays (NaN unknown); None (all unknown)
    for a model written before models kept them."""
    if "published_ts" not in arrays:
        return None
    return np.where(np.asarray(arrays["published_known"], bool), np.asarray(arrays["published_ts"], np.float64),
                    np.nan)


class HybridModel:
    def __init__(self, encoder: ContentEncoder, X: sp.csr_matrix, V: np.ndarray, lengths: np.ndarray,
                 titles: list[str], comps: Components, blender: Blender, config: HybridConfig,
                 conf_config: ConfidenceConfig, now: float | None, stats: dict | None = None,
                 pop_config: PopularityConfig | None = None, published: np.ndarray | None = None):
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
        # each paper's publication time (unix seconds, NaN unknown): its age, for the blend's
        # freshness signal (freshness.py)
        self.published = (np.full(self.n_items, np.nan) if published is None
                          else np.asarray(published, np.float64).copy())
        if self.published.shape != (self.n_items,):
            raise ValueError(f"published: {self.published.shape[0]} times for {self.n_items} papers")

    # ------------------------------------------------------------------ fitting
    @property
    def n_items(self) -> int:
        return int(self.X.shape[0])

    @classmethod
    def fit(cls, texts: list[str], users, items, kinds=None, ts=None, n_users: int | None = None,
            titles: list[str] | None = None, prior_upvotes=None, now: float | None = None,
            config: HybridConfig | None = None, strategies=STRATEGIES, progress=None,
            published=None) -> "HybridModel":
        """Fit from paper texts (index = paper index) and event arrays. `published`: each
        paper's publication time (unix seconds, NaN unknown), if the catalog has them
        (`not_yet_published`).

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
        # publication times that are not (a crawl date) are used nowhere in the fit
        ignored = None
        if published is not None:
            ignored = publication_times_ignored(published, first_reads(items, ts, n_items))
        trusted = (published if published is not None and ts is not None and not ignored
                   and np.isfinite(np.asarray(published, np.float64)).any() else None)
        feed = None
        if trusted is not None and config.reading_order:
            # a feed's next readings are mostly papers nobody has read yet, which the order
            # of past reading cannot rank (reading_order.py: a generated feed's hit rate at
            # 10, 0.180 without the windows' feature, 0.135 with it)
            config = replace(config, reading_order=False)
            feed = {"left_out": "the catalog's publication times make it a feed"}
        config, conf_config, pop_config, vslice, tuning = cls._choose_settings(
            users, items, kinds, ts, n_users, n_items, now, config, strategies, progress, text=X,
            published=trusted)
        timings["tuning_s"] = time.perf_counter() - t
        C, n_users, now = event_matrix(users, items, kinds, ts, n_users, n_items, now, conf_config)
        Cp = popularity_matrix(users, items, kinds, ts, C.shape, now, pop_config)
        stats: dict = {"n_items": n_items, "n_users": n_users, "n_events": int(len(users)),
                       "nnz": int(C.nnz), "tuning": tuning}

        blender = Blender.prior("hybrid not fit")
        start, neighbors = None, None
        if "hybrid" in strategies:
            t = time.perf_counter()
            not_yet, _ = not_yet_published(trusted, C, now)
            events = (trusted, users, items, ts, now) if trusted is not None and now is not None else None
            blender, vstats, vcomps, neighbors = cls._fit_blend(C, Cp, vslice, X, V, lengths, prior_upvotes,
                                                                config, progress, not_yet, events,
                                                                (users, items, ts))
            if ignored:
                vstats["publication_times_ignored"] = ignored
            stats["validation"] = vstats
            sizes = vstats.get("als_factors") or {}
            if sizes.get("chosen") is not None and sizes["chosen"] != sizes["rule"]:
                config = replace(config, factors=int(sizes["chosen"]))
            if vstats.get("ease_lambda") is not None:
                config = replace(config, ease=True, ease_lambda=float(vstats["ease_lambda"]),
                                 ease_words=float(vstats["ease_words"]))
            elif config.ease is None:
                config = replace(config, ease=False)
            timings["blend_s"] = time.perf_counter() - t
            if vcomps is not None and vcomps.cf is not None and vcomps.cf.params.algorithm == "als":
                start = vcomps.cf
            del vcomps
        _progress(progress, "final components")
        t = time.perf_counter()
        sweeps = config.refine_sweeps if start is not None else None
        comps = fit_components(C, Cp, X, V, lengths, prior_upvotes, config, collab=collab, start=start,
                               sweeps=sweeps, neighbors=neighbors, events=(users, items, ts))
        if comps.cf is not None:
            stats["reading_order"] = feed or comps.order_info
        stats["als_sweeps"] = {"validation": stats.get("validation", {}).get("als_sweeps"), "final": sweeps}
        timings["components_s"] = time.perf_counter() - t
        timings["total_s"] = time.perf_counter() - t0
        stats["timings"] = timings
        return cls(encoder, X, V, lengths, titles if titles is not None else list(texts), comps, blender,
                   config, conf_config, now, stats, pop_config, published)

    @staticmethod
    def _choose_settings(users, items, kinds, ts, n_users, n_items, now, config: HybridConfig, strategies,
                         progress=None, text: sp.csr_matrix | None = None, published=None):
        """The validation slice and what is chosen on it (`tuning.py`): returns (config with
        the chosen ALS settings filled in, confidence config, popularity config, the slice,
        the record for the manifest). Settings the config fixes are kept as they are."""
        users = np.asarray(users, np.int64)
        items = np.asarray(items, np.int64)
        n_users = int(n_users if n_users is not None else (users.max() + 1 if len(users) else 0))
        now = latest_time(ts) if now is None else now
        fixed_conf = None
        if config.half_life_days is not None:
            fixed_conf = ConfidenceConfig(half_life_days=config.half_life_days,
                                          decay_from=config.decay_from or "newest", repeats=config.repeats or "sum")
        fixed_pop = PopularityConfig.from_dict(config.popularity) if config.popularity is not None else None
        C0, _ = confidence_matrix(users, items, kinds, ts, (n_users, n_items), now=now, config=NO_DECAY)
        rng = np.random.default_rng(config.seed)
        pair_time = None
        if ts is not None:
            keys, last = latest_pair_times(users, items, ts, n_items)
            where = np.searchsorted(keys, pair_keys(C0))
            pair_time = last[np.minimum(where, len(last) - 1)] if len(last) else np.zeros(0)
        vslice = carve(C0, pair_time, config.val_item_frac, config.val_user_frac, rng,
                       latest_share=config.val_latest_share, published=published)
        wanted = any(s in strategies for s in ("popular", "collaborative", "hybrid"))
        if not wanted or (fixed_conf is not None and config.repeats is not None and fixed_pop is not None
                          and config.als_alpha is not None
                          and config.als_regularization is not None and config.graph_alpha is not None
                          and config.graph_beta is not None and config.text_weight is not None):
            return (config, fixed_conf or NO_DECAY, fixed_pop or PopularityConfig(), vslice,
                    {"searched": False, "slice": vslice.stats()})
        _progress(progress, "validation: choosing decay, ALS settings, popularity")
        fixed = {"half_life_days": config.half_life_days, "decay_from": config.decay_from, "repeats": config.repeats,
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
        # a decay the config fixes stays; how repeats add up is the search's
        confidence = (choice.confidence if fixed_conf is None
                      else replace(fixed_conf, repeats=choice.confidence.repeats))
        return (config, confidence, fixed_pop or choice.popularity, vslice, record)

    def refit(self, users, items, kinds=None, ts=None, n_users: int | None = None, prior_upvotes=None,
              now: float | None = None, neighbors: NeighborCache | None = None,
              published=None) -> "HybridModel":
        """The same model on more events: components refit on the new confidence matrix,
        ALS continuing from this model's factors for `config.refine_sweeps` sweeps; the
        content encoder and the learned blend are kept (the papers are the same, and the blend
        was learned on a held-out slice, which is what it is for). The nightly job uses this
        to turn the candidate it checked on the recent slice into the model it promotes,
        instead of a second fit from scratch. `neighbors`: content-neighbour candidates
        shared with another refit (`refit_neighbors`); `published`: the papers' publication
        times as the catalog has them now (the model's own when None)."""
        t0 = time.perf_counter()
        C, n_users, now = event_matrix(users, items, kinds, ts, n_users, self.n_items, now, self.conf_config)
        Cp = popularity_matrix(users, items, kinds, ts, C.shape, now, self.pop_config)
        cf = self.comps.cf
        # the model's capacity is part of what is kept: factors that followed the grown data
        # (collab_params) would change the model and lose ALS's start (15 sweeps from random)
        config = replace(self.config, factors=cf.factors) if cf is not None else self.config
        comps = fit_components(C, Cp, self.X, self.V, self.lengths, prior_upvotes, config,
                                     collab=cf is not None, start=cf,
                                     sweeps=self.config.refine_sweeps if cf is not None else None,
                                     neighbors=neighbors, events=(users, items, ts))
        stats = {**self.stats, "n_users": n_users, "n_events": int(len(users)), "nnz": int(C.nnz),
                 "refit": {"from_events": self.stats.get("n_events"), "total_s": round(time.perf_counter() - t0, 2),
                           "als_sweeps": self.config.refine_sweeps}}
        return HybridModel(self.encoder, self.X, self.V, self.lengths, self.titles, comps, self.blender,
                           config, self.conf_config, now, stats, self.pop_config,
                           self.published if published is None else published)

    def refit_neighbors(self, fewer, more) -> NeighborCache | None:
        """One content-neighbour search for two refits of this model's recipe: on the events
        `fewer` and on `more`, which holds them (each with .users, .items, .kinds, .ts,
        .n_users; the nightly job's candidate on the events before its recent slice, then
        the model it writes on all). As the fit shares one between its validation slice and
        its final fit (`NeighborCache`): `fewer`'s thin papers over `more`'s pool, so the
        second refit's neighbours are exactly its own search's and the first's are unless
        more than k of a paper's candidates are outside its own pool. The search is ~2 s of
        each CiteULike-a refit. None without the collaborative components (no map to fit)."""
        if self.comps.cf is None:
            return None
        mass = [np.asarray(event_matrix(e.users, e.items, e.kinds, e.ts, e.n_users, self.n_items, None,
                                        self.conf_config)[0].sum(axis=0)).ravel() for e in (fewer, more)]
        return NeighborCache.for_two_fits(self.X, mass[0], mass[1], self.config.neighbors_k)

    @classmethod
    def _fit_blend(cls, C: sp.csr_matrix, Cp: sp.csr_matrix, vslice: ValidationSlice, X, V, lengths, prior,
                   config: HybridConfig, progress=None, not_yet: np.ndarray | None = None,
                   timed: tuple | None = None, events: tuple | None = None):
        """Learn the blend on the validation slice `vslice` of C (and of the popularity matrix
        Cp). Returns (blender, stats, the validation components or None, the content-neighbour
        cache): the final fit continues ALS from the validation factors. `not_yet`: papers
        no reader could have read yet (`not_yet_published`), left out of every validation
        reader's candidates; `timed`: (publication times, users, items, event times, now)
        for the papers' ages as each validation reader saw them (`freshness.reader_ages`),
        None where publication times are not known or not trusted: the freshness signal
        (freshness.py) is learnt only with them; `events`: (users, items, event times), the
        reading's order (`reading_order.py`)."""
        _progress(progress, "validation: slice + components")
        rng = np.random.default_rng(config.seed + 1)
        n_users, n_items = C.shape
        C_fit, V_pos = vslice.split(C)
        Cp_fit, _ = vslice.split(Cp)
        # the data's one-paper readers cannot be validation readers: some that can stand in
        share = one_paper_share(C)
        C_fit, V_pos, Cp_fit, n_stand_ins = stand_in_one_paper_readers(C_fit, V_pos, Cp_fit, share,
                                                                       np.random.default_rng(config.seed + 3))
        n_cold = len(vslice.cold_items)
        hist = np.diff(C_fit.indptr)
        posn = np.diff(V_pos.indptr)
        eligible = np.nonzero((hist > 0) & (posn > 0))[0]
        ages = None
        if timed is not None:
            published, users, items, ts, now = timed
            ages = reader_ages(published, users, items, ts, C_fit, now)
        vstats = {"cold_items": int(n_cold), "held_out": int(V_pos.nnz), "eligible_users": int(len(eligible)),
                  "one_paper_share": round(share, 4), "one_paper_stand_ins": n_stand_ins}
        if not_yet is not None and not_yet.any():
            vstats["not_yet_published"] = int(not_yet.sum())

        def prior_blend(reason: str):
            # nothing can check the personal signals, but popularity can be (blend.prior_pop_scale)
            hit = vstats["popularity_hit_rate"] = round(readers_out_hit_rate(Cp, prior, seed=config.seed), 4)
            return (Blender.prior(reason, words=bool(config.text_weight), text=relates_papers(X),
                                  pop_scale=prior_pop_scale(hit, n_items)), vstats, None, None)

        if int(posn[eligible].sum()) < config.min_val_positives:
            vstats["fallback"] = "too few held-out positives with a history"
            return prior_blend("too few validation positives")
        if len(eligible) < config.min_task_users:
            if share >= 0.5:
                # most lists are one-paper readers', for whom the neutral blend has no popularity
                vstats["fallback"] = "too few validation readers, most readers with one paper: prior blend"
                return prior_blend("too few validation readers, most with one paper")
            vstats["fallback"] = "too few validation readers: neutral blend"
            return Blender(neutral_weights(), False, {"reason": "too few validation readers"}), vstats, None, None
        # readers x papers scored is the cost: fewer readers when there are many papers
        max_users = int(max(config.min_task_users, min(config.max_val_users, config.val_cells // max(n_items, 1))))
        if len(eligible) > max_users:
            eligible = np.sort(rng.choice(eligible, max_users, replace=False))
        # the validation components get the capacity and the ALS sweeps the final fit will
        # have. (Fewer sweeps here, 11 of 15, with the final fit making up the rest, gave
        # the same validation NDCG but a blend 0.005 NDCG@20 worse on CiteULike-a warm: the
        # weights are learned for factors at this stage of convergence.)
        params = collab_params(C, config)
        sweeps = params.iterations if params.algorithm == "als" else None
        vconfig = replace(config, factors=params.factors)
        tt = time.perf_counter()
        # one content-neighbour search for both fits: the slice's thin papers over the final pool
        mass_fit = np.asarray(C_fit.sum(axis=0)).ravel()
        neighbors = NeighborCache.for_two_fits(X, mass_fit, np.asarray(C.sum(axis=0)).ravel(), config.neighbors_k)
        vstats["neighbors_s"] = round(time.perf_counter() - tt, 2)
        ease = None
        use_ease = config.ease
        if use_ease is None:
            use_ease, vstats["ease_covered_share"] = covers_reading(C_fit, config.ease_max_solve,
                                                                    config.ease_min_share)
            vstats["ease_covered_share"] = round(vstats["ease_covered_share"], 4)
        if use_ease:
            te = time.perf_counter()
            ease_config = config.ease_lambda
            if ease_config is None:
                def ndcg(S, readers=eligible):
                    return validation_ndcg(S, C_fit[readers], V_pos[readers])
                ease, vstats["ease_trials"] = fit_on_validation(C_fit, V_pos, eligible, config.ease_max_solve,
                                                                config.ease_top_k, ndcg, text=X,
                                                                words=config.ease_words)
            else:
                ease = fit_ease(C_fit, ease_config, config.ease_max_solve, config.ease_top_k, text=X,
                                words=config.ease_words or 0.0)
            vstats["ease_lambda"] = ease.lam
            vstats["ease_words"] = ease.words
            vstats["ease_s"] = round(time.perf_counter() - te, 2)
        comps = fit_components(C_fit, Cp_fit, X, V, lengths, prior, vconfig, sweeps=sweeps, neighbors=neighbors,
                               ease=ease, events=events)
        if not config.factors and params.algorithm == "als" and comps.cf is not None:
            # the rule's factors, or fewer where the slice says so (factors.py)
            tf = time.perf_counter()
            factors, vstats["als_factors"] = choose_factors(comps.cf, C_fit, V_pos, eligible, params,
                                                            words_for_als(X, vconfig, params)[1], sweeps)
            vstats["als_factors"]["s"] = round(time.perf_counter() - tf, 2)
            if factors != params.factors:
                vconfig = replace(vconfig, factors=factors)
                comps = fit_components(C_fit, Cp_fit, X, V, lengths, prior, vconfig, sweeps=sweeps,
                                       neighbors=neighbors, ease=ease, events=events)
        vstats["components_s"] = round(time.perf_counter() - tt, 2)
        vstats["reading_order"] = comps.order_info
        vstats["als_sweeps"] = sweeps
        _progress(progress, "validation: features")
        tt = time.perf_counter()
        reading = (reading_rows(*events, C_fit, config.reading_latest, config.reading_windows)
                   if comps.order is not None else None)
        # a signal the slice's components do not have (the reading's order without event
        # times) proposes no pool candidates, has no weight to learn, and starts no ascent:
        # the ascent's ends, and so their mean, are those of a blend without it
        absent = ((() if comps.order is not None else ("order",))
                  + (() if reading is not None and reading.latest is not None else ("latest",))
                  + (() if reading is not None and reading.windows is not None else ("windows",)))
        rows_X, rows_y, rows_w, pools = validation_samples(X, V, comps, C_fit, V_pos, eligible, config, rng,
                                                           reading=reading, absent=absent,
                                                           carved_new=vslice.cold_items, not_yet=not_yet,
                                                           carved_in_joint=vslice.new_by_time,
                                                           ages=ages)
        Xs = np.concatenate(rows_X)
        y = np.concatenate(rows_y)
        w = np.concatenate(rows_w)
        w = w * (len(w) / w.sum())
        vstats["features_s"] = round(time.perf_counter() - tt, 2)
        _progress(progress, "validation: blend (LR + ascent)")
        tt = time.perf_counter()
        blender = Blender.fit(Xs, y, sample_weight=w, seed=config.seed, fit_intercept=False, absent=absent)
        vstats["lr_s"] = round(time.perf_counter() - tt, 2)
        tt = time.perf_counter()
        # refine the pairwise-LR weights by direct search on validation NDCG@20
        tasks = {name: concat_tasks(v) for name, v in pools.items()}
        joint = tasks.pop("joint")
        cold_users = int(len(tasks["cold"].n_rel))
        if cold_users < config.min_task_users:
            # too few new papers in the slice to learn their own weights: share the warm ones
            # (observed popularity is meaningless for a paper nobody has seen yet)
            blender = Blender(share_warm_weights(blender.weights), True, blender.info)
            tasks.pop("cold")
        vstats["cold_task_users"] = cold_users
        vstats["pool_width"] = {name: int(t.F.shape[1]) for name, t in tasks.items()}
        tasks = [t for t in tasks.values() if len(t.n_rel) >= config.min_task_users]
        starts = [neutral_weights(absent=absent)] + [neutral_weights(f) for f in PERSONAL if f not in absent]
        if cold_users < config.min_task_users:
            starts = [share_warm_weights(w) for w in starts]
        W, before, after, ends = restarted_ascent(tasks, [blender.weights, *starts],
                                                  np.random.default_rng(config.seed + 2),
                                                  passes=config.ascent_passes)
        if cold_users < config.min_task_users:
            W = share_warm_weights(W)
        info = {**blender.info, "val_ndcg_lr": round(before, 4), "val_ndcg": round(after, 4),
                "val_ndcg_ends": [round(v, 4) for v in ends]}
        fresh = Freshness()
        if len(joint.n_rel) >= config.min_task_users:
            W, before, after = calibrate_new_offset(joint, W)
            info.update(joint_users=int(len(joint.n_rel)), joint_ndcg_before=round(before, 4),
                        joint_ndcg=round(after, 4))
            if joint.age is not None:
                tf = time.perf_counter()
                W, fresh, vstats["freshness"] = calibrate_freshness(joint, W, joint.age)
                vstats["freshness"]["s"] = round(time.perf_counter() - tf, 2)
        blender = Blender(W, True, info, fresh)
        vstats["ascent_s"] = round(time.perf_counter() - tt, 2)
        vstats.update(blender.info)
        vstats["val_users"] = int(len(eligible))
        return blender, vstats, comps, neighbors

    # ------------------------------------------------------------------ scoring
    def popular_scores(self) -> np.ndarray:
        p = self.comps.pop
        pt = p.predicted - p.predicted.min() if len(p.predicted) else p.predicted
        return (p.observed + 1e-3 * pt / (pt.max() + 1e-9)).astype(np.float32)

    def score_rows(self, rows: sp.csr_matrix, strategy: str = "hybrid",
                   reading: ReadingRows | None = None) -> np.ndarray:
        """Scores (B x n_items) for readers given as confidence rows (and `reading`, their
        latest papers and the windows of their reading: `reading_order.reading_rows`; None
        without event times). Readers with an empty history get the popularity order under
        every strategy. One reader goes through `one_reader.py` (same scores, without
        sparse-matrix overhead)."""
        rows = sp.csr_matrix(rows, dtype=np.float32)
        B = rows.shape[0]
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
        if B == 1:
            one = OneHistory.from_row(rows, np.zeros(0, np.int64),
                                      *(reading.of_one() if reading is not None else (None, None)))
            S, _ = self.one_reader().scores(one, strategy)
            return S[None, :]
        return self.score_batch(rows, strategy, reading=reading)

    def freshness_bonus(self, now: float | None = None) -> np.ndarray | None:
        """What each paper's hybrid score gains for its age at `now` (the model's newest
        event when None), or None when the blend has no freshness signal (freshness.py)."""
        return self.blender.freshness.bonus(self.published, self.comps.cold_mask,
                                            self.now if now is None else now)

    def score_batch(self, rows: sp.csr_matrix, strategy: str, now: float | None = None,
                    reading: ReadingRows | None = None) -> np.ndarray:
        """score_rows for B readers at once (offline evaluation): sparse products over the
        batch. For B = 1 it gives what the single-reader path gives, to the bit. `now`:
        the time the papers' ages are measured at (the model's newest event when None)."""
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
            S = row_scores(c.item_factors, c.cf.fold_in(rows, cg_steps=6))
        else:
            feats = raw_features(self.comps, self.X, self.V, rows, reading)
            z = {f: zscore_rows(S, out=own_rows(S)) for f, S in feats.items()}  # each its own
            S = self.blender.combine(z, self.comps.cold_mask, history_scale(np.diff(rows.indptr)))
            fresh = self.freshness_bonus(now)
            if fresh is not None:
                S += fresh[None, :]
        S = np.asarray(S, np.float32)
        empty = np.diff(rows.indptr) == 0
        if empty.any():
            S[empty] = pop
        # tiny popularity tie-break keeps the order total and deterministic
        return S + np.float32(1e-6) * (pop / (np.abs(pop).max() + 1e-9))[None, :]

    def for_lists(self, like: "HybridModel | None" = None) -> "HybridModel":
        """Ready this model to serve lists one reader at a time; returns self. What it keeps
        costs memory a batch does not need (EASE's `FactoredEase.for_lists`: 543 MB on
        CiteULike-a), so a model that serves asks for it (`serving.model_slot`) and the
        training job's models keep it only while an evaluation ranks many readers
        (`in_list_form_for`). `like`: a model with the same components (a copy of this one
        before papers were added), whose arrays are shared instead of rebuilt."""
        for name in ("ease", "order"):
            mine = getattr(self.comps, name)
            if mine is not None:
                mine.for_lists(getattr(like.comps, name) if like is not None else None)
        return self

    @contextmanager
    def in_list_form_for(self, rows: sp.csr_matrix):
        """The model as `for_lists` readies it, for the time of one scoring of many readers'
        confidence rows `rows` where that is cheaper than without (EASE's
        `FactoredEase.in_list_form_for`); what it builds is dropped after."""
        with ExitStack() as stack:
            for m in (self.comps.ease, self.comps.order):
                if m is not None:
                    stack.enter_context(m.in_list_form_for(rows))
            yield self

    def one_reader(self) -> OneReaderScorer:
        """The single-reader scorer for the model as it is now (rebuilt after add_paper)."""
        scorer = getattr(self, "_one_reader", None)
        if scorer is None or not scorer.fresh_for(self):
            scorer = self._one_reader = OneReaderScorer(self)
        return scorer

    # ------------------------------------------------------------------ one reader
    def history_row(self, history, now: float | None = None):
        return history_rows(history, self.n_items, now=now if now is not None else self.now, config=self.conf_config)

    def reading_of(self, history, row) -> tuple[np.ndarray | None, list[np.ndarray] | None]:
        """The reader's latest papers and the windows of their reading, what the `latest` and
        `windows` features score (`reading_order`), each None where the model has no such
        feature or the reader too few papers."""
        if self.comps.order is None:
            return None, None
        latest = (latest_of_history(history, row, self.config.reading_latest)
                  if self.config.reading_latest > 0 else None)
        return latest, windows_of_history(history, row) if self.config.reading_windows else None

    def score_history(self, history, strategy: str = "hybrid", now: float | None = None) -> np.ndarray:
        """Scores over all papers for one reader's history [(paper index, kind, ts), ...]."""
        row, _ = self.history_row(history, now)
        h = OneHistory.from_row(row, np.zeros(0, np.int64), *self.reading_of(history, row))
        S, _ = self.one_reader().scores(h, strategy, now)
        return S

    def recommend(self, history, k: int = 20, strategy: str = "hybrid", exclude_seen: bool = True,
                  candidates=None, now: float | None = None, with_reasons: bool = True) -> list[Recommendation]:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
        row, seen = self.history_row(history, now)
        one = self.one_reader()
        h = OneHistory.from_row(row, seen, *self.reading_of(history, row))
        S, z = one.scores(h, strategy, now)
        top = top_k(S, k, h.seen if exclude_seen else None,
                    None if candidates is None else np.asarray(candidates, np.int64))
        why = (self.reasons(row, top, strategy, strongest_interest(history), z, now) if with_reasons
               else [""] * len(top))
        return [Recommendation(int(j), float(S[j]), r) for j, r in zip(top, why)]

    def reasons(self, row: sp.csr_matrix, items: np.ndarray, strategy: str = "hybrid",
                interest: dict[int, str] | None = None, z: dict[str, np.ndarray] | None = None,
                now: float | None = None) -> list[str]:
        """A short reason per recommended item, from its largest blend contribution (the
        words are core/reasons.py). `interest`: paper -> the reader's strongest kind of
        interest in it (strongest_interest); `z`: the reader's standardised features when
        the caller has them (hybrid); `now`: the list's time, for a paper its recency
        placed (the freshness signal's bonus is then its largest contribution)."""
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
            names = list(FEATURES)
            fresh = self.freshness_bonus(now)
            if fresh is not None:  # a paper its recency placed says so
                contrib["fresh"] = fresh[items]
                names.append("fresh")
            best = np.argmax(np.stack([contrib[f] for f in names]), axis=0)  # first on ties
            kind_of = {"tfidf": "content", "dense": "content", "cf": "collab", "graph": "collab", "ease": "collab",
                       "order": "collab", "latest": "collab", "windows": "collab",
                       "fresh": "new"}
            kinds = [kind_of.get(names[b], "trend") for b in best]
        content = [n for n, kind in enumerate(kinds) if kind == "content"]
        if content:  # only the papers explained by content need their similarities
            sims = np.asarray((self.X[items[content]] @ self.X[hist].T).toarray())  # (., |hist|)
            best_hist = hist[np.argmax(sims * row.data[None, :], axis=1)]
        out = []
        for n, j in enumerate(items):
            if kinds[n] == "content":
                h = best_hist[content.index(n)]
                out.append(reasons.similar_to(self.titles[h], (interest or {}).get(int(h), "read")))
            elif kinds[n] == "collab":
                out.append(reasons.LIKE_YOU)
            elif kinds[n] == "new":
                at = self.now if now is None else now
                out.append(reasons.published((at - self.published[j]) / DAY_S))
            else:
                out.append(one.trending_reason(int(j)))
        return out

    def _trending_reason(self, j: int) -> str:
        return reasons.trending(self.encoder.top_terms(self.V[j], n=3) if self.encoder is not None else [])

    # ------------------------------------------------------------------ new papers
    def add_paper(self, title: str, abstract: str | None = None, upvotes: float = 0.0) -> int:
        """Make a new paper recommendable at once from its text; returns its index."""
        return int(self.add_papers([(title, abstract, upvotes)])[0])

    def add_papers(self, papers: list[tuple]) -> np.ndarray:
        """Make new papers [(title, abstract, upvotes[, published]), ...] recommendable at
        once from their text; returns their indices. `published`: the publication time in
        unix seconds (NaN or absent: unknown), each paper's age for the freshness signal. A batch is encoded, searched for content neighbours and
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
        self.published = np.r_[self.published, [float(p[3]) if len(p) > 3 and p[3] is not None else np.nan
                                                for p in papers]]
        c = self.comps
        c.pop.add_items(x, lengths)
        upvotes = prior_upvotes([p[2] if len(p) > 2 else None for p in papers])
        given = upvotes != 0
        c.pop.observed[n0:][given] = np.log1p(upvotes[given]).astype(np.float32)
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
            for e in (c.ease, c.order):
                if e is not None:
                    e.add_items(m)
        return np.arange(n0, n0 + m, dtype=np.int64)

    # ------------------------------------------------------------------ persistence
    def to_arrays(self) -> dict[str, np.ndarray]:
        a = dict(self.encoder.to_arrays())
        a.update({"X_data": self.X.data, "X_indices": self.X.indices.astype(np.int32),
                  "X_indptr": self.X.indptr.astype(np.int64), "V": self.V, "lengths": self.lengths,
                  "titles": np.asarray(self.titles, dtype=np.str_)})
        # every float array of a model is finite (a loaded one is checked): unknown times as a mask
        known = np.isfinite(self.published)
        a.update({"published_ts": np.where(known, self.published, 0.0), "published_known": known})
        c = self.comps
        a.update(c.pop.to_arrays())
        if c.cf is not None:
            a.update(c.cf.to_arrays())
            a.update(c.graph.to_arrays())
            a.update(c.cold.to_arrays())
            a["cf_effective_factors"] = c.item_factors
            if c.ease is not None:
                a.update(c.ease.to_arrays())
            if c.order is not None:
                a.update(c.order.to_arrays(prefix=ORDER_PREFIX))
            if c.text_rows is not None:
                a.update(c.text_rows.to_arrays())
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
            "reading_order": None if c.order is None else {**c.order.params(), **(c.order_info or {})},
            "text_rows": None if c.text_rows is None else c.text_rows.params(),
            "blend": self.blender.manifest(),
            "stats": self.stats,
        }

    @classmethod
    def from_arrays(cls, arrays, manifest: dict) -> "HybridModel":
        if manifest.get("kind") != "paperrec.hybrid":
            raise ValueError(f"not a hybrid model manifest (kind={manifest.get('kind')!r})")
        version = int(manifest.get("format_version", -1))
        if version not in READABLE_FORMATS:
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
            ease = ease_from_arrays(arrays, manifest["ease"]) if manifest.get("ease") else None
            order = (FactoredEase.from_arrays(arrays, manifest["reading_order"], prefix=ORDER_PREFIX)
                     if manifest.get("reading_order") else None)
            text_rows = TextRows.from_arrays(arrays, manifest["text_rows"]) if manifest.get("text_rows") else None
            if (text_rows is None) != (cf.side_factors is None) or (
                    text_rows is not None and cf.side_factors.shape != (len(text_rows.terms), cf.factors)):
                raise ValueError("the word rows of the collaborative model do not match its factors")
            comps = Components(cf, graph, cold, pop, np.asarray(arrays["cf_effective_factors"], np.float32), ease,
                               text_rows, order, manifest.get("reading_order"))
            if cf.item_factors.shape[0] != n or graph.n_items != n or any(
                    e is not None and e.n_items != n for e in (ease, order)):
                raise ValueError("collaborative arrays do not match the manifest item count")
        else:
            comps = Components(None, None, None, pop, None)
        blender = Blender.from_arrays(arrays, manifest.get("blend", {}), saved_features=FEATURES_OF_FORMAT[version])
        return cls(encoder, X, V, np.asarray(arrays["lengths"], np.float32), [str(t) for t in arrays["titles"]],
                   comps, blender, config_of(manifest, version),
                   ConfidenceConfig.from_dict(manifest.get("confidence", {})), manifest.get("now"),
                   manifest.get("stats", {}), PopularityConfig.from_dict(manifest.get("popularity")),
                   _published(arrays))

