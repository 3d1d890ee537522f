"""The process's worker threads for numpy work that releases the GIL, and the two ways the
code uses them.

- `in_threads`: a batch cut into items, each item a thread's (the blend's per-feature pools,
  row blocks of a ranking); `side_by_side` for items that use those workers themselves
  (offline ranking, a batch of readers at a time).
- `Alongside`: one of a reader's components on a helper while the caller does the others.
- `matvec`: one reader's scores over the whole catalog, a matrix times one vector. A list
  reads the catalog's factors, dense vectors and TF-IDF rows (~50 MB on CiteULike-a) and one
  core cannot read memory as fast as two: the item-factor product, 16,980 x 504 float32,
  took 3.5-3.9 ms p50 on one thread and 1.0-1.3 ms cut into two halves on two threads.

`matvec` cuts the rows at fixed places that depend on the matrix's shape only, never on how
many threads are free, and each block is one call on the same rows whichever thread runs
it: a product is the same to the bit on an idle machine and under load, which the
single-reader path needs (it must equal the batch path's scores). The calling thread works
through the blocks too, so when the helpers are busy (a loaded server) a request does its
own blocks and waits for nobody; and since it works, it has one helper fewer than
there are workers, the cores up to 4 (`HELPERS`). Blocks start at multiples of 16 rows, so each begins at
the alignment the whole matrix has; with the OpenBLAS numpy ships, the blocked product then
equals the uncut one to the bit (checked on the CiteULike-a factors and dense vectors), so
no offline figure moved when scoring began to use it.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

WORKERS = min(4, os.cpu_count() or 1)
# A block is at least this many bytes of the matrix: below it, handing a block to another
# thread (~20-50 us) costs more than reading it (4 MB is ~0.3 ms at 12 GB/s).
BLOCK_BYTES = 4 << 20
MAX_BLOCKS = 16

# One reader's work (`each_block`, `Alongside`) has the calling thread working too, so it
# gets helpers for the other cores only: on 2 cores, a list whose item graph and EASE ran on
# one worker while its products took a second (three threads on two cores) measured p50 /
# p99 5.20 / 8.92 ms over 1,000 CiteULike-a readers, against 4.96 / 6.99 ms with the one
# helper (median of four alternating rounds). At most WORKERS threads a list, the caller
# included, as before: past a few cores a block's handoff costs more than its share.
HELPERS = WORKERS - 1

_POOL_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None
_HELPERS: ThreadPoolExecutor | None = None


# Set on the shared workers' threads: `in_threads` called from one runs its items there, since
# a worker that waits for the pool can wait for a worker that is itself waiting.
_ON_WORKER = threading.local()


def _mark_worker() -> None:
    _ON_WORKER.flag = True


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="paperrec-numpy",
                                       initializer=_mark_worker)
        return _POOL


def _helpers() -> ThreadPoolExecutor:
    """The helpers of one reader's work: a job queued behind a running one waits for it and
    then takes what the caller has not done yet (`each_block`'s shared counter)."""
    global _HELPERS
    with _POOL_LOCK:
        if _HELPERS is None:
            _HELPERS = ThreadPoolExecutor(max_workers=max(1, HELPERS), thread_name_prefix="paperrec-helper")
        return _HELPERS


def in_threads(fn, items) -> list:
    """[fn(x) for x in items], on the worker threads: for numpy work that releases the GIL
    (argpartition, large elementwise operations), so 2 cores do two items at once. Called
    from a worker (an item that itself cuts its work into items), the items run there."""
    items = list(items)
    if len(items) < 2 or WORKERS < 2 or getattr(_ON_WORKER, "flag", False):
        return [fn(x) for x in items]
    return list(_pool().map(fn, items))


def side_by_side(fn, items, width: int | None = None):
    """fn(x) for each x in items, yielded in order, with `width` (at most WORKERS) items in
    flight at a time on threads of this call's own: for items each too large to hold many of
    at once (a batch of 500 readers ranked over CiteULike-a is ~350 MB of feature arrays;
    the caller sets `width` from its memory), whose work uses the shared workers itself. Not the shared pool: an item that waits on `in_threads` from
    a pool worker could wait for a worker that is itself waiting. Ranking 3,455 readers
    with two CiteULike-a models: 32.1 s one batch at a time, 23.2 s two at a time on 2
    cores (the same bits: each batch is the same call on the same rows)."""
    items = list(items)
    width = WORKERS if width is None else max(1, min(int(width), WORKERS))
    if len(items) < 2 or width < 2:
        for x in items:
            yield fn(x)
        return
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="paperrec-batch") as ex:
        pending = []
        for x in items:
            pending.append(ex.submit(fn, x))
            if len(pending) == width:
                yield pending.pop(0).result()
        for f in pending:
            yield f.result()


