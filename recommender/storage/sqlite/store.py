"""The one module that talks to SQLite.

Why one module: every durability promise the service makes (a 2xx means committed, retries
are stored once, a rejected batch leaves nothing behind) lives in how transactions are
opened here, so it is kept in one place. Every statement is parameterised.

One file, WAL mode, `synchronous=FULL`: an acknowledged write survives a crash of the
process (and of the machine). Each thread gets its own connection, so FastAPI's worker
threads never share a cursor; the busy timeout lets writers queue instead of failing with
"database is locked".

Writers of one process queue on a Python lock, not on SQLite's busy handler (which polls
with sleeps of up to 100 ms: under load that, not the work, set the tail latency). The
hot-path writes (event batches, served lists) go through a group commit: one writer thread
commits every write waiting at that moment in one transaction, each in its own savepoint
(one bad batch still leaves nothing behind and does not fail its neighbours), with one
fsync for all. A caller returns only after the commit that holds its write is on disk.
Served lists are not acknowledged to anyone (a GET answers with the list, not with "logged"),
so the request does not wait for theirs: the writer commits it in front of its next batch,
or on its own within IDLE_COMMIT_S, with `synchronous=NORMAL` when no event shares the
commit; it is fsynced with the next event commit or checkpoint. A crash of the process can
lose the lists of its last IDLE_COMMIT_S, a power cut the last few committed ones. Reads of
served lists in this process first wait for them (flush), and a list always commits no
later than any write submitted after it, so an event that names a list never precedes it.
Events are always `FULL` and acknowledged only once on disk.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import queue
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlite_utils import Database

BUSY_TIMEOUT_S = 30.0
log = logging.getLogger(__name__)


# -- migrations ------------------------------------------------------------------------
# Append-only: a released migration is never edited; a schema change is a new function.
# PRAGMA user_version records how many have run.

def _m001_initial(db: Database) -> None:
    db["papers"].create(
        {"paper_id": str, "title": str, "abstract": str, "published_at": str, "authors": str,
         "upvotes": int, "extra": str, "added_at": str},
        pk="paper_id", not_null={"title", "added_at"},
    )
    db["events"].create(
        {"id": int, "user_id": str, "paper_id": str, "kind": str, "ts": str,
         "request_id": str, "idempotency_key": str, "received_at": str},
        pk="id", not_null={"user_id", "paper_id", "kind", "ts", "received_at"},
        foreign_keys=[("paper_id", "papers", "paper_id")],
    )
    db["events"].create_index(["idempotency_key"], unique=True)
    db["events"].create_index(["user_id", "ts"])
    db["events"].create_index(["paper_id"])
    db["events"].create_index(["ts"])
    db["events"].create_index(["request_id"])
    db["impressions"].create(
        {"request_id": str, "user_id": str, "experiment": str, "variant": str,
         "strategy": str, "model_version": str, "paper_ids": str, "sources": str,
         "served_at": str},
        pk="request_id", not_null={"user_id", "strategy", "paper_ids", "served_at"},
    )
    db["impressions"].create_index(["user_id", "served_at"])
    db["impressions"].create_index(["experiment", "variant"])
    db["experiments"].create(
        {"name": str, "kind": str, "config": str, "control": str, "status": str,
         "created_at": str, "stopped_at": str},
        pk="name", not_null={"kind", "config", "status", "created_at"},
    )
    db["models"].create(
        {"version": str, "status": str, "created_at": str, "path": str, "params": str,
         "metrics": str, "promoted_at": str, "retired_at": str},
        pk="version", not_null={"status", "created_at", "path"},
    )


def _m002_paper_changes(db: Database) -> None:
    """A paper updated in place (new upvote count, corrected title) keeps its rowid, and
    the live catalog polled by rowid, so it never saw the update. `changed` is a counter
    every insert and every real update moves past all others: the catalog polls that."""
    db.execute("ALTER TABLE papers ADD COLUMN changed INTEGER")
    db.execute("UPDATE papers SET changed = rowid")
    db["papers"].create_index(["changed"])


def _m003_reader_scoped_keys(db: Database) -> None:
    """An idempotency key names a retry of one reader's event: two readers' clients may
    pick the same key ("1", a counter), and the second reader's event was silently dropped.
    Unique per (user_id, key) instead of globally; globally unique keys are unique per
    reader too, so existing rows need no change."""
    db.execute("DROP INDEX IF EXISTS idx_events_idempotency_key")
    db.execute("CREATE UNIQUE INDEX idx_events_user_id_idempotency_key "
               "ON events (user_id, idempotency_key)")


def _m004_store_probe(db: Database) -> None:
    """One row a fresh connection rewrites to learn whether the file takes writes again
    after a fault (read-only file, full disk): see Store.health_reasons."""
    db.execute("CREATE TABLE store_probe (id INTEGER PRIMARY KEY, at TEXT NOT NULL)")


MIGRATIONS = [_m001_initial, _m002_paper_changes, _m003_reader_scoped_keys, _m004_store_probe]


def utcnow_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


# SQLite primary result codes of faults outside the program: they pass when the cause does.
_FAULTS = {3: "permission denied", 5: "database busy", 6: "database locked",
           8: "database is read-only", 10: "disk I/O error", 13: "disk full",
           14: "database file cannot be opened"}
RETRY_AFTER_S = 2


def fault_reason(exc: BaseException) -> str | None:
    """What outside fault `exc` is (read-only file, full disk, I/O error...), or None when it
    is a bug or bad data, which retrying would not cure."""
    if isinstance(exc, StoreUnavailable):
        return exc.reason
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and (code & 0xFF) in _FAULTS:
        return _FAULTS[code & 0xFF]
    text = str(exc).lower()
    for words, reason in (("readonly", "database is read-only"), ("disk is full", "disk full"),
                          ("disk i/o", "disk I/O error"), ("unable to open", _FAULTS[14])):
        if words in text:
            return reason
    return None


class StoreUnavailable(Exception):
    """The database cannot serve this now for a reason outside the program (see
    fault_reason); the service answers 503 with Retry-After, nothing of the write is kept."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = RETRY_AFTER_S


