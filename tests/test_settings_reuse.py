"""The nightly job keeps the serving model's chosen settings until the events grew by a
quarter or a week passed since the search that chose them (training/settings_reuse.py)."""
from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from recommender.core.times import DAY_S, utcnow_iso
from recommender.model.blend import Blender
from recommender.model.hybrid import HybridModel
from recommender.storage import EventRow, open_store
from tests.helpers import CONFIG, synthetic
from training.settings_reuse import (SEARCH_AGAIN_AFTER_DAYS, SEARCH_AGAIN_GROWTH, chosen_settings,
                                     continues_serving, plan)
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



def test_every_search_records_where_its_settings_come_from(searched):
    """Whatever makes tonight search, the plan records this search (version, time, events):
    a later night keeps settings only from a recorded search, so a search recorded as
    nothing would make every night after it search again."""
    model = searched[-1]
    unrecorded = copy.copy(model)
    unrecorded.stats = {k: v for k, v in model.stats.items() if k != "settings_origin"}
    unchosen = copy.copy(model)  # EASE in the blend with its λ left to choose
    unchosen.config = replace(model.config, ease=True, ease_lambda=None)
    plans = {"asked to": plan(model, "v1", 1000, NOW, "v2", search=True),
             "no model serving": plan(None, None, 1000, NOW, "v2"),
             "v1 records no settings search": plan(unrecorded, "v1", 1000, NOW, "v2"),
             "v1 has settings left unchosen": plan(unchosen, "v1", 1000, NOW, "v2")}
    for why, p in plans.items():
        assert (p.fixed, p.why) == (None, f"searched ({why})")
        assert p.origin == {"version": "v2", "searched_at": NOW, "events": 1000}


def test_a_search_on_a_store_of_one_event_is_made_again_on_two(searched):
    """Growth is counted from the searched events, one at the least: a store searched on a
    single event (or none) has doubled by its second."""
    for searched_on in (0, 1):
        model = copy.copy(searched[-1])
        model.stats = {**model.stats, "settings_origin": {"version": "v1", "searched_at": NOW,
                                                          "events": searched_on}}
        assert plan(model, "v1", 1, NOW, "v2").fixed is not None
        assert plan(model, "v1", 2, NOW, "v2").fixed is None


def test_an_ease_without_words_hands_on_no_words(searched):
    """A kept setting is a value, never None, since None in a HybridConfig means "search it":
    an EASE that took no words hands on the weight 0, which a fit keeps as none."""
    wordless = copy.copy(searched[-1])
    wordless.config = replace(wordless.config, ease=True, ease_words=None)
    assert chosen_settings(wordless)["ease_words"] == 0.0
    assert all(v is not None for v in chosen_settings(searched[-1]).values())

def test_a_fit_with_the_kept_settings_skips_the_search_and_keeps_every_setting(searched):
    texts, titles, users, items, model = searched
    fixed = plan(model, "v1", 1000, NOW, "v2").fixed
    again = HybridModel.fit(texts, users, items, titles=titles, config=replace(CONFIG, **fixed))
    assert again.stats["tuning"]["searched"] is False
    assert chosen_settings(again) == chosen_settings(model)
    # EASE's λ is kept too: the kept fit solves EASE once, without trying λs
    assert model.config.ease and "ease_trials" in model.stats["validation"]
    assert fixed["ease_lambda"] == again.config.ease_lambda and "ease_trials" not in again.stats["validation"]
    # and the weight of the papers' words in it, whatever the search chose
    assert fixed["ease_words"] == model.config.ease_words == again.comps.ease.words == model.comps.ease.words


@pytest.fixture
def readers_store(seeded_db):
    """The seeded catalog with 300 readers of ten neighbouring papers each: enough
    held-out reading for the fit to learn its blend (the demo readers alone are not)."""
    store = open_store(seeded_db)
    papers = [p["paper_id"] for p in store.iter_papers()]
    rng = np.random.default_rng(0)
    start = datetime.now(timezone.utc) - timedelta(days=30)
    rows = []
    for u in range(300):
        base = int(rng.integers(0, len(papers) - 40))
        for n, j in enumerate(rng.choice(40, 10, replace=False)):
            rows.append(EventRow(f"reader-{u}", papers[base + int(j)], "read",
                                 (start + timedelta(days=float(rng.uniform(0, 29)))).isoformat()))
    store.add_events(rows)
    yield store
    store.close()


