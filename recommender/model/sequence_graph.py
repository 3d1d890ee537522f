"""What readers take up next: a directed paper-to-paper graph from the order of reading.

The item graph (item_graph.py) links papers read by the same readers at any time in their
histories. This one links a paper to the papers readers took up after it: each reader's
distinct papers in the order first engaged with, and from each of them a link to each of
the next `reach` papers, weighed `decay ** (steps - 1)`. Papers taken up one after another
share a reason (a search, a topic, a page of a feed, a list of films rated in one sitting)
that a whole-history co-occurrence dilutes among everything else the reader ever read.
Normalised like the item graph's walk: each row a transition distribution, divided by
popularity(j) ** beta, pruned to `top_k`, rows l1-normalised; scored the same way,
`history_row @ W`. The blend learns its weight on the validation slice like every other
signal's, so where order says nothing it weighs nothing.

Why forward only: a live list answers "what next". Measured on MovieLens-small (NDCG@20 of
the hybrid, means of seeds 0, 1, 2; the README's "What each component adds"): without the
graph warm 0.2738, user-temporal 0.1263; forward links 0.2747 / 0.1276 (every seed of
user-temporal gains, warm +0.0021 / +0.0023 / -0.0018); links both ways (reach 30, ties
in the file's order) 0.2766 / 0.1268; both directions as two features 0.2726 / 0.1271.
Reach and decay (tried with ties in the file's order): 10 / 0.9 and 100 / 0.98 within
0.001 of 30 / 0.95 on warm and under it on user-temporal. These are product defaults (a
reach in papers, not a setting the data's size moves); the weight is the data's.

Papers taken up at the same instant (MovieLens: 17% of a reader's steps, ratings given in
one second) link both ways, and their order is by paper index, so the events' order in a
file changes nothing. Ordered as the file had them (by film id there), the same graph
scored 0.2758 / 0.1286: an order the readers never gave, which the latest-20% split's own
tie-break shares, so that figure is not claimed. Ties left unlinked: 0.2729 / 0.1286.

When it exists (`reading_order`): only when events carry times that order a reader's
history -- at least half of the steps between a reader's consecutive events strictly later.
Data with no times (CiteULike-a's files) or one time for every event (an import without
times, which the store stamps with the import's instant) has no order to learn from and
gets no graph, and its lists are what they were without this module.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recommender.model.item_graph import PaperGraph, square_from_arrays, top_k_per_row

# at least this share of the steps between a reader's consecutive events go strictly forward
MIN_ORDERED_SHARE = 0.5
# links built at once, before their block is pruned: 16 bytes each
PAIR_BLOCK = 4_000_000
# at most this many links looked at in all (reading positions x reach): beyond it the reach
# shrinks, so the graph's cost stays bounded as the log grows (`bounded_reach`)
LINK_BUDGET = 40_000_000
MIN_REACH = 5
REACH = 30
DECAY = 0.95
BETA = 0.4
TOP_K = 200


def reading_order(users, items, ts, n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(readers, papers, times): every reader's distinct papers in the order first engaged
    with and when (grouped by reader; papers taken up at the same time by paper index, so
    that the order of the events given changes nothing), or None when the times do not
    order the histories (module docstring)."""
    if ts is None or len(users) < 2:
        return None
    users = np.asarray(users, np.int64)
    items = np.asarray(items, np.int64)
    t = np.asarray(ts, np.float64)
    if not np.isfinite(t).all():
        return None
    order = np.lexsort((items, t, users))
    u, i, t = users[order], items[order], t[order]
    step = u[1:] == u[:-1]
    if not step.any() or (t[1:] > t[:-1])[step].mean() < MIN_ORDERED_SHARE:
        return None
    _, first = np.unique(u * n_items + i, return_index=True)
    first = np.sort(first)  # each (reader, paper) at its first event, still in reading order
    return u[first], i[first], t[first]


