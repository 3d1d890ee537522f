"""The kinds table (recommender/core/kinds.py) and the undo rule (core/events.py), wherever
they apply: which papers leave a reader's lists, with or without a model, and what an undo
takes back (the reader's own event, never anyone else's).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from recommender.core.events import undo_keep, undo_mask, without_cancelled
from recommender.core.kinds import HIDING_KINDS, KINDS, SEEN_KINDS, TABLE, kind_of, strongest_interest
from recommender.core.times import utcnow_iso
from recommender.serving.live import LiveRecommender
from recommender.storage import EventRow, open_store
from tests.helpers import AUTH
from training.store_data import interactions_from_store, papers_from_store

# One reader's history with every kind: (paper index in the catalog, kinds in order)
EVERY_KIND = [(0, ["read"]), (1, ["click"]), (2, ["upvote"]), (3, ["upvote", "remove_upvote"]),
              (4, ["remove_upvote"]), (5, ["dismiss"]), (6, ["dismiss", "remove_dismiss"]),
              (7, ["impression"]), (8, ["remove_dismiss"])]
# what leaves their lists: read, clicked, upvoted (also when taken back), dismissed
HIDDEN = {0, 1, 2, 3, 5}


def test_the_table_names_every_kind_once():
    assert KINDS == tuple(k.name for k in TABLE) and len(set(KINDS)) == len(KINDS)
    assert SEEN_KINDS == {"click", "read", "upvote", "dismiss"} and HIDING_KINDS == {"dismiss"}
    assert all(kind_of(k.undoes).name == k.undoes for k in TABLE if k.undoes)
    assert kind_of("rating").name == "read"  # an offline data set's own kind reads as a read
    assert kind_of("UPVOTE").name == "upvote" and kind_of(7).name == "read"


def test_the_strongest_interest_names_the_verb_of_a_reason():
    """click < read < upvote, per paper; kinds without a verb (impression, dismiss, the
    undos) and unknown ones show no interest; a bare paper counts as a read."""
    history = [(1, "click"), (1, "upvote"), (1, "read"), (2, "read"), (2, "click"), (3, "CLICK"),
               (4, "impression"), (4, "dismiss"), (5, "remove_upvote"), (6, "rating"), (7,)]
    assert strongest_interest(history) == {1: "upvote", 2: "read", 3: "click", 7: "read"}
    assert strongest_interest(None) == {} and strongest_interest([]) == {}


def test_an_undo_takes_back_only_an_earlier_event_of_its_own_reader_and_paper():
    keys = ["a:p", "a:p", "a:p", "b:p", "a:q", "a:q", "a:q"]
    kinds = ["upvote", "remove_upvote", "remove_upvote", "remove_upvote",
             "dismiss", "remove_dismiss", "remove_dismiss"]
    # the second remove_upvote and b's have nothing to take back; a dismissal undone is gone
    assert undo_keep(keys, kinds) == [True, True, False, False, False, False, False]
    users = np.array([0, 0, 0, 1, 0, 0, 0])
    items = np.array([0, 0, 0, 0, 1, 1, 1])
    assert undo_mask(users, items, np.array(kinds, dtype=object)).tolist() == undo_keep(keys, kinds)
    events = [{"paper_id": k.split(":")[1], "kind": kind} for k, kind in zip(keys[:3], kinds[:3])]
    assert [e["kind"] for e in without_cancelled(events)] == ["upvote", "remove_upvote"]


def _history_events(user: str, catalog_ids) -> list[EventRow]:
    rows, n = [], 0
    for index, kinds in EVERY_KIND:
        for kind in kinds:
            n += 1
            rows.append(EventRow(user, catalog_ids[index], kind,
                                 f"2026-01-01T00:00:{n:02d}.000000+00:00"))
    return rows


def _hidden(live: LiveRecommender, user: str, strategy: str) -> set[int]:
    everything = set(range(len(live.served.paper_ids) if live.served else live.catalog.size))
    used, ranked = live.recommend(user, live.catalog.size, strategy=strategy)
    return everything - set(ranked.rows.tolist())


def test_the_model_and_the_no_model_paths_hide_the_same_papers(trained, seeded_db):
    """One "seen" rule: before, the model counted anything but an impression as seen (a
    remove_upvote with no upvote hid the paper) and the no-model path did not."""
    _, _, with_model, _ = trained
    without_model = open_store(seeded_db)
    try:
        lives = {"model": LiveRecommender(with_model), "none": LiveRecommender(without_model)}
        assert lives["model"].served is not None and lives["none"].served is None
        for store, live in zip((with_model, without_model), lives.values()):
            store.add_events(_history_events("every-kind", live.catalog.paper_ids))
        hidden = {f"{name}/{strategy}": _hidden(live, "every-kind", strategy)
                  for name, live in lives.items() for strategy in ("hybrid", "content", "trending")}
        assert all(h == HIDDEN for h in hidden.values()), hidden
        # exclude_seen=False still hides the dismissed paper, on both paths
        for live in lives.values():
            _, ranked = live.recommend("every-kind", live.catalog.size, exclude_seen=False,
                                       strategy="hybrid")
            assert 5 not in ranked.rows and {0, 1, 2, 3} <= set(ranked.rows.tolist())
    finally:
        without_model.close()


def _trending(client) -> list[tuple]:
    return [(i["paper_id"], i["score"]) for i in
            client.get("/trending", params={"k": 50}).json()["items"]]


def _same(a: list[tuple], b: list[tuple]) -> bool:
    """The same papers in the same order, scores equal but for the clock moving on."""
    return [p for p, _ in a] == [p for p, _ in b] and np.allclose([s for _, s in a], [s for _, s in b],
                                                                 atol=1e-4)


def test_a_remove_upvote_without_an_upvote_changes_no_score(client):
    """Stored, but it takes back nothing: before, it lowered the paper's trending for
    everyone (and hid the paper from its sender's model lists)."""
    before = _trending(client)
    top = before[0][0]
    mine = client.get("/recommendations", params={"user_id": "demo-agents", "k": 20}).json()
    event = {"user_id": "demo-agents", "paper_id": top, "kind": "remove_upvote"}
    assert client.post("/events", json=event, headers=AUTH).status_code == 201
    assert client.get("/users/demo-agents", headers=AUTH).json()["by_kind"]["remove_upvote"] == 1
    assert _same(_trending(client), before)
    again = client.get("/recommendations", params={"user_id": "demo-agents", "k": 20}).json()
    assert _same([(i["paper_id"], i["score"]) for i in again["items"]],
                 [(i["paper_id"], i["score"]) for i in mine["items"]])


def test_a_remove_upvote_takes_back_its_readers_own_upvote(client):
    before = dict(_trending(client))
    quiet = next(pid for pid, score in sorted(before.items(), key=lambda x: x[1]))
    up = {"user_id": "fan", "paper_id": quiet, "kind": "upvote"}
    assert client.post("/events", json=up, headers=AUTH).status_code == 201
    raised = dict(_trending(client))
    assert raised.get(quiet, 0.0) > before.get(quiet, 0.0)
    # another reader's remove_upvote of it takes nothing back ...
    other = {**up, "user_id": "not-a-fan", "kind": "remove_upvote"}
    assert client.post("/events", json=other, headers=AUTH).status_code == 201
    assert dict(_trending(client)).get(quiet) == pytest.approx(raised.get(quiet), abs=1e-4)
    # ... the fan's own does
    assert client.post("/events", json={**up, "kind": "remove_upvote"}, headers=AUTH).status_code == 201
    assert dict(_trending(client)).get(quiet, 0.0) == pytest.approx(before.get(quiet, 0.0), abs=1e-3)


def test_training_data_follows_the_undo_rule(store):
    store.upsert_papers([{"paper_id": p, "title": f"Paper {p}"} for p in "abc"])
    now = utcnow_iso()
    store.add_events([EventRow("r", "a", "remove_upvote", now),  # nothing to take back
                      EventRow("r", "b", "dismiss", now), EventRow("r", "b", "remove_dismiss", now),
                      EventRow("r", "c", "upvote", now), EventRow("r", "c", "remove_upvote", now)])
    inter = interactions_from_store(store, papers_from_store(store))
    assert sorted(zip(inter.items.tolist(), inter.kinds.tolist())) == [(2, "remove_upvote"), (2, "upvote")]


def test_an_undo_with_nothing_to_take_back_counts_nowhere():
    """A history of undos alone (an upvote taken back that was never given, a dismissal
    undone that never was): every event dropped, so nothing of it is "seen" or interest."""
    lone = [{"paper_id": 1, "kind": "remove_upvote"}, {"paper_id": 2, "kind": "remove_dismiss"}]
    assert without_cancelled(lone) == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3),
                          st.sampled_from(["click", "upvote", "remove_upvote", "dismiss", "remove_dismiss"])),
                max_size=30))
@example([(2, 0, "upvote"), (0, 1, "remove_upvote")])  # 2 readers x 2 papers: a pair id per pair
def test_the_training_mask_is_the_undo_rule_per_reader_and_paper(events):
    """undo_mask over many readers' events at once keeps exactly what the rule keeps for
    each (reader, paper) alone: no two readers' or papers' events are mixed up."""
    users = np.array([u for u, _, _ in events], dtype=np.int64)
    items = np.array([i for _, i, _ in events], dtype=np.int64)
    kinds = [k for _, _, k in events]
    assert undo_mask(users, items, kinds).tolist() == undo_keep([(u, i) for u, i, _ in events], kinds)
