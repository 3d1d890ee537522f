"""Attribution: events carrying a request_id go to that list (position, variant); events
without one go to the reader's latest list that showed the paper, within the window."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from recommender.experiments.report import build_report, interleave_credits, reader_outcomes
from recommender.experiments.config import Experiment, validate_config
from recommender.storage import EventRow

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat(timespec="microseconds")


@pytest.fixture
def shop(store):
    store.upsert_papers([{"paper_id": f"p{i}", "title": f"paper {i}"} for i in range(8)])
    for name, kind in (("exp", "ab"), ("other", "ab")):
        e = validate_config({"name": name, "kind": kind, "control": "a", "variants": [
            {"name": "a", "strategy": "popular"}, {"name": "b", "strategy": "content"}]},
            ["popular", "content"])
        store.save_experiment(e.name, e.kind, e.to_config(), e.control)
    return store


def serve(store, rid, user, papers, hours, experiment="exp", variant="a", sources=None):
    store.log_served_list(rid, user, "popular", papers, experiment=experiment, variant=variant,
                          sources=sources, served_at_unix=(T0 + timedelta(hours=hours)).timestamp())


def ev(user, paper, kind, hours, rid=None, key=None):
    return EventRow(user, paper, kind, at(hours), rid, key or f"{user}-{paper}-{kind}-{hours}-{rid}")


def test_events_with_request_id_go_to_that_list_and_position(shop):
    serve(shop, "r1", "u1", ["p0", "p1", "p2"], 0, variant="a")
    serve(shop, "r2", "u1", ["p2", "p3"], 1, variant="a")
    shop.add_events([ev("u1", "p2", "click", 0.1, "r1"), ev("u1", "p2", "upvote", 1.1, "r2"),
                     ev("u1", "p7", "click", 0.2, "r1")])  # p7 was not in r1: no position
    rows = shop.experiment_events("exp")
    got = {(r["request_id"], r["kind"], r["paper_id"]): r["position"] for r in rows}
    assert got == {("r1", "click", "p2"): 2, ("r2", "upvote", "p2"): 0, ("r1", "click", "p7"): None}
    assert {r["variant"] for r in rows} == {"a"}


def test_events_without_request_id_go_to_latest_list_showing_the_paper(shop):
    serve(shop, "old", "u1", ["p0", "p1"], 0, variant="a")
    serve(shop, "new", "u1", ["p1", "p5"], 2, variant="b")
    serve(shop, "later", "u1", ["p6"], 3, variant="a")  # later, but does not show p1
    serve(shop, "elsewhere", "u1", ["p4"], 2.5, experiment="other")
    shop.add_events([
        ev("u1", "p1", "click", 4),            # -> 'new' (latest showing p1), position 0
        ev("u1", "p0", "read", 5),             # -> 'old'
        ev("u1", "p0", "click", 30),           # 30h after 'old': outside the 24h window
        ev("u1", "p1", "click", 1),            # before 'new' was served: -> 'old', position 1
        ev("u1", "p4", "click", 3),            # -> a list of another experiment
        ev("u1", "p5", "click", 2.5, "bogus"),  # unknown request_id: falls back to the window
        ev("u2", "p1", "click", 4),            # another reader never saw it
    ])
    rows = shop.experiment_events("exp")
    got = sorted((r["request_id"], r["paper_id"], r["kind"], r["position"], r["variant"]) for r in rows)
    assert got == sorted([("new", "p1", "click", 0, "b"), ("old", "p0", "read", 0, "a"),
                          ("old", "p1", "click", 1, "a"), ("new", "p5", "click", 1, "b")])
    assert [r["request_id"] for r in shop.experiment_events("other")] == ["elsewhere"]
    # a longer window reaches the late click
    assert len(shop.experiment_events("exp", window_hours=48)) == 5


def test_reader_outcomes_and_report(shop):
    serve(shop, "r1", "u1", ["p0", "p1", "p2"], 0, variant="a")
    serve(shop, "r2", "u1", ["p3", "p4", "p5"], 24, variant="a")
    serve(shop, "r3", "u2", ["p0", "p1"], 1, variant="b")
    shop.add_events([ev("u1", "p0", "click", 0.1, "r1"), ev("u1", "p0", "upvote", 0.2, "r1"),
                     ev("u2", "p1", "click", 1.1, "r3"), ev("u2", "p0", "click", 1.2, "r3"),
                     ev("u2", "p0", "read", 1.3, "r3"), ev("u2", "p0", "impression", 1.0, "r3")])
    out = reader_outcomes(shop.experiment_lists("exp"), shop.experiment_events("exp"))
    assert out["a"].lists.tolist() == [2] and out["a"].impressions.tolist() == [6]
    assert out["a"].clicks.tolist() == [1] and out["a"].upvotes.tolist() == [1]
    assert out["b"].clicks.tolist() == [2] and out["b"].reads.tolist() == [1]
    assert out["a"].arrival.tolist() == [0] and out["b"].arrival.tolist() == [1]
    report = build_report(shop, shop.get_experiment("exp"))
    assert report["totals"] == {"readers": 2, "lists": 3, "impressions": 8, "clicks": 3,
                                "reads": 1, "upvotes": 1}
    a, b = report["ab"]["variants"]
    assert a["click_rate"] == pytest.approx(1 / 6) and b["click_rate"] == pytest.approx(1.0)
    series = {s["variant"]: s["points"] for s in report["timeline"]["series"]}
    assert series["a"][-1][1] == pytest.approx(1 / 6) and series["b"][-1][1] == pytest.approx(1.0)
    json.dumps(report)  # the API returns it as is


def test_interleaving_credit_follows_the_slot(shop):
    e = Experiment.from_row(shop.get_experiment("exp"))
    serve(shop, "i1", "u1", ["p0", "p1", "p2", "p3"], 0, variant="interleaved",
          sources=["a", "b", "b", "a"])
    serve(shop, "i2", "u2", ["p4", "p5"], 0, variant="interleaved", sources=["b", "a"])
    shop.add_events([ev("u1", "p1", "click", 0.1, "i1"), ev("u1", "p2", "click", 0.2, "i1"),
                     ev("u1", "p3", "click", 0.3, "i1"), ev("u2", "p5", "click", 0.1),
                     ev("u2", "p4", "upvote", 0.1, "i2")])  # upvotes are not clicks
    ids, ca, cb = interleave_credits(shop.experiment_lists("exp"), shop.experiment_events("exp"), e)
    assert dict(zip(ids, zip(ca.tolist(), cb.tolist()))) == {"u1": (1, 2), "u2": (1, 0)}


def test_a_repeated_event_on_one_list_counts_once(shop):
    """The same click sent 200 times with the list's request_id (each with its own key, so
    all are stored) is one click on that list; so is a repeat without a request_id."""
    serve(shop, "r1", "u1", ["p0", "p1", "p2"], 0, variant="a")
    serve(shop, "r2", "u2", ["p0", "p1", "p2"], 0, variant="b")
    shop.add_events([ev("u1", "p1", "click", 0.1 + i / 1000, "r1") for i in range(200)])
    shop.add_events([ev("u2", "p0", "click", 0.1 + i / 1000) for i in range(5)])
    shop.add_events([ev("u1", "p1", "read", 0.5, "r1")])  # another kind still counts
    rows = shop.experiment_events("exp")
    got = sorted((r["request_id"], r["paper_id"], r["kind"]) for r in rows)
    assert got == [("r1", "p1", "click"), ("r1", "p1", "read"), ("r2", "p0", "click")]
    assert min(r["ts"] for r in rows if r["request_id"] == "r1") == at(0.1)  # the first one
    row = shop.get_experiment("exp")
    report = build_report(shop, row)
    by_name = {v["name"]: v for v in report["ab"]["variants"]}
    assert by_name["a"]["clicks"] == 1 and by_name["a"]["click_rate"] == pytest.approx(1 / 3)
    assert by_name["b"]["clicks"] == 1


def test_the_default_window_is_24_hours_to_the_second(shop):
    """A click without a request_id exactly 24 h after the list is attributed to it; one
    a second later is not (the README's window, `?window_hours=` on the report)."""
    serve(shop, "l1", "u1", ["p0"], 0)
    serve(shop, "l2", "u2", ["p0"], 0)
    shop.add_events([ev("u1", "p0", "click", 24), ev("u2", "p0", "click", 24 + 1 / 3600)])
    assert [(r["request_id"], r["user_id"]) for r in shop.experiment_events("exp")] == [("l1", "u1")]
    assert len(shop.experiment_events("exp", window_hours=24.001)) == 2
