"""What the live recommender keeps in memory must never hide a stored event.

Readers' histories are cached until their next event and readers without events get a
shared trending list; both caches are dropped by refresh(), which sees every event in the
store, also events written by another process (here: a second Store on the same file).
Served lists are written without the request waiting; they must still be readable at once
in this process and be on disk once the store is closed."""
from __future__ import annotations

import time
import itertools
from datetime import datetime, timezone

import numpy as np

import pytest

from recommender.serving.live import LiveRecommender
from recommender.serving.serve_list import serve_list
from recommender.storage import EventRow, open_store
from recommender.storage.sqlite import raw

TS = "2026-01-02T00:00:00.000000+00:00"


@pytest.fixture
def stores(seeded_db):
    here, there = open_store(seeded_db), open_store(seeded_db)  # `there` stands for another process
    yield here, there
    here.close()
    there.close()


def _some_papers(store, n):
    return [p["paper_id"] for p in itertools.islice(store.iter_papers(), n)]


@pytest.mark.parametrize("list_ttl_s", [0.0, 60.0])
def test_an_event_from_another_process_reaches_the_next_list(stores, list_ttl_s):
    here, there = stores
    rec = LiveRecommender(here, list_ttl_s=list_ttl_s)
    _, first = rec.recommend("demo-agents", 10)
    top = rec.catalog.paper_ids[int(first.rows[0])]
    _, again = rec.recommend("demo-agents", 10)  # served from the cached history
    assert rec.catalog.paper_ids[int(again.rows[0])] == top
    there.add_events([EventRow("demo-agents", top, "read", TS, idempotency_key="x-1")])
    _, after = rec.recommend("demo-agents", 10)
    assert top not in [rec.catalog.paper_ids[int(r)] for r in after.rows]


@pytest.mark.parametrize("list_ttl_s", [0.0, 60.0])
def test_a_new_reader_leaves_the_shared_trending_list(stores, list_ttl_s):
    here, there = stores
    rec = LiveRecommender(here, list_ttl_s=list_ttl_s)
    used, before = rec.recommend("brand-new-reader", 10)
    used_other, other = rec.recommend("another-new-reader", 10)
    assert used == used_other == "trending" and list(before.rows) == list(other.rows)
    picked = rec.catalog.paper_ids[int(before.rows[0])]
    there.add_events([EventRow("brand-new-reader", picked, "upvote", TS, idempotency_key="x-2")])
    used, after = rec.recommend("brand-new-reader", 10)
    assert used != "trending"
    assert picked not in [rec.catalog.paper_ids[int(r)] for r in after.rows]
    assert rec.recommend("another-new-reader", 10)[0] == "trending"


def test_history_as_of_is_read_from_the_store(stores):
    here, _ = stores
    rec = LiveRecommender(here)
    papers = _some_papers(here, 2)
    here.add_events([EventRow("timed", papers[0], "read", "2026-01-01T00:00:00+00:00", idempotency_key="t-1"),
                     EventRow("timed", papers[1], "read", "2026-03-01T00:00:00+00:00", idempotency_key="t-2")])
    rec.refresh()
    assert len(rec.history("timed")) == 2
    assert len(rec.history("timed", "2026-02-01T00:00:00.000000+00:00")) == 1


def test_served_lists_are_readable_at_once_and_on_disk_after_close(seeded_db):
    store = open_store(seeded_db)
    rec = LiveRecommender(store)
    ids = [serve_list(store, rec, f"reader-{i}", 5).request_id for i in range(20)]
    assert store.get_impression(ids[-1])["user_id"] == "reader-19"
    more = [serve_list(store, rec, "late-reader", 5).request_id for _ in range(5)]
    store.close()
    con = raw.connect(seeded_db)
    try:
        stored = {r[0] for r in con.execute("SELECT request_id FROM impressions")}
    finally:
        con.close()
    assert set(ids + more) <= stored


