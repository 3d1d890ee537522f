"""Connections to one SQLite file: one per thread, replaced after an outside fault, and the
transactions and group-commit writes every table family uses."""
from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

from recommender.core.times import utcnow_iso
from recommender.storage.interface import StoreUnavailable
from recommender.storage.sqlite.faults import fault_reason
from recommender.storage.sqlite.schema import MIGRATIONS
from recommender.storage.sqlite.writer import GroupCommitter

BUSY_TIMEOUT_S = 30.0
log = logging.getLogger(__name__)


class _ThreadConnection:
    """One thread's connection. Its only strong reference is the thread's local storage, so
    when the thread exits (the server's pool retires idle threads) this is dropped and the
    connection closed: kept in a list, every retired thread's connection stayed open."""

    __slots__ = ("db", "generation", "__weakref__")

    def __init__(self, db: Database, generation: int):
        self.db, self.generation = db, generation

    def close(self) -> None:
        try:
            self.db.conn.close()
        except sqlite3.Error:
            pass

    def __del__(self):
        self.close()



class Connections:
    """Per-thread connections, fault tracking, transactions and the group-commit writer;
    the table families (papers.py, events.py, ...) build on these."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # Every open connection, weakly: a retired thread's one closes with it.
        self._all_conns: weakref.WeakSet[_ThreadConnection] = weakref.WeakSet()
        self._conns_lock = threading.Lock()
        # Moved on each fault and on its end: every connection older than the last move is
        # replaced at its next use (one opened read-only while the file was read-only
        # would stay read-only for good otherwise).
        self._generation = 0
        self._fault: tuple[str, float] | None = None
        self.experiments_changed = 0
        self.writes_committed = 0
        self._last_probe = 0.0
        # Writers of this process queue here (see the module docstring); reentrant so the
        # writer thread and transaction() can share it.
        self._write_lock = threading.RLock()
        self._committer = GroupCommitter(self)
        self.migrate()

    # -- connections -------------------------------------------------------------------
    @property
    def db(self) -> Database:
        held = getattr(self._local, "conn", None)
        if held is not None and held.generation == self._generation:
            return held.db
        if held is not None and getattr(self._local, "in_transaction", False):
            return held.db  # replaced after the transaction, not in the middle of it
        self._local.conn = None
        if held is not None:
            held.close()
        generation = self._generation
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            db = Database(conn)
            if db.journal_mode != "wal":
                db.enable_wal()
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            if fault_reason(exc):
                raise self.note_fault(exc) from exc
            raise
        held = _ThreadConnection(db, generation)
        self._local.conn = held
        with self._conns_lock:
            self._all_conns.add(held)
        return db

    def open_connections(self) -> int:
        """Connections open now (one per live thread that used the store)."""
        with self._conns_lock:
            return len(self._all_conns)

    def pending_writes(self) -> int:
        """Writes queued for the group commit and not yet taken by it."""
        return self._committer.pending()

    def close(self) -> None:
        self._committer.stop()
        with self._conns_lock:
            for held in list(self._all_conns):
                held.close()
            self._all_conns.clear()
        self._local = threading.local()

    # -- faults outside our control ----------------------------------------------------
    def note_fault(self, exc: BaseException) -> StoreUnavailable:
        """Remember an outside fault (for /health), retire every connection, and return
        the StoreUnavailable to raise in its place."""
        reason = fault_reason(exc) or str(exc)
        if self._fault is None:
            log.warning("database fault: %s (%s)", reason, exc)
        self._fault = (reason, time.monotonic())
        self._generation += 1
        return exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(reason)

    def note_success(self) -> None:
        """A write committed: the fault, if any, is over."""
        if self._fault is not None:
            self._fault = None
            self._generation += 1
            log.warning("database writable again")

    @property
    def fault(self) -> str | None:
        return self._fault[0] if self._fault else None

    PROBE_EVERY_S = 0.5

    def health_reasons(self) -> list[str]:
        """[] when the store takes writes; else why not. While a fault is remembered, a
        fresh connection (what the next request's thread may open) tries one small write,
        at most every PROBE_EVERY_S: so /health heals without waiting for a client write."""
        if self._fault is None:
            return []
        now = time.monotonic()
        if now - self._last_probe >= self.PROBE_EVERY_S:
            self._last_probe = now
            try:
                conn = sqlite3.connect(self.path, timeout=1.0)
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute("INSERT OR REPLACE INTO store_probe (id, at) VALUES (1, ?)",
                                 (utcnow_iso(),))
                    conn.execute("COMMIT")
                finally:
                    conn.close()
            except sqlite3.Error as exc:
                self.note_fault(exc)
            else:
                self.note_success()
        return [f"database unavailable: {self._fault[0]}"] if self._fault else []

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """BEGIN IMMEDIATE: take the write lock up front so two writers queue on the
        busy timeout instead of one failing on lock upgrade mid-transaction."""
        db = self.db
        with self._write_lock:
            try:
                db.conn.execute("BEGIN IMMEDIATE")
                self._local.in_transaction = True
                try:
                    yield db
                except BaseException:
                    try:
                        if db.conn.in_transaction:
                            db.conn.rollback()
                    except sqlite3.Error:
                        pass  # a faulted connection: SQLite undid the transaction itself
                    raise
                else:
                    db.conn.execute("COMMIT")
                    self.note_written()
                finally:
                    self._local.in_transaction = False
            except sqlite3.Error as exc:
                if fault_reason(exc):
                    raise self.note_fault(exc) from exc
                raise

    def write(self, fn, durable: bool = True):
        """Run `fn(db)` in the next group commit and return its result once committed
        (its exception, with nothing of it stored, if it raised). `durable=False` allows a
        commit without fsync when no durable write shares it. Inside transaction() it runs
        inline, as part of that transaction."""
        if getattr(self._local, "in_transaction", False):
            return fn(self.db)
        return self._committer.submit(fn, durable)

    def insert_unacknowledged(self, sql: str, params: tuple) -> None:
        """Queue one INSERT nobody waits for and return at once (served lists: see the
        module docstring); flush() waits for it. Inside transaction() it runs inline."""
        if getattr(self._local, "in_transaction", False):
            self.db.conn.execute(sql, params)
        else:
            self._committer.append_row(sql, params)

    async def write_async(self, fn, durable: bool = True):
        """write() for the event loop: awaits the group commit instead of blocking a worker
        thread on it (a route that waits for an fsync then costs no thread while it waits)."""
        return await asyncio.wrap_future(self._committer.enqueue(fn, durable))

    def flush(self) -> None:
        """Wait for writes submitted without waiting (served lists), so a read that follows
        sees them."""
        if not getattr(self._local, "in_transaction", False):
            self._committer.flush()

    # -- schema --------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> int:
        """Apply pending migrations in order, each in its own transaction."""
        applied = 0
        for version, migration in enumerate(MIGRATIONS, start=1):
            if self.schema_version >= version:
                continue
            with self.transaction() as db:
                if self.schema_version >= version:  # another process got there first
                    continue
                migration(db)
                db.conn.execute(f"PRAGMA user_version = {version}")
            applied += 1
        return applied

    def fault_reason(self, exc: BaseException) -> str | None:
        return fault_reason(exc)

    @property
    def location(self) -> str:
        return str(self.path)
