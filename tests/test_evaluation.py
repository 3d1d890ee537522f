"""The offline protocol (recommender/offline/evaluation.py): the batch evaluation equals
ranking each reader on their own and scoring the list by hand."""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import scipy.sparse as sp
import pytest

from recommender.core.ranking import ndcg_from_hits
from recommender.offline.dataset import Interactions, Papers
from recommender.offline.evaluation import evaluate_model, evaluate_split, fit_model, per_reader_metrics
from recommender.offline.metrics import summarize
from tests.helpers import CONFIG, synthetic


def synthetic_split(n_papers: int, n_users: int, seed: int, held_seed: int):
    """(papers, train, test) of the synthetic catalog, a quarter of the events held out."""
    texts, titles, users, items, _ = synthetic(n_papers=n_papers, n_users=n_users, seed=seed)
    n = len(users)
    papers = Papers([f"p{i}" for i in range(n_papers)], titles, [t[len(ti):] for t, ti in zip(texts, titles)],
                    np.full(n_papers, np.nan), np.zeros(n_papers, np.float32))
    held = np.random.default_rng(held_seed).random(n) < 0.25
    user_ids = [f"u{u}" for u in range(int(users.max()) + 1)]
    kinds = np.array(["upvote"] * n, dtype=object)

    def part(mask):
        return Interactions(user_ids, users[mask].astype(np.int32), items[mask].astype(np.int32),
                            kinds[mask], np.full(int(mask.sum()), np.nan))
    return papers, part(~held), part(held)


@pytest.fixture(scope="module")
def split():
    return synthetic_split(60, 90, seed=3, held_seed=0)


def _history(train, u):
    """Reader u's training events as a history [(paper, kind[, ts])]."""
    mine = train.users == u
    return [(int(i), str(kind)) + ((float(t),) if np.isfinite(t) else ())
            for i, kind, t in zip(train.items[mine], train.kinds[mine], train.ts[mine])]


def by_hand(model, strategy, train, test, k=20, candidates=None):
    """Rank every test reader alone (the single-reader path) and score their list."""
    per = {"recall": [], "ndcg": [], "hitrate": []}
    for u in np.unique(test.users):
        history = _history(train, u)
        relevant = set(test.items[test.users == u].tolist())
        ranked = [r.index for r in model.recommend(history, k=k, strategy=strategy,
                                                   candidates=candidates, with_reasons=False)]
        hits = np.array([[i in relevant for i in ranked] + [False] * (k - len(ranked))])
        per["ndcg"].append(ndcg_from_hits(hits, [len(relevant)], k)[0])
        per["recall"].append(hits.sum() / len(relevant))
        per["hitrate"].append(float(hits.any()))
    return summarize({key: np.array(v) for key, v in per.items()}, k)


@pytest.mark.parametrize("strategy", ["content", "hybrid"])
def test_the_batch_evaluation_equals_ranking_each_reader_alone(split, strategy):
    papers, train, test = split
    model = fit_model(papers, train, config=CONFIG)
    got = evaluate_model(model, strategy, train, test)
    want = by_hand(model, strategy, train, test)
    assert got["users"] == want["users"] == len(np.unique(test.users))
    for key in ("ndcg@20", "recall@20", "hitrate@20"):
        assert got[key] == pytest.approx(want[key], abs=1e-9), key
    only = np.arange(0, 60, 2)
    assert evaluate_model(model, strategy, train, test, candidates=only)["ndcg@20"] == \
        pytest.approx(by_hand(model, strategy, train, test, candidates=only)["ndcg@20"], abs=1e-9)


def test_an_evaluation_of_many_readers_ranks_through_the_list_form_and_drops_it_after():
    """With EASE solved over the readers (fewer readers than papers), the hybrid's batch
    evaluation builds XᵀK for its time (`HybridModel.in_list_form_for`, where it pays): each
    batch ranks through it, the figures are those of every reader ranked alone by the model
    in the form that serves lists, and the model keeps no XᵀK after."""
    papers, train, test = synthetic_split(160, 120, seed=5, held_seed=1)
    model = fit_model(papers, train, config=replace(CONFIG, ease=True))
    ease = model.comps.ease
    assert type(ease).__name__ == "FactoredEase" and ease.XK is None
    rows = sp.csr_matrix((np.ones(len(train)), (train.users, train.items)), shape=(train.n_users, 160))
    assert ease.list_form_pays(rows[np.unique(test.users)])  # the data exercises the build
    during = []
    got = evaluate_model(model, "hybrid", train, test, batch=7,
                         progress=lambda n: during.append(ease.XK is not None))
    assert during and all(during)
    assert ease.XK is None
    model.for_lists()
    want = by_hand(model, "hybrid", train, test)
    for key in ("ndcg@20", "recall@20", "hitrate@20"):
        assert got[key] == pytest.approx(want[key], abs=1e-9), key


