"""The order readers read in, as a second EASE: each reader's papers in time order, cut
into windows of consecutive papers, each window one more pseudo-reader of EASE's input.

Why: a reader's history as one row says which papers go together over their whole life as
a reader; a twenty-year MovieLens history holds films rated in one evening and films rated
a decade apart alike. A window of `WINDOW` consecutive papers says which papers are taken
up *near each other*, the signal sequence-aware recommenders use, in a form the closed-form
EASE already solves: the readers, the word rows (`ease.word_rows`) and the windows are all
rows of X. In place of the hybrid's EASE that traded the splits (MovieLens warm up,
user-temporal down: the item-item weights became more "next paper" and less "also read");
as a second feature of the blend, learned on the validation slice like the others, both
splits gain at every seed (NDCG@20, MovieLens, seeds 0 / 1 / 2; session 37):

| | warm | user-temporal |
|---|---|---|
| without | 0.2745 / 0.2737 / 0.2737 | 0.1273 / 0.1251 / 0.1260 |
| windows of 20, every 10 (built) | 0.2772 / 0.2749 / 0.2771 | 0.1277 / 0.1268 / 0.1274 |
| the same, a prototype breaking ties in time at random | 0.2782 / 0.2751 / 0.2756 | 0.1290 / 0.1269 / 0.1277 |
| windows of 20, every 20 (prototype) | 0.2785 / 0.2744 / 0.2751 | 0.1271 / 0.1267 / 0.1268 |
| windows of 10, every 5 / every 10 (prototype, seed 0) | 0.2774 / 0.2786 | 0.1260 / 0.1265 |

`WINDOW` and `STRIDE` are product settings, like the words' `min_df`: twenty papers is a
session's reading or a few days of a daily feed, and every window overlaps the next by
half so that no pair of neighbours is split by a window's edge alone.

**The latest papers** (`HybridConfig.reading_latest`, `LATEST` by default; 0 turns them
off). The same EASE scores a second row per reader: their `reading_latest` latest
papers (by each pair's last event) alone, the `latest` feature. The whole history says what
a reader likes; the latest papers, read through weights learnt from windows, say what they
take up next. Learned in the blend, MovieLens user-temporal 0.1273 -> 0.1325 (mean of
seeds 0 / 1 / 2; every seed over 0.131) for warm 0.2764 -> 0.2755; 10, 20 and 40 latest
papers did less (README, "The reader's latest papers"). A reader with at most that many
papers has none (`latest_rows`). It costs random-holdout sets a little (`ml250-warm` -2.0%
over three seeds, `ml-partly-p1` -0.5%): a live list asks the temporal question (what a
reader opens next), so it is on wherever the windows' feature is, and a feed (below) has
neither. Batch scoring takes each
reader's latest papers from their events (`latest_rows`), a live list from its history
(`latest_of_history`): the same rule, so one reader's scores equal the batch's to the bit.

**The reader's windows** (`HybridConfig.reading_windows`, on by default). The reader's own
reading cut into windows as the windows' EASE is learnt from (`window_cuts`; 20 papers
every 10), each window scored alone through that EASE, z-scored, and the best of a reader's
windows for each paper: the `windows` feature (`components.best_window_scores`). EASE is
linear, so the windows summed say what the whole history says (`order`); a paper tied to
one period of a reader's reading (an evening's films, a project's papers) is drowned there
by their other periods, and the best window keeps it. A reader whose reading is one window
has none (`reader_windows`, the `latest` rule). Learned in the blend, NDCG@20 at seeds
0 / 1 / 2 (session 40): MovieLens warm 0.2744 / 0.2757 / 0.2765 -> 0.2818 / 0.2785 /
0.2799 (mean 0.2755 -> 0.2801), user-temporal 0.1342 / 0.1319 / 0.1313 -> 0.1352 / 0.1315 /
0.1321 (0.1325 -> 0.1329): the first signal since the windows' EASE to lift warm without
costing user-temporal. Batch scoring cuts the windows from the events (`reader_windows`),
a live list from its history (`windows_of_history`): the same rule, the same bits.

Where: the data has event times that differ (a set without them has no order to read) and
the catalog has no trusted publication times (`HybridModel.fit` leaves both features out
of a feed: its next readings are mostly papers nobody has read yet, which the order of
past reading cannot rank; tests/test_freshness.py's generated feed with old unread papers
found 0.180 of its readers' later papers in their top 10 without the windows' feature,
0.135 with it and 0.115 with the latest papers too),
EASE is in the blend (the second EASE takes its λ and word weight), and the windows fit
beside the readers under EASE's `max_solve` (the readers' side, `ease.Gram`). Beyond that
the windows would move the solve to the papers' side, where EASE is pruned and covers only
the most-read papers; the feature is then left out and the manifest says why.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.core.times import to_unix
from recommender.model.ease import EaseModel, FactoredEase, Gram, word_rows

WINDOW = 20  # consecutive papers of one reader in a window
STRIDE = 10  # a new window every this many papers
MIN_PAPERS = 2  # a window (a reader's last, or a short reader's only) with fewer links nothing
LATEST = 5  # a reader's latest papers, the `latest` feature's history


def pair_times(users, items, ts, n_items: int, last: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(readers, papers, first event time) of each reader-paper pair with a finite time,
    sorted by reader, then time (`last`: each pair's last event time instead). Ties in time
    keep the papers' index order: the windows of the same events are the same windows."""
    users = np.asarray(users, np.int64)
    items = np.asarray(items, np.int64)
    ts = np.asarray(ts, np.float64)
    timed = np.isfinite(ts)
    key = users[timed] * n_items + items[timed]
    t = ts[timed]
    o = np.lexsort((t, key))
    key, t = key[o], t[o]
    if not len(key):
        first = np.zeros(0, bool)
    elif last:
        first = np.r_[key[1:] != key[:-1], True]
    else:
        first = np.r_[True, key[1:] != key[:-1]]
    key, t = key[first], t[first]
    u, i = key // n_items, key % n_items
    o = np.lexsort((i, t, u))
    return u[o], i[o], t[o]


