"""The storage contract: what every backend of recommender/storage/interface.py must do.

Every test takes `backend_store`, a fresh store of each backend in storage's BACKENDS
(conftest.py), and speaks only the interface: a second backend (PostgreSQL) passes this
file by being added to BACKENDS and to tests/helpers.store_location. What only SQLite has
(WAL, migrations of a file, the group-commit writer) is tested in test_storage_sqlite.py.
"""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest

from recommender.core.times import to_iso
from recommender.storage import (MAX_ATTRIBUTION_DAYS, STORE_ERRORS, EventRow, IdempotencyConflict,
                                 Store)

T0 = "2026-01-01T00:00:00.000000+00:00"
PAPERS = [{"paper_id": f"p{i}", "title": f"Paper {i}", "abstract": f"About {i}.",
           "published_at": "2026-01-01T00:00:00.000000+00:00", "authors": [f"A{i}"],
           "upvotes": i, "extra": {"organization": "Org"}} for i in range(5)]


def at(minutes: int) -> str:
    return (datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=minutes)).isoformat(
        timespec="microseconds")


@pytest.fixture
def papers(backend_store: Store) -> Store:
    backend_store.upsert_papers(PAPERS)
    return backend_store


def test_a_store_is_a_store(backend_store):
    assert isinstance(backend_store, Store) and backend_store.location
    assert backend_store.health_reasons() == [] and backend_store.fault is None
    assert all(backend_store.count(t) == 0 for t in ("papers", "events", "impressions",
                                                       "experiments", "models"))
    with pytest.raises(ValueError):
        backend_store.count("sqlite_master")


# -- papers ---------------------------------------------------------------------------------

def test_papers_round_trip_in_the_order_they_were_added(papers):
    assert papers.get_paper("p3") == {**PAPERS[3], "added_at": papers.get_paper("p3")["added_at"]}
    assert [p["paper_id"] for p in papers.iter_papers()] == [p["paper_id"] for p in PAPERS]
    assert set(papers.get_papers(["p1", "p4", "nope", "p1"])) == {"p1", "p4"}
    assert papers.get_paper("nope") is None
    assert papers.existing_paper_ids(["p0", "zz", "p2"]) == {"p0", "p2"}
    assert papers.count("papers") == 5


def test_an_identical_upsert_changes_nothing_and_an_update_moves_the_change_number(papers):
    last = max(c for c, _ in papers.papers_since(0))
    assert papers.upsert_papers(PAPERS) == 0 and papers.papers_since(last) == []
    assert papers.upsert_papers([{**PAPERS[1], "title": "Paper one"}, {"paper_id": "p9", "title": "New"}]) == 2
    since = papers.papers_since(last)
    assert [p["paper_id"] for _, p in since] == ["p1", "p9"]  # the order papers were first added
    assert all(c > last for c, _ in since) and len({c for c, _ in since}) == 2


def test_an_update_keeps_every_field_it_does_not_carry(papers):
    assert papers.upsert_papers([{"paper_id": "p2", "title": "Corrected"}]) == 1
    assert papers.get_paper("p2") == {**PAPERS[2], "title": "Corrected",
                                      "added_at": papers.get_paper("p2")["added_at"]}
    assert papers.upsert_papers([{"paper_id": "p2", "upvotes": 99, "published_at": None}]) == 1
    got = papers.get_paper("p2")
    assert (got["upvotes"], got["published_at"], got["abstract"]) == (99, None, PAPERS[2]["abstract"])
    with pytest.raises(ValueError):  # a new paper needs a title; nothing of the batch is kept
        papers.upsert_papers([{"paper_id": "p7", "title": "Fine"}, {"paper_id": "p8", "upvotes": 1}])
    assert papers.existing_paper_ids(["p7", "p8"]) == set()


# -- events ---------------------------------------------------------------------------------