def test_a_kept_list_is_the_list_ranked_afresh(trained):
    """Within its TTL a reader's list is reused; it is the list a fresh ranking gives, and
    a paper added to the catalog (so to the model) ranks afresh."""
    _, _, here, _ = trained
    try:
        kept = LiveRecommender(here, list_ttl_s=60.0)
        fresh = LiveRecommender(here, list_ttl_s=0.0)
        assert kept.served is not None
        _, a = kept.recommend("demo-agents", 10)
        _, b = kept.recommend("demo-agents", 10)
        assert b is a
        _, c = fresh.recommend("demo-agents", 10)
        assert list(c.rows) == list(a.rows) and c.reasons == a.reasons
        here.upsert_papers([{"paper_id": "kept-new", "title": "Agents that plan with language models"}])
        _, d = kept.recommend("demo-agents", 10)
        assert d is not a
    finally:
        here.close()


def test_a_paper_updated_by_another_process_reaches_the_live_catalog(trained):
    """An update in place (a corrected title, a new upvote count) keeps the paper's rowid;
    the live catalog still picks it up - trending and titles move at once - and keeps the
    model's paper order, so the model keeps serving."""
    _, _, here, _ = trained
    there = open_store(here.path)
    try:
        rec = LiveRecommender(here, list_ttl_s=60.0)
        assert rec.served is not None
        _, before = rec.recommend("nobody-yet", 10)
        last = rec.catalog.paper_ids[int(np.argmin(rec.trending()))]
        assert last not in [rec.catalog.paper_ids[int(r)] for r in before.rows]
        paper = there.get_paper(last)
        now = datetime.now(timezone.utc).isoformat()
        there.upsert_papers([{**paper, "title": "A corrected title", "upvotes": 10**6, "published_at": now}])
        _, after = rec.recommend("nobody-yet", 10)
        row = rec.catalog.row_of[last]
        assert row in after.rows  # a million catalog upvotes today: among the trending papers
        assert rec.catalog.titles[row] == "A corrected title"
        assert rec.catalog.size == len(rec.served.paper_ids)
        assert rec.recommend("demo-agents", 10)[0] == "hybrid" and rec.served is not None
    finally:
        there.close()
        here.close()


def test_kept_lists_are_bounded_in_items_and_age(trained):
    """Issue 11 finding 2: one kept list per (reader, k, ...) with a cap of 100,000 lists
    and no expiry held ~3.8 GB at k=100. Readers without history share the trending list
    (nothing is kept for them); the rest are bounded by a budget of items and dropped once
    past their TTL."""
    db, models, store, first = trained
    rec = LiveRecommender(store, list_ttl_s=60.0, max_kept_items=1_000)
    assert rec.model_version == first.version
    shared = {id(rec.recommend(f"stranger-{i}", 100, strategy="hybrid")[1]) for i in range(300)}
    assert len(rec.kept) == 0 and len(shared) == 1  # unknown readers (as in an experiment)
    readers = sorted({e["user_id"] for e in store.iter_events()})
    assert len(readers) >= 30
    for user in readers:
        rec.recommend(user, 100, strategy="hybrid")
    assert rec.kept.items <= 1_000 and len(rec.kept) <= 10
    # the latest lists are the ones kept, and a kept list is still served as kept
    _, again = rec.recommend(readers[-1], 100, strategy="hybrid")
    assert again is rec.recommend(readers[-1], 100, strategy="hybrid")[1]
    # past its TTL a list is dropped, not only ignored
    short = LiveRecommender(store, list_ttl_s=2.0, max_kept_items=1_000)
    for user in readers[:5]:
        short.recommend(user, 20, strategy="hybrid")
    assert len(short.kept) == 5
    time.sleep(2.1)
    short.recommend(readers[5], 20, strategy="hybrid")
    assert short.kept.keys() == [(readers[5], 20, True, "hybrid")]


def test_readers_who_miss_trending_at_once_share_one_computation(stores, monkeypatch):
    """Every new event starts a new trending moment, and all readers without history miss
    it together: one of them computes, the others wait for its scores (computed by each,
    8 threads took 8 computations' time under the GIL)."""
    import threading

    import recommender.serving.live as live_module

    here, _ = stores
    rec = LiveRecommender(here)
    real, calls = live_module.trending_scores, []

    def slow_scores(*args, **kwargs):  # the real scores, slow enough that all 8 overlap
        calls.append(1)
        time.sleep(0.2)
        return real(*args, **kwargs)

    monkeypatch.setattr(live_module, "trending_scores", slow_scores)
    start, got = threading.Barrier(8), []

    def reader():
        start.wait()
        got.append(rec.trending())

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(got) == 8 and len(calls) == 1
    assert all(g is got[0] for g in got)
