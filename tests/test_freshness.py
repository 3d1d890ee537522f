"""A paper's age as a signal (recommender/model/freshness.py): learnt on the validation
slice only where the data says fresh papers are the ones read, applied at the time a list is
asked for, kept through the model's arrays, and off without publication times."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.core import reasons
from recommender.core.times import to_unix
from recommender.model.blend import FEATURES, RankingTask
from recommender.model.blend_data import neutral_weights, pool_task
from recommender.model.freshness import Freshness, calibrate, fresh_values
from recommender.model.hybrid import HybridModel
from recommender.model.one_reader import OneHistory
from recommender.model.tuning import carve
from recommender.serving.model_slot import ServedModel
from tests.helpers import CONFIG, TOPICS
from tests.test_not_yet_published import DAY, feed, hit_rate


def test_freshness_halves_each_half_life_and_is_zero_without_a_time():
    now = 100 * DAY
    published = np.array([100 * DAY, 90 * DAY, 80 * DAY, 250 * DAY, np.nan])
    np.testing.assert_allclose(fresh_values(published, now, 10.0), [1.0, 0.5, 0.25, 1.0, 0.0])


def test_the_bonus_weighs_each_regime_and_is_off_until_learnt():
    published = np.array([100 * DAY, 100 * DAY, 90 * DAY])
    cold = np.array([True, False, True])
    assert Freshness().bonus(published, cold, 100 * DAY) is None
    fresh = Freshness(10.0, cold_weight=2.0, warm_weight=0.5)
    assert fresh.bonus(published, cold, None) is None  # no time to measure ages from
    np.testing.assert_allclose(fresh.bonus(published, cold, 100 * DAY), [2.0, 0.5, 1.0])
    # ages to the minute: every list of one minute gets the same bonus
    np.testing.assert_array_equal(fresh.bonus(published, cold, 100 * DAY + 5),
                                  fresh.bonus(published, cold, 100 * DAY + 55))
    assert Freshness.from_dict(fresh.to_dict()) == fresh and Freshness.from_dict(None) == Freshness()


def pool(age_tells: bool, readers: int = 300, slots: int = 40, seed: int = 0) -> RankingTask:
    """New papers only, component scores that are noise; each reader's held-out papers are
    the recently published ones when `age_tells`, else ages have nothing to do with them."""
    rng = np.random.default_rng(seed)
    label = np.zeros((readers, slots), bool)
    label[:, :3] = True
    age = np.where(label, rng.uniform(0, 5, label.shape), rng.uniform(0, 700, label.shape))
    if not age_tells:
        age = rng.permuted(age, axis=1)
    order = rng.permuted(np.tile(np.arange(slots), (readers, 1)), axis=1)
    take = lambda a: np.take_along_axis(a, order, 1)  # noqa: E731
    F = rng.normal(size=(readers, slots, len(FEATURES))).astype(np.float32)
    return RankingTask(F=F, cold=np.ones((readers, slots), bool), valid=np.ones((readers, slots), bool),
                       label=take(label), n_rel=np.full(readers, 3), h=np.ones(readers, np.float32),
                       age=take(age).astype(np.float32))


def test_freshness_is_taken_only_where_the_slice_reads_fresh_papers():
    W = neutral_weights()
    W2, fresh, record = calibrate(pool(age_tells=True), W, pool(age_tells=True).age)
    assert fresh.used and fresh.cold_weight > 0 and "not_taken" not in record
    assert record["ndcg"] > record["ndcg_before"] + 0.3
    task = pool(age_tells=False)
    W3, none, record = calibrate(task, W, task.age)
    assert not none.used and "not_taken" in record
    np.testing.assert_array_equal(W3, W)
    unknown = np.full(task.age.shape, np.nan, np.float32)
    assert not calibrate(task, W, unknown)[1].used


def test_what_the_freshness_search_returns_and_records_is_what_it_ranked_by():
    """The weights returned carry the offset shift the search went with (and nothing else
    moves); the signal is the half-life and the two regimes' weights recorded; and the
    recorded NDCG is the slice's under those weights plus that signal. A pool with papers
    with readers beside new ones, a third of its slots of unknown age."""
    task = pool(age_tells=True)
    task.cold[:, ::2] = False
    age = task.age.copy()
    age[:, 1::3] = np.nan
    W = neutral_weights()
    W[-2] = -0.3
    W2, fresh, record = calibrate(task, W, age)
    assert fresh.used and "not_taken" not in record
    assert record["known_share"] == round(float(np.isfinite(age).mean()), 4)
    assert (record["half_life_days"], record["cold_weight"], record["warm_weight"]) == (
        fresh.half_life_days, round(fresh.cold_weight, 4), round(fresh.warm_weight, 4))
    np.testing.assert_allclose(W2[-2], W[-2] + record["offset_shift"], atol=1e-4)
    np.testing.assert_array_equal(W2[:-2], W[:-2])
    assert W2[-1] == W[-1]
    f = np.where(np.isfinite(age), np.exp2(-np.maximum(age, 0.0) / fresh.half_life_days), 0.0)
    S = task.scores(W2) + f * np.where(task.cold, fresh.cold_weight, fresh.warm_weight)
    from recommender.model.blend import per_reader_ndcg
    assert record["ndcg"] == pytest.approx(float(per_reader_ndcg(task, S, 20).mean()), abs=1e-4)
    assert record["ndcg_before"] == pytest.approx(float(per_reader_ndcg(task, task.scores(W), 20).mean()), abs=1e-4)
    assert record["ndcg"] > record["ndcg_before"]


def feed_with_old_unread(seed: int = 0, n_papers: int = 600, n_readers: int = 200, n_unread: int = 600,
                         cut_day: float = 90.0):
    """A daily feed's catalog: papers published over 100 days, each read within days of its
    publication by a few readers who like its topic; and as many papers on the same topics,
    published over the same days, that nobody reads (most old papers were never wanted).
    Train: the readings before `cut_day`; test: later readings by readers seen before
    (papers published near or after the cut). Returns (texts, publication times, train
    (users, items, ts), test (users, items))."""
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    n = n_papers + n_unread
    topic = rng.integers(0, len(names), n)
    texts = []
    for i in range(n):
        words = TOPICS[names[topic[i]]].split()
        texts.append(f"{' '.join(rng.choice(words, 3))} study {i} {' '.join(rng.choice(words, 12))}")
    day = rng.uniform(0, 100, n)
    likes = [rng.choice(len(names), 1 + (u % 2), replace=False) for u in range(n_readers)]
    fans = [np.array([u for u in range(n_readers) if t in likes[u]]) for t in range(len(names))]
    users, items, ts = [], [], []
    for i in range(n_papers):
        for u in rng.choice(fans[topic[i]], 4, replace=False):
            users.append(int(u))
            items.append(i)
            ts.append((day[i] + rng.exponential(1.5)) * DAY)
    users, items, ts = np.asarray(users), np.asarray(items), np.asarray(ts)
    train = ts < cut_day * DAY
    test = ~train & np.isin(users, users[train])
    return texts, day * DAY, (users[train], items[train], ts[train]), (users[test], items[test])


def fit(texts, train, n_readers, published):
    users, items, ts = train
    return HybridModel.fit(texts, users, items, ["read"] * len(users), ts, n_users=n_readers, config=CONFIG,
                           published=published)


def test_a_feed_with_old_unread_papers_learns_freshness_and_lists_fresh_papers():
    texts, published, train, test = feed_with_old_unread()
    n_readers = int(max(train[0].max(), test[0].max())) + 1
    aware = fit(texts, train, n_readers, published)
    record = aware.stats["validation"]["freshness"]
    assert aware.blender.freshness.used and "not_taken" not in record
    with_it = hit_rate(aware, train, test, n_readers)
    learnt = aware.blender.freshness
    aware.blender.freshness = Freshness()
    without = hit_rate(aware, train, test, n_readers)
    aware.blender.freshness = learnt
    assert with_it > without + 0.05
    blind = fit(texts, train, n_readers, None)
    assert "freshness" not in blind.stats["validation"] and not blind.blender.freshness.used
    assert with_it > hit_rate(blind, train, test, n_readers) + 0.05
    # the same times stamped after every reading (a crawl date) are not trusted: no freshness
    crawled = fit(texts, train, n_readers, np.full(len(texts), train[2].max() + DAY * 10))
    assert not crawled.blender.freshness.used


def test_freshness_survives_the_arrays_and_both_paths_agree_at_any_time():
    texts, published, train, test = feed_with_old_unread()
    n_readers = int(max(train[0].max(), test[0].max())) + 1
    model = fit(texts, train, n_readers, published)
    model.published[5] = np.nan  # an unknown time round-trips too
    copy = HybridModel.from_arrays(model.to_arrays(), model.manifest())
    np.testing.assert_array_equal(copy.published, model.published)
    assert copy.blender.freshness == model.blender.freshness and copy.blender.freshness.used
    users, items, ts = train
    C = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(n_readers, model.n_items))
    later = model.now + 40 * DAY
    for now in (None, later):
        for r in range(3):  # a batch of one reader is the single-reader path's arithmetic
            one, _ = copy.one_reader().scores(OneHistory.from_row(C[r], np.zeros(0, np.int64)), "hybrid", now)
            np.testing.assert_array_equal(one, copy.score_batch(C[r], "hybrid", now=now)[0])
    # forty days on, every paper with a publication time has lost some of its bonus
    gain = copy.freshness_bonus() - copy.freshness_bonus(later)
    known = np.isfinite(copy.published)
    assert (gain[known] >= 0).all() and gain[known].max() > 0 and (gain[~known] == 0).all()


def test_papers_added_after_training_bring_their_publication_times():
    texts, published, train, test = feed_with_old_unread()
    n_readers = int(max(train[0].max(), test[0].max())) + 1
    model = fit(texts, train, n_readers, published)
    ids = [f"p{i}" for i in range(model.n_items)]
    served = ServedModel("v1", model, list(ids))
    stored = {"new1": {"title": "graph clustering", "abstract": "spectral random walk", "upvotes": 0,
                       "published_at": "2026-12-01T00:00:00Z"},
              "new2": {"title": "gene expression", "abstract": None, "upvotes": 0, "published_at": None}}
    assert served.align(ids + ["new1", "new2"], stored.__getitem__) == 2
    assert model.published[-2] == to_unix("2026-12-01T00:00:00Z") and np.isnan(model.published[-1])
    bonus = model.freshness_bonus(to_unix("2026-12-01T00:00:00Z"))
    assert bonus[-2] == np.float32(model.blender.freshness.cold_weight) > 0 and bonus[-1] == 0


def test_with_trusted_publication_times_the_slice_makes_the_newest_papers_new():
    rng = np.random.default_rng(0)
    n_readers, n_papers = 60, 100
    C = sp.random(n_readers, n_papers, density=0.2, random_state=1, format="csr", dtype=np.float32)
    C.data[:] = 1.0
    pair_time = rng.uniform(0, 100, C.nnz) * DAY
    published = rng.permutation(n_papers) * DAY
    sliced = carve(C, pair_time, 0.1, 0.2, np.random.default_rng(0), published=published)
    read = np.unique(C.indices)
    newest = read[np.argsort(published[read])[-len(sliced.cold_items):]]
    assert sliced.new_by_time and sliced.stats()["new_papers"] == "the most recently published"
    np.testing.assert_array_equal(sliced.cold_items, np.sort(newest))
    # without event times, or without publication times for most papers: drawn at random
    for times, pub in ((None, published), (pair_time, np.where(np.arange(n_papers) < 70, np.nan, published))):
        drawn = carve(C, times, 0.1, 0.2, np.random.default_rng(0), published=pub)
        assert not drawn.new_by_time and not np.array_equal(drawn.cold_items, np.sort(newest))


def dense_feed_with_old_unread(n_unread: int = 240):
    """`feed`, where a third of each topic's readers read every paper within days, plus as
    many old papers nobody reads: in a slice that held out papers at random, no recent
    paper was without readers."""
    texts, published, train, test = feed(0)
    rng = np.random.default_rng(7)
    names = list(TOPICS)
    for i in range(n_unread):
        words = TOPICS[names[i % len(names)]].split()
        texts.append(f"{' '.join(rng.choice(words, 3))} survey {i} {' '.join(rng.choice(words, 12))}")
    return texts, np.r_[published, rng.uniform(0, 100, n_unread) * DAY], train, test


def test_a_dense_feed_learns_from_its_newest_papers_how_new_papers_rank():
    texts, published, train, test = dense_feed_with_old_unread()
    n_readers = int(max(train[0].max(), test[0].max())) + 1
    model = fit(texts, train, n_readers, published)
    assert model.stats["tuning"]["slice"]["new_papers"] == "the most recently published"
    assert model.blender.freshness.cold_weight > 0
    with_it = hit_rate(model, train, test, n_readers)
    model.blender.freshness = Freshness()
    assert with_it > 0.2 and with_it > hit_rate(model, train, test, n_readers) + 0.1


def test_a_paper_its_recency_placed_says_how_new_it_is():
    assert reasons.published(0.4) == "new: published today"
    assert reasons.published(1.5) == "new: published yesterday"
    assert reasons.published(12.2) == "new: published 12 days ago"
    texts, published, train, test = dense_feed_with_old_unread()
    n_readers = int(max(train[0].max(), test[0].max())) + 1
    model = fit(texts, train, n_readers, published)
    users, items, ts = train
    at = model.now + 2 * DAY
    said = []
    for u in np.unique(test[0])[:20]:
        history = [(int(j), "read", float(t)) for j, t in zip(items[users == u], ts[users == u])]
        for rec in model.recommend(history, k=10, now=at):
            if rec.reason.startswith("new: published"):
                age = (at - model.published[rec.index]) / DAY
                said.append(rec.reason == reasons.published(age))
    assert said and all(said)
    model.blender.freshness = Freshness()  # without the signal no reason speaks of it
    history = [(int(j), "read", float(t)) for j, t in zip(items[users == users[0]], ts[users == users[0]])]
    assert not any(r.reason.startswith("new:") for r in model.recommend(history, k=10, now=at))


def test_the_newest_papers_join_a_pool_only_when_dated():
    rng = np.random.default_rng(0)
    B, n = 6, 200
    Fz = rng.normal(size=(len(FEATURES), B, n)).astype(np.float32)
    excl = rng.random((B, n)) < 0.1
    Pd = rng.random((B, n)) < 0.05
    cold = rng.random(n) < 0.3
    h = np.ones(B, np.float32)
    plain = pool_task(Fz, excl, Pd, cold, h, None, 5)
    undated = pool_task(Fz, excl, Pd, cold, h, None, 5, np.full((B, n), np.nan, np.float32))
    np.testing.assert_array_equal(undated.F[undated.valid], plain.F[plain.valid])  # nothing added
    age = np.where(np.arange(n) < 20, np.arange(n, dtype=np.float32), np.nan)[None, :].repeat(B, 0)
    dated = pool_task(Fz, excl, Pd, cold, h, None, 5, age)
    for r in range(B):
        newest = [j for j in np.argsort(age[r])[:40] if not excl[r, j]][:5]
        listed = dated.age[r][dated.valid[r]]
        assert set(newest) <= {round(float(a)) for a in listed[np.isfinite(listed)]}
        assert dated.valid[r].sum() >= plain.valid[r].sum()


def test_through_the_service_a_paper_just_posted_is_listed_as_new(tmp_path):
    """The whole path: a feed's store trained by the nightly job, the real app serving it;
    a paper posted with a recent publication time reaches the model with its time and is
    listed for a reader of its topic as new, aged at the request's time."""
    from recommender.core.times import to_iso
    from recommender.storage import open_store
    from recommender.storage.interface import EventRow
    from tests.helpers import AUTH, make_client
    from training.train_job import train

    texts, published, train_events, _ = dense_feed_with_old_unread()
    shift = (time.time() // DAY - 101) * DAY  # feed day 100 is yesterday; its training ends at day 80
    db = tmp_path / "feed.db"
    store = open_store(db)
    store.upsert_papers([{"paper_id": f"f{i}", "title": t.split(" study ")[0].split(" survey ")[0],
                          "abstract": t, "published_at": to_iso(published[i] + shift)}
                         for i, t in enumerate(texts)])
    users, items, ts = train_events
    store.add_events([EventRow(f"r{u}", f"f{i}", "read", to_iso(t + shift)) for u, i, t in zip(users, items, ts)])
    result = train(store, tmp_path / "models", progress=False)
    store.close()
    assert result.promoted, result.reason
    with make_client(db, model_dir=tmp_path / "models", list_ttl_s=0) as client:
        reader = f"r{users[0]}"
        topic_words = texts[int(items[users == users[0]][0])].split(" study ")[0]
        paper = {"paper_id": "just-posted", "title": f"{topic_words} a new result",
                 "abstract": texts[int(items[users == users[0]][0])],
                 "published_at": to_iso(time.time() - 12 * DAY)}
        assert client.post("/papers", json=[paper], headers=AUTH).status_code == 201

        def listed(**params) -> dict[str, tuple[str, float]]:
            body = client.get("/recommendations", params={"user_id": reader, "k": 100, **params}).json()
            return {i["paper_id"]: (i["reason"], i["score"]) for i in body["items"]}

        # asked as of half a day after its publication (the reader's history is the same:
        # it ends three weeks ago), the paper is listed as new ...
        then = listed(as_of=to_iso(time.time() - 11.5 * DAY))
        assert then["just-posted"][0] == "new: published today"
        # ... and asked now it is twelve days old: aged at the request's time, not at the
        # model's newest event (before its publication, where it would be new forever)
        now = listed()
        assert now["just-posted"][0] != "new: published today"
        fresh = Freshness.from_dict(json.loads((result.path / "manifest.json").read_text())["blend"]["freshness"])
        lost = fresh.cold_weight * (0.5 ** (0.5 / fresh.half_life_days) - 0.5 ** (12 / fresh.half_life_days))
        assert lost > 0.5 and then["just-posted"][1] - now["just-posted"][1] == pytest.approx(lost, abs=0.05)
