"""A paper's age as a signal of its own: how long ago it was published, at the time a list
is asked for.

Why: a daily-papers feed's catalog keeps every paper it ever listed, and most of the old
ones were never read by anyone. To the blend a paper nobody has read is a "new paper", and
the new-paper offset (`blend.calibrate_new_offset`) is the same for a paper published this
morning and one that nobody wanted in two years. Measured on `make bench-derived`'s feed
with 3,000 such papers in its catalog (`cul800-feed-unread`), a diagnostic on its test
split: a bonus for new papers published in the last 30 days gave NDCG@20 0.2390 -> 0.3044.
Built, learnt on the slice: 0.2218 -> 0.3035 on that set, and 0.3351 -> 0.3414 on the same
feed without the unread papers (README, `make bench-derived`).

What is learnt, on the validation slice's joint pool (new and read papers compete, as in a
list; `blend_data.validation_samples`): a half-life (`HALF_LIVES_DAYS`) and two weights, one
for papers nobody has read yet and one for papers with readers, each multiplying
0.5 ** (age / half-life); the new-paper offset is searched again beside them, since a
bonus for the fresh new papers changes how far the others should sit. The signal is kept
only when the slice's readers gain from it beyond noise (`tuning.beyond_noise`); data
without publication times or event times, or whose papers were read before their
publication times (`hybrid.publication_times_ignored`), never gets it, and then every score is what
it was without this module.

A paper published after the time a list is asked for (an offline test period's papers, or
a clock behind the feed's) has age 0: it is as new as a paper can be. A paper without a
publication time gets no bonus.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.core.times import DAY_S
from recommender.model.tuning import beyond_noise, latest_pair_times, pair_keys

# half-lives tried, in days: a day's feed to a year's
HALF_LIVES_DAYS = (1.0, 3.0, 10.0, 30.0, 100.0, 365.0)
# weights tried for the freshness columns (the blend's scores are z-scores, so a weight of
# 1 moves a paper published now by about one standard deviation of a reader's scores; at
# 100 the newest papers come first and the blend orders them, what a feed whose readers
# read little else wants: `cul800-feed-unread` chose the top of a grid that ended at 10)
WEIGHTS = (0.0, *np.geomspace(0.1, 100.0, 13))


def fresh_values(published: np.ndarray, now: float, half_life_days: float) -> np.ndarray:
    """0.5 ** (age / half-life) per paper, age = now - publication time in days, at least 0
    (a paper published after `now` is as new as one published at it); 0 where the
    publication time is unknown (NaN)."""
    published = np.asarray(published, np.float64)
    age = np.maximum(float(now) - published, 0.0) / DAY_S
    with np.errstate(invalid="ignore"):
        out = np.exp2(-age / float(half_life_days))
    return np.where(np.isfinite(out), out, 0.0).astype(np.float32)


def reader_ages(published, users, items, ts, C_fit: sp.csr_matrix, now: float):
    """The ages the validation slice's readers saw the papers at: a function of some
    readers (indices into C_fit's rows) giving (readers x papers) float32 days, each reader's
    ages measured from their newest event left in `C_fit` (the data's `now` for a reader
    without a timed one), NaN where a publication time is unknown.

    Why each reader's own time and not the data's newest event: the slice holds out each
    reader's latest papers, read after that time, so the papers published since a reader's
    last event are the question a feed asks at a reader's next visit (what came out while
    they were away). Measured from the data's newest event, a reader last seen a year ago
    would have had every paper they read after it scored as a year old."""
    published = np.asarray(published, np.float64)
    keys, last = latest_pair_times(users, items, ts, C_fit.shape[1])
    fit_keys = pair_keys(C_fit)
    at = np.minimum(np.searchsorted(keys, fit_keys), max(len(keys) - 1, 0))
    if len(keys):
        t = np.where((keys[at] == fit_keys) & np.isfinite(last[at]), last[at], -np.inf)
    else:
        t = np.full(len(fit_keys), -np.inf)
    newest = np.full(C_fit.shape[0], -np.inf)
    np.maximum.at(newest, np.repeat(np.arange(C_fit.shape[0]), np.diff(C_fit.indptr)), t)
    newest = np.where(np.isfinite(newest), newest, float(now))

    def ages(readers) -> np.ndarray:
        return ((newest[np.asarray(readers, np.int64)][:, None] - published[None, :]) / DAY_S).astype(np.float32)

    return ages


@dataclass(frozen=True)
class Freshness:
    """The learnt freshness signal: `half_life_days` and each regime's weight (0: off)."""

    half_life_days: float = 0.0
    cold_weight: float = 0.0
    warm_weight: float = 0.0

    @property
    def used(self) -> bool:
        return self.half_life_days > 0 and bool(self.cold_weight or self.warm_weight)

    def bonus(self, published: np.ndarray, cold: np.ndarray, now: float | None) -> np.ndarray | None:
        """What each paper's score gains at time `now` (n,), or None when the signal is off
        (or no time is known to measure ages from)."""
        if not self.used or now is None:
            return None
        # ages to the minute: the same bonus for every list asked in one minute, which the
        # single-reader path keeps (one_reader.py) instead of recomputing it per request
        f = fresh_values(published, float(now) // 60 * 60, self.half_life_days)
        w = np.where(np.asarray(cold, bool), np.float32(self.cold_weight), np.float32(self.warm_weight))
        return (f * w).astype(np.float32)

    def to_dict(self) -> dict:
        return {"half_life_days": self.half_life_days, "cold_weight": self.cold_weight,
                "warm_weight": self.warm_weight}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Freshness":
        d = d or {}
        return cls(float(d.get("half_life_days", 0.0)), float(d.get("cold_weight", 0.0)),
                   float(d.get("warm_weight", 0.0)))


def calibrate(task, W: np.ndarray, age_days: np.ndarray, passes: int = 2, k: int = 20
              ) -> tuple[np.ndarray, Freshness, dict]:
    """Learn the freshness signal on `task` (a `blend.RankingTask`: the joint pool; weights
    `W` with the new-paper offset already set) from each pool slot's age in days
    (`age_days`, (U, P), NaN unknown).

    For each half-life: line search, one column at a time, over the two freshness weights
    and the new-paper offset ("cold"; its history-scaled part is left as it is), from no
    freshness. The best half-life is kept if its per-reader NDCG@k beats the offset-only
    blend's beyond noise. Returns (blend weights with the offset it went with, the signal,
    a record for the manifest)."""
    # imported here: the blend (blend.py) holds a `Freshness`, and this search its tasks
    from recommender.model.blend import OFFSET_SHIFTS, line_search, per_reader_ndcg

    W = np.asarray(W, np.float32)
    known = np.isfinite(age_days) & task.valid
    record: dict = {"known_share": round(float(known.sum() / max(int(task.valid.sum()), 1)), 4)}
    if not len(task.n_rel) or not known.any():
        record["not_taken"] = "no publication times in the pool"
        return W, Freshness(), record
    c = task.cold.astype(np.float32)
    base = task.scores(W)
    before = per_reader_ndcg(task, base, k)
    record["ndcg_before"] = round(float(before.mean()), 4)
    best = None

    def grid(name: str, moved: float):
        """The offset's shifts as the new-paper offset's; a weight's, to each of `WEIGHTS`."""
        return OFFSET_SHIFTS[1:] if name == "offset" else [w - moved for w in WEIGHTS]

    for hl in HALF_LIVES_DAYS:
        with np.errstate(invalid="ignore"):
            f = np.where(known, np.exp2(-np.maximum(age_days, 0.0) / hl), 0.0).astype(np.float32)
        cols = {"cold_weight": c * f, "warm_weight": (1.0 - c) * f, "offset": c}
        S, val, values = line_search(task, base, float(before.mean()), cols, grid, passes, k)
        if best is None or val > best[0]:
            best = (val, hl, dict(values), S)
    val, hl, values, S = best
    after = per_reader_ndcg(task, S, k)
    record.update(ndcg=round(float(after.mean()), 4), half_life_days=hl,
                  cold_weight=round(values["cold_weight"], 4), warm_weight=round(values["warm_weight"], 4),
                  offset_shift=round(values["offset"], 4))
    fresh = Freshness(hl, values["cold_weight"], values["warm_weight"])
    if not fresh.used or not beyond_noise(after, before):
        record["not_taken"] = "not beyond noise of the blend without it"
        return W, Freshness(), record
    W = W.copy()
    W[-2] += np.float32(values["offset"])
    return W, fresh, record
