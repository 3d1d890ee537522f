"""A reader's history as arrays: the content profile it implies, the papers it makes seen
or hidden (the one rule of core/kinds.py), and the reader's own marks.

Why weights by kind and a decay: an upvote says more than a click, a dismissal says 'not
this', and what someone read last week says more about today than what they read last
year. With one or two events the profile already personalises.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from recommender.core.kinds import HIDING_KINDS, PROFILE_WEIGHTS, SEEN_KINDS
from recommender.core.times import DAY_S

PROFILE_HALF_LIFE_DAYS = 60.0


@dataclass(frozen=True)
class ReaderHistory:
    rows: np.ndarray  # catalog rows, in time order
    kinds: list[str]
    ts: np.ndarray  # unix seconds

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def is_empty(self) -> bool:
        return len(self.rows) == 0

    def rows_of(self, kinds: frozenset[str]) -> np.ndarray:
        """Sorted distinct rows with an event of one of `kinds`."""
        return np.array(sorted({int(r) for r, k in zip(self.rows, self.kinds) if k in kinds}),
                        dtype=np.int64)

    @cached_property
    def seen(self) -> np.ndarray:
        """Rows that leave the reader's lists by default (exclude_seen)."""
        return self.rows_of(SEEN_KINDS)

    @cached_property
    def hidden(self) -> np.ndarray:
        """Rows that leave the reader's lists whatever they ask (dismissed)."""
        return self.rows_of(HIDING_KINDS)

    def excluded(self, exclude_seen: bool = True) -> np.ndarray:
        """The rows a list for this reader leaves out."""
        return np.union1d(self.seen, self.hidden) if exclude_seen else self.hidden


def content_profile(history: ReaderHistory, vectors: np.ndarray, now: float,
                    half_life_days: float = PROFILE_HALF_LIFE_DAYS) -> np.ndarray:
    """Unit vector: decayed, kind-weighted sum of the content vectors of the history."""
    profile = np.zeros(vectors.shape[1], dtype=np.float64)
    if history.is_empty:
        return profile
    age_days = np.maximum(now - history.ts, 0.0) / DAY_S
    decay = 0.5 ** (age_days / half_life_days)
    weights = np.array([PROFILE_WEIGHTS.get(k, 0.0) for k in history.kinds]) * decay
    profile = weights @ vectors[history.rows].astype(np.float64)
    norm = np.linalg.norm(profile)
    return profile / norm if norm > 0 else profile


def reader_marks(history: ReaderHistory) -> tuple[set[int], set[int]]:
    """(rows the reader has upvoted and not taken back, rows they dismissed): what a page
    shows as their own marks. Dismissals undone are already gone from a history
    (events.without_cancelled)."""
    upvoted: set[int] = set()
    dismissed: set[int] = set()
    for row, kind in zip(history.rows.tolist(), history.kinds):
        if kind == "upvote":
            upvoted.add(row)
        elif kind == "remove_upvote":
            upvoted.discard(row)
        elif kind == "dismiss":
            dismissed.add(row)
    return upvoted, dismissed


EMPTY_HISTORY = ReaderHistory(rows=np.zeros(0, dtype=np.int64), kinds=[],
                              ts=np.zeros(0, dtype=np.float64))
