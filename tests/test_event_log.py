"""The in-memory interaction log trending is computed from (recommender/serving/event_log.py)."""
from __future__ import annotations

import threading

import numpy as np

from recommender.core.kinds import KINDS, TRENDING_WEIGHTS
from recommender.serving.event_log import EventLog


def test_appends_grow_past_the_first_block_and_snapshots_are_copies():
    log = EventLog()
    n = 3000  # more than the first block of 1024
    log.append(np.arange(n) % 7, ["read"] * n, np.arange(n, dtype=float), ids=np.arange(1, n + 1))
    snap = log.snapshot()
    assert len(log) == n and snap.items[:8].tolist() == [0, 1, 2, 3, 4, 5, 6, 0]
    log.append([1], ["upvote"], [9.0])
    assert len(snap.items) == n and len(log.snapshot().items) == n + 1
    assert KINDS[log.snapshot().kinds[-1]] == "upvote"


def test_weights_by_kind_and_events_that_do_not_count():
    log = EventLog()
    log.append([0, 1, 2], ["click", "upvote", "impression"], [1.0, 2.0, 3.0],
               counts=[True, False, True], ids=[10, 11, 12])
    assert log.snapshot().weights(TRENDING_WEIGHTS).tolist() == [1.0, 0.0, 0.0]
    log.void([10])
    assert log.snapshot().weights(TRENDING_WEIGHTS).tolist() == [0.0, 0.0, 0.0]
    assert len(log) == 3  # every stored event is still in the log


def test_concurrent_appends_lose_nothing():
    log = EventLog()

    def write(t):
        for i in range(200):
            log.append([t], ["read"], [float(i)])

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(log) == 800 and np.bincount(log.snapshot().items).tolist() == [200] * 4
