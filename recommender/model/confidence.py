"""From logged events to a reader x paper confidence matrix.

Each event kind carries a weight relative to an upvote (= 1): an impression alone says
nothing (0), a click a little, a read more. `remove_upvote` cancels an earlier upvote and a
`dismiss` cancels whatever interest the reader showed; totals are clipped at zero, so a
dismissed paper contributes no positive signal. Events decay with a half-life, measured either
back from `now` (the newest event when not given: "popular lately" weighs more) or back from
each reader's own newest event (`decay_from="reader"`: a reader's recent taste weighs more,
whenever they were active); a half-life of 0 or None means no decay. A reader's events on
one paper add up, add up to the log of their sum, or count once as the pair's strongest
event (`repeats`: ten clicks on a paper are not ten times one). Which of these suits a data
set is chosen by `HybridModel.fit` on a validation slice (see `tuning.py`). Events without
a time do not decay.

A separate boolean `seen` matrix records every paper a reader has seen by the one rule of
core/kinds.py (a click, read, upvote or dismissal; kinds unknown there count as a read):
recommendations exclude those by default.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.core.kinds import MODEL_WEIGHTS, SEEN_KINDS, UNKNOWN_AS, kind_of
from recommender.core.times import DAY_S, to_unix

# Relative to an upvote (= 1); the table is core/kinds.py.
EVENT_WEIGHTS: dict[str, float] = dict(MODEL_WEIGHTS)
DEFAULT_HALF_LIFE_DAYS = 180.0
# How a reader's repeated events on one paper add up: "sum" (ten clicks weigh ten clicks),
# "log" (log(1 + sum): the tenth click adds little) or "once" (the sum, but never more than
# the pair's strongest single event: ten clicks weigh one click, a click and an upvote an
# upvote, an upvote taken back nothing). Chosen on validation where repeats are common
# (tuning.py): MovieLens warm with each rating a click repeated a heavy-tailed number of
# times that says nothing (1 + Pareto(1.2), 4 events a pair on average) fell from 0.2716 to
# 0.2452 NDCG@20 with "sum", under `collaborative`; the hybrid there gives 0.2641 with
# "log" and 0.2740 with "once" (seed 0), as much as with one rating a film (0.2744).
REPEATS = ("sum", "log", "once")


def kind_weights(kinds, weights: dict[str, float] | None = None) -> np.ndarray:
    """Weight per event; unknown kinds count as a read (some interest, not an endorsement)."""
    weights = EVENT_WEIGHTS if weights is None else weights
    default = weights.get(UNKNOWN_AS, 0.5)
    kinds = np.asarray(kinds, dtype=object)
    if kinds.size == 0:
        return np.zeros(0, dtype=np.float32)
    uniq, inv = np.unique(kinds.astype(str), return_inverse=True)
    table = np.array([weights.get(str(k).lower(), default) for k in uniq], dtype=np.float32)
    return table[inv]


def decay_factors(ts, now=None, half_life_days: float | None = DEFAULT_HALF_LIFE_DAYS) -> np.ndarray:
    """0.5 ** (age / half_life); 1 for unknown times or a missing / non-positive half-life.
    `now` is one time for every event, or an array of one per event (each reader's newest)."""
    ts = np.asarray(ts, dtype=np.float64)
    out = np.ones(ts.shape, dtype=np.float32)
    known = np.isfinite(ts)
    if not known.any() or not half_life_days or half_life_days <= 0:
        return out
    if now is None:
        now = float(np.max(ts[known]))
    now = np.broadcast_to(np.asarray(now, np.float64), ts.shape)[known]
    age_days = np.maximum(0.0, now - ts[known]) / DAY_S
    out[known] = np.power(0.5, age_days / half_life_days).astype(np.float32)
    return out


def reader_latest(users, ts) -> np.ndarray:
    """Per event, the newest known time of that event's reader (NaN for a reader with none)."""
    users = np.asarray(users, np.int64)
    ts = np.asarray(ts, np.float64)
    if len(users) == 0:
        return np.zeros(0, np.float64)
    latest = np.full(int(users.max()) + 1, -np.inf)
    known = np.isfinite(ts)
    np.maximum.at(latest, users[known], ts[known])
    out = latest[users]
    out[~np.isfinite(out)] = np.nan
    return out


DECAY_FROM = ("newest", "reader")


@dataclass
class ConfidenceConfig:
    """How events become confidences: kind weights, the time decay (`half_life_days` 0 or
    None: none; `decay_from`: "newest" event overall / each "reader"'s newest event) and how
    a reader's repeated events on one paper add up (`repeats`: REPEATS)."""
    half_life_days: float | None = DEFAULT_HALF_LIFE_DAYS
    weights: dict | None = None
    decay_from: str = "newest"
    repeats: str = "sum"

    def __post_init__(self):
        if self.decay_from not in DECAY_FROM:
            raise ValueError(f"decay_from must be one of {DECAY_FROM}, not {self.decay_from!r}")
        if self.repeats not in REPEATS:
            raise ValueError(f"repeats must be one of {REPEATS}, not {self.repeats!r}")

    def settle(self, keys: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Events' keys (reader x paper, or paper for one reader) and weights -> (distinct keys
        ascending, each key's confidence): the weights summed (`summed_by_key`), under
        "once" capped at the key's strongest single weight, clipped at zero, and under "log"
        log(1 + sum). The one rule `confidence_matrix` and `history_rows` share."""
        distinct, conf = summed_by_key(keys, w)
        if self.repeats == "once":
            conf = np.minimum(conf, reduced_by_key(keys, w, np.maximum)[1])
        if self.repeats == "log":
            conf = np.log1p(conf)
        return distinct, conf.astype(np.float32, copy=False)

    @property
    def decays(self) -> bool:
        return bool(self.half_life_days) and self.half_life_days > 0

    def describe(self) -> str:
        if not self.decays:
            return "no decay"
        origin = "each reader's latest event" if self.decay_from == "reader" else "the newest event"
        return f"half-life {self.half_life_days:g} days from {origin}"

    def to_dict(self) -> dict:
        return {"half_life_days": self.half_life_days, "decay_from": self.decay_from,
                "weights": dict(self.weights or EVENT_WEIGHTS), "repeats": self.repeats}

    @classmethod
    def from_dict(cls, d: dict) -> "ConfidenceConfig":
        hl = d.get("half_life_days", DEFAULT_HALF_LIFE_DAYS)
        return cls(half_life_days=None if hl is None else float(hl),
                   weights=dict(d.get("weights") or EVENT_WEIGHTS),
                   decay_from=str(d.get("decay_from", "newest")), repeats=str(d.get("repeats", "sum")))


def seen_mask(kinds) -> np.ndarray:
    """Per event, whether it makes its paper seen (core/kinds.py; unknown kinds as a read)."""
    kinds = np.asarray(kinds, dtype=object)
    if kinds.size == 0:
        return np.zeros(0, bool)
    uniq, inv = np.unique(kinds.astype(str), return_inverse=True)
    return np.array([kind_of(k).name in SEEN_KINDS for k in uniq], dtype=bool)[inv]


def summed_by_key(keys: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys ascending, float32 sum of w per key), each key's weights summed in
    their given order. The one summation `confidence_matrix` (key: reader x paper) and
    `history_rows` (key: paper) share, so a reader's live row has the bits of their row of
    the matrix. Why not scipy's duplicate summing: it orders a pair's events in a way of
    its own, and where they cancel (an upvote, its removal, a decayed click) a different
    order left 0.0447 against 0.04469466, or an entry on one side and none on the other.
    Its cost: 0.7 s for 5,000,000 events against scipy's 0.2 s (the stable sort), once per
    matrix built; 197,000 CiteULike-a events take 0.02 s."""
    return reduced_by_key(keys, w, np.add)


def reduced_by_key(keys: np.ndarray, w: np.ndarray, how: np.ufunc) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys ascending, float32 `how`-reduction of w per key, in the weights' given
    order): np.add sums them (`summed_by_key`), np.maximum takes each key's strongest."""
    keys = np.asarray(keys, np.int64)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.diff(ordered, prepend=ordered[:1] - 1))
    w = np.asarray(w, np.float32)[order]
    # no key, no value: numpy 2.4 reduces empty indices to nothing, but older versions our
    # pins allow may refuse them, so the empty case does not reach reduceat
    return ordered[starts], (how.reduceat(w, starts) if len(starts) else w)


