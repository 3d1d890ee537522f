"""The nightly job keeps the serving model's chosen settings until the events grew by a
quarter or a week passed since the search that chose them (training/settings_reuse.py)."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from recommender.core.times import DAY_S, utcnow_iso
from recommender.model.hybrid import HybridModel
from recommender.storage import EventRow
from tests.helpers import CONFIG, synthetic
from training.settings_reuse import (SEARCH_AGAIN_AFTER_DAYS, SEARCH_AGAIN_GROWTH, chosen_settings,
                                     plan)
from training.train_job import train

NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def searched():
    """A hybrid fit with every setting chosen by the search, as the job records it."""
    texts, titles, users, items, _ = synthetic(n_papers=60, n_users=150, seed=3)
    model = HybridModel.fit(texts, users, items, titles=titles, config=CONFIG)
    assert model.stats["tuning"]["searched"]
    model.stats["settings_origin"] = {"version": "v1", "searched_at": NOW, "events": 1000}
    return texts, titles, users, items, model


@pytest.mark.parametrize("events, days, kept", [
    (1000, 0.0, True),
    (int(1000 * SEARCH_AGAIN_GROWTH) - 1, 0.0, True),
    (int(1000 * SEARCH_AGAIN_GROWTH), 0.0, False),
    (1000, SEARCH_AGAIN_AFTER_DAYS - 0.01, True),
    (1000, SEARCH_AGAIN_AFTER_DAYS, False),
])
def test_settings_are_kept_until_a_quarter_more_events_or_a_week(searched, events, days, kept):
    model = searched[-1]
    p = plan(model, "v1", events, NOW + days * DAY_S, "v2")
    assert (p.fixed is not None) is kept
    if kept:
        assert p.fixed == chosen_settings(model) and p.origin == model.stats["settings_origin"]
        assert p.why.startswith("kept from v1")
    else:
        assert p.origin == {"version": "v2", "searched_at": NOW + days * DAY_S, "events": events}
        assert p.why.startswith("searched (")


def test_a_search_is_made_when_asked_or_nothing_records_one(searched):
    model = searched[-1]
    assert plan(model, "v1", 1000, NOW, "v2", search=True).why == "searched (asked to)"
    assert plan(None, None, 1000, NOW, "v2").why == "searched (no model serving)"
    bare = HybridModel.fit(*searched[:1], *searched[2:4], titles=searched[1],
                           config=replace(CONFIG, **chosen_settings(model)))
    assert "settings_origin" not in bare.stats
    assert plan(bare, "v0", 1000, NOW, "v2").fixed is None


def test_a_fit_with_the_kept_settings_skips_the_search_and_keeps_every_setting(searched):
    texts, titles, users, items, model = searched
    fixed = plan(model, "v1", 1000, NOW, "v2").fixed
    again = HybridModel.fit(texts, users, items, titles=titles, config=replace(CONFIG, **fixed))
    assert again.stats["tuning"]["searched"] is False
    assert chosen_settings(again) == chosen_settings(model)
    # EASE's λ is kept too: the kept fit solves EASE once, without trying λs
    assert model.config.ease and "ease_trials" in model.stats["validation"]
    assert fixed["ease_lambda"] == again.config.ease_lambda and "ease_trials" not in again.stats["validation"]


def test_the_nightly_job_keeps_settings_then_searches_when_events_grew(trained):
    """The session's trained store: a second run on a few more events keeps the first
    run's settings (and says so); after a quarter more events it searches again."""
    db, models, store, first = trained
    assert first.settings.startswith("searched")
    second = train(store, models, progress=False)
    assert second.settings.startswith(f"kept from {first.version}")
    stats = json.loads((second.path / "manifest.json").read_text())["stats"]
    assert stats["tuning"]["searched"] is False and stats["settings_origin"]["version"] == first.version
    papers = [p["paper_id"] for p in store.iter_papers()]
    grow = int(store.count("events") * (SEARCH_AGAIN_GROWTH - 1)) + 100
    now = utcnow_iso()
    store.add_events([EventRow(f"newcomer-{i // 10}", papers[(i * 7) % len(papers)], "read", now)
                      for i in range(grow)])
    third = train(store, models, progress=False)
    assert third.settings.startswith("searched (events x"), third.settings