def values_at(keep: sp.csr_matrix, u: np.ndarray, i: np.ndarray) -> np.ndarray:
    """keep[u, i] for each pair, 0 for a reader beyond keep's rows (events of readers the
    matrix being fit does not hold)."""
    out = np.zeros(len(u), np.float64)
    inside = np.flatnonzero(u < keep.shape[0])
    if len(inside):
        out[inside] = np.asarray(keep[u[inside], i[inside]]).ravel()
    return out


def reader_bounds(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of each reader's run in `u`, readers sorted (`pair_times`' order):
    the r-th reader present has the pairs starts[r]:ends[r]. Empty for no pairs."""
    if not len(u):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    cuts = np.flatnonzero(u[1:] != u[:-1]) + 1
    return np.r_[0, cuts], np.r_[cuts, len(u)]


def window_rows(users, items, ts, keep: sp.csr_matrix, window: int = WINDOW,
                stride: int = STRIDE) -> sp.csr_matrix | None:
    """(windows x papers), 0/1: each reader's papers that `keep` (readers x papers) stores,
    in the order of their first event, cut into windows of `window` papers every `stride`
    papers, `stride` <= `window` (a reader's last window may be shorter; one of fewer than
    `MIN_PAPERS` is dropped). `keep` is the matrix being fit: the validation fit's windows hold none of the
    slice's held-out papers. None without event times or without any window."""
    if ts is None:
        return None
    n_items = keep.shape[1]
    u, i, _ = pair_times(users, items, ts, n_items)
    stored = values_at(sp.csr_matrix(keep), u, i) != 0
    u, i = u[stored], i[stored]
    if not len(u):
        return None
    s, e = window_cuts(*reader_bounds(u), window, stride)
    if len(s) == 0:
        return None
    return _window_matrix(i, s, e, n_items)


def window_cuts(first: np.ndarray, end: np.ndarray, window: int = WINDOW,
                stride: int = STRIDE) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the windows of readers whose pairs are first[r]:end[r] of one
    time-ordered sequence: one start every `stride` up to the first window that reaches the
    reader's end (the one start in [end - window, end - window + stride)), a later one being
    that one's tail; a window shorter than `MIN_PAPERS` is dropped. The one rule of what a
    window is, for the windows EASE learns from and for the reader's own (`reader_windows`)."""
    starts = [np.arange(a, max(b - window, a) + stride, stride) for a, b in zip(first, end)]
    if not starts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    s = np.concatenate(starts).astype(np.int64)
    e = np.minimum(s + window, np.repeat(np.asarray(end, np.int64), [len(x) for x in starts]))
    kept = e - s >= MIN_PAPERS
    return s[kept], e[kept]


def _window_matrix(i: np.ndarray, s: np.ndarray, e: np.ndarray, n_items: int) -> sp.csr_matrix:
    """(windows x papers), 0/1: window w holds the papers i[s[w]:e[w]]."""
    rows = np.repeat(np.arange(len(s)), e - s)
    cols = i[np.concatenate([np.arange(a, b) for a, b in zip(s, e)])] if len(s) else np.zeros(0, np.int64)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(s), n_items))


