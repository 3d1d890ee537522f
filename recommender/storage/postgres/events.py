"""The events table: atomic, durable, idempotent batches through the group commit, and the
reads of a reader's history, the training data (a server-side cursor) and the change feed."""
from __future__ import annotations

from collections.abc import Iterator, Sequence

from recommender.core.times import utcnow_iso
from recommender.storage.interface import EventRow, IdempotencyConflict, reader_summary

# One statement for a whole batch: the rows go in as arrays, in the batch's order (ids are
# handed out in that order); a retry of a stored (user_id, idempotency_key) is skipped by
# the unique index.
_INSERT = """
    INSERT INTO events (user_id, paper_id, kind, ts, request_id, idempotency_key, received_at)
    SELECT u, p, k, t, r, i, %s
    FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
         WITH ORDINALITY AS x(u, p, k, t, r, i, n)
    ORDER BY n
    ON CONFLICT (user_id, idempotency_key) DO NOTHING
"""


class Events:
    def add_events(self, events: Sequence[EventRow]) -> tuple[int, int]:
        """Store a batch atomically and durably; returns (stored, duplicates). A retry is
        skipped; a key reused for other content raises IdempotencyConflict and stores
        nothing (the interface's rule)."""
        stored = self.write(self._insert_events(events))
        return stored, len(events) - stored

    async def add_events_async(self, events: Sequence[EventRow]) -> tuple[int, int]:
        stored = await self.write_async(self._insert_events(events))
        return stored, len(events) - stored

    @staticmethod
    def _insert_events(events: Sequence[EventRow]):
        now = utcnow_iso()
        columns = [list(c) for c in zip(*((e.user_id, e.paper_id, e.kind, e.ts, e.request_id,
                                           e.idempotency_key) for e in events))] or [[]] * 6

        def insert(cur) -> int:
            if not events:
                return 0
            cur.execute(_INSERT, (now, *columns))
            stored = cur.rowcount
            if stored < len(events):
                _check_retries(cur, events)
            return stored

        return insert

    def user_events(self, user_id: str, until: str | None = None,
                    paper_id: str | None = None) -> list[dict]:
        sql = "SELECT id, paper_id, kind, ts, request_id FROM events WHERE user_id = %s"
        params: list = [user_id]
        if until is not None:
            sql += " AND ts <= %s"
            params.append(until)
        if paper_id is not None:
            sql += " AND paper_id = %s"
            params.append(paper_id)
        return self.query(sql + " ORDER BY ts, id", params)

    def user_summary(self, user_id: str) -> dict:
        counts = {r["kind"]: r["n"] for r in self.query(
            "SELECT kind, count(*) AS n FROM events WHERE user_id = %s GROUP BY kind", (user_id,))}
        row = self.query_one("SELECT min(ts), max(ts), count(DISTINCT paper_id) FROM events "
                             "WHERE user_id = %s", (user_id,))
        return reader_summary(user_id, counts, row[0], row[1], row[2])

    def co_readers(self, paper_id: str, kinds: Sequence[str], max_readers: int = 500,
                   limit: int = 200) -> tuple[int, dict[str, int]]:
        kinds = list(kinds)
        readers = [r[0] for r in self.query(
            "SELECT user_id FROM events WHERE paper_id = %s AND kind = ANY(%s) "
            "GROUP BY user_id ORDER BY max(ts) DESC LIMIT %s",
            (paper_id, kinds, max_readers), tuples=True)]
        if not readers:
            return 0, {}
        rows = self.query(
            "SELECT paper_id, count(DISTINCT user_id) AS n FROM events "
            "WHERE user_id = ANY(%s) AND kind = ANY(%s) AND paper_id <> %s "
            "GROUP BY paper_id ORDER BY n DESC, paper_id LIMIT %s",
            (readers, kinds, paper_id, limit), tuples=True)
        return len(readers), {pid: int(n) for pid, n in rows}

    def readers_with_prefix(self, prefix: str, limit: int = 50) -> list[str]:
        """A range on the (user_id, ts) index (byte order: the columns are COLLATE "C")."""
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\U0010ffff"
        return [r[0] for r in self.query(
            "SELECT DISTINCT user_id FROM events WHERE user_id >= %s AND user_id < %s "
            "ORDER BY user_id LIMIT %s", (prefix, upper, limit), tuples=True)]

    def iter_events(self, until: str | None = None, batch: int = 50_000) -> Iterator[dict]:
        last = 0
        while True:
            sql = "SELECT id, user_id, paper_id, kind, ts FROM events WHERE id > %s"
            params: list = [last]
            if until is not None:
                sql += " AND ts <= %s"
                params.append(until)
            rows = self.query(sql + " ORDER BY id LIMIT %s", params + [batch])
            if not rows:
                return
            yield from rows
            last = rows[-1]["id"]

    def event_columns(self, until: str | None = None, batch: int = 100_000):
        """(user_ids, paper_ids, kinds, ts) column chunks in (ts, id) order, read through a
        server-side cursor `batch` rows at a time: the training job never holds the
        events table as Python rows, only a chunk before it becomes arrays."""
        sql = "SELECT user_id, paper_id, kind, ts FROM events"
        params: list = []
        if until is not None:
            sql += " WHERE ts <= %s"
            params.append(until)
        with self.streaming(sql + " ORDER BY ts, id", params, batch) as cur:
            while True:
                rows = cur.fetchmany(batch)
                if not rows:
                    return
                yield tuple(zip(*rows))

    def events_since(self, event_id: int) -> list[dict]:
        """The change feed: ids are handed out in commit order (schema.py), so everything
        after `event_id` that is committed is here, and nothing later can appear below."""
        return self.query("SELECT id, user_id, paper_id, kind, ts FROM events WHERE id > %s "
                          "ORDER BY id", (event_id,))


def _check_retries(cur, events: Sequence[EventRow]) -> None:
    """Some rows were skipped as retries: each must match what its key stored, else the
    batch is a conflict (raised inside the job's savepoint: nothing of it is kept)."""
    keyed = [(i, e) for i, e in enumerate(events) if e.idempotency_key is not None]
    cur.execute(
        "SELECT user_id, idempotency_key, paper_id, kind, request_id FROM events "
        "WHERE (user_id, idempotency_key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
        ([e.user_id for _, e in keyed], [e.idempotency_key for _, e in keyed]))
    kept = {(r["user_id"], r["idempotency_key"]): (r["paper_id"], r["kind"], r["request_id"])
            for r in cur.fetchall()}
    for index, e in keyed:
        if kept.get((e.user_id, e.idempotency_key)) != (e.paper_id, e.kind, e.request_id):
            raise IdempotencyConflict(e.idempotency_key, index)