def row_blocks(n_rows: int, nbytes: int) -> list[tuple[int, int]]:
    """Fixed [start, stop) row ranges of a matrix of n_rows rows and nbytes bytes: as many
    blocks as BLOCK_BYTES allows (at most MAX_BLOCKS), equal in rows, each start a multiple
    of 16 rows so every block begins at the same alignment the whole matrix has."""
    n_blocks = int(max(1, min(MAX_BLOCKS, nbytes // BLOCK_BYTES, n_rows // 16)))
    if n_blocks == 1:
        return [(0, n_rows)]
    step = -(-n_rows // n_blocks)
    step = -(-step // 16) * 16
    return [(a, min(a + step, n_rows)) for a in range(0, n_rows, step)]


def each_block(fn, n_blocks: int) -> None:
    """fn(0) .. fn(n_blocks - 1), shared between the calling thread and the helpers.

    The caller takes blocks too; a helper job that has not started is cancelled once the
    caller has taken the last block, so busy helpers cost the caller nothing but the submit."""
    if n_blocks < 2 or HELPERS < 1:
        for i in range(n_blocks):
            fn(i)
        return
    lock = threading.Lock()
    counter = iter(range(n_blocks))

    def work() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            fn(i)

    helpers = [_helpers().submit(work) for _ in range(min(HELPERS, n_blocks - 1))]
    try:
        work()
    finally:
        for h in helpers:
            if not h.cancel():
                h.result()


class Alongside:
    """fn() on a helper thread while the caller does other work, for one reader's
    independent components (see `OneReaderScorer.features`); the caller's own products
    queue their helpers behind it, so the cores are never oversubscribed.

    `result()` runs fn on the calling thread when no helper has taken it yet (a loaded
    server whose helpers are busy), as `each_block` does: the caller never waits for a
    helper to free up, only for one already running its fn. fn's result is the same value
    whichever thread runs it."""

    def __init__(self, fn):
        self.fn = fn
        self.future = _helpers().submit(fn) if HELPERS >= 1 else None

    def result(self):
        if self.future is None or self.future.cancel():
            return self.fn()
        return self.future.result()


class RowBlocks:
    """A matrix cut into `row_blocks` once, for products with one vector at a time.

    M: a C-contiguous (n, f) array or a CSR matrix. Building the blocks of a CSR matrix
    costs ~0.4 ms each (scipy checks every block it is given), so a model state keeps its
    RowBlocks; a dense matrix's blocks are views and cost nothing."""

    def __init__(self, M: np.ndarray | sp.csr_matrix):
        self.shape = M.shape
        if sp.issparse(M):
            M = sp.csr_matrix(M)
            bounds = row_blocks(M.shape[0], M.data.nbytes + M.indices.nbytes)
            self.parts = [M if (a, b) == (0, M.shape[0]) else M[a:b] for a, b in bounds]
        else:
            M = np.ascontiguousarray(M)
            bounds = row_blocks(M.shape[0], M.nbytes)
            self.parts = [M[a:b] for a, b in bounds]
        self.bounds = bounds

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """M @ v as a float32 vector of M's rows, the blocks on the worker threads. The
        result depends on M and v only (see the module's docstring): one thread or four
        give the same bits."""
        v = np.asarray(v, np.float32).reshape(-1)
        out = np.empty(self.shape[0], np.float32)

        def one(i: int) -> None:
            a, b = self.bounds[i]
            part = self.parts[i]
            if sp.issparse(part):
                out[a:b] = part @ v
            else:
                np.matmul(part, v, out=out[a:b])

        each_block(one, len(self.parts))
        return out


def matvec(M: np.ndarray, v: np.ndarray) -> np.ndarray:
    """M @ v for a dense (n, f) M, in row blocks on the worker threads (`RowBlocks`)."""
    return RowBlocks(M).matvec(v)


def row_scores(M: np.ndarray, U: np.ndarray) -> np.ndarray:
    """(B, f) readers' vectors -> (B, n) C-contiguous float32 products with each of M's n rows.

    The one definition both scoring paths use: one reader goes through `matvec`, so the
    single-reader path and a one-row batch give the same bits; larger batches are one
    matrix product, U Mᵀ, which BLAS writes in the batch's row order (before, (M Uᵀ)ᵀ and a
    transposing copy: 2,000 readers x 16,980 papers x 512 factors 0.36 s against 0.12 s,
    the same bits on this machine's OpenBLAS for every shape measured)."""
    U = np.asarray(U, np.float32)
    if U.shape[0] == 1:
        return matvec(M, U[0])[None, :]
    return np.asarray(U @ np.asarray(M, np.float32).T, dtype=np.float32)
