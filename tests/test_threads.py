"""The worker threads' products (recommender/core/threads.py).

A product cut into row blocks must equal the whole product up to float32 rounding, give the
same bits however many threads run it (the single-reader path is held to the batch path's
bits), and never wait on a busy pool: a loaded server's request does its own blocks."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.core import threads
from recommender.core.threads import Alongside, RowBlocks, each_block, row_blocks, row_scores
from recommender.model.one_reader import OneReaderScorer
from tests.test_one_reader import KINDS, fitted, same_as_batch


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few hundred bytes, so the test matrices are cut into many."""
    monkeypatch.setattr(threads, "BLOCK_BYTES", 256)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), f=st.integers(1, 40), block=st.integers(16, 4096))
def test_row_blocks_cover_every_row_once_at_aligned_starts(n, f, block):
    old = threads.BLOCK_BYTES
    threads.BLOCK_BYTES = block
    try:
        bounds = row_blocks(n, n * f * 4)
    finally:
        threads.BLOCK_BYTES = old
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(b0 == a1 for (_, b0), (a1, _) in zip(bounds, bounds[1:]))
    assert all(b > a for a, b in bounds)
    assert all(a % 16 == 0 for a, _ in bounds)
    assert len(bounds) <= threads.MAX_BLOCKS


@pytest.mark.parametrize("n,f", [(1, 3), (17, 5), (300, 33), (1001, 64)])
def test_dense_blocks_equal_the_whole_product(small_blocks, n, f):
    rng = np.random.default_rng(n)
    M = rng.standard_normal((n, f)).astype(np.float32)
    v = rng.standard_normal(f).astype(np.float32)
    blocks = RowBlocks(M)
    assert 1 <= len(blocks.parts) <= threads.MAX_BLOCKS
    assert (len(blocks.parts) > 1) == (n >= 32)  # a block is at least 16 rows
    got = blocks.matvec(v)
    assert got.dtype == np.float32 and got.shape == (n,)
    np.testing.assert_allclose(got, M.astype(np.float64) @ v.astype(np.float64), rtol=1e-5, atol=1e-4)


def test_sparse_blocks_equal_the_whole_product_to_the_bit(small_blocks):
    X = sp.random(500, 300, density=0.05, format="csr", dtype=np.float32, random_state=3)
    v = np.random.default_rng(3).random(300).astype(np.float32)
    blocks = RowBlocks(X)
    assert len(blocks.parts) > 1
    np.testing.assert_array_equal(blocks.matvec(v), X @ v)


def test_the_bits_do_not_depend_on_how_many_threads_run_them(small_blocks, monkeypatch):
    rng = np.random.default_rng(7)
    M = rng.standard_normal((2000, 48)).astype(np.float32)
    U = rng.standard_normal((1, 48)).astype(np.float32)
    on_workers = row_scores(M, U)
    monkeypatch.setattr(threads, "HELPERS", 0)
    alone = row_scores(M, U)
    np.testing.assert_array_equal(on_workers, alone)
    # a batch of readers is one matrix product: the same figures up to rounding
    both = row_scores(M, np.vstack([U, U]))
    np.testing.assert_allclose(both[0], alone[0], rtol=1e-5, atol=1e-4)
    # in the batch's row order, float32, each row M times that reader's vector
    many = rng.standard_normal((5, 48)).astype(np.float32)
    S = row_scores(M, many)
    assert S.shape == (5, 2000) and S.dtype == np.float32 and S.flags.c_contiguous
    np.testing.assert_allclose(S, (M.astype(np.float64) @ many.T.astype(np.float64)).T, rtol=1e-4, atol=1e-4)


@pytest.fixture
def busy_pool(monkeypatch):
    """Two helpers, each held by a task that waits on an event set only after the test."""
    monkeypatch.setattr(threads, "HELPERS", 2)
    monkeypatch.setattr(threads, "_HELPERS", None)
    release = threading.Event()
    held = [threads._helpers().submit(release.wait, 30) for _ in range(threads.HELPERS)]
    yield
    release.set()
    for h in held:
        h.result(timeout=10)
    threads._helpers().shutdown()