def window_count(keep: sp.csr_matrix, window: int = WINDOW, stride: int = STRIDE) -> int:
    """How many windows `window_rows` cuts from `keep` at most (every pair timed): a reader
    of n papers gives none below `MIN_PAPERS`, one up to `window`, else one every `stride`
    until a window reaches the end, the last dropped if shorter than `MIN_PAPERS`. Counted before the windows are built, so a data set
    too large for them pays nothing."""
    n = np.diff(sp.csr_matrix(keep).indptr)
    last = np.ceil(np.maximum(n - window, 0) / stride).astype(np.int64)  # the last window's number
    tail = np.minimum(window, n - last * stride)  # and its length (n itself below `window`)
    return int((last + (tail >= MIN_PAPERS)).sum())


def fit(C: sp.csr_matrix, events: tuple | None, ease: EaseModel | FactoredEase | None,
        text: sp.csr_matrix | None, max_solve: int, top_k: int) -> tuple[FactoredEase | None, dict]:
    """The second EASE over the readers of C (the matrix being fit) and the windows of
    their reading (`events`: users, items, event times), at `ease`'s λ and word weight (the
    words fill the room left, as in the first). Returns (model or None, a record for the
    manifest: the windows, or why the feature is left out)."""
    if ease is None:
        return None, {"left_out": "no EASE in the blend"}
    if events is None or events[2] is None:
        return None, {"left_out": "no event times to order the reading by"}
    readers = int((np.diff(sp.csr_matrix(C).indptr) > 0).sum())
    if readers + window_count(C) > max_solve:
        return None, {"left_out": f"{readers} readers and {window_count(C)} windows exceed EASE's solve ({max_solve})"}
    windows = window_rows(*events, C)
    if windows is None:
        return None, {"left_out": "no reader with two timed papers"}
    stacked = sp.vstack([sp.csr_matrix(C, dtype=np.float32), windows], format="csr")
    gram = Gram(stacked, max_solve, word_rows(text) if ease.words > 0 else None)
    if not gram.by_readers:
        return None, {"left_out": "more readers and windows than read papers"}
    return gram.solve(ease.lam, top_k, ease.words), {"windows": int(windows.shape[0])}


def latest_rows(users, items, ts, keep: sp.csr_matrix, latest: int = LATEST) -> sp.csr_matrix | None:
    """(readers x papers), 0/1: each reader's `latest` papers among those `keep` stores with
    a positive confidence, by each pair's last timed event (ties: the higher index is the
    later). What the `latest` feature scores through the windows' EASE for a batch of
    readers; `latest_of_history` is the same rule for one reader. None without times.

    A reader with at most `latest` papers gets an empty row: their latest papers are their
    whole history, which the `order` feature scores already, and the same scores twice
    would weigh the windows' EASE double for exactly the readers the blend learnt the
    `latest` weight least on. Measured on `make bench-derived`'s `ml-partly-p1` (60% of the
    readers with one film in train): 0.2829 without the feature, 0.2684 with it for every
    reader."""
    if ts is None:
        return None
    keep = sp.csr_matrix(keep)
    many = np.asarray((keep > 0).sum(axis=1)).ravel() > latest
    u, i, _ = pair_times(users, items, ts, keep.shape[1], last=True)
    positive = values_at(keep, u, i) > 0
    u, i = u[positive], i[positive]
    u, i = u[many[u]], i[many[u]]
    starts, ends = reader_bounds(u)
    from_end = np.repeat(ends, ends - starts) - np.arange(len(u))  # 1 for a reader's last
    kept = from_end <= latest
    return sp.csr_matrix((np.ones(int(kept.sum()), np.float32), (u[kept], i[kept])), shape=keep.shape)


def latest_of_history(history, row: sp.csr_matrix, latest: int = LATEST) -> np.ndarray | None:
    """One reader's `latest_rows`: from their history [(paper index, kind, ts), ...] and its
    confidence row, the papers of the row (positive confidence) with the `latest` last
    timed events, ascending; None where none of them has a time, or where the row holds at
    most `latest` papers (`latest_rows`)."""
    if not history or row.nnz <= latest:
        return None
    n_items = int(row.shape[1])
    papers = np.array([int(h[0]) for h in history], np.int64)
    ts = np.array([to_unix(h[2]) if len(h) > 2 else np.nan for h in history], np.float64)
    known = (papers >= 0) & (papers < n_items)  # as `confidence.history_rows` keeps them
    _, i, _ = pair_times(np.zeros(int(known.sum()), np.int64), papers[known], ts[known], n_items, last=True)
    i = i[np.isin(i, row.indices)]
    if not len(i):
        return None
    return np.sort(i[-latest:])