def test_evaluate_split_times_each_strategy_and_refuses_unknown_ones(split):
    papers, train, test = split
    started = time.perf_counter()
    results = evaluate_split(papers, train, test, strategies=("popular", "content"), config=CONFIG)
    wall = time.perf_counter() - started
    assert set(results) == {"popular", "content"}
    assert all(0 <= r["ndcg@20"] <= 1 for r in results.values())
    assert 0 <= results["popular"]["fit_s"] + results["content"]["fit_s"] <= wall
    with pytest.raises(ValueError) as refused:
        evaluate_split(papers, train, test, strategies=("trending",), config=CONFIG)
    assert str(refused.value) == ("unknown strategy 'trending'; expected some of "
                                  "popular,content,collaborative,hybrid")


def test_evaluate_split_fits_each_strategy_alone_with_the_given_config(split):
    """`popular` is fit without ALS (its settings search tries popularity counts only),
    and settings fixed in the config are the ones the collaborative fit uses."""
    papers, train, test = split
    fixed = replace(CONFIG, als_alpha=3.0, als_regularization=200.0)
    results = evaluate_split(papers, train, test, strategies=("popular", "collaborative"), config=fixed)
    assert all("popularity" in t for t in results["popular"]["tuning"]["trials"])
    tuning = results["collaborative"]["tuning"]
    assert (tuning["als_alpha"], tuning["als_regularization"]) == (3.0, 200.0)
    assert any("proxy_ndcg" in t for t in tuning["trials"])


def test_evaluate_split_reports_exactly_what_the_cli_writes(split):
    """Each strategy's figures at the k asked for, its fit and evaluation seconds (to the
    hundredth, within the call's wall time) and its settings search; the hybrid also its
    blend and validation figures; one log line per strategy in the README's format."""
    papers, train, test = split
    lines: list[str] = []
    started = time.perf_counter()
    results = evaluate_split(papers, train, test, strategies=("popular", "hybrid"), k=5, config=CONFIG,
                             log=lines.append)
    wall = time.perf_counter() - started
    figures = {"recall@5", "ndcg@5", "hitrate@5", "users", "fit_s", "eval_s", "tuning"}
    assert set(results["popular"]) == figures
    assert set(results["hybrid"]) == figures | {"blend", "validation"}
    assert isinstance(results["hybrid"]["blend"], dict) and results["hybrid"]["blend"]
    assert isinstance(results["hybrid"]["validation"], dict) and results["hybrid"]["validation"]
    assert all(isinstance(r["tuning"], dict) and r["tuning"]["trials"] for r in results.values())
    seconds = [r[key] for r in results.values() for key in ("fit_s", "eval_s")]
    assert all(isinstance(s, float) and s == round(s, 2) and s >= 0 for s in seconds)
    assert sum(seconds) <= wall + 0.02
    assert len(lines) == 2
    for line, (name, r) in zip(lines, results.items()):
        assert line == (f"{name}: ndcg@5={r['ndcg@5']:.4f} recall@5={r['recall@5']:.4f} "
                        f"fit {line.split(' fit ')[1].split('s')[0]}s eval {r['eval_s']:.1f}s")
        assert abs(float(line.split(" fit ")[1].split("s")[0]) - r["fit_s"]) <= 0.051


