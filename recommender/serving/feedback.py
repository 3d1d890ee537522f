"""What a reader turned down moves down their next lists: papers like the ones they
dismissed, and papers they were shown and passed over.

Why a step on top of every personal strategy instead of inside the model: a dismissal is
'not this', which the model's confidence matrix can only clip to zero (it has no negative
entries), and a paper shown and not clicked is no event at all; both are known the moment
they happen and belong to one reader. So, for that reader, each of the strategy's best
papers gets a penalty

    penalty = dismiss * max(0, cosine to the nearest dismissed paper)
              + skip * log(1 + visits in which the paper was shown and not clicked)

and its rank in the strategy's own order is multiplied by exp(penalty): a paper passed over
in v visits moves from rank r to about (1 + r)(1 + v)^skip - 1, one very like a dismissed
paper (cosine c) to about (1 + r) exp(dismiss c) - 1. Ranks, not scores, because scores
are scaled differently by each strategy and are heavy-tailed at the top (a demo reader's
hybrid scores: 18.9 at rank 1, 8.5 at rank 10, standard deviation 2.6), so a penalty in
score units either never moves the top or throws out the rest. The list reports each paper
at the strategy's score of the rank it moved to. A visit is a run of lists less than
`visit_gap_s` apart (a reload or the next page of the same list is not a second look),
and the visit going on now does not count (what the reader is looking at does not move);
papers the reader clicked, read or upvoted are never counted as passed over; lists older
than `window_days` are forgotten. The dismissed paper itself never comes back
(core/kinds.py: a dismissal hides, whatever `exclude_seen` says, until `remove_dismiss`).

The penalties only ever move papers down, so only the strategy's best papers can be in a
list: they are applied to its `window(k)` best rows (50 lists' worth), which keeps a list's
cost independent of the catalog's size.

The strengths are measured, not set by hand: `DEFAULT` is what the reader simulator chose
(`python -m benchmarks.feedback --choose`, README "What a reader turns down"): a grid of
dismiss (0..32) x skip (0..8), each played by the same 800 simulated readers over 10 days --
half of them dismiss what they do not like, and all are less likely to click a paper they
already looked past (x0.5, x0.75 or x1 a look: how much readers tire is an assumption, so
the grid is played under each) -- on seeds used for nothing else; the pair with the most
clicks per reader on average over the three won: dismiss 8, skip 4 (6.20 clicks per reader
against 4.59 with both off). So a paper passed over in one visit moves from rank r to about
16 (1 + r), out of a list of 10, and comes back after a few visits; one with cosine 0.3 to
a dismissed paper moves about 11 times further down. The gain is then measured on other
seeds (`make bench-feedback`).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from recommender.core.kinds import HIDING_KINDS, INTEREST_KINDS
from recommender.core.ranking import top_k
from recommender.core.times import to_unix


@dataclass(frozen=True)
class FeedbackWeights:
    dismiss: float = 8.0  # log of the rank multiplier per unit of cosine to a dismissed paper
    skip: float = 4.0  # exponent of (1 + visits shown and passed over) on the rank
    visit_gap_s: float = 30 * 60.0
    window_days: float = 30.0
    max_lists: int = 100  # the most recent lists read per request
    max_dismissed: int = 100  # the most recent dismissals that push neighbours down

    @property
    def off(self) -> bool:
        return self.dismiss == 0 and self.skip == 0


DEFAULT = FeedbackWeights()
OFF = FeedbackWeights(dismiss=0.0, skip=0.0)


def window(k: int) -> int:
    """How many of the strategy's best rows the penalties are applied to."""
    return max(50 * k, 1000)