def test_a_busy_pool_does_not_hold_up_the_caller(small_blocks, busy_pool):
    """Every worker is held: a product must still finish on the calling thread alone."""
    M = np.random.default_rng(1).standard_normal((800, 16)).astype(np.float32)
    v = np.ones(16, np.float32)
    result = {}
    caller = threading.Thread(target=lambda: result.setdefault("out", RowBlocks(M).matvec(v)))
    caller.start()
    caller.join(timeout=10)
    assert not caller.is_alive(), "the product waited for a busy worker"
    np.testing.assert_allclose(result["out"], M.sum(axis=1), rtol=1e-5, atol=1e-4)


def test_an_error_in_a_block_reaches_the_caller(monkeypatch):
    monkeypatch.setattr(threads, "HELPERS", 1)
    monkeypatch.setattr(threads, "_HELPERS", None)

    def fn(i):
        if i == 3:
            raise ValueError("block 3")

    with pytest.raises(ValueError, match="block 3"):
        each_block(fn, 8)


def test_each_block_runs_every_block_once(monkeypatch):
    monkeypatch.setattr(threads, "HELPERS", 3)
    monkeypatch.setattr(threads, "_HELPERS", None)
    seen = []
    lock = threading.Lock()

    def fn(i):
        with lock:
            seen.append(i)

    each_block(fn, 13)
    assert sorted(seen) == list(range(13))


def test_alongside_runs_on_a_helper_when_one_is_free(monkeypatch):
    monkeypatch.setattr(threads, "HELPERS", 1)
    monkeypatch.setattr(threads, "_HELPERS", None)
    started = threading.Event()

    def fn():
        started.set()
        return threading.current_thread().name

    job = Alongside(fn)
    assert started.wait(10)
    assert job.result().startswith("paperrec-helper")
    threads._helpers().shutdown()


def test_alongside_runs_on_the_caller_when_every_worker_is_busy(busy_pool):
    """A loaded server: the job never started, so `result` runs it here instead of waiting
    for a worker."""
    job = Alongside(lambda: threading.current_thread().name)
    assert job.result() == threading.current_thread().name


def test_blocks_queued_behind_an_alongside_job_are_taken_up_when_it_ends(monkeypatch):
    """One helper, busy with a job: the caller's blocks do not start a second thread, and
    once the job ends the helper takes blocks the caller has not reached."""
    monkeypatch.setattr(threads, "HELPERS", 1)
    monkeypatch.setattr(threads, "_HELPERS", None)
    job_may_end = threading.Event()
    helper_took_a_block = threading.Event()
    job = Alongside(lambda: job_may_end.wait(30))
    ran_on = {}
    caller = threading.current_thread().name

    def fn(i):
        ran_on[i] = threading.current_thread().name
        if i == 0:
            assert threading.active_count() <= before  # no thread beyond the one helper
            job_may_end.set()
            helper_took_a_block.wait(10)
        elif ran_on[i] != caller:
            helper_took_a_block.set()

    before = threading.active_count()
    each_block(fn, 6)
    assert job.result() is True
    assert sorted(ran_on) == list(range(6))
    assert any(name.startswith("paperrec-helper") for name in ran_on.values())
    threads._helpers().shutdown()


def test_an_error_alongside_reaches_the_caller(monkeypatch):
    monkeypatch.setattr(threads, "HELPERS", 1)
    monkeypatch.setattr(threads, "_HELPERS", None)

    def fn():
        raise ValueError("alongside")

    with pytest.raises(ValueError, match="alongside"):
        Alongside(fn).result()