def test_a_retry_is_stored_once_and_a_reused_key_is_a_conflict(papers):
    e = EventRow("u", "p1", "click", T0, None, "key-1")
    assert papers.add_events([e]) == (1, 0)
    assert papers.add_events([e, e]) == (0, 2)
    assert papers.add_events([EventRow("v", "p1", "click", T0, None, "key-1")]) == (1, 0)  # v's own key
    with pytest.raises(IdempotencyConflict) as conflict:
        papers.add_events([EventRow("u", "p2", "read", T0, None, "fresh"),
                           EventRow("u", "p2", "click", T0, None, "key-1")])
    assert conflict.value.index == 1 and conflict.value.key == "key-1"
    assert papers.count("events") == 2  # nothing of the refused batch


def test_a_batch_with_an_unknown_paper_leaves_nothing_behind(papers):
    with pytest.raises(STORE_ERRORS):
        papers.add_events([EventRow("u", "p1", "click", T0), EventRow("u", "missing", "click", T0)])
    assert papers.count("events") == 0
    assert papers.add_events([EventRow("u", "p1", "click", T0)] * 2) == (2, 0)  # no key: both kept


def test_events_awaited_on_an_event_loop_are_stored_when_the_await_returns(papers):
    async def post():
        return await asyncio.gather(*(papers.add_events_async(
            [EventRow("u", "p1", "click", T0, None, f"k{i}")]) for i in range(10)))
    assert asyncio.run(post()) == [(1, 0)] * 10
    assert papers.count("events") == 10


def test_a_readers_events_in_time_order(papers):
    papers.add_events([EventRow("u", "p2", "read", at(5), "req-1"), EventRow("u", "p1", "click", at(1)),
                       EventRow("u", "p1", "upvote", at(9)), EventRow("w", "p1", "read", at(3))])
    mine = papers.user_events("u")
    assert [(e["paper_id"], e["kind"]) for e in mine] == [("p1", "click"), ("p2", "read"), ("p1", "upvote")]
    assert mine[1]["request_id"] == "req-1" and all("id" in e and "ts" in e for e in mine)
    assert [e["kind"] for e in papers.user_events("u", until=at(5))] == ["click", "read"]
    assert [e["kind"] for e in papers.user_events("u", paper_id="p1")] == ["click", "upvote"]
    summary = papers.user_summary("u")
    assert summary["events"] == 3 and summary["by_kind"] == {"click": 1, "read": 1, "upvote": 1}
    assert summary["distinct_papers"] == 2 and summary["first_event_at"] == at(1)
    assert summary["last_event_at"] == at(9)
    assert papers.user_summary("nobody")["events"] == 0


def test_the_log_in_arrival_and_in_time_order(papers):
    papers.add_events([EventRow("a", "p1", "read", at(7)), EventRow("b", "p2", "click", at(2))])
    first = papers.events_since(0)
    assert [(e["user_id"], e["kind"]) for e in first] == [("a", "read"), ("b", "click")]
    assert papers.events_since(first[-1]["id"]) == []
    assert [(e["user_id"], e["paper_id"]) for e in papers.iter_events()] == [("a", "p1"), ("b", "p2")]
    columns = list(papers.event_columns())
    assert [list(c) for c in columns[0]] == [["b", "a"], ["p2", "p1"], ["click", "read"], [at(2), at(7)]]
    assert [e["user_id"] for e in papers.iter_events(until=at(3))] == ["b"]


def test_readership_and_readers_by_prefix(papers):
    papers.add_events([EventRow(u, p, "read", T0) for u, p in
                       [("demo-a", "p1"), ("demo-a", "p2"), ("demo-b", "p1"), ("demo-b", "p2"),
                        ("demo-b", "p3"), ("x", "p1"), ("x", "p4")]])
    readers, shared = papers.co_readers("p1", ["read"])
    assert readers == 3 and shared == {"p2": 2, "p3": 1, "p4": 1}
    assert papers.co_readers("p0", ["read"]) == (0, {})
    assert papers.readers_with_prefix("demo-") == ["demo-a", "demo-b"]


# -- served lists ---------------------------------------------------------------------------

