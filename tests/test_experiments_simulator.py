"""The reader simulator: tastes from real abstracts, responses that follow them, and an
end-to-end run whose report adds up to what the readers did."""
from __future__ import annotations

import numpy as np
import pytest

from recommender.experiments.report import build_report
from recommender.experiments.config import create_experiment
from recommender.serving import strategies
from recommender.serving.live import LiveRecommender
from training.simulator import (DomainBackend, ReaderModel, Readers, TasteSpace,
                                   default_start, past_reads, respond, simulate)
from recommender.storage import open_store


@pytest.fixture(scope="module")
def space():
    return TasteSpace.from_jsonl()


def test_taste_space_from_seed_abstracts(space):
    assert len(space.paper_ids) > 700 and space.topics.shape[1] == ReaderModel().n_topics
    norms = np.linalg.norm(space.topics, axis=1)
    assert np.all((np.abs(norms - 1) < 1e-6) | (norms == 0)) and np.all(space.topics >= 0)
    assert all(label for label in space.labels)
    assert space.rows(["nope", space.paper_ids[3]]).tolist() == [-1, 3]


def test_clicks_follow_taste_and_position(space):
    rng = np.random.default_rng(0)
    readers = Readers.sample(2000, space, rng)
    match = readers.taste @ space.topics.T
    best = np.argsort(-match, axis=1)[:, :10]
    worst = np.argsort(match, axis=1)[:, :10]
    who = np.arange(len(readers))
    good = respond(readers, who, best, space, rng)
    bad = respond(readers, who, worst, space, rng)
    assert good.clicks.mean() > 2 * bad.clicks.mean()
    assert good.click_p[:, 0].mean() > good.click_p[:, 9].mean()  # position bias
    assert not (good.upvotes & ~good.clicks).any() and not (good.reads & ~good.clicks).any()
    unknown = respond(readers, who[:5], np.full((5, 3), -1), space, rng)
    assert not unknown.clicks.any()


def test_past_reads_come_from_the_readers_taste(space):
    rng = np.random.default_rng(1)
    readers = Readers.sample(500, space, rng)
    events = past_reads(readers, space, rng, start_ts=1.7e9)
    assert events and all(e["kind"] == "read" and e["ts"] < "2023-11-14T22:13:20" for e in events)
    match = readers.taste @ space.topics.T
    idx = {u: i for i, u in enumerate(readers.ids)}
    picked = [match[idx[e["user_id"]], space.row_of[e["paper_id"]]] for e in events]
    assert np.mean(picked) > np.mean(match) + 0.2


def test_simulation_end_to_end_adds_up(seeded_db, space):
    store = open_store(seeded_db)
    try:
        rec = LiveRecommender(store)
        create_experiment(store, {"name": "sim", "control": "p", "variants": [
            {"name": "p", "strategy": "popular"}, {"name": "c", "strategy": "content"}]},
            strategies.NAMES, salt="sim-test")  # a fixed salt: the same readers every run
        rng = np.random.default_rng(2)
        readers = Readers.sample(80, space, rng, prefix="t")
        log = simulate(DomainBackend(store, rec), readers, space, 3, 8, default_start(3), rng)
        report = build_report(store, store.get_experiment("sim"))
        assert report["totals"]["readers"] == 80
        assert report["totals"]["lists"] == log.lists == sum(log.sessions_per_day)
        assert report["totals"]["clicks"] == log.clicks
        assert report["totals"]["upvotes"] == log.upvotes and report["totals"]["reads"] == log.reads
        assert report["totals"]["impressions"] <= 8 * log.lists
        assert sum(v["readers"] for v in report["ab"]["variants"]) == 80
    finally:
        store.close()