def _links_from(at: np.ndarray, readers, papers, times, reach: int, decay: float):
    """(from, to, weight) of every link out of the positions `at` of the reading order: to
    each of the next `reach` papers of the same reader (weight `decay ** (k - 1)`, k steps
    on), and back to an earlier one taken up at the same instant: nothing says which came
    first, and the order they happen to have (by paper index, `reading_order`) must not
    decide it."""
    frm, to, w = [], [], []
    n = len(papers)
    for k in range(1, reach + 1):
        ahead = at[at + k < n]
        ahead = ahead[readers[ahead + k] == readers[ahead]]
        behind = at[at >= k]
        behind = behind[(readers[behind - k] == readers[behind]) & (times[behind - k] == times[behind])]
        frm += [papers[ahead], papers[behind]]
        to += [papers[ahead + k], papers[behind - k]]
        w.append(np.full(len(ahead) + len(behind), decay ** (k - 1), np.float32))
    return np.concatenate(frm), np.concatenate(to), np.concatenate(w)


def bounded_reach(positions: int, reach: int) -> int:
    """`reach`, or less where `positions` x reach would pass `LINK_BUDGET` (never under
    `MIN_REACH`): MovieLens-small's 41,265 reading positions and a million keep 30; the
    5M-event scale set of `make bench-train` gets 8: its graph 14.7 s and +500 MB of peak
    memory against 62.9 s and +725 MB at 30 (on 2 cores shared with the test suite)."""
    return int(min(reach, max(MIN_REACH, LINK_BUDGET // max(positions, 1))))


def paper_blocks(papers: np.ndarray, n_items: int, reach: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of paper indices, each the source of about `PAIR_BLOCK` links or
    one paper: a block's links are built, summed and pruned before the next block's."""
    work = np.cumsum(np.bincount(papers, minlength=n_items).astype(np.int64) * reach)
    cuts = np.searchsorted(work, np.arange(PAIR_BLOCK, work[-1] + PAIR_BLOCK, PAIR_BLOCK)) if len(work) else []
    bounds = np.unique(np.r_[0, np.minimum(np.asarray(cuts, np.int64) + 1, n_items), n_items])
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


@dataclass
class SequenceGraph(PaperGraph):
    """`weights`: row = the paper read, col = a paper read after it."""
    reach: int = REACH
    decay: float = DECAY
    beta: float = BETA
    top_k: int = TOP_K
    PREFIX = "seq_"

    @classmethod
    def fit(cls, readers: np.ndarray, papers: np.ndarray, times: np.ndarray, n_items: int, reach: int = REACH,
            decay: float = DECAY, beta: float = BETA, top_k: int = TOP_K) -> "SequenceGraph":
        """`readers`, `papers`, `times`: `reading_order`'s arrays. Built a block of papers'
        rows at a time, each block pruned to `top_k` links a paper before the next, as the
        item graph is: the unpruned links of a large log would not fit in memory (1M events
        of 20,000 papers: 11.8 s and +566 MB built whole)."""
        readers, papers = np.asarray(readers, np.int64), np.asarray(papers, np.int64)
        times = np.asarray(times, np.float64)
        reach = bounded_reach(len(papers), reach)
        scale = (1.0 / np.maximum(np.bincount(papers, minlength=n_items), 1.0) ** beta).astype(np.float32)
        by_paper = np.argsort(papers, kind="stable")
        starts = np.searchsorted(papers[by_paper], np.arange(n_items + 1))
        blocks = []
        for a, b in paper_blocks(papers, n_items, reach):
            frm, to, w = _links_from(by_paper[starts[a]:starts[b]], readers, papers, times, reach, decay)
            Wb = sp.csr_matrix((w, (frm - a, to)), shape=(b - a, n_items), dtype=np.float32)  # sums repeats
            Wb.data[Wb.indices == np.repeat(np.arange(a, b), np.diff(Wb.indptr))] = 0.0  # no link to itself
            Wb.eliminate_zeros()
            Wb = normalize(Wb, norm="l1")  # each row a transition distribution ...
            Wb.data *= scale[Wb.indices]  # ... divided by popularity(j) ** beta
            blocks.append(top_k_per_row(Wb, top_k))
        W = sp.vstack(blocks).tocsr() if blocks else sp.csr_matrix((n_items, n_items), dtype=np.float32)
        W = normalize(W, norm="l1").astype(np.float32)
        return cls(sp.csr_matrix(W), int(reach), float(decay), float(beta), int(top_k))

    def params(self) -> dict:
        return {"reach": self.reach, "decay": self.decay, "beta": self.beta, "top_k": self.top_k}

    @classmethod
    def from_arrays(cls, arrays, params: dict) -> "SequenceGraph":
        return cls(square_from_arrays(arrays, cls.PREFIX), int(params["reach"]), float(params["decay"]),
                   float(params["beta"]), int(params["top_k"]))