# What a store call may raise for the database's sake: the service maps these to 503 (an
# outside fault, see fault_reason) or 500, without importing sqlite3 itself.
STORE_ERRORS: tuple[type[BaseException], ...] = (StoreUnavailable, sqlite3.Error)


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


class IdempotencyConflict(ValueError):
    """A batch reuses a reader's idempotency key for an event with other content (paper,
    kind or request_id): a client bug whose event would otherwise be silently lost. The
    whole batch is refused; `index` is the event's position in it."""

    def __init__(self, key: str, index: int):
        super().__init__(f"idempotency_key {key!r} is already used by this reader for "
                         "another event (different paper_id, kind or request_id)")
        self.key, self.index = key, index


@dataclass(frozen=True)
class EventRow:
    user_id: str
    paper_id: str
    kind: str
    ts: str
    request_id: str | None = None
    idempotency_key: str | None = None


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


class _GroupCommitter:
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

    def __init__(self, store: "Store"):
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
                        store.note_success()
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


class Store:
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
        # Moved by every experiment created or stopped through this Store: lets a cache of
        # the running experiments (experiments.running_experiments) see it at once.
        self.experiments_changed = 0
        self._last_probe = 0.0
        # Writers of this process queue here (see the module docstring); reentrant so the
        # writer thread and transaction() can share it.
        self._write_lock = threading.RLock()
        self._committer = _GroupCommitter(self)
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
                    self.note_success()
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

    # -- papers --------------------------------------------------------------------------
    def upsert_papers(self, papers: Sequence[dict]) -> int:
        """Insert or update papers by id; returns how many rows changed.

        A re-import of identical papers changes nothing (not even `added_at` or `changed`).
        Every insert or real update takes the next `changed` number; writers are serialised
        (BEGIN IMMEDIATE), so the numbers grow in commit order and papers_since misses none."""
        now = utcnow_iso()
        changed = 0
        with self.transaction() as db:
            for p in papers:
                cur = db.conn.execute(
                    """
                    INSERT INTO papers (paper_id, title, abstract, published_at, authors,
                                        upvotes, extra, added_at, changed)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?,
                            (SELECT coalesce(max(changed), 0) + 1 FROM papers))
                    ON CONFLICT(paper_id) DO UPDATE SET
                        title = excluded.title, abstract = excluded.abstract,
                        published_at = excluded.published_at, authors = excluded.authors,
                        upvotes = excluded.upvotes, extra = excluded.extra,
                        changed = (SELECT coalesce(max(changed), 0) + 1 FROM papers)
                    WHERE papers.title IS NOT excluded.title
                       OR papers.abstract IS NOT excluded.abstract
                       OR papers.published_at IS NOT excluded.published_at
                       OR papers.authors IS NOT excluded.authors
                       OR papers.upvotes IS NOT excluded.upvotes
                       OR papers.extra IS NOT excluded.extra
                    """,
                    (
                        p["paper_id"],
                        p["title"],
                        p.get("abstract") or "",
                        p.get("published_at"),
                        json.dumps(p.get("authors") or [], ensure_ascii=False),
                        p.get("upvotes"),
                        json.dumps(p.get("extra") or {}, ensure_ascii=False, sort_keys=True),
                        now,
                    ),
                )
                changed += cur.rowcount
        return changed

    @staticmethod
    def _paper_from_row(row: dict) -> dict:
        row = dict(row)
        row.pop("changed", None)  # bookkeeping for papers_since, not part of a paper
        row["authors"] = json.loads(row.get("authors") or "[]")
        row["extra"] = json.loads(row.get("extra") or "{}")
        return row

    def get_paper(self, paper_id: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM papers WHERE paper_id = ?", [paper_id]))
        return self._paper_from_row(rows[0]) if rows else None

    def get_papers(self, paper_ids: Sequence[str]) -> dict[str, dict]:
        """Several papers by id in one query (a list's cards): id -> paper, unknown ids absent."""
        ids = list(dict.fromkeys(paper_ids))
        found: dict[str, dict] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.query(f"SELECT * FROM papers WHERE paper_id IN ({marks})", chunk):
                found[row["paper_id"]] = self._paper_from_row(row)
        return found

    def iter_papers(self) -> Iterator[dict]:
        for row in self.db.query("SELECT * FROM papers ORDER BY rowid"):
            yield self._paper_from_row(row)

    def papers_since(self, changed: int) -> list[tuple[int, dict]]:
        """(change number, paper) of every paper added or updated after change number
        `changed`: lets the live catalog keep up cheaply (one indexed query). In the order
        the papers were first added (rowid), the order a model's papers have."""
        # Ordered by `changed` so SQLite walks that index (ordered by rowid it scanned the
        # whole table: 8 ms at 20k papers, on every request), re-sorted here.
        rows = self.db.execute(
            "SELECT rowid, * FROM papers WHERE changed > ? ORDER BY changed", [changed]
        )
        cols = [d[0] for d in rows.description]
        found = sorted(rows.fetchall())
        out = []
        for r in found:
            d = dict(zip(cols, r))
            del d["rowid"]
            out.append((d["changed"], self._paper_from_row(d)))
        return out

    def existing_paper_ids(self, paper_ids: Iterable[str]) -> set[str]:
        ids = list(dict.fromkeys(paper_ids))
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0]
                for r in self.db.execute(
                    f"SELECT paper_id FROM papers WHERE paper_id IN ({marks})", chunk
                )
            )
        return found

    def count(self, table: str) -> int:
        if table not in {"papers", "events", "impressions", "experiments", "models"}:
            raise ValueError(f"unknown table {table!r}")
        return int(self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    # -- events --------------------------------------------------------------------------
    def add_events(self, events: Sequence[EventRow]) -> tuple[int, int]:
        """Store a batch atomically; returns (stored, duplicates).

        An event whose idempotency key is already stored for its reader is a retry and is
        skipped, so a client may resend a batch whose answer it never saw; if the stored
        event differs (paper, kind or request_id) the batch raises IdempotencyConflict and
        nothing of it is stored. The time is not compared: an event sent without `ts` is
        stamped on arrival, so its honest retry carries another time."""
        stored = self.write(self._insert_events(events), durable=True)
        return stored, len(events) - stored

    async def add_events_async(self, events: Sequence[EventRow]) -> tuple[int, int]:
        """add_events() for the event loop (see write_async)."""
        stored = await self.write_async(self._insert_events(events), durable=True)
        return stored, len(events) - stored

    @staticmethod
    def _insert_events(events: Sequence[EventRow]):
        now = utcnow_iso()

        def insert(db: Database) -> int:
            stored = 0
            for index, e in enumerate(events):
                cur = db.conn.execute(
                    """
                    INSERT INTO events (user_id, paper_id, kind, ts, request_id,
                                        idempotency_key, received_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(user_id, idempotency_key) DO NOTHING
                    """,
                    (e.user_id, e.paper_id, e.kind, e.ts, e.request_id, e.idempotency_key, now),
                )
                if cur.rowcount == 0:
                    kept = db.conn.execute(
                        "SELECT paper_id, kind, request_id FROM events "
                        "WHERE user_id = ? AND idempotency_key = ?",
                        (e.user_id, e.idempotency_key)).fetchone()
                    if kept != (e.paper_id, e.kind, e.request_id):
                        raise IdempotencyConflict(e.idempotency_key, index)
                stored += cur.rowcount
            return stored

        return insert

    def user_events(self, user_id: str, until: str | None = None) -> list[dict]:
        sql = "SELECT paper_id, kind, ts, request_id FROM events WHERE user_id = ?"
        params: list = [user_id]
        if until is not None:
            sql += " AND ts <= ?"
            params.append(until)
        return list(self.db.query(sql + " ORDER BY ts, id", params))

    def user_summary(self, user_id: str) -> dict:
        counts = {
            r["kind"]: r["n"]
            for r in self.db.query(
                "SELECT kind, count(*) AS n FROM events WHERE user_id = ? GROUP BY kind",
                [user_id],
            )
        }
        row = self.db.execute(
            "SELECT min(ts), max(ts), count(DISTINCT paper_id) FROM events WHERE user_id = ?",
            [user_id],
        ).fetchone()
        return {
            "user_id": user_id,
            "events": sum(counts.values()),
            "by_kind": counts,
            "distinct_papers": int(row[2] or 0),
            "first_event_at": row[0],
            "last_event_at": row[1],
        }

    def co_readers(self, paper_id: str, kinds: Sequence[str], max_readers: int = 500,
                   limit: int = 200) -> tuple[int, dict[str, int]]:
        """Readership of a paper: (how many readers acted on it with one of `kinds`, and
        for each other paper how many of those readers acted on it too). Bounded: the
        `max_readers` latest readers of the paper and the `limit` most shared papers."""
        kinds_json = json.dumps(list(kinds))
        readers = [r[0] for r in self.db.execute(
            "SELECT user_id FROM events WHERE paper_id = ? "
            "AND kind IN (SELECT value FROM json_each(?)) "
            "GROUP BY user_id ORDER BY max(ts) DESC LIMIT ?",
            [paper_id, kinds_json, max_readers])]
        if not readers:
            return 0, {}
        marks = ",".join("?" * len(readers))
        rows = self.db.execute(
            f"SELECT paper_id, count(DISTINCT user_id) AS n FROM events "
            f"WHERE user_id IN ({marks}) AND kind IN (SELECT value FROM json_each(?)) "
            "AND paper_id != ? GROUP BY paper_id ORDER BY n DESC, paper_id LIMIT ?",
            [*readers, kinds_json, paper_id, limit])
        return len(readers), {pid: int(n) for pid, n in rows}

    def readers_with_prefix(self, prefix: str, limit: int = 50) -> list[str]:
        """Distinct readers whose id starts with `prefix` (the demo readers), by id. A
        range on the (user_id, ts) index, not LIKE, which SQLite cannot serve from it."""
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\U0010ffff"
        return [r[0] for r in self.db.execute(
            "SELECT DISTINCT user_id FROM events WHERE user_id >= ? AND user_id < ? "
            "ORDER BY user_id LIMIT ?", [prefix, upper, limit])]

    def iter_events(self, until: str | None = None, batch: int = 50_000) -> Iterator[dict]:
        """All events in id order, streamed so a large log does not sit in memory twice."""
        last = 0
        while True:
            sql = "SELECT id, user_id, paper_id, kind, ts FROM events WHERE id > ?"
            params: list = [last]
            if until is not None:
                sql += " AND ts <= ?"
                params.append(until)
            rows = list(self.db.query(sql + " ORDER BY id LIMIT ?", params + [batch]))
            if not rows:
                return
            yield from rows
            last = rows[-1]["id"]

    def event_columns(self, until: str | None = None, batch: int = 100_000):
        """Yield (user_ids, paper_ids, kinds, ts) column chunks in (ts, id) order.

        Tuples from a cursor, not dicts: a training run over millions of events should
        not build millions of dictionaries."""
        sql = "SELECT user_id, paper_id, kind, ts FROM events"
        params: list = []
        if until is not None:
            sql += " WHERE ts <= ?"
            params.append(until)
        cur = self.db.conn.execute(sql + " ORDER BY ts, id", params)
        while True:
            rows = cur.fetchmany(batch)
            if not rows:
                return
            yield tuple(zip(*rows))

    def events_since(self, event_id: int) -> list[dict]:
        return list(
            self.db.query(
                "SELECT id, user_id, paper_id, kind, ts FROM events WHERE id > ? ORDER BY id",
                [event_id],
            )
        )

    def max_event_id(self) -> int:
        return int(self.db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])

    # -- impressions ---------------------------------------------------------------------
    def log_impression(
        self,
        request_id: str,
        user_id: str,
        strategy: str,
        paper_ids: Sequence[str],
        model_version: str | None = None,
        experiment: str | None = None,
        variant: str | None = None,
        sources: Sequence[str] | None = None,
    ) -> None:
        self.write(lambda db: db.conn.execute(
                """
                INSERT INTO impressions (request_id, user_id, experiment, variant, strategy,
                                         model_version, paper_ids, sources, served_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    request_id,
                    user_id,
                    experiment,
                    variant,
                    strategy,
                    model_version,
                    json.dumps(list(paper_ids)),
                    json.dumps(list(sources)) if sources is not None else None,
                    utcnow_iso(),
                ),
            ), durable=False)

    def get_impression(self, request_id: str) -> dict | None:
        self.flush()
        rows = list(self.db.query("SELECT * FROM impressions WHERE request_id = ?", [request_id]))
        if not rows:
            return None
        row = rows[0]
        row["paper_ids"] = json.loads(row["paper_ids"])
        row["sources"] = json.loads(row["sources"]) if row["sources"] else None
        return row

    # -- experiments ---------------------------------------------------------------------
    def save_experiment(self, name: str, kind: str, config: dict, control: str | None) -> None:
        with self.transaction() as db:
            db.conn.execute(
                """
                INSERT INTO experiments (name, kind, config, control, status, created_at)
                VALUES (?, ?, ?, ?, 'running', ?)
                """,
                (name, kind, json.dumps(config, sort_keys=True), control, utcnow_iso()),
            )
        self.experiments_changed += 1

    def stop_experiment(self, name: str) -> bool:
        """Returns whether the experiment was running (stopping a stopped one is a no-op)."""
        with self.transaction() as db:
            cur = db.conn.execute(
                "UPDATE experiments SET status = 'stopped', stopped_at = ? "
                "WHERE name = ? AND status = 'running'",
                (utcnow_iso(), name),
            )
        self.experiments_changed += 1
        return cur.rowcount > 0

    def list_experiments(self, status: str | None = None) -> list[dict]:
        sql, params = "SELECT * FROM experiments", []
        if status:
            sql += " WHERE status = ?"
            params.append(status)
        rows = list(self.db.query(sql + " ORDER BY created_at, name", params))
        for r in rows:
            r["config"] = json.loads(r["config"])
        return rows

    def get_experiment(self, name: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM experiments WHERE name = ?", [name]))
        if not rows:
            return None
        rows[0]["config"] = json.loads(rows[0]["config"])
        return rows[0]

    # -- model registry ------------------------------------------------------------------
    def register_model(self, version: str, path: str, params: dict, metrics: dict,
                       status: str = "candidate") -> None:
        with self.transaction() as db:
            db.conn.execute(
                """
                INSERT INTO models (version, status, created_at, path, params, metrics)
                VALUES (?, ?, ?, ?, ?, ?)
                """,
                (version, status, utcnow_iso(), path, json.dumps(params, sort_keys=True),
                 json.dumps(metrics, sort_keys=True)),
            )

    def set_model_status(self, version: str, status: str) -> None:
        """Promoting demotes the previous active model to 'retired' in the same transaction,
        so there is never zero or two active models."""
        with self.transaction() as db:
            if status == "active":
                db.conn.execute(
                    "UPDATE models SET status = 'retired', retired_at = ? WHERE status = 'active'",
                    (utcnow_iso(),),
                )
                db.conn.execute(
                    "UPDATE models SET status = 'active', promoted_at = ? WHERE version = ?",
                    (utcnow_iso(), version),
                )
            else:
                db.conn.execute("UPDATE models SET status = ? WHERE version = ?", (status, version))

    def list_models(self) -> list[dict]:
        rows = list(self.db.query("SELECT * FROM models ORDER BY created_at"))
        for r in rows:
            r["params"] = json.loads(r["params"] or "{}")
            r["metrics"] = json.loads(r["metrics"] or "{}")
        return rows

    def active_model(self) -> dict | None:
        rows = [m for m in self.list_models() if m["status"] == "active"]
        return rows[-1] if rows else None

    # == experiments: served lists with their own clock, and report queries ==============
    # (Owned by the experiments feature. Append-only section; nothing above depends on it.)
    ATTRIBUTED_KINDS = ("click", "read", "upvote")

    def log_served_list(
        self,
        request_id: str,
        user_id: str,
        strategy: str,
        paper_ids: Sequence[str],
        model_version: str | None = None,
        experiment: str | None = None,
        variant: str | None = None,
        sources: Sequence[str] | None = None,
        served_at_unix: float | None = None,
    ) -> None:
        """Like log_impression, but a list ranked 'as of' a time is logged at that time, so a
        replay (the reader simulator) keeps one clock for lists and events and the
        attribution window compares like with like."""
        served_at = (utcnow_iso() if served_at_unix is None else
                     datetime.fromtimestamp(served_at_unix, tz=timezone.utc)
                     .isoformat(timespec="microseconds"))
        # On the path of every GET, and nobody acknowledges it: queued for the next group
        # commit without waiting for it (see the module docstring).
        self.insert_unacknowledged(
            """
            INSERT INTO impressions (request_id, user_id, experiment, variant, strategy,
                                     model_version, paper_ids, sources, served_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            (request_id, user_id, experiment, variant, strategy, model_version,
             json.dumps(list(paper_ids)),
             json.dumps(list(sources)) if sources is not None else None, served_at))

    # The longest attribution window a report may ask for (the API's window_hours bound).
    MAX_ATTRIBUTION_DAYS = 30.0

    def prune_impressions(self, older_than_days: float) -> int:
        """Delete served lists older than `older_than_days` that no report can need; returns
        how many. Kept whatever their age: every list of an experiment (its report counts
        them, and reports of stopped experiments stay), and every list of a reader with an
        experiment list served within MAX_ATTRIBUTION_DAYS of it (an event without a
        request_id goes to the reader's latest list showing the paper, of any experiment or
        none: removing the newer plain list would move it onto the experiment's)."""
        if older_than_days < self.MAX_ATTRIBUTION_DAYS:
            raise ValueError(f"keep at least {self.MAX_ATTRIBUTION_DAYS:g} days (the longest "
                             "attribution window)")
        self.flush()
        cutoff = (datetime.now(timezone.utc).timestamp() - older_than_days * 86400.0)
        cutoff_iso = datetime.fromtimestamp(cutoff, tz=timezone.utc).isoformat(
            timespec="microseconds")
        with self.transaction() as db:
            cur = db.conn.execute(
                """
                DELETE FROM impressions
                WHERE experiment IS NULL AND served_at < :cutoff
                  AND NOT EXISTS (
                      SELECT 1 FROM impressions x
                      WHERE x.user_id = impressions.user_id AND x.experiment IS NOT NULL
                        AND abs(julianday(x.served_at) - julianday(impressions.served_at))
                            <= :window)
                """,
                {"cutoff": cutoff_iso, "window": self.MAX_ATTRIBUTION_DAYS})
            return cur.rowcount

    def experiment_lists(self, name: str) -> list[dict]:
        """Every list served under an experiment: who, which variant, how many items, when."""
        self.flush()
        return list(self.db.query(
            """
            SELECT request_id, user_id, variant, served_at,
                   json_array_length(paper_ids) AS items
            FROM impressions WHERE experiment = ? ORDER BY served_at, request_id
            """,
            [name],
        ))

    def experiment_events(self, name: str, window_hours: float = 24.0) -> list[dict]:
        """Events attributed to the experiment's lists, with the list's variant, the slot's
        position and (interleaving) the variant that filled the slot.

        Attribution: an event whose request_id names a list of this reader is credited to
        that list. An event without one (or with a request_id no list has) is credited to
        the reader's latest list - of any experiment or none - that showed the paper within
        `window_hours` before the event; it counts here only if that list is this
        experiment's. Only clicks, reads and upvotes are attributed, and each at most once
        per (list, paper, kind): a repeat is not a second click."""
        self.flush()
        kinds = {f"k{n}": k for n, k in enumerate(self.ATTRIBUTED_KINDS)}
        marks = ",".join(f":{p}" for p in kinds)
        return list(self.db.query(
            f"""
            WITH imp AS (
                SELECT request_id, user_id FROM impressions WHERE experiment = :name
            ),
            direct AS (
                SELECT e.id, e.kind, e.ts, e.paper_id, e.request_id AS list_id
                FROM events e JOIN imp ON imp.request_id = e.request_id
                                      AND imp.user_id = e.user_id
                WHERE e.kind IN ({marks})
            ),
            loose AS (
                SELECT e.id, e.kind, e.ts, e.paper_id,
                       (SELECT i2.request_id FROM impressions i2
                        WHERE i2.user_id = e.user_id
                          AND i2.served_at <= e.ts
                          AND julianday(i2.served_at) >= julianday(e.ts) - :window / 24.0
                          AND EXISTS (SELECT 1 FROM json_each(i2.paper_ids) j
                                      WHERE j.value = e.paper_id)
                        ORDER BY i2.served_at DESC, i2.rowid DESC LIMIT 1) AS list_id
                FROM events e LEFT JOIN impressions x ON x.request_id = e.request_id
                                                    AND x.user_id = e.user_id
                WHERE x.request_id IS NULL AND e.kind IN ({marks})
                  AND e.user_id IN (SELECT user_id FROM imp)
            ),
            attributed AS (
                -- one event per (list, paper, kind): the same click sent again (200 times
                -- with the list's request_id) is still one click on that list
                SELECT * FROM (
                    SELECT u.*, row_number() OVER (PARTITION BY u.list_id, u.paper_id, u.kind
                                                   ORDER BY u.ts, u.id) AS nth
                    FROM (SELECT * FROM direct UNION ALL SELECT * FROM loose) u
                    WHERE u.list_id IS NOT NULL)
                WHERE nth = 1
            )
            SELECT a.id AS event_id, a.kind, a.ts, a.paper_id, i.request_id, i.user_id,
                   i.variant, i.served_at,
                   (SELECT CAST(j.key AS INTEGER) FROM json_each(i.paper_ids) j
                    WHERE j.value = a.paper_id ORDER BY j.key LIMIT 1) AS position,
                   i.sources
            FROM attributed a JOIN impressions i ON i.request_id = a.list_id
            WHERE i.experiment = :name
            ORDER BY a.ts, a.id
            """,
            {"name": name, "window": float(window_hours), **kinds},
        ))