def test_repeats_counted_by_their_log_stay_so_with_the_kept_settings(searched):
    """How repeats add up is one of the settings a night keeps: a model that counts them by
    their log hands "log" on, and a fit with its settings does not fall back to the sum."""
    texts, titles, users, items, _ = searched
    logged = HybridModel.fit(texts, users, items, titles=titles, config=replace(CONFIG, repeats="log"))
    assert logged.conf_config.repeats == "log" and chosen_settings(logged)["repeats"] == "log"
    again = HybridModel.fit(texts, users, items, titles=titles, config=replace(CONFIG, **chosen_settings(logged)))
    assert again.stats["tuning"]["searched"] is False
    assert again.conf_config.repeats == "log"


def test_the_nightly_job_continues_the_serving_model_then_searches_when_events_grew(readers_store, tmp_path):
    """A second run on a few more events keeps the first run's settings (and says so) and
    refits the serving model; after a quarter more events it searches again."""
    store, models = readers_store, tmp_path / "models"
    first = train(store, models, progress=False)
    assert first.settings.startswith("searched")
    second = train(store, models, progress=False)
    assert second.settings.startswith(f"kept from {first.version}")
    assert second.settings.endswith(f"the candidate is {first.version} refit (its blend and words kept)")
    manifests = [json.loads((r.path / "manifest.json").read_text()) for r in (first, second)]
    assert manifests[0]["blend"]["learned"]
    stats = manifests[1]["stats"]
    assert stats["settings_origin"]["version"] == first.version
    # with the settings kept, the candidate is the serving model refit: its words'
    # encoder and its learned blend are the serving model's, its components new
    assert stats["continued_from"] == first.version and "continued_from" not in manifests[0]["stats"]
    assert manifests[1]["blend"] == manifests[0]["blend"] and manifests[1]["n_terms"] == manifests[0]["n_terms"]
    assert stats["refit"]["from_events"] < stats["n_events"] == store.count("events")
    papers = [p["paper_id"] for p in store.iter_papers()]
    grow = int(store.count("events") * (SEARCH_AGAIN_GROWTH - 1)) + 100
    now = utcnow_iso()
    store.add_events([EventRow(f"newcomer-{i // 10}", papers[(i * 7) % len(papers)], "read", now)
                      for i in range(grow)])
    third = train(store, models, progress=False)
    assert third.settings.startswith("searched (events x"), third.settings
    stats = json.loads((third.path / "manifest.json").read_text())["stats"]
    assert "continued_from" not in stats and stats["tuning"]["searched"] is True


def test_a_demo_store_keeps_settings_and_learns_its_blend_again(trained):
    """The demo store has too little reading to learn a blend: the nightly run keeps the
    settings and fits anew (a blend at the prior is learned again as the data grows)."""
    db, models, store, first = trained
    second = train(store, models, progress=False)
    assert second.settings.startswith(f"kept from {first.version}")
    stats = json.loads((second.path / "manifest.json").read_text())["stats"]
    assert stats["tuning"]["searched"] is False and "continued_from" not in stats
    assert "refit" not in second.settings


def test_a_blend_left_at_the_prior_is_learned_again_with_kept_settings(searched):
    model = searched[-1]
    kept = plan(model, "v1", 1000, NOW, "v2")
    assert model.blender.learned and continues_serving(kept, model)
    unlearned = copy.copy(model)
    unlearned.blender = Blender.prior("too few validation positives")
    assert not continues_serving(kept, unlearned)
    assert not continues_serving(plan(model, "v1", 1000, NOW, "v2", search=True), model)
    assert not continues_serving(kept, None)