def reader_windows(users, items, ts, keep: sp.csr_matrix, window: int = WINDOW,
                   stride: int = STRIDE) -> tuple[sp.csr_matrix, np.ndarray] | None:
    """(windows x papers, 0/1; each window's reader, ascending): each reader's papers that
    `keep` holds with a positive confidence, in the order of their first timed event, cut
    into windows as the windows' EASE learns from (`window_cuts`). What the `windows`
    feature scores, each window alone; `windows_of_history` is the same rule for one reader.
    None without times or without any such window.

    A reader whose reading is one window gets none: that window is their whole timed
    history, which the `order` feature scores already (the `latest` rule, `latest_rows`)."""
    if ts is None:
        return None
    keep = sp.csr_matrix(keep)
    u, i, _ = pair_times(users, items, ts, keep.shape[1])
    positive = values_at(keep, u, i) > 0
    u, i = u[positive], i[positive]
    first, end = reader_bounds(u)
    s, e = window_cuts(first, end, window, stride)
    if not len(s):
        return None
    owner = u[s]
    several = np.r_[owner[1:] == owner[:-1], False] | np.r_[False, owner[1:] == owner[:-1]]
    s, e, owner = s[several], e[several], owner[several]
    if not len(s):
        return None
    return _window_matrix(i, s, e, keep.shape[1]), owner


def windows_of_history(history, row: sp.csr_matrix, window: int = WINDOW,
                       stride: int = STRIDE) -> list[np.ndarray] | None:
    """One reader's `reader_windows`: from their history [(paper index, kind, ts), ...] and
    its confidence row, the papers of each window of the row's papers (positive
    confidence) in the order of their first timed event; None where they make one window
    or none."""
    if not history or row.nnz <= window:  # one window at most
        return None
    n_items = int(row.shape[1])
    papers = np.array([int(h[0]) for h in history], np.int64)
    ts = np.array([to_unix(h[2]) if len(h) > 2 else np.nan for h in history], np.float64)
    known = (papers >= 0) & (papers < n_items)  # as `confidence.history_rows` keeps them
    _, i, _ = pair_times(np.zeros(int(known.sum()), np.int64), papers[known], ts[known], n_items)
    i = i[np.isin(i, row.indices[row.data > 0])]
    s, e = window_cuts(np.zeros(1, np.int64), np.array([len(i)], np.int64), window, stride)
    if len(s) < 2:
        return None
    return [np.sort(i[a:b]) for a, b in zip(s, e)]


@dataclass(frozen=True)
class ReadingRows:
    """What the order features score of a batch of readers beyond their confidence rows:
    each reader's latest papers (`latest`: batch x papers, from `latest_rows`; None where
    that feature is off) and the windows of their own reading (`windows`: windows x papers,
    from `reader_windows`, with `owner`, each window's reader's row in the batch,
    ascending; None where that feature is off or no reader has two windows)."""

    latest: sp.csr_matrix | None = None
    windows: sp.csr_matrix | None = None
    owner: np.ndarray | None = None

    def take(self, rows: np.ndarray) -> "ReadingRows":
        """The same for the readers `rows` of this batch, in that order."""
        rows = np.asarray(rows, np.int64)
        latest = self.latest[rows] if self.latest is not None else None
        if self.windows is None:
            return ReadingRows(latest)
        order = np.argsort(rows, kind="stable")
        at = np.searchsorted(rows[order], self.owner)
        inside = at < len(rows)
        inside[inside] = rows[order][at[inside]] == self.owner[inside]
        picked = np.flatnonzero(inside)
        new_owner = order[at[picked]]
        o = np.argsort(new_owner, kind="stable")
        if not len(o):
            return ReadingRows(latest)
        return ReadingRows(latest, self.windows[picked[o]], new_owner[o])

    def of_one(self) -> tuple[np.ndarray | None, list[np.ndarray] | None]:
        """The first reader's latest papers and windows as `one_reader.OneHistory` holds
        them (what `latest_of_history` and `windows_of_history` give for a live list)."""
        latest = None
        if self.latest is not None and self.latest[0].nnz:
            latest = np.sort(self.latest[0].indices).astype(np.int64)
        windows = None
        if self.windows is not None and (self.owner == 0).any():
            W = self.windows[np.flatnonzero(self.owner == 0)]
            windows = [np.sort(W[r].indices).astype(np.int64) for r in range(W.shape[0])]
        return latest, windows


def reading_rows(users, items, ts, keep: sp.csr_matrix, latest: int, windows: bool) -> ReadingRows | None:
    """The readers of `keep` (its rows) as the order features score them, from their events
    (users, items, times): their `latest` latest papers (0: none) and, with `windows`, the
    windows of their reading. None without event times or with neither feature."""
    if ts is None or (latest <= 0 and not windows):
        return None
    L = latest_rows(users, items, ts, keep, latest) if latest > 0 else None
    W = reader_windows(users, items, ts, keep) if windows else None
    return ReadingRows(L, *(W if W is not None else (None, None)))
