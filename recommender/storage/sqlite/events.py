"""The events table: atomic, durable, idempotent batches, and the reads of a reader's history,
the training data and the live recommender's poll."""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

from sqlite_utils import Database

from recommender.core.times import utcnow_iso
from recommender.storage.interface import EventRow, IdempotencyConflict, reader_summary


class Events:
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

    def user_events(self, user_id: str, until: str | None = None,
                    paper_id: str | None = None) -> list[dict]:
        sql = "SELECT id, paper_id, kind, ts, request_id FROM events WHERE user_id = ?"
        params: list = [user_id]
        if until is not None:
            sql += " AND ts <= ?"
            params.append(until)
        if paper_id is not None:
            sql += " AND paper_id = ?"
            params.append(paper_id)
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
        return reader_summary(user_id, counts, row[0], row[1], row[2])

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
