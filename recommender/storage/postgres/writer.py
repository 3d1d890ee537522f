"""The group-commit writer of the PostgreSQL backend: one thread per store and process
commits every write waiting at that moment in one transaction (one WAL flush), each in its
own savepoint, on a connection of its own.

Why: a commit waits for its WAL flush (synchronous_commit stays on: a 2xx means
committed). Committed one by one, concurrent event posts queue behind each other's flush;
together, a hundred waiting requests cost one flush. The events change feed also takes one
lock turn per batch instead of one per request (see schema.py).

Served lists nobody waits for are kept in a bounded backlog and written in front of the
next batch, or on their own every IDLE_COMMIT_S. While the database is unreachable they
stay in the backlog (at most MAX_BACKLOG rows; beyond, the oldest are dropped and logged)
and go in once it is back: an outage costs the report no lists unless it is long.
"""
from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import threading
from collections import deque

import psycopg
from psycopg.rows import dict_row

from recommender.storage.interface import StoreUnavailable
from recommender.storage.postgres.faults import connection_lost, fault_reason

log = logging.getLogger(__name__)


class _WriteJob:
    """A write waiting for the writer thread, with the future its caller waits on."""

    __slots__ = ("fn", "future", "result", "error")

    def __init__(self, fn):
        self.fn = fn
        self.future: concurrent.futures.Future = concurrent.futures.Future()
        self.result = self.error = None

    def claim(self) -> bool:
        """False when the waiter gave up first (an async request cancelled while queued):
        such a job is never written, so nothing is stored that nobody will see
        acknowledged."""
        return self.future.set_running_or_notify_cancel()

    def settle(self) -> None:
        if self.error is not None:
            self.future.set_exception(self.error)
        else:
            self.future.set_result(self.result)


def _nothing(cur) -> None:
    return None


class _JobFailed(Exception):
    """A job of a batch written without savepoints failed: run the batch again with them."""


