"""Readers' ranked lists, kept for a while: a budget of items, expiry by age.

A reader's model-ranked list is served again for `ttl_s` seconds unless what it was
ranked from changes first (the caller names that in the entry's `valid` tuple: the reader's
event generation, the model, its paper count). Within the TTL only the confidence decay of
the reader's own events moves (half-life 180 days: a relative change of ~3e-6 a minute),
which does not reorder a list in practice.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict

from recommender.core.ranking import Ranked


class KeptLists:
    def __init__(self, ttl_s: float, max_items: int):
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._lists: OrderedDict[tuple, tuple[tuple, float, Ranked]] = OrderedDict()
        self._items = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def __len__(self) -> int:
        return len(self._lists)

    def keys(self) -> list[tuple]:
        return list(self._lists)

    @property
    def items(self) -> int:
        """Items of all kept lists together."""
        return self._items

    def get(self, key: tuple, valid: tuple) -> Ranked | None:
        """The list kept under `key` if it has not expired and was kept with the same
        `valid` (numbers compared by value, anything else by identity)."""
        kept = self._lists.get(key)
        if kept is None or kept[1] <= time.monotonic() or len(kept[0]) != len(valid):
            return None
        same = all(a is b or (isinstance(a, (int, float, str)) and a == b)
                   for a, b in zip(kept[0], valid))
        return kept[2] if same else None

    def keep(self, key: tuple, valid: tuple, ranked: Ranked) -> None:
        """Keep a list, dropping the ones past their TTL and then the oldest until all fit
        in `max_items` items. The TTL is the same for every list, so the oldest kept is the
        first to expire: both walks start at the front and stop at the first list that
        stays."""
        now = time.monotonic()
        with self._lock:
            lists = self._lists
            old = lists.pop(key, None)
            if old is not None:
                self._items -= len(old[2].rows)
            lists[key] = (valid, now + self.ttl_s, ranked)
            self._items += len(ranked.rows)
            while lists:
                first_key, first = next(iter(lists.items()))
                if first_key == key or (first[1] > now and self._items <= self.max_items):
                    break
                del lists[first_key]
                self._items -= len(first[2].rows)
