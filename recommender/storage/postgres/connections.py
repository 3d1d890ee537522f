"""Connections to one PostgreSQL database: a bounded pool for reads and short writes, fault
tracking that fails fast while the server is unreachable, migrations, and the group-commit
writes every table family uses."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import ConnectionPool

from recommender.core.times import utcnow_iso
from recommender.storage.interface import StoreUnavailable
from recommender.storage.postgres.faults import (DRIVER_ERRORS, connection_lost, fault_reason,
                                                 pool_busy)
from recommender.storage.postgres.schema import LOCK_CLASS, MIGRATION_LOCK, MIGRATIONS
from recommender.storage.postgres.writer import GroupCommitter

log = logging.getLogger(__name__)

# Connection options every connection of the service uses. synchronous_commit is set on
# explicitly: a 2xx means committed and flushed, whatever the server's default says.
CONNECT_KWARGS = {"connect_timeout": 5, "application_name": "paperrec",
                  "options": "-c synchronous_commit=on"}


def redacted(url: str) -> str:
    """The URL without its password (for logs, /health and `location`)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=netloc[0].split(":", 1)[0] + ":***@" + netloc[1]))


def connect(url: str, **kwargs) -> psycopg.Connection:
    """One connection outside the pool (the group-commit writer, the health probe)."""
    return psycopg.connect(url, autocommit=True, **{**CONNECT_KWARGS, **kwargs})


