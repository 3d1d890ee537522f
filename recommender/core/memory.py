"""Giving memory freed on worker threads back to the system (`release_free_memory`).

Why: glibc's malloc gives each thread that allocates its own arena, and an arena keeps the
memory freed in it for that thread's later use instead of returning it. The item graph's
fit prunes its blocks on the worker threads (`ItemGraph.fit`), ~200 MB of temporaries a
block at 100,000 papers, and the arenas kept them: on `make bench-train`'s generated set
two graph fits left the process 413 MB larger than the same fits on one thread (1,098
against 685 MB resident), and every later stage of the fit ran that much higher (peak 3.15
against 2.82 GB). `malloc_trim(0)` returns the free pages of every arena: 592 MB after
the same two fits, for 6-15 ms a call (it holds each arena's lock while it walks it, so a
fit calls it once, after its threaded work, not after every batch). Elsewhere (musl,
macOS) there is nothing to call and nothing is done.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # no such C library, or one without malloc_trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the pages malloc holds free, in every thread's arena, to the system. True when
    glibc's malloc_trim ran and released some."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
