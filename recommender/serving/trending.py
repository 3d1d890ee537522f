"""Trending: how many readers took up a paper lately, each counted once, plus the catalog's
prior upvotes. Scores are reported relative to the top paper (top = 1.0).

Three rules, each against a way one reader or an old log used to take the list over:

- **A reader counts once per paper**: their strongest kind of event on it (an upvote over
  a read over a click, core/kinds.py's trending weights), decayed by the age of their
  latest event on it. Fifty clicks by one reader are one reader.
- **Breadth first, intensity shrunk toward the catalog** (`shrink`): a paper's score is
  its readers (decayed count N) times how strongly they engaged on average, and that
  average is shrunk toward the catalog's mean engagement with `k` pseudo-readers:
  ``N * (S + k * mu) / (N + k)``, where S is the sum of its readers' (normalised, decayed)
  weights. One upvote is one reader whose average is mostly the catalog's, so a paper
  several readers took up outranks it. `k` is the Buehlmann credibility constant measured
  on the log itself: how much one reader's engagement varies within a paper, over how much
  papers really differ (`credibility`); kept within [1, 20].
- **Age is measured in active time** (`active_ages`): a gap between consecutive events
  counts for at most one day. A log that is months old, or a site that was quiet for a
  month, keeps its list instead of decaying to nothing and being taken over by the first
  new event; on a busy site active time is wall time.
"""
from __future__ import annotations

import numpy as np

from recommender.core.kinds import TRENDING_WEIGHTS
from recommender.core.times import DAY_S

# Weights are read relative to the strongest kind (an upvote): one upvoting reader is 1, and
# a paper's prior is log1p(its catalog upvotes) in the same unit.
UNIT = max(TRENDING_WEIGHTS.values())

# A stretch without any event ages the log by at most this much.
MAX_IDLE_S = DAY_S
# Bounds on the credibility constant (pseudo-readers at the catalog's mean engagement).
MIN_K, MAX_K = 1.0, 20.0


def active_ages(ts: np.ndarray, as_of: float, max_idle_s: float = MAX_IDLE_S) -> np.ndarray:
    """Age of each event at `as_of` in active time: wall time with every gap between
    consecutive events (and from the last one to `as_of`) capped at `max_idle_s`."""
    ts = np.asarray(ts, np.float64)
    if len(ts) == 0:
        return ts.copy()
    # the log is in arrival order, nearly always in time order already
    in_order = bool(np.all(ts[1:] >= ts[:-1]))
    order = np.arange(len(ts)) if in_order else np.argsort(ts)
    sorted_ts = ts[order]
    clock = np.concatenate([[0.0], np.cumsum(np.minimum(np.diff(sorted_ts), max_idle_s))])
    now = clock[-1] + min(max(as_of - sorted_ts[-1], 0.0), max_idle_s)
    ages = np.empty(len(ts))
    ages[order] = now - clock
    return ages


def credibility(n: np.ndarray, s: np.ndarray, s2: np.ndarray) -> float:
    """Buehlmann's k = expected within-paper variance / variance of the papers' true means,
    from per-paper decayed reader counts n, weight sums s and squared-weight sums s2, over
    papers with at least two readers' worth of weight; clipped to [MIN_K, MAX_K] (MAX_K
    when papers do not differ beyond noise, MIN_K when it cannot be estimated)."""
    ok = n >= 2.0
    if ok.sum() < 2:
        return MIN_K
    n, s, s2 = n[ok], s[ok], s2[ok]
    means = s / n
    within = np.maximum(s2 / n - means ** 2, 0.0) * n / (n - 1.0)
    epv = float(np.average(within, weights=n))
    grand = float(np.average(means, weights=n))
    total_n = n.sum()
    # unbiased estimator of the between-paper variance with unequal sizes
    denom = total_n - (n ** 2).sum() / total_n
    vhm = (float((n * (means - grand) ** 2).sum()) - (len(n) - 1) * epv) / denom if denom > 0 else 0.0
    if vhm <= 0:
        return MAX_K
    return float(np.clip(epv / vhm, MIN_K, MAX_K))


def trending_scores(
    n_items: int,
    event_items: np.ndarray,
    event_weights: np.ndarray,
    event_ts: np.ndarray,
    prior_upvotes: np.ndarray,
    published_ts: np.ndarray,
    as_of: float,
    half_life_days: float = 7.0,
    prior_half_life_days: float = 30.0,
    prior_weight: float = 1.0,
    event_readers: np.ndarray | None = None,
    k: float | None = None,
) -> np.ndarray:
    """Score every item as of `as_of` (unix seconds); events after `as_of` do not count.

    event_items/weights/ts/readers: parallel arrays, one entry per event (weights >= 0;
    an event with weight 0 counts nowhere; a reader None or < 0: the event its own reader).
    prior_upvotes: the catalog's upvote count per item (0 when unknown); published_ts:
    unix seconds (NaN when unknown, then the prior counts undecayed from the oldest known
    date). `k`: the credibility constant, measured from the events when None."""
    event_items = np.asarray(event_items, dtype=np.int64)
    event_weights = np.asarray(event_weights, dtype=np.float64)
    event_ts = np.asarray(event_ts, dtype=np.float64)
    anonymous = -1 - np.arange(len(event_items), dtype=np.int64)  # each event its own reader
    readers = (anonymous if event_readers is None
               else np.where(np.asarray(event_readers) < 0, anonymous,
                             np.asarray(event_readers, dtype=np.int64)))
    scores = np.zeros(n_items, dtype=np.float64)

    past = event_ts <= as_of
    keep = past & (event_weights > 0) & (event_items < n_items)
    if keep.any():
        rate = np.log(2.0) / (half_life_days * DAY_S)
        ages = active_ages(event_ts[past], as_of)[keep[past]]
        weight = event_weights[keep] / UNIT  # an upvote is 1
        items, who = event_items[keep], readers[keep]
        # One reader, one paper: their strongest kind, as of their latest event on it.
        pair = who * n_items + items
        order = np.argsort(pair)
        starts = np.flatnonzero(np.r_[True, pair[order][1:] != pair[order][:-1]])
        weight = np.maximum.reduceat(weight[order], starts)
        decay = np.exp(-rate * np.minimum.reduceat(ages[order], starts))
        items = items[order][starts]
        n = np.bincount(items, weights=decay, minlength=n_items)
        s = np.bincount(items, weights=weight * decay, minlength=n_items)
        s2 = np.bincount(items, weights=weight ** 2 * decay, minlength=n_items)
        k = credibility(n, s, s2) if k is None else float(k)
        mu = s.sum() / n.sum() if n.sum() > 0 else 0.0
        scores += n * (s + k * mu) / (n + k)

    prior = np.asarray(prior_upvotes, dtype=np.float64)
    published = np.asarray(published_ts, dtype=np.float64)
    known = np.isfinite(published)
    oldest = published[known].min() if known.any() else as_of
    age = as_of - np.where(known, published, oldest)
    has_prior = (prior > 0) & (age >= 0)
    if has_prior.any():
        idx = np.flatnonzero(has_prior)
        prior_rate = np.log(2.0) / (prior_half_life_days * DAY_S)
        logs = np.log(prior_weight * np.log1p(prior[idx]) / UNIT) - prior_rate * age[idx]
        if scores.any():
            scores[idx] += np.exp(logs)
        else:  # only priors: keep their order however old they are
            scores[idx] = np.exp(logs - logs.max())
    top = scores.max() if n_items else 0.0
    return scores / top if top > 0 else scores