class Connections:
    """The pool, fault tracking, transactions and the group-commit writer; the table
    families (papers.py, events.py, ...) build on these."""

    # Bounded: at most this many connections per process (a replica), besides the writer's.
    POOL_SIZE = 12
    # How long a caller waits for a pooled connection before the request is a 503.
    POOL_WAIT_S = 5.0
    # While the server is unreachable, calls fail at once (no connect timeout per request)
    # and a background thread tries a fresh connection this often.
    RETRY_S = 0.5
    # Written by another process's writes: how long the live view may go without asking
    # (LiveRecommender.refresh). Writes through this Store are seen at once.
    feed_poll_s = 0.1

    def __init__(self, url: str, pool_size: int | None = None):
        self.url = url
        self._fault: tuple[str, float] | None = None
        self._unreachable = False
        # Moved when a fault ends: a connection opened before is replaced (writer.py).
        self.generation = 0
        self._fault_lock = threading.Lock()
        self.experiments_changed = 0
        self.writes_committed = 0
        self._pool = ConnectionPool(
            url, min_size=1, max_size=pool_size or self.POOL_SIZE, timeout=self.POOL_WAIT_S,
            max_waiting=256, kwargs={"autocommit": True, **CONNECT_KWARGS},
            name="paperrec", open=False, reconnect_timeout=3600.0)
        self._pool.open(wait=False)
        self._committer = GroupCommitter(self)
        self.migrate()

    @property
    def location(self) -> str:
        return redacted(self.url)

    def close(self) -> None:
        self._committer.stop()
        self._pool.close(timeout=5.0)

    def pending_writes(self) -> int:
        return self._committer.pending()

    # -- faults outside our control ----------------------------------------------------
    def note_fault(self, exc: BaseException) -> StoreUnavailable:
        """Remember an outside fault (for /health) and return the StoreUnavailable to
        raise in its place. A lost or refused connection also makes every call fail at
        once (no request waits on a connect or the pool while the server is down) until a
        background probe reaches the server again."""
        reason = fault_reason(exc) or str(exc)
        with self._fault_lock:
            if self._fault is None:
                log.warning("database fault: %s", reason)
            self._fault = (reason, time.monotonic())
            start_probe = connection_lost(exc) and not self._unreachable
            if start_probe:
                self._unreachable = True
        if start_probe:
            threading.Thread(target=self._probe_until_reachable, name="store-probe",
                             daemon=True).start()
        return exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(reason)

    def note_success(self) -> None:
        if self._fault is not None or self._unreachable:
            with self._fault_lock:
                was = self._fault
                self._fault, self._unreachable = None, False
                self.generation += 1
            if was is not None:
                log.warning("database reachable and writable again")

    @property
    def fault(self) -> str | None:
        fault = self._fault
        return fault[0] if fault else None

    def fault_reason(self, exc: BaseException) -> str | None:
        return fault_reason(exc)

    def _fail_fast(self) -> None:
        """While the server is unreachable, refuse at once (the probe ends it)."""
        if self._unreachable:
            fault = self._fault
            raise StoreUnavailable(fault[0] if fault else "database unreachable")

    def _probe(self) -> bool:
        """Whether a fresh connection (not a pooled one) can write the probe row now; ends
        the fault if so, renews it if not."""
        try:
            with connect(self.url, connect_timeout=2) as conn:
                conn.execute("INSERT INTO store_probe (id, at) VALUES (1, %s) "
                             "ON CONFLICT (id) DO UPDATE SET at = excluded.at", (utcnow_iso(),))
        except DRIVER_ERRORS as exc:
            self.note_fault(exc)
            return False
        # Pooled connections the outage broke are dropped before anyone is handed one.
        self._pool.check()
        self.note_success()
        return True

    def _probe_until_reachable(self) -> None:
        """The background half of a lost server: try every RETRY_S until it answers."""
        while self._unreachable and not self._pool.closed:
            time.sleep(self.RETRY_S)
            if self._probe():
                return

    def health_reasons(self) -> list[str]:
        """[] when the store takes writes; else why not. A fault other than a lost server
        (full disk, read-only) is probed here, at most every RETRY_S."""
        fault = self._fault
        if fault is None:
            return []
        if not self._unreachable and time.monotonic() - fault[1] >= self.RETRY_S:
            self._probe()
        fault = self._fault
        return [f"database unavailable: {fault[0]}"] if fault else []

    # -- reads and short writes --------------------------------------------------------
    def _run(self, fn, retry: bool):
        """fn(connection) on a pooled connection. A read whose connection turned out to be
        broken is tried once more if the server answers a fresh connection (it restarted
        since the pooled one was opened; the pool then drops its broken ones); if it does
        not, the fault is noted at once, without waiting on the pool for a connection that
        cannot come. An outside fault becomes StoreUnavailable."""
        self._fail_fast()
        attempts = 2 if retry else 1
        for attempt in range(attempts):
            try:
                with self._pool.connection() as conn:
                    return fn(conn)
            except DRIVER_ERRORS as exc:
                if fault_reason(exc) is None:
                    raise
                if pool_busy(exc):
                    self._reachable()  # the server gone (then fail fast), or only busy?
                elif attempt + 1 < attempts and connection_lost(exc) and self._reachable():
                    continue
                raise self.note_fault(exc) from exc

    def _reachable(self) -> bool:
        """Whether a fresh connection gets through now (then the pool's broken ones go)."""
        try:
            connect(self.url, connect_timeout=2).close()
        except DRIVER_ERRORS as exc:
            self.note_fault(exc)
            return False
        self._pool.check()
        return True

    def query(self, sql, params=(), tuples: bool = False) -> list:
        """Every row of one read (dicts, or tuples), retried once on a lost connection."""
        factory = tuple_row if tuples else dict_row

        def read(conn):
            with conn.cursor(row_factory=factory) as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        return self._run(read, retry=True)

    def query_one(self, sql, params=()) -> tuple | None:
        rows = self.query(sql, params, tuples=True)
        return rows[0] if rows else None

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor]:
        """One transaction on a pooled connection (dict rows). Not retried: a connection
        lost during COMMIT leaves its outcome unknown, so the caller gets a 503 and its
        client retries (idempotency keys make that safe)."""
        self._fail_fast()
        try:
            with self._pool.connection() as conn:
                with conn.transaction():
                    with conn.cursor(row_factory=dict_row) as cur:
                        yield cur
            self.note_written()
        except DRIVER_ERRORS as exc:
            if pool_busy(exc):
                self._reachable()
            if fault_reason(exc):
                raise self.note_fault(exc) from exc
            raise

    @contextmanager
    def streaming(self, sql, params, batch: int) -> Iterator[psycopg.Cursor]:
        """A server-side cursor over one read (a training run over millions of events
        holds `batch` rows at a time, not the table)."""
        self._fail_fast()
        try:
            with self._pool.connection() as conn:
                with conn.transaction():
                    with conn.cursor(name="paperrec_stream", row_factory=tuple_row) as cur:
                        cur.itersize = batch
                        cur.execute(sql, params)
                        yield cur
        except DRIVER_ERRORS as exc:
            if fault_reason(exc):
                raise self.note_fault(exc) from exc
            raise

    # -- group commit ------------------------------------------------------------------
    def write(self, fn, durable: bool = True):
        """Run `fn(cursor)` in the next group commit; returns its result once committed."""
        self._fail_fast()
        return self._committer.submit(fn)

    async def write_async(self, fn, durable: bool = True):
        self._fail_fast()
        return await asyncio.wrap_future(self._committer.enqueue(fn))

    def insert_unacknowledged(self, sql, params: tuple) -> None:
        self._committer.append_row(sql, params)

    def flush(self) -> None:
        self._committer.flush()

    # -- schema --------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        row = self.query_one("SELECT max(version) FROM paperrec_schema")
        return int(row[0] or 0)

    def migrate(self) -> int:
        """Apply pending migrations in order, each in its own transaction. Processes that
        start together queue on an advisory lock; the later ones find nothing to do."""
        applied = 0
        with self.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, MIGRATION_LOCK))
            cur.execute("CREATE TABLE IF NOT EXISTS paperrec_schema (version integer NOT NULL)")
        for version, statements in enumerate(MIGRATIONS, start=1):
            with self.transaction() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, MIGRATION_LOCK))
                cur.execute("SELECT coalesce(max(version), 0) AS v FROM paperrec_schema")
                if cur.fetchone()["v"] >= version:
                    continue
                for statement in statements:
                    cur.execute(statement)
                cur.execute("INSERT INTO paperrec_schema (version) VALUES (%s)", (version,))
            applied += 1
        return applied
