"""Negative feedback (recommender/serving/feedback.py): a dismissed paper never comes back
until undone and papers like it move down for that reader; papers shown in earlier visits
and passed over move down (the list rotates). Through the real app and store, with the
trained demo model."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from recommender.core.times import DAY_S, to_iso
from recommender.serving.feedback import DEFAULT, OFF, Feedback, passed_over, reader_feedback
from recommender.serving.live import LiveRecommender
from recommender.serving.reader_history import ReaderHistory
from recommender.serving.serve_list import serve_list
from tests.helpers import AUTH, make_client

READ_PAPER = "2402.17764"  # a reader's one read: the 1-bit LLM paper


def _list(client, user, k=20, exclude_seen=True) -> dict[str, tuple[int, float]]:
    body = client.get("/recommendations", params={"user_id": user, "k": k,
                                                  "exclude_seen": exclude_seen}).json()
    return {i["paper_id"]: (n, i["score"]) for n, i in enumerate(body["items"])}


def _whole_list(live: LiveRecommender, user: str) -> dict[str, tuple[int, float]]:
    """`_list` over the whole catalog, from the app's recommender itself."""
    _, ranked = live.recommend(user, live.catalog.size)
    ids = live.catalog.paper_ids
    return {ids[r]: (n, float(s)) for n, (r, s) in enumerate(zip(ranked.rows, ranked.scores))}


def _post(client, user, paper, kind):
    r = client.post("/events", json={"user_id": user, "paper_id": paper, "kind": kind}, headers=AUTH)
    assert r.status_code == 201, r.text


def test_papers_like_a_dismissed_one_move_down_for_that_reader_only(trained):
    """Before, a dismissal only hid the paper: the model clips its weight to zero, so every
    other score stayed where it was."""
    db, models, _, _ = trained
    with make_client(db, model_dir=models, list_ttl_s=0) as client:
        live = client.app.state.recommender
        for user in ("dismisser", "twin"):
            _post(client, user, READ_PAPER, "read")
        before = _list(client, "dismisser")
        assert before == _list(client, "twin")
        dismissed = next(iter(before))
        vectors, row_of = live.catalog.vectors, live.catalog.row_of
        sims = {p: float(vectors[row_of[p]] @ vectors[row_of[dismissed]]) for p in before if p != dismissed}
        like = max(sims, key=sims.get)  # the listed paper most like the dismissed one
        _post(client, "dismisser", dismissed, "dismiss")
        after = _whole_list(live, "dismisser")  # `like` may fall below any k the API allows
        assert dismissed not in after and dismissed not in _list(client, "dismisser", 100, False)
        # without the feedback it would move up one place (the dismissed paper above it left
        # the list, nothing else moved); it moved down, and its score fell
        assert after[like][0] >= before[like][0] and after[like][1] < before[like][1]
        # papers unlike it moved up into the place the dismissed paper left
        unlike = [p for p in before if p != dismissed and sims[p] < 0.1]
        assert unlike and all(after[p][0] <= before[p][0] for p in unlike)
        assert _list(client, "twin") == before  # another reader's list did not move


def test_a_dismissal_undone_brings_the_paper_back(trained):
    db, models, _, _ = trained
    with make_client(db, model_dir=models, list_ttl_s=0) as client:
        _post(client, "undoer", READ_PAPER, "read")
        before = _list(client, "undoer", exclude_seen=False)
        paper = next(p for p in before if p != READ_PAPER)
        _post(client, "undoer", paper, "dismiss")
        assert paper not in _list(client, "undoer", k=100, exclude_seen=False)
        _post(client, "undoer", paper, "remove_dismiss")
        again = _list(client, "undoer", exclude_seen=False)
        assert again[paper] == pytest.approx(before[paper], abs=1e-5)


def _serve(store, live, user, as_of, k=10) -> list[str]:
    served = serve_list(store, live, user, k, True, as_of)
    store.flush()  # the next list reads this one back
    return served.paper_ids


