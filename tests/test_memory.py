"""`release_free_memory`: what worker threads freed goes back to the system (glibc keeps it
in each thread's arena otherwise; recommender/core/memory.py)."""
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from recommender.core.memory import _malloc_trim, release_free_memory

STATM = Path("/proc/self/statm")


def resident_mb() -> float:
    return int(STATM.read_text().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux") or not STATM.exists() or _malloc_trim() is None,
                    reason="glibc's malloc_trim and /proc are Linux's")
def test_memory_freed_on_a_worker_thread_is_returned():
    def work() -> None:
        # 64 KB arrays come from the thread's arena (larger ones are mapped and unmapped alone)
        arrays = [np.ones(16_000, np.float32) for _ in range(4_000)]  # 256 MB
        del arrays

    release_free_memory()
    t = threading.Thread(target=work)
    t.start()
    t.join()
    kept = resident_mb()
    assert release_free_memory()
    assert resident_mb() < kept - 150  # most of the 256 MB the thread freed