def test_a_served_list_is_readable_at_once(papers):
    papers.log_served_list("r1", "u", "hybrid", ["p1", "p2"], model_version="v1", experiment="e",
                           variant="a", sources=["a", "b"], served_at_unix=1.8e9)
    papers.log_served_list("r2", "u", "trending", ["p3"])
    got = papers.get_impression("r1")
    assert got["paper_ids"] == ["p1", "p2"] and got["sources"] == ["a", "b"]
    assert (got["strategy"], got["model_version"], got["experiment"], got["variant"]) == ("hybrid", "v1", "e", "a")
    assert got["served_at"] == to_iso(1.8e9) and papers.get_impression("r2")["sources"] is None
    assert papers.get_impression("nope") is None


def test_the_lists_served_to_a_reader_newest_first_within_bounds(papers):
    for n in range(5):
        papers.log_served_list(f"s{n}", "u", "hybrid", [f"p{n}", "p9"], served_at_unix=1.8e9 + n)
    papers.log_served_list("other", "v", "hybrid", ["p1"], served_at_unix=1.8e9)
    papers.flush()
    got = papers.served_to("u", since=to_iso(1.8e9), until=to_iso(1.8e9 + 3))
    assert [g["paper_ids"] for g in got] == [["p3", "p9"], ["p2", "p9"], ["p1", "p9"]]
    assert got[0]["served_at"] == to_iso(1.8e9 + 3)
    assert [g["paper_ids"][0] for g in papers.served_to("u", limit=2)] == ["p4", "p3"]
    assert papers.served_to("nobody") == []


def test_a_repeated_served_list_id_drops_only_that_list(papers):
    for rid in ("r1", "r2", "r1", "r3"):
        papers.log_served_list(rid, "u", "trending", ["p1"])
    papers.flush()
    assert papers.count("impressions") == 3


def test_pruning_keeps_what_reports_may_need(papers):
    old = time.time() - 90 * 86_400
    papers.log_served_list("old", "u", "trending", ["p1"], served_at_unix=old)
    papers.log_served_list("old-exp", "v", "trending", ["p1"], experiment="e", variant="a",
                           served_at_unix=old)
    papers.log_served_list("new", "u", "trending", ["p1"])
    with pytest.raises(ValueError):
        papers.prune_impressions(MAX_ATTRIBUTION_DAYS - 1)
    assert papers.prune_impressions(60) == 1
    assert papers.get_impression("old") is None and papers.get_impression("old-exp") is not None


# -- experiments and attribution ------------------------------------------------------------

def test_experiments_are_saved_listed_and_stopped(papers):
    before = papers.experiments_changed
    papers.save_experiment("one", "ab", {"variants": [{"name": "a"}]}, "a")
    papers.save_experiment("two", "interleave", {"variants": []}, None)
    assert papers.experiments_changed > before
    assert [e["name"] for e in papers.list_experiments()] == ["one", "two"]
    assert papers.get_experiment("one")["config"] == {"variants": [{"name": "a"}]}
    assert papers.stop_experiment("one") is True and papers.stop_experiment("one") is False
    assert [e["name"] for e in papers.list_experiments(status="running")] == ["two"]
    assert papers.get_experiment("one")["status"] == "stopped" and papers.get_experiment("one")["stopped_at"]
    assert papers.get_experiment("nope") is None


def test_events_are_attributed_to_the_lists_that_showed_them(papers):
    papers.save_experiment("e", "ab", {"variants": []}, "a")
    papers.log_served_list("r1", "u", "popular", ["p1", "p2"], experiment="e", variant="a",
                           served_at_unix=datetime.fromisoformat(at(0)).timestamp())
    papers.log_served_list("r2", "w", "content", ["p3"], experiment="e", variant="b",
                           served_at_unix=datetime.fromisoformat(at(0)).timestamp())
    papers.add_events([
        EventRow("u", "p2", "click", at(1), "r1"),  # names its list
        EventRow("u", "p2", "click", at(2), "r1"),  # the same click again: counted once
        EventRow("u", "p1", "read", at(3)),  # no request_id: the latest list that showed p1
        EventRow("w", "p3", "upvote", at(60 * 30)),  # outside the 24 h window
        EventRow("w", "p3", "impression", at(4), "r2"),  # not an attributed kind
    ])
    lists = papers.experiment_lists("e")
    assert [(r["request_id"], r["variant"], r["items"]) for r in lists] == [("r1", "a", 2), ("r2", "b", 1)]
    events = papers.experiment_events("e", window_hours=24)
    assert [(e["request_id"], e["paper_id"], e["kind"], e["position"], e["variant"]) for e in events] == [
        ("r1", "p2", "click", 1, "a"), ("r1", "p1", "read", 0, "a")]
    assert len(papers.experiment_events("e", window_hours=24 * 30)) == 3


