"""What only the SQLite backend has: migrations of a file, WAL, commits another connection sees,
the group-commit writer. What every backend does is test_storage_contract.py."""
from __future__ import annotations

import asyncio
import threading

import pytest

from recommender.storage import EventRow, open_store
from recommender.storage.sqlite import raw
from recommender.storage.sqlite.schema import MIGRATIONS

PAPER = {"paper_id": "p1", "title": "Attention", "abstract": "all you need"}


def test_fresh_file_is_migrated_to_latest_in_wal_mode(store):
    assert store.schema_version == len(MIGRATIONS)
    assert raw.query(store.location, "PRAGMA journal_mode") == [("wal",)]
    tables = {r[0] for r in raw.query(store.location, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"papers", "events", "impressions", "experiments", "models"} <= tables


def test_reopening_applies_no_migration_twice(store):
    again = open_store(store.path)
    assert again.migrate() == 0
    assert again.schema_version == len(MIGRATIONS)


def test_committed_events_are_visible_to_another_connection(store):
    store.upsert_papers([PAPER])
    store.add_events([EventRow("u", "p1", "read", "2026-01-01T00:00:00.000000+00:00")])
    other = raw.connect(store.path)
    assert other.execute("SELECT count(*) FROM events").fetchone()[0] == 1


def _event(key: str) -> EventRow:
    return EventRow("u", "p1", "click", "2026-01-01T00:00:00.000000+00:00", None, key)


def test_events_awaited_on_an_event_loop_are_committed_when_the_await_returns(store):
    store.upsert_papers([PAPER])

    async def post():
        return await asyncio.gather(*(store.add_events_async([_event(f"k{i}")]) for i in range(20)))

    assert asyncio.run(post()) == [(1, 0)] * 20
    other = raw.connect(store.path)
    assert other.execute("SELECT count(*) FROM events").fetchone()[0] == 20
    with pytest.raises(raw.IntegrityError):
        asyncio.run(store.add_events_async([EventRow("u", "missing", "click", "2026-01-01T00:00:00+00:00")]))


def test_a_write_cancelled_while_queued_is_never_stored(store):
    """A request cancelled before the writer took its batch was never acknowledged, and
    nothing of it may appear later either."""
    store.upsert_papers([PAPER])
    writer_busy, release = threading.Event(), threading.Event()

    def slow(db):
        writer_busy.set()
        release.wait(10)

    blocker = threading.Thread(target=store.write, args=(slow,))
    blocker.start()
    assert writer_busy.wait(10)

    async def cancel_one():
        task = asyncio.ensure_future(store.add_events_async([_event("cancelled")]))
        await asyncio.sleep(0.05)  # queued behind the slow write
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # wrap_future passes the cancel on to the queued write in a loop callback: let it
        # run before the writer may take the write
        await asyncio.sleep(0.01)
        release.set()
        # The writer must still be alive to take the next write.
        return await asyncio.wait_for(store.add_events_async([_event("after")]), 10)

    assert asyncio.run(cancel_one()) == (1, 0)
    blocker.join(10)
    keys = {r[0] for r in raw.query(store.location, "SELECT idempotency_key FROM events")}
    assert keys == {"after"}


def test_a_version_1_file_gets_change_numbers_and_updates_move_them(tmp_path):
    """Migration 2 numbers existing papers in rowid order; an update in place takes the
    next number (so papers_since sees it), an identical re-upsert none."""
    path = tmp_path / "v1.db"
    raw.create_at_version(path, 1)
    for i in range(3):
        raw.execute(path, "INSERT INTO papers (paper_id, title, added_at) VALUES (?, ?, ?)",
                    [f"p{i}", f"t{i}", "2026-01-01"])
    store = open_store(path)
    try:
        assert store.schema_version == len(MIGRATIONS)
        assert [(c, p["paper_id"]) for c, p in store.papers_since(0)] == [(1, "p0"), (2, "p1"), (3, "p2")]
        assert "changed" not in store.get_paper("p0")
        store.upsert_papers([{"paper_id": "p0", "title": "t0, corrected"}])
        assert [(c, p["paper_id"], p["title"]) for c, p in store.papers_since(3)] == [(4, "p0", "t0, corrected")]
        store.upsert_papers([{"paper_id": "p0", "title": "t0, corrected"}, {"paper_id": "p3", "title": "t3"}])
        assert [(c, p["paper_id"]) for c, p in store.papers_since(4)] == [(5, "p3")]
        assert [p["paper_id"] for _, p in store.papers_since(0)] == ["p0", "p1", "p2", "p3"]  # rowid order
    finally:
        store.close()
