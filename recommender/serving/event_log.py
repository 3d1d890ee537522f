"""The interaction log as parallel arrays, appended to as events arrive.

An event trending does not count (an undo with nothing to take back, or an undo and the
event it took back: core/events.undo_pairs) is kept with `counts` False, so the log still
has every stored event and weighs it 0.

Trending and popularity need every event's (paper, weight, time); keeping them as growing
numpy arrays makes a trending list one vectorised pass instead of a SQL aggregate per
request.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from recommender.core.kinds import KINDS

KIND_CODE = {k: i for i, k in enumerate(KINDS)}


@dataclass(frozen=True)
class EventArrays:
    items: np.ndarray  # catalog row per event
    kinds: np.ndarray  # index into KINDS
    ts: np.ndarray  # unix seconds
    counts: np.ndarray  # False for an event that counts nowhere
    readers: np.ndarray  # a number per reader (the log's own; -1 when not given)

    def weights(self, weight_of_kind: dict[str, float]) -> np.ndarray:
        table = np.array([weight_of_kind.get(k, 0.0) for k in KINDS])
        return np.where(self.counts, table[self.kinds], 0.0)


class EventLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items = np.zeros(1024, dtype=np.int64)
        self._kinds = np.zeros(1024, dtype=np.int8)
        self._ts = np.zeros(1024, dtype=np.float64)
        self._counts = np.ones(1024, dtype=bool)
        self._ids = np.zeros(1024, dtype=np.int64)
        self._readers = np.full(1024, -1, dtype=np.int64)
        self._reader_code: dict[str, int] = {}
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def append(self, items, kinds, ts, counts=None, ids=None, readers=None) -> None:
        """Events in arrival order; `ids` (the store's event ids) let void() find them;
        `readers` (user ids) let trending count a reader once per paper."""
        items = np.asarray(items, dtype=np.int64)
        m = len(items)
        with self._lock:
            if readers is None:
                codes = np.full(m, -1, dtype=np.int64)
            else:
                code = self._reader_code
                codes = np.array([code.setdefault(r, len(code)) for r in readers], dtype=np.int64)
            need = self._n + m
            if need > len(self._items):
                cap = max(need, 2 * len(self._items))
                self._items = np.resize(self._items, cap)
                self._kinds = np.resize(self._kinds, cap)
                self._ts = np.resize(self._ts, cap)
                self._counts = np.resize(self._counts, cap)
                self._ids = np.resize(self._ids, cap)
                self._readers = np.resize(self._readers, cap)
            self._items[self._n : need] = items
            self._kinds[self._n : need] = np.asarray([KIND_CODE[k] for k in kinds], dtype=np.int8)
            self._ts[self._n : need] = np.asarray(ts, dtype=np.float64)
            self._counts[self._n : need] = True if counts is None else np.asarray(counts, dtype=bool)
            self._ids[self._n : need] = 0 if ids is None else np.asarray(ids, dtype=np.int64)
            self._readers[self._n : need] = codes
            self._n = need

    def void(self, ids) -> None:
        """Stop counting the events with these store ids (already appended)."""
        ids = np.asarray(list(ids), dtype=np.int64)
        if len(ids):
            with self._lock:
                n = self._n
                self._counts[:n][np.isin(self._ids[:n], ids)] = False

    def snapshot(self) -> EventArrays:
        """Copies of the filled part: readers keep a consistent view while writers append."""
        with self._lock:
            n = self._n
            return EventArrays(self._items[:n].copy(), self._kinds[:n].copy(), self._ts[:n].copy(),
                               self._counts[:n].copy(), self._readers[:n].copy())