@pytest.mark.parametrize("weights", [DEFAULT, OFF], ids=["feedback", "off"])
def test_papers_shown_in_earlier_visits_and_passed_over_move_down(trained, weights):
    """Before, a reader who clicked nothing got the same list on every visit."""
    _, _, store, _ = trained
    live = LiveRecommender(store, feedback=weights)
    t0 = live.events.snapshot().ts.max() + DAY_S
    store.add_events([_event("rotating", READ_PAPER, t0 - 3600)])
    first = _serve(store, live, "rotating", t0)
    # a reload a minute later is the same visit: the list it shows does not move
    assert _serve(store, live, "rotating", t0 + 60) == first
    for hour in (2, 4):  # two more visits, nothing clicked
        _serve(store, live, "rotating", t0 + hour * 3600)
    later = _serve(store, live, "rotating", t0 + 6 * 3600)
    if weights is OFF:
        assert later == first
    else:
        fresh = [p for p in later if p not in first]  # papers never shown come up
        assert fresh and later.index(fresh[0]) < len(first) - len(fresh), (first, later)


def test_a_clicked_paper_is_not_passed_over(trained):
    _, _, store, _ = trained
    live = LiveRecommender(store)
    t0 = live.events.snapshot().ts.max() + DAY_S
    store.add_events([_event("clicker", READ_PAPER, t0 - 3600)])
    first = _serve(store, live, "clicker", t0)
    store.add_events([_event("clicker", first[0], t0 + 10, "click")])
    for hour in (2, 4):
        _serve(store, live, "clicker", t0 + hour * 3600)
    history = live.history("clicker")
    lists = store.served_to("clicker")
    fb = reader_feedback(history, lists, live.catalog.row_of, t0 + 6 * 3600)
    passed = dict(zip(fb.skipped.tolist(), fb.visits.tolist()))
    assert live.catalog.row_of[first[0]] not in passed
    assert all(passed[live.catalog.row_of[p]] >= 1 for p in first[1:])
    assert sum(passed.values()) == 3 * 10 - 1  # three visits of 10 papers, but the clicked one


def _event(user, paper, ts, kind="read"):
    from recommender.storage import EventRow
    return EventRow(user, paper, kind, to_iso(ts))


def test_visits_group_lists_and_the_visit_going_on_does_not_count():
    t = 1.8e9
    lists = [{"served_at": to_iso(t + dt), "paper_ids": ids} for dt, ids in
             [(0, ["a", "b"]), (60, ["a", "c"]), (7200, ["a"]), (14_400, ["a", "d"])]]
    assert passed_over(lists, 1800, now=t + 20_000) == {"a": 3, "b": 1, "c": 1, "d": 1}
    assert passed_over(lists, 1800, now=t + 14_500) == {"a": 2, "b": 1, "c": 1}
    assert passed_over([], 1800, now=t) == {}


def test_penalties_grow_with_likeness_and_with_visits():
    vectors = np.array([[1.0, 0.0], [0.9, 0.436], [0.0, 1.0], [0.6, 0.8]], np.float32)
    fb = Feedback(dismissed=np.array([0]), skipped=np.array([2, 3]), visits=np.array([1, 4]),
                  weights=DEFAULT)
    p = fb.penalty(np.array([1, 2, 3]), vectors)
    assert p[0] == pytest.approx(DEFAULT.dismiss * 0.9, rel=1e-3)
    assert p[1] == pytest.approx(DEFAULT.skip * np.log(2))
    assert p[2] == pytest.approx(DEFAULT.dismiss * 0.6 + DEFAULT.skip * np.log(5), rel=1e-3)
    # ranks: a paper passed over in v visits moves from rank r to (1 + r)(1 + v)^skip - 1
    scores = np.array([10.0, 9.0, 8.0, 7.0, 6.0, 5.0])
    skip = Feedback(np.zeros(0, np.int64), np.array([0, 1]), np.array([3, 1]),
                    replace(DEFAULT, skip=1.0))
    rows, adjusted = skip.rank(scores, 6, np.zeros(0, np.int64), None, vectors)
    assert rows.tolist() == [2, 0, 1, 3, 4, 5]  # 0 and 1 -> rank 3 (ties: in the old order)
    assert adjusted[0] == adjusted[1] == adjusted[3] == 7.0 and adjusted[2] == 8.0
    # off, or nothing turned down: no feedback at all
    empty = ReaderHistory(np.array([1]), ["read"], np.array([1.8e9]))
    assert reader_feedback(empty, [], {}, 1.8e9) is None
    assert reader_feedback(empty, [{"served_at": to_iso(1.7e9), "paper_ids": ["x"]}],
                           {"x": 0}, 1.8e9, OFF) is None
