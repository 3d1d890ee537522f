"""Trending: time-decayed, kind-weighted interaction counts plus the catalog's prior upvotes.

Scores are computed in log space and reported relative to the top paper (top = 1.0): with
a one-week half-life, a log that is months old would otherwise underflow to zeros and lose
its order, and 'as of' any date must still give a ranking.
"""
from __future__ import annotations

import numpy as np

from recommender.core.times import DAY_S


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
) -> np.ndarray:
    """Score every item as of `as_of` (unix seconds); events after `as_of` do not count.

    event_items/weights/ts: parallel arrays, one entry per event. prior_upvotes: the
    catalog's upvote count per item (0 when unknown); published_ts: unix seconds (NaN
    when unknown, then the prior counts undecayed from the oldest known date)."""
    rate = np.log(2.0) / (half_life_days * DAY_S)
    prior_rate = np.log(2.0) / (prior_half_life_days * DAY_S)
    terms_log: list[np.ndarray] = []
    terms_item: list[np.ndarray] = []
    terms_sign: list[np.ndarray] = []

    event_items = np.asarray(event_items, dtype=np.int64)
    event_weights = np.asarray(event_weights, dtype=np.float64)
    event_ts = np.asarray(event_ts, dtype=np.float64)
    keep = (event_ts <= as_of) & (event_weights != 0)
    if keep.any():
        w = event_weights[keep]
        terms_log.append(np.log(np.abs(w)) - rate * (as_of - event_ts[keep]))
        terms_item.append(event_items[keep])
        terms_sign.append(np.sign(w))

    prior = np.asarray(prior_upvotes, dtype=np.float64)
    published = np.asarray(published_ts, dtype=np.float64)
    known = np.isfinite(published)
    oldest = published[known].min() if known.any() else as_of
    age = as_of - np.where(known, published, oldest)
    has_prior = (prior > 0) & (age >= 0)
    if has_prior.any():
        idx = np.flatnonzero(has_prior)
        terms_log.append(np.log(prior_weight * np.log1p(prior[idx])) - prior_rate * age[idx])
        terms_item.append(idx)
        terms_sign.append(np.ones(len(idx)))

    scores = np.zeros(n_items, dtype=np.float64)
    if not terms_log:
        return scores
    logs = np.concatenate(terms_log)
    items = np.concatenate(terms_item)
    signs = np.concatenate(terms_sign)
    shift = logs.max()
    np.add.at(scores, items, signs * np.exp(logs - shift))
    scores = np.maximum(scores, 0.0)
    top = scores.max()
    return scores / top if top > 0 else scores

