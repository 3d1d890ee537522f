"""The store: migrations, WAL, idempotency, atomic batches, model registry."""
from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest
from sqlite_utils import Database

from recommender.storage import EventRow, open_store
from recommender.storage.sqlite.schema import MIGRATIONS

PAPER = {"paper_id": "p1", "title": "Attention", "abstract": "all you need"}


def test_fresh_file_is_migrated_to_latest_in_wal_mode(store):
    assert store.schema_version == len(MIGRATIONS)
    assert store.db.journal_mode == "wal"
    assert {"papers", "events", "impressions", "experiments", "models"} <= set(store.db.table_names())


def test_reopening_applies_no_migration_twice(store):
    again = open_store(store.path)
    assert again.migrate() == 0
    assert again.schema_version == len(MIGRATIONS)


def test_upsert_same_paper_twice_changes_nothing(store):
    assert store.upsert_papers([PAPER]) == 1
    added_at = store.get_paper("p1")["added_at"]
    assert store.upsert_papers([PAPER]) == 0
    assert store.get_paper("p1")["added_at"] == added_at
    assert store.upsert_papers([{**PAPER, "title": "Attention!"}]) == 1
    assert store.get_paper("p1")["title"] == "Attention!"


def test_idempotency_key_stores_a_retry_once(store):
    store.upsert_papers([PAPER])
    e = EventRow("u", "p1", "click", "2026-01-01T00:00:00.000000+00:00", None, "key-1")
    assert store.add_events([e]) == (1, 0)
    assert store.add_events([e, e]) == (0, 2)
    assert store.count("events") == 1


def test_events_without_key_are_all_kept(store):
    store.upsert_papers([PAPER])
    e = EventRow("u", "p1", "click", "2026-01-01T00:00:00.000000+00:00")
    assert store.add_events([e, e]) == (2, 0)


def test_a_failing_batch_leaves_nothing_behind(store):
    store.upsert_papers([PAPER])
    good = EventRow("u", "p1", "click", "2026-01-01T00:00:00.000000+00:00", None, "ok")
    bad = EventRow("u", "missing-paper", "click", "2026-01-01T00:00:00.000000+00:00")
    with pytest.raises(sqlite3.IntegrityError):
        store.add_events([good, bad])
    assert store.count("events") == 0


def test_committed_events_are_visible_to_another_connection(store):
    store.upsert_papers([PAPER])
    store.add_events([EventRow("u", "p1", "read", "2026-01-01T00:00:00.000000+00:00")])
    other = sqlite3.connect(store.path)
    assert other.execute("SELECT count(*) FROM events").fetchone()[0] == 1


def test_promoting_a_model_retires_the_previous_one(store):
    store.register_model("v1", "/m/v1", {}, {"ndcg@20": 0.1})
    store.register_model("v2", "/m/v2", {}, {"ndcg@20": 0.2})
    store.set_model_status("v1", "active")
    store.set_model_status("v2", "active")
    statuses = {m["version"]: m["status"] for m in store.list_models()}
    assert statuses == {"v1": "retired", "v2": "active"}
    assert store.active_model()["version"] == "v2"


def test_stopping_twice_is_a_no_op(store):
    store.save_experiment("exp", "ab", {"variants": []}, "a")
    assert store.stop_experiment("exp") is True
    assert store.stop_experiment("exp") is False
    assert store.get_experiment("exp")["status"] == "stopped"


def _event(key: str) -> EventRow:
    return EventRow("u", "p1", "click", "2026-01-01T00:00:00.000000+00:00", None, key)


def test_events_awaited_on_an_event_loop_are_committed_when_the_await_returns(store):
    store.upsert_papers([PAPER])

    async def post():
        return await asyncio.gather(*(store.add_events_async([_event(f"k{i}")]) for i in range(20)))

    assert asyncio.run(post()) == [(1, 0)] * 20
    other = sqlite3.connect(store.path)
    assert other.execute("SELECT count(*) FROM events").fetchone()[0] == 20
    with pytest.raises(sqlite3.IntegrityError):
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
    keys = {r[0] for r in store.db.execute("SELECT idempotency_key FROM events")}
    assert keys == {"after"}


def test_a_repeated_served_list_id_drops_only_that_list(store):
    for rid in ("r1", "r2", "r1", "r3"):
        store.log_served_list(rid, "u", "trending", ["p1"])
    store.flush()
    assert sorted(r[0] for r in store.db.execute("SELECT request_id FROM impressions")) == ["r1", "r2", "r3"]


def test_a_version_1_file_gets_change_numbers_and_updates_move_them(tmp_path):
    """Migration 2 numbers existing papers in rowid order; an update in place takes the
    next number (so papers_since sees it), an identical re-upsert none."""
    path = tmp_path / "v1.db"
    old = Database(path)
    MIGRATIONS[0](old)
    old["papers"].insert_all([{"paper_id": f"p{i}", "title": f"t{i}", "added_at": "2026-01-01"}
                              for i in range(3)])
    old.execute("PRAGMA user_version = 1")
    old.conn.commit()
    old.close()
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