@pytest.mark.parametrize("workers, width, most", [(2, None, 2), (4, 3, 3), (4, 1, 1), (2, 8, 2)])
def test_side_by_side_yields_in_order_with_a_bounded_number_in_flight(monkeypatch, workers, width, most):
    """Items finish out of order (every third sleeps); the results come back in the items'
    order, and no more than `width` (at most WORKERS) items are ever running or
    done-but-unconsumed."""
    monkeypatch.setattr(threads, "WORKERS", workers)
    lock = threading.Lock()
    live = {"now": 0, "most": 0}

    def fn(x):
        with lock:
            live["now"] += 1
            live["most"] = max(live["most"], live["now"])
        threading.Event().wait(0.02 * (x % 3 == 0))
        return x * x

    out = []
    for y in threads.side_by_side(fn, range(9), width):
        out.append(y)
        with lock:
            live["now"] -= 1
    assert out == [x * x for x in range(9)]
    assert live["most"] == most


def test_side_by_side_items_may_use_the_shared_workers(monkeypatch):
    """Each item ranks through `in_threads` on the shared pool: with the pool as small as
    the items in flight, running the items on the pool's own workers would wait forever."""
    monkeypatch.setattr(threads, "WORKERS", 2)
    monkeypatch.setattr(threads, "_POOL", None)
    result = {}

    def run():
        result["out"] = list(threads.side_by_side(lambda x: sum(threads.in_threads(lambda y: x * y, range(4))),
                                                  range(6)))

    caller = threading.Thread(target=run, daemon=True)
    caller.start()
    caller.join(timeout=20)
    try:
        assert not caller.is_alive(), "side_by_side deadlocked on the shared pool"
        assert result["out"] == [6 * x for x in range(6)]
    finally:
        threads._pool().shutdown()


def test_in_threads_called_from_a_worker_runs_its_items_there(monkeypatch):
    """An item that cuts its own work into items (EASE's scores through `times_dense`):
    with every worker running an outer item, the inner items run on that worker, in order,
    instead of waiting for a worker that is itself waiting."""
    monkeypatch.setattr(threads, "WORKERS", 2)
    monkeypatch.setattr(threads, "_POOL", None)
    result = {}

    def outer(x):
        inner = threads.in_threads(lambda y: (threading.current_thread().name, x * y), range(3))
        return [v for _, v in inner], {name for name, _ in inner}

    def run():
        result["out"] = threads.in_threads(outer, range(4))
        result["caller"] = threading.current_thread().name

    caller = threading.Thread(target=run, daemon=True)
    caller.start()
    caller.join(timeout=20)
    try:
        assert not caller.is_alive(), "in_threads deadlocked on its own pool"
        assert [v for v, _ in result["out"]] == [[0, x, 2 * x] for x in range(4)]
        for _, names in result["out"]:  # each outer item's inner items ran on its own worker
            assert len(names) == 1 and next(iter(names)).startswith("paperrec-numpy")
    finally:
        threads._pool().shutdown(wait=False)  # a deadlocked pool must not hold up the report


def test_an_error_in_an_item_reaches_the_consumer(monkeypatch):
    monkeypatch.setattr(threads, "WORKERS", 2)

    def fn(x):
        if x == 2:
            raise ValueError("item 2")
        return x

    got = []
    with pytest.raises(ValueError, match="item 2"):
        for y in threads.side_by_side(fn, range(5)):
            got.append(y)
    assert got == [0, 1]


@settings(max_examples=20, deadline=None)
@given(history=st.lists(st.tuples(st.integers(0, 79), st.sampled_from(KINDS), st.none()), max_size=20),
       strategy=st.sampled_from(["hybrid", "collaborative", "content"]))
def test_single_reader_path_with_many_blocks_keeps_the_batch_bits(history, strategy):
    """The one-reader path's products cut into many blocks (the catalog here is 80 papers,
    below one block at the real size): still the batch path's scores to the bit."""
    old = threads.BLOCK_BYTES
    threads.BLOCK_BYTES = 128
    try:
        model = _model()
        model._one_reader = None  # built again with this block size
        scorer = model.one_reader()
        assert isinstance(scorer, OneReaderScorer)
        assert len(scorer.V_rows.parts) > 1 and len(scorer.X_rows.parts) > 1
        same_as_batch(model, history, strategy)
    finally:
        threads.BLOCK_BYTES = old


_MODEL = []


def _model():
    if not _MODEL:
        _MODEL.append(fitted())
    return _MODEL[0]