def passed_over(lists: Sequence[Mapping], gap_s: float, now: float) -> dict[str, int]:
    """Paper id -> the number of past visits in which it was shown; `lists` as
    Store.served_to gives them ({"served_at", "paper_ids"}, any order). Lists less than
    `gap_s` after the previous one belong to its visit; the visit still going on at `now`
    (its last list less than `gap_s` ago) is not counted: a reload, or a list changed by
    a click a moment ago, does not rotate what the reader is looking at."""
    ordered = sorted(lists, key=lambda x: x["served_at"])  # ISO UTC text sorts by time
    times = [to_unix(x["served_at"]) for x in ordered]
    if not ordered:
        return {}
    visit_of = np.cumsum([True] + [b - a >= gap_s for a, b in zip(times, times[1:])])
    if now - times[-1] < gap_s:  # the visit going on
        ordered = [x for x, v in zip(ordered, visit_of) if v != visit_of[-1]]
    out: Counter = Counter()
    shown: set[str] = set()
    for n, (lst, visit) in enumerate(zip(ordered, visit_of.tolist())):
        shown.update(lst["paper_ids"])
        if n + 1 == len(ordered) or visit_of[n + 1] != visit:  # the visit's last list
            out.update(shown)
            shown = set()
    return dict(out)


@dataclass(frozen=True)
class Feedback:
    """One reader's turned-down papers, as catalog rows."""

    dismissed: np.ndarray
    skipped: np.ndarray
    visits: np.ndarray  # per skipped row
    weights: FeedbackWeights = DEFAULT

    @property
    def empty(self) -> bool:
        w = self.weights
        return not ((w.dismiss and len(self.dismissed)) or (w.skip and len(self.skipped)))

    def penalty(self, rows: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """The penalty of each of `rows`: the log of the factor its rank is multiplied by."""
        w = self.weights
        out = np.zeros(len(rows))
        n = len(vectors)
        dismissed = self.dismissed[self.dismissed < n][-w.max_dismissed:]
        inside = rows < n  # a paper added since `vectors` was read has no vector here
        if w.dismiss and len(dismissed) and inside.any():
            sims = vectors[rows[inside]] @ vectors[dismissed].T
            out[inside] += w.dismiss * np.maximum(sims.max(axis=1), 0.0)
        if w.skip and len(self.skipped):
            visits = np.zeros(max(int(rows.max(initial=0)), int(self.skipped.max())) + 1)
            visits[self.skipped] = self.visits
            out += w.skip * np.log1p(visits[rows])
        return out

    def rank(self, scores: np.ndarray, k: int, excluded: np.ndarray,
             candidates: np.ndarray | None, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the top k rows after the penalties, scores): the strategy's best `window(k)`
        rows, each moved from rank r to (1 + r) exp(penalty) - 1, the top k of them; each
        row's score is the strategy's score at the rank it moved to (interpolated)."""
        best = top_k(scores, window(k), excluded, candidates)
        ranks = np.arange(len(best), dtype=np.float64)
        moved = (1.0 + ranks) * np.exp(self.penalty(best, vectors)) - 1.0
        order = np.argsort(moved, kind="stable")[:k]
        adjusted = np.array(scores, dtype=np.float64)
        if len(best):
            adjusted[best] = np.interp(moved, ranks, adjusted[best])
        return best[order], adjusted


def reader_feedback(history, lists: Sequence[Mapping], row_of: Mapping[str, int], now: float,
                    weights: FeedbackWeights = DEFAULT) -> Feedback | None:
    """A reader's Feedback from their history (serving/reader_history.ReaderHistory: its
    hidden rows are the dismissed ones still standing) and the lists served to them; None
    when there is nothing to apply."""
    if weights.off:
        return None
    interest = {int(r) for r, kind in zip(history.rows.tolist(), history.kinds)
                if kind in INTEREST_KINDS}
    shown = passed_over(lists, weights.visit_gap_s, now) if weights.skip else {}
    skipped = [(row_of[p], n) for p, n in shown.items() if p in row_of and row_of[p] not in interest]
    feedback = Feedback(
        dismissed=_dismissal_order(history),
        skipped=np.array([r for r, _ in skipped], dtype=np.int64),
        visits=np.array([n for _, n in skipped], dtype=np.int64),
        weights=weights,
    )
    return None if feedback.empty else feedback


def _dismissal_order(history) -> np.ndarray:
    """The reader's standing dismissals (the history has the undone ones removed), in the
    order they were made, so `max_dismissed` keeps the most recent."""
    order: dict[int, None] = {}
    for r, kind in zip(history.rows.tolist(), history.kinds):
        if kind in HIDING_KINDS:
            order.pop(int(r), None)
            order[int(r)] = None
    return np.array(list(order), dtype=np.int64)
