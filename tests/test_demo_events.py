"""The synthetic demo log: reproducible, consistent with the catalog, and shaped as its README
claims (on-topic demo readers, well-formed sessions, a trending signal)."""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training import demo_events as de

DEMO_READERS = {f"demo-{t}": t for t in de.TOPICS}


@pytest.fixture(scope="module")
def papers():
    return de.load_papers(de.DEFAULT_PAPERS)


@pytest.fixture(scope="module")
def committed():
    text = de.DEFAULT_OUT.read_text(encoding="utf-8")
    return text, list(csv.DictReader(io.StringIO(text)))


def as_rows(csv_text):
    return list(csv.DictReader(io.StringIO(csv_text)))


def test_committed_files_equal_regeneration(papers, committed):
    rows, summary = de.generate(papers)
    assert committed[0] == de.to_csv(rows)
    assert de.DEFAULT_DOC.read_text(encoding="utf-8") == de.to_markdown(rows, summary)


def test_header_kinds_times_and_ids(papers, committed):
    text, rows = committed
    assert text.splitlines()[0] == "user_id,paper_id,kind,ts"
    ids = {p["paper_id"] for p in papers}
    start = de.END - timedelta(days=de.DAYS)
    for r in rows:
        assert r["paper_id"] in ids
        assert r["kind"] in {"read", "click", "upvote"}
        assert r["user_id"].startswith("demo-")
        ts = datetime.fromisoformat(r["ts"].replace("Z", "+00:00"))
        assert r["ts"].endswith("Z") and start <= ts < de.END
    users = {r["user_id"] for r in rows}
    assert set(DEMO_READERS) <= users
    assert len([u for u in users if u.startswith("demo-crowd-")]) == de.N_CROWD


def check_demo_readers(papers, rows):
    by_id = {p["paper_id"]: p for p in papers}
    seen = defaultdict(set)
    for r in rows:
        if r["user_id"] in DEMO_READERS:
            seen[r["user_id"]].add(r["paper_id"])
    for user, topic in DEMO_READERS.items():
        n_events = sum(r["user_id"] == user for r in rows)
        assert 10 <= n_events <= 20, (user, n_events)
        for pid in seen[user]:
            p = by_id[pid]
            assert de.TOPIC_RE[topic].search(p["title"] + " " + p["abstract"]), (user, p["title"])
            assert de.primary_topic(p) == topic
    readers = list(seen)
    for i, a in enumerate(readers):
        for b in readers[i + 1:]:
            assert not seen[a] & seen[b], (a, b)


def check_sessions(rows):
    """An upvote follows a read, a read follows a click, of the same paper by the same reader."""
    first = {}
    for r in rows:
        first.setdefault((r["user_id"], r["paper_id"], r["kind"]), r["ts"])
    for (user, pid, kind), ts in first.items():
        before = {"read": "click", "upvote": "read"}.get(kind)
        if before:
            assert first[(user, pid, before)] <= ts


def test_demo_readers_are_on_topic_and_distinct(papers, committed):
    check_demo_readers(papers, committed[1])


def test_sessions_are_well_formed(committed):
    check_sessions(committed[1])


def test_hot_papers_lead_recent_engagement(papers, committed):
    rows, summary = de.generate(papers)
    recent = (de.END - timedelta(days=de.HOT_DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ")
    readers = defaultdict(set)
    for r in committed[1]:
        if r["ts"] >= recent:
            readers[r["paper_id"]].add(r["user_id"])
    top = sorted(readers, key=lambda pid: (-len(readers[pid]), pid))[:de.HOT_PAPERS]
    assert set(top) == set(summary["hot"])


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_any_seed_keeps_the_shape(papers, seed):
    rows = as_rows(de.to_csv(de.generate(papers, seed)[0]))
    check_demo_readers(papers, rows)
    check_sessions(rows)
