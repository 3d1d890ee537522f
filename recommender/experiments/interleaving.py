"""Team-draft interleaving: compare two rankings inside one list.

Why interleaving: in an A/B test each reader sees one strategy, and the difference between
readers (some click a lot, some never) drowns the difference between strategies. Here every
reader sees both at once, so each reader is their own control and far fewer readers are
needed (the benchmark measures how many fewer).

Team draft (Radlinski, Kurup & Joachims, 2008): like picking teams in a schoolyard. The team
with fewer picks so far chooses next (a coin decides when they are level); it adds its
highest-ranked paper that is not in the list yet. Each slot remembers its team; a click on
it is credited to that team. Per reader, the team with more credited clicks wins; a sign
test (exact binomial on wins vs losses, ties dropped) says whether one wins more often than
chance.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


def team_draft(list_a: Sequence, list_b: Sequence, k: int,
               rng: random.Random) -> tuple[list, list[int]]:
    """Merge two rankings into at most k items; returns (items, team per slot: 0 = a, 1 = b).

    When one team has nothing left to add, the other keeps picking, so the list is as long
    as the two rankings allow."""
    merged: list = []
    teams: list[int] = []
    taken: set = set()
    lists = (list(list_a), list(list_b))
    nxt = [0, 0]
    picks = [0, 0]

    def next_item(team: int):
        lst = lists[team]
        while nxt[team] < len(lst) and lst[nxt[team]] in taken:
            nxt[team] += 1
        return lst[nxt[team]] if nxt[team] < len(lst) else None

    while len(merged) < k:
        if picks[0] < picks[1]:
            team = 0
        elif picks[1] < picks[0]:
            team = 1
        else:
            team = 0 if rng.random() < 0.5 else 1
        item = next_item(team)
        if item is None:
            team = 1 - team
            item = next_item(team)
            if item is None:
                break
        merged.append(item)
        teams.append(team)
        taken.add(item)
        picks[team] += 1
    return merged, teams


def credit(teams: Sequence[int], clicked_positions: Sequence[int]) -> tuple[int, int]:
    """Clicks credited to (team a, team b) for one list; positions outside it are ignored."""
    a = b = 0
    for pos in clicked_positions:
        if 0 <= pos < len(teams):
            if teams[pos] == 0:
                a += 1
            else:
                b += 1
    return a, b


@dataclass(frozen=True)
class InterleaveResult:
    readers: int
    wins_a: int  # readers whose clicks went more to a
    wins_b: int
    ties: int  # equal credit, including readers who clicked nothing
    clicks_a: int
    clicks_b: int
    share_b: float | None  # wins_b / (wins_a + wins_b)
    share_b_ci: tuple[float, float] | None  # 95% Clopper-Pearson interval for share_b
    delta: float | None  # (wins_b - wins_a) / readers: the usual interleaving preference
    p_value: float | None  # two-sided exact sign test
    # Also shown: a paired t-test on each reader's (b - a) credited clicks. It uses how
    # much a reader preferred one side, not only which side, so it often needs fewer
    # readers; the sign test is the headline because it assumes nothing about the shape.
    mean_diff: float | None = None
    paired_p_value: float | None = None

    @property
    def preferred(self) -> str | None:
        if self.p_value is None or self.wins_a == self.wins_b:
            return None
        return "b" if self.wins_b > self.wins_a else "a"


def sign_test(wins_a: int, wins_b: int) -> tuple[float | None, tuple[float, float] | None]:
    """Two-sided exact binomial test of wins_b among wins_a + wins_b against 1/2, and the
    95% Clopper-Pearson interval of that share (scipy.stats.binomtest)."""
    n = int(wins_a) + int(wins_b)
    if n == 0:
        return None, None
    res = stats.binomtest(int(wins_b), n, 0.5, alternative="two-sided")
    ci = res.proportion_ci(confidence_level=0.95, method="exact")
    return float(res.pvalue), (float(ci.low), float(ci.high))


def compare(clicks_a: np.ndarray, clicks_b: np.ndarray) -> InterleaveResult:
    """Per-reader credited clicks of each team -> wins / losses / ties and the sign test."""
    clicks_a = np.asarray(clicks_a, dtype=np.int64)
    clicks_b = np.asarray(clicks_b, dtype=np.int64)
    wins_a = int((clicks_a > clicks_b).sum())
    wins_b = int((clicks_b > clicks_a).sum())
    readers = int(len(clicks_a))
    p, ci = sign_test(wins_a, wins_b)
    decided = wins_a + wins_b
    diff = (clicks_b - clicks_a).astype(np.float64)
    paired_p = None
    if readers >= 2 and diff.var() > 0:
        paired_p = float(stats.ttest_1samp(diff, 0.0).pvalue)
    return InterleaveResult(
        readers=readers, wins_a=wins_a, wins_b=wins_b, ties=readers - decided,
        clicks_a=int(clicks_a.sum()), clicks_b=int(clicks_b.sum()),
        share_b=wins_b / decided if decided else None, share_b_ci=ci,
        delta=(wins_b - wins_a) / readers if readers else None, p_value=p,
        mean_diff=float(diff.mean()) if readers else None, paired_p_value=paired_p,
    )