class GroupCommitter:
    MAX_BATCH = 512
    IDLE_COMMIT_S = 0.05
    MAX_BACKLOG = 20_000

    def __init__(self, store):
        """`store`: the connections.Connections it writes for (its url, _fail_fast,
        note_success, note_fault and writes_committed)."""
        self.store = store
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._rows: deque = deque()
        self._conn: psycopg.Connection | None = None
        self._conn_generation = -1
        self.dropped_rows = 0

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                if self._pid != os.getpid():  # a forked child starts afresh
                    self._queue, self._rows, self._conn = queue.SimpleQueue(), deque(), None
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="store-writer",
                                                daemon=True)
                self._thread.start()

    def pending(self) -> int:
        return self._queue.qsize()

    def submit(self, fn):
        return self.enqueue(fn).result()

    def enqueue(self, fn) -> concurrent.futures.Future:
        """Queue a write; the future resolves once the commit that holds it is durable."""
        self._ensure_thread()
        job = _WriteJob(fn)
        self._queue.put(job)
        return job.future

    def append_row(self, sql, params: tuple) -> None:
        self._ensure_thread()
        self._rows.append((sql, params))
        if len(self._rows) > self.MAX_BACKLOG:
            self._rows.popleft()
            self._note_dropped(1)

    def _note_dropped(self, n: int) -> None:
        self.dropped_rows += n
        if self.dropped_rows == n or self.dropped_rows % 1000 < n:
            log.error("served-list backlog full: %d unacknowledged rows dropped so far",
                      self.dropped_rows)

    def flush(self) -> None:
        """Wait until every write submitted so far is committed (or failed)."""
        if self._rows or self._thread is not None:
            try:
                self.submit(_nothing)
            except StoreUnavailable:
                pass  # nothing to wait for: the rows stay queued until the database is back

    def stop(self) -> None:
        with self._start_lock:
            thread, self._thread = self._thread, None
            if thread is not None and thread.is_alive() and self._pid == os.getpid():
                self._queue.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=60)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _take_rows(self) -> list[tuple]:
        rows = []
        while self._rows:
            rows.append(self._rows.popleft())
        return rows

    def _run(self) -> None:
        q = self._queue
        while True:
            try:
                job = q.get(timeout=self.IDLE_COMMIT_S)
            except queue.Empty:
                if self._rows:
                    self._commit([], self._take_rows())
                continue
            if job is None:
                self._commit([], self._take_rows())
                return
            jobs, stop = [job], False
            while len(jobs) < self.MAX_BATCH:
                try:
                    nxt = q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
            self._commit(jobs, self._take_rows())
            if stop:
                return

    def _connection(self) -> psycopg.Connection:
        from recommender.storage.postgres.connections import connect

        if (self._conn is None or self._conn.closed or self._conn.broken
                or self._conn_generation != self.store.generation):
            # Opened before a fault ended (the server restarted): not to be trusted.
            self._drop_connection()
            self.store._fail_fast()
            self._conn_generation = self.store.generation
            self._conn = connect(self.store.url)
        return self._conn

    def _commit(self, jobs: list[_WriteJob], rows: list[tuple]) -> None:
        jobs = [j for j in jobs if j.claim()]
        if not jobs and not rows:
            return
        store = self.store
        try:
            try:
                self._transaction(jobs, rows)
            except Exception as exc:
                # The connection was found dead before COMMIT was sent (the server restarted
                # since it was opened): nothing is stored, so once more on a fresh one.
                if not (connection_lost(exc) and not getattr(exc, "at_commit", False)):
                    raise
                self._drop_connection()
                for j in jobs:
                    j.result = j.error = None
                self._transaction(jobs, rows)
            store.note_written()
        except Exception as exc:  # the commit failed: nobody's write is stored
            reason = fault_reason(exc)
            if reason is not None:
                exc = store.note_fault(exc)
                # Served lists wait for the database to come back (bounded).
                room = self.MAX_BACKLOG - len(self._rows)
                kept = rows[-room:] if room > 0 else []
                self._rows.extendleft(reversed(kept))
                if len(kept) < len(rows):
                    self._note_dropped(len(rows) - len(kept))
            elif rows:
                log.error("commit failed, %d unacknowledged rows dropped: %r", len(rows), exc)
            if self._conn is not None and (self._conn.broken or self._conn.closed):
                self._drop_connection()
            for j in jobs:
                if j.error is None:
                    j.result, j.error = None, exc
        finally:
            for j in jobs:
                j.settle()

    def _transaction(self, jobs: list[_WriteJob], rows: list[tuple]) -> None:
        """One transaction holding every row and job. First without savepoints (each costs
        two round trips per job, the larger part of a single event's write); if a job
        fails, that transaction is rolled back and the batch runs again with one savepoint
        per job, so only the failed job is undone. An exception raised by the COMMIT
        itself is marked `at_commit`: its outcome is unknown."""
        try:
            self._attempt(jobs, rows, savepoints=False)
        except _JobFailed:
            for j in jobs:
                j.result = j.error = None
            self._attempt(jobs, rows, savepoints=True)

    def _attempt(self, jobs: list[_WriteJob], rows: list[tuple], savepoints: bool) -> None:
        conn = self._connection()
        tx = conn.transaction()
        tx.__enter__()
        try:
            with conn.cursor(row_factory=dict_row) as cur:
                if rows:
                    _insert_rows(conn, cur, rows)
                for j in jobs:
                    try:
                        if savepoints:
                            with conn.transaction():  # only this job is undone
                                j.result = j.fn(cur)
                        else:
                            j.result = j.fn(cur)
                    except Exception as exc:
                        if fault_reason(exc) or conn.broken:
                            raise  # not the job's fault: the transaction is gone
                        if not savepoints:
                            raise _JobFailed() from exc
                        j.error = exc
        except BaseException as exc:
            tx.__exit__(type(exc), exc, exc.__traceback__)
            raise
        try:
            tx.__exit__(None, None, None)
        except Exception as exc:
            exc.at_commit = True
            raise

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
        self._conn = None


def _insert_rows(conn: psycopg.Connection, cur: psycopg.Cursor, rows: list[tuple]) -> None:
    """Rows nobody waits for: one executemany per statement; if it fails, row by row so
    that only a bad row (say a repeated request_id) is dropped, and logged."""
    by_sql: dict = {}
    for sql, params in rows:
        by_sql.setdefault(sql, []).append(params)
    for sql, many in by_sql.items():
        try:
            with conn.transaction():
                cur.executemany(sql, many)
        except psycopg.Error as exc:
            if fault_reason(exc) or conn.broken:
                raise
            for params in many:
                try:
                    with conn.transaction():
                        cur.execute(sql, params)
                except psycopg.Error as row_exc:
                    if fault_reason(row_exc) or conn.broken:
                        raise
                    log.error("unacknowledged write dropped: %r", row_exc)
