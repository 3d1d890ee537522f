"""The group-commit writer: one thread per store and process commits every write waiting at
that moment in one transaction (one fsync), each in its own savepoint.

See the package docstring (recommender/storage/sqlite/__init__.py) for what it promises.
"""
from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import sqlite3
import threading
from collections import deque

from sqlite_utils import Database

from recommender.storage.sqlite.faults import fault_reason

log = logging.getLogger(__name__)


class _WriteJob:
    """A write waiting for the writer thread. Waited-for writes carry a future: a worker
    thread blocks on it, an async route awaits it (asyncio.wrap_future) without holding a
    thread while the commit's fsync runs."""

    __slots__ = ("fn", "durable", "future", "result", "error")

    def __init__(self, fn, durable: bool, unwaited: bool = False):
        self.fn, self.durable = fn, durable
        self.future: concurrent.futures.Future | None = None if unwaited else concurrent.futures.Future()
        self.result = self.error = None

    @property
    def unwaited(self) -> bool:
        return self.future is None

    def claim(self) -> bool:
        """Called by the writer before it runs the job: False when the waiter gave up first
        (an async request cancelled while queued). Such a job is never written, so nothing
        is stored that no one acknowledged or will see acknowledged."""
        return self.future is None or self.future.set_running_or_notify_cancel()

    def settle(self) -> None:
        if self.future is not None:
            if self.error is not None:
                self.future.set_exception(self.error)
            else:
                self.future.set_result(self.result)


def _nothing(db: Database) -> None:
    return None


def _insert_rows(sql: str, rows: list[tuple]):
    """One executemany for rows nobody waits for; if it fails, row by row so that only a
    bad row (say a repeated request_id) is dropped, and logged."""
    def insert(db: Database) -> None:
        conn = db.conn
        conn.execute("SAVEPOINT many")
        try:
            conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            if fault_reason(exc):  # the disk's fault, not a row's: SQLite may have undone
                raise              # the transaction (ROLLBACK TO would be 'no such savepoint')
            conn.execute("ROLLBACK TO many")
            for params in rows:
                conn.execute("SAVEPOINT one")
                try:
                    conn.execute(sql, params)
                except sqlite3.Error as exc:
                    if fault_reason(exc):
                        raise
                    conn.execute("ROLLBACK TO one")
                    log.error("unacknowledged write dropped: %r", exc)
                conn.execute("RELEASE one")
        conn.execute("RELEASE many")
    return insert


class GroupCommitter:
    """One writer thread per Store and process: drains the queue, one transaction and one
    commit (one fsync) per batch of waiting writes.

    Rows nobody waits for (served lists) are not queued: they are appended to a deque
    the writer takes in front of its next batch, or on its own every IDLE_COMMIT_S. So a
    GET does not wake the writer thread (each wake-up is a GIL hand-off, which under load
    cost more than the insert), and a write queued after a list still commits after it.
    The rows of one statement go in with one executemany: one statement each with its own
    savepoint was a fifth of the server's CPU in `make bench-load`'s recommendations run."""

    MAX_BATCH = 512
    IDLE_COMMIT_S = 0.05

    def __init__(self, store):
        """`store`: the connections it commits through (connections.Connections: its
        `db`, `_write_lock`, `note_success` and `note_fault`)."""
        self.store = store
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._unwaited: deque = deque()

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                if self._pid != os.getpid():  # a forked child starts afresh
                    self._queue, self._unwaited = queue.SimpleQueue(), deque()
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="store-writer",
                                                daemon=True)
                self._thread.start()

    def pending(self) -> int:
        return self._queue.qsize()

    def submit(self, fn, durable: bool):
        return self.enqueue(fn, durable).result()

    def append_row(self, sql: str, params: tuple) -> None:
        self._ensure_thread()
        self._unwaited.append((sql, params))

    def enqueue(self, fn, durable: bool) -> concurrent.futures.Future:
        """Queue a write; the future resolves once the commit that holds it is on disk
        (with its result, or the exception that undid it)."""
        self._ensure_thread()
        job = _WriteJob(fn, durable)
        self._queue.put(job)
        return job.future

    def flush(self) -> None:
        """Wait until every write submitted so far is committed."""
        if self._unwaited or self._thread is not None:
            self.submit(_nothing, durable=False)

    def stop(self) -> None:
        with self._start_lock:
            thread, self._thread = self._thread, None
            if thread is not None and thread.is_alive() and self._pid == os.getpid():
                self._queue.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=60)

    def _take_unwaited(self) -> list[_WriteJob]:
        rows: dict[str, list[tuple]] = {}
        while self._unwaited:
            sql, params = self._unwaited.popleft()
            rows.setdefault(sql, []).append(params)
        return [_WriteJob(_insert_rows(sql, many), durable=False, unwaited=True)
                for sql, many in rows.items()]

    def _run(self) -> None:
        q = self._queue
        while True:
            try:
                job = q.get(timeout=self.IDLE_COMMIT_S)
            except queue.Empty:
                if self._unwaited:
                    self._commit(self._take_unwaited())
                continue
            jobs = self._take_unwaited()
            if job is None:
                if jobs:
                    self._commit(jobs)
                return
            jobs.append(job)
            stop = False
            while len(jobs) < self.MAX_BATCH:
                try:
                    nxt = q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
            self._commit(jobs)
            if stop:
                return

    def _commit(self, jobs: list[_WriteJob]) -> None:
        jobs = [j for j in jobs if j.claim()]
        if not jobs:
            return
        store = self.store
        try:
            with store._write_lock:
                db = store.db
                conn = db.conn
                durable = any(j.durable for j in jobs)
                if not durable:
                    conn.execute("PRAGMA synchronous = NORMAL")
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        for j in jobs:
                            conn.execute("SAVEPOINT job")
                            try:
                                j.result = j.fn(db)
                            except Exception as exc:  # this job's fault: only it is undone
                                if fault_reason(exc) or not conn.in_transaction:
                                    raise  # not the job's: SQLite undid the transaction
                                conn.execute("ROLLBACK TO job")
                                j.error = exc
                                if j.unwaited:
                                    log.error("unacknowledged write dropped: %r", exc)
                            conn.execute("RELEASE job")
                        conn.execute("COMMIT")
                        store.note_written()
                    except BaseException:
                        if conn.in_transaction:
                            conn.rollback()
                        raise
                finally:
                    if not durable:
                        try:
                            conn.execute("PRAGMA synchronous = FULL")
                        except sqlite3.Error:
                            pass  # a faulted connection; it is replaced before its next use
        except BaseException as exc:  # the commit failed: nobody's write is stored
            if fault_reason(exc):
                exc = store.note_fault(exc)
            if any(j.unwaited for j in jobs):
                log.error("commit failed, unacknowledged writes dropped: %r", exc)
            for j in jobs:
                if j.error is None:
                    j.result, j.error = None, exc
        finally:
            for j in jobs:
                j.settle()