def confidence_matrix(users, items, kinds, ts, shape: tuple[int, int], now: float | None = None,
                      config: ConfidenceConfig | None = None) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Return (confidence, seen): CSR float32 with entries > 0 only, and CSR bool."""
    config = config or ConfidenceConfig()
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if kinds is None:
        kinds = np.full(users.shape, "upvote", dtype=object)
    if ts is None:
        ts = np.full(users.shape, np.nan)
    if config.decay_from == "reader" and config.decays:
        now = reader_latest(users, ts)
    if len(users) and (users.min() < 0 or users.max() >= shape[0] or items.min() < 0 or items.max() >= shape[1]):
        # one key per (reader, paper) holds only inside the shape (scipy refused such indices)
        raise ValueError(f"reader or paper index outside the matrix's shape {shape}")
    w = (kind_weights(kinds, config.weights) * decay_factors(ts, now, config.half_life_days)).astype(np.float32)
    pairs, conf = config.settle(users * shape[1] + items, w)
    positive = conf > 0
    pairs = pairs[positive]
    rows = pairs // shape[1]
    indptr = np.searchsorted(rows, np.arange(shape[0] + 1)).astype(np.int64)
    C = sp.csr_matrix((conf[positive], (pairs - rows * shape[1]).astype(np.int32), indptr),
                      shape=shape, dtype=np.float32)
    acted = seen_mask(kinds)
    seen = sp.csr_matrix((np.ones(int(acted.sum()), dtype=bool), (users[acted], items[acted])), shape=shape)
    seen.sum_duplicates()
    seen.data[:] = True
    return C, seen


def history_rows(history, n_items: int, now: float | None = None,
                 config: ConfidenceConfig | None = None) -> tuple[sp.csr_matrix, np.ndarray]:
    """One reader's history [(paper index, kind, ts)] -> (1 x n_items confidence row, seen indices).

    `confidence_matrix`'s rule for a one-row matrix, without building a sparse matrix from
    coordinates (a third of a live list's time outside scoring on CiteULike-a): each paper's
    weights summed in the history's order and settled (`ConfidenceConfig.settle`), kept where
    positive.
    The same bits as the reader's row of `confidence_matrix` (tests/test_confidence.py)."""
    config = config or ConfidenceConfig()
    if not history:
        return sp.csr_matrix((1, n_items), dtype=np.float32), np.zeros(0, dtype=np.int64)
    items = np.array([int(h[0]) for h in history], dtype=np.int64)
    keep = (items >= 0) & (items < n_items)
    kinds = np.array([h[1] if len(h) > 1 else "read" for h in history], dtype=object)[keep]
    ts = np.array([to_unix(h[2]) if len(h) > 2 else np.nan for h in history], dtype=np.float64)[keep]
    items = items[keep]
    if config.decay_from == "reader" and config.decays:
        now = reader_latest(np.zeros(len(items), np.int64), ts)
    w = (kind_weights(kinds, config.weights) * decay_factors(ts, now, config.half_life_days)).astype(np.float32)
    papers, conf = config.settle(items, w)
    positive = conf > 0
    row = sp.csr_matrix((conf[positive], papers[positive].astype(np.int32), np.array([0, int(positive.sum())])),
                        shape=(1, n_items), dtype=np.float32)
    return row, np.unique(items[seen_mask(kinds)])