def test_evaluate_model_reports_progress_per_reader(split):
    """The progress callback hears of every test reader exactly once, in batches."""
    papers, train, test = split
    model = fit_model(papers, train, strategies=("popular",), config=CONFIG)
    seen: list[int] = []
    got = evaluate_model(model, "popular", train, test, batch=7, progress=seen.append)
    assert sum(seen) == got["users"] == len(np.unique(test.users))
    assert max(seen) == 7 and len(seen) == -(-got["users"] // 7)


def _rich_split(kinds_of=lambda rng, n: rng.choice(["click", "read", "upvote"], n), upvotes=None):
    """Papers with titles, abstracts and catalog upvotes; events of several kinds with
    times; one more reader known to the split than has training events."""
    texts, titles, users, items, _ = synthetic(n_papers=40, n_users=60, seed=5)
    rng = np.random.default_rng(1)
    papers = Papers([f"p{i}" for i in range(40)], titles, [t[len(ti):] for t, ti in zip(texts, titles)],
                    np.full(40, np.nan), np.zeros(40, np.float32) if upvotes is None else upvotes)
    ts = 1.7e9 + np.sort(rng.uniform(0, 3e7, len(users)))
    user_ids = [f"u{u}" for u in range(int(users.max()) + 2)]
    return papers, Interactions(user_ids, users.astype(np.int32), items.astype(np.int32),
                                np.asarray(kinds_of(rng, len(users)), dtype=object), ts)


def test_fit_model_fits_on_every_field_of_the_papers_and_the_events():
    """What `evaluate` fits uses the papers' titles, texts and catalog upvotes, and the
    events' kinds, times and readers: change one and the model changes with it."""
    upvotes = np.zeros(40, np.float32)
    upvotes[[3, 7]] = 500.0
    papers, train = _rich_split(upvotes=upvotes)
    stages: list[str] = []
    model = fit_model(papers, train, strategies=("popular", "content"), config=CONFIG,
                      progress=lambda stage, *a, **kw: stages.append(stage))
    assert stages and model.comps.cf is None  # fit only what it was asked for
    assert model.config.content_dim == CONFIG.content_dim and model.titles == papers.titles
    assert model.stats["n_users"] == len(train.user_ids) == int(train.users.max()) + 2
    assert model.now == float(train.ts.max())
    assert model.stats["tuning"]["slice"]["held_out_by"].startswith("per reader: 50% their latest")
    empty = sp.csr_matrix((2, 40), dtype=np.float32)
    rows = sp.csr_matrix(np.eye(2, 40, dtype=np.float32))

    def scores(m):
        return np.vstack([m.score_rows(rows, "content"), m.score_rows(empty, "popular")])

    no_prior = fit_model(replace(papers, upvotes=np.zeros(40, np.float32)), train,
                         strategies=("popular", "content"), config=CONFIG)
    _, upvotes_only = _rich_split(kinds_of=lambda rng, n: ["upvote"] * n, upvotes=upvotes)
    one_kind = fit_model(papers, upvotes_only, strategies=("popular", "content"), config=CONFIG)
    no_abstracts = fit_model(replace(papers, abstracts=[""] * 40), train,
                             strategies=("popular", "content"), config=CONFIG)
    for other in (no_prior, one_kind, no_abstracts):
        assert not np.allclose(scores(model), scores(other))


def test_the_batch_evaluation_reads_each_event_s_kind_and_time():
    """With several kinds and a time decay, the batch evaluation still equals ranking each
    reader alone from their events (kind and time each), at the default k of 20."""
    papers, events = _rich_split()
    held = np.random.default_rng(2).random(len(events)) < 0.25

    def part(mask):
        return Interactions(events.user_ids, events.users[mask], events.items[mask], events.kinds[mask],
                            events.ts[mask])
    train, test = part(~held), part(held)
    config = replace(CONFIG, half_life_days=30.0, decay_from="newest")
    model = fit_model(papers, train, strategies=("content",), config=config)
    assert model.conf_config.half_life_days == 30.0
    got = evaluate_model(model, "content", train, test)
    want = by_hand(model, "content", train, test)
    assert got["users"] == want["users"]
    for key in ("ndcg@20", "recall@20", "hitrate@20"):
        assert got[key] == pytest.approx(want[key], abs=1e-9), key
    users, per = per_reader_metrics(model, "content", train, test)
    assert per["ndcg"].mean() == pytest.approx(got["ndcg@20"], abs=1e-12)
    assert list(users) == sorted(np.unique(test.users))
    # the default k is 20: a test paper ranked 21st is a miss, and a hit at k=21
    u = int(test.users[0])
    ranked = [r.index for r in model.recommend(_history(train, u), k=21, strategy="content",
                                               with_reasons=False)]
    at_21 = Interactions(train.user_ids, np.array([u], np.int32), np.array([ranked[20]], np.int32),
                         np.array(["upvote"], dtype=object), np.array([np.nan]))
    assert per_reader_metrics(model, "content", train, at_21)[1]["hitrate"].tolist() == [0.0]
    assert per_reader_metrics(model, "content", train, at_21, k=21)[1]["hitrate"].tolist() == [1.0]


def test_summaries_of_no_readers_are_zero_at_the_default_k():
    assert summarize({"recall": np.zeros(0), "ndcg": np.zeros(0), "hitrate": np.zeros(0)}) == {
        "recall@20": 0.0, "ndcg@20": 0.0, "hitrate@20": 0.0, "users": 0}


def test_a_test_file_without_readers_evaluates_to_zero_readers(split):
    papers, train, test = split
    model = fit_model(papers, train, strategies=("popular",), config=CONFIG)
    nobody = Interactions(train.user_ids, np.zeros(0, np.int32), np.zeros(0, np.int32),
                          np.zeros(0, dtype=object), np.zeros(0))
    users, per = per_reader_metrics(model, "popular", train, nobody)
    assert len(users) == 0 and all(v.shape == (0,) for v in per.values())
    assert evaluate_model(model, "popular", train, nobody) == {
        "recall@20": 0.0, "ndcg@20": 0.0, "hitrate@20": 0.0, "users": 0}