# -- the model registry ---------------------------------------------------------------------

def test_promoting_a_model_retires_the_previous_one(backend_store):
    s = backend_store
    assert s.active_model() is None
    s.register_model("v1", "/m/v1", {"f": 1}, {"ndcg@20": 0.1})
    s.register_model("v2", "/m/v2", {}, {"ndcg@20": 0.2})
    s.set_model_status("v1", "active")
    s.set_model_status("v2", "active")
    assert {m["version"]: m["status"] for m in s.list_models()} == {"v1": "retired", "v2": "active"}
    assert s.active_model()["version"] == "v2" and s.list_models()[0]["params"] == {"f": 1}
    assert s.list_models()[1]["metrics"] == {"ndcg@20": 0.2}
    s.set_model_status("v1", "rejected")
    assert [m["status"] for m in s.list_models()] == ["rejected", "active"]


def test_the_registry_keeps_a_versions_files_checked(backend_store):
    s = backend_store
    s.register_model("v1", "/elsewhere/v1", {}, {})
    assert s.model_files("v1") == {}
    files = {"arrays.npz": bytes(range(256)) * 100, "manifest.json": b'{"format": 1}'}
    s.save_model_files("v1", files)
    assert s.model_files("v1") == files
    s.save_model_files("v1", {"manifest.json": b"{}"})  # saved again: replaced whole
    assert s.model_files("v1") == {"manifest.json": b"{}"}
    assert s.drop_model_files(["v1", "nope"]) == 1 and s.model_files("v1") == {}


# -- the change feed ------------------------------------------------------------------------

def test_the_event_feed_misses_nothing_committed_by_concurrent_writers(papers):
    """Writers on other threads (other replicas, for a server database) commit while a
    follower polls events_since: every event shows up exactly once, in id order."""
    import threading

    from recommender.storage import open_store

    others = [open_store(papers.location)
              for _ in range(2)]
    stop = threading.Event()

    def write(store, w):
        n = 0
        while not stop.is_set() and n < 400:
            store.add_events([EventRow(f"w{w}", "p1", "click", T0, None, f"{w}-{n}-{i}")
                              for i in range(1 + n % 3)])
            n += 1

    threads = [threading.Thread(target=write, args=(s, w)) for w, s in enumerate(others)]
    for t in threads:
        t.start()
    seen, last = [], 0
    deadline = time.monotonic() + 20
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        new = papers.events_since(last)
        if new:
            seen += [e["id"] for e in new]
            last = new[-1]["id"]
    stop.set()
    for t in threads:
        t.join()
    seen += [e["id"] for e in papers.events_since(last)]
    for s in others:
        s.close()
    assert seen == sorted(set(seen)), "an event came twice or out of order"
    assert len(seen) == papers.count("events") > 100


def test_training_reads_the_events_in_chunks_in_time_order(papers):
    papers.add_events([EventRow(f"u{i % 3}", f"p{i % 5}", "read", at(50 - i)) for i in range(11)])
    chunks = list(papers.event_columns(batch=4))
    assert [len(c[0]) for c in chunks] == [4, 4, 3]
    stamps = [t for c in chunks for t in c[3]]
    assert stamps == sorted(stamps) and len(stamps) == 11


def test_the_schema_is_at_the_same_version_on_every_backend(backend_store):
    from recommender.storage.sqlite.schema import MIGRATIONS

    assert backend_store.schema_version == len(MIGRATIONS)
