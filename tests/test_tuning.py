"""What `fit` chooses on its validation slice comes from the data (recommender/model/tuning.py).

Generated readers with topical tastes: where each reader's taste moved (old events on one
topic, recent ones on another) the chosen decay is strong; where it stayed and events are
spread over years, it is weak or none. Timestamps shifted by a constant change nothing, and
data without timestamps trains and serves."""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import TfidfVectorizer

from recommender.model.confidence import ConfidenceConfig, confidence_matrix
from recommender.model.hybrid import HybridConfig, HybridModel
from recommender.model.item_graph import ItemGraph
from recommender.model.tuning import (GRAPH_ALPHAS, GRAPH_BETAS, NO_DECAY, TEXT_DEFAULT, TEXT_WEIGHTS, Choice,
                                     PopularityConfig, ValidationSlice, _Budget, _compare_repeats, _graph_ndcg,
                                     beyond_noise, carve, choose, decays_can_differ, latest_pair_times, pair_keys,
                                     popularity_matrix, repeats_common, validation_ndcg)

DAY = 86_400.0
T0 = 1.5e9
TOPICS = 4
PER_TOPIC = 40
N_PAPERS = TOPICS * PER_TOPIC


def texts():
    words = ["graph node edge", "gene cell protein", "image pixel camera", "word text language"]
    return [f"{words[i // PER_TOPIC]} paper {i}" for i in range(N_PAPERS)]


def readers(drift: bool, n_users: int = 300, seed: int = 0):
    """(users, items, kinds, ts). drift=True: 10 events on topic a over the first two years,
    then 5 on topic b in the last month. drift=False: 15 events on topic a spread over three
    years."""
    rng = np.random.default_rng(seed)
    users, items, ts = [], [], []
    for u in range(n_users):
        a, b = rng.choice(TOPICS, 2, replace=False)
        if drift:
            picks = [(a, T0 + rng.uniform(0, 730) * DAY) for _ in range(10)]
            picks += [(b, T0 + (1095 - rng.uniform(0, 30)) * DAY) for _ in range(5)]
        else:
            picks = [(a, T0 + rng.uniform(0, 1095) * DAY) for _ in range(15)]
        topic_items = {t: rng.permutation(np.arange(t * PER_TOPIC, (t + 1) * PER_TOPIC)) for t in (a, b)}
        used = {a: 0, b: 0}
        for t, when in picks:
            users.append(u)
            items.append(int(topic_items[t][used[t]]))
            used[t] += 1
            ts.append(when)
    users = np.asarray(users)
    return users, np.asarray(items), np.full(len(users), "upvote", dtype=object), np.asarray(ts)


def chosen(drift: bool, squeeze: float = 1.0):
    """What `choose` picks on a fit's slice; `squeeze` scales every event's time from the
    first (0.0001: three years into under three hours, the order kept)."""
    users, items, kinds, ts = readers(drift)
    ts = T0 + (ts - T0) * squeeze
    shape = (int(users.max()) + 1, N_PAPERS)
    C0, _ = confidence_matrix(users, items, kinds, ts, shape, config=ConfidenceConfig(half_life_days=0))
    keys, last = latest_pair_times(users, items, ts, N_PAPERS)
    pair_time = last[np.searchsorted(keys, pair_keys(C0))]
    vslice = carve(C0, pair_time, 0.0, 0.2, np.random.default_rng(0),
                   latest_share=HybridConfig().val_latest_share)  # the slice a fit carves
    assert vslice.by_time
    return choose((users, items, kinds, ts), shape[0], N_PAPERS, None, vslice, {}, budget_s=60)


def test_drifting_taste_gets_a_strong_decay():
    choice = chosen(drift=True)
    c = choice.confidence
    assert c.decays and c.half_life_days <= 180, c.describe()
    # popularity is counted every way there is: readers once or every event, and with times
    # that differ, readers once under each half-life
    counted = [t["popularity"] for t in choice.log if "popularity" in t]
    assert counted == ["readers (once each)", "events"] + [f"readers (once each), half-life {h:g} days"
                                                         for h in (30, 180, 730)]
    assert not [t for t in choice.log if str(t.get("decay", "")).startswith("not tried")]  # they were tried
    tried = {t["decay"] for t in choice.log if "proxy_ndcg" in t}
    assert tried == {"no decay"} | {ConfidenceConfig(h, decay_from=d).describe()
                                    for h in (30, 180, 730) for d in ("reader", "newest")}


def test_stable_taste_over_years_gets_a_weak_decay_or_none():
    choice = chosen(drift=False)
    c = choice.confidence
    assert not c.decays or c.half_life_days >= 730, c.describe()
    # a decay that scored best on the slice but not beyond noise is named in the log
    trials = [t for t in choice.log if "proxy_ndcg" in t and t["alpha"] == choice.alpha
              and t["regularization"] == choice.regularization]
    best = max(trials, key=lambda t: t["proxy_ndcg"])
    if not c.decays and best["decay"] != "no decay":
        assert {"decay": best["decay"], "not_taken": "not beyond noise of no decay"} in choice.log


def test_times_within_hours_try_no_decay_and_keep_the_latest_slice():
    choice = chosen(drift=True, squeeze=1e-4)  # the drift above, stamped within 2.6 hours
    assert not choice.confidence.decays
    tried = [e for e in choice.log if "proxy_ndcg" in e]
    assert tried and all(e["decay"] == "no decay" for e in tried)
    assert any(str(e.get("decay", "")).startswith("not tried") for e in choice.log)
    assert not any("half-life" in str(e.get("popularity", "")) for e in choice.log)


def test_decays_are_tried_once_the_shortest_half_life_moves_a_confidence_by_one_percent():
    # 30 days' half-life: 1% below the newest at 30 * log2(1 / 0.99) = 0.435 days
    for span_days, expected in ((0.0, False), (0.43, False), (0.44, True), (3.0, True)):
        assert decays_can_differ(np.array([T0, np.nan, T0 + span_days * DAY])) is expected
    assert not decays_can_differ(None) and not decays_can_differ(np.array([np.nan, np.nan]))
    assert not decays_can_differ(np.array([T0]))


def test_the_slice_holds_out_each_readers_latest_events():
    users, items, kinds, ts = readers(drift=True, n_users=50)
    shape = (50, N_PAPERS)
    C0, _ = confidence_matrix(users, items, kinds, ts, shape, config=ConfidenceConfig(half_life_days=0))
    keys, last = latest_pair_times(users, items, ts, N_PAPERS)
    vslice = carve(C0, last[np.searchsorted(keys, pair_keys(C0))], 0.0, 0.2, np.random.default_rng(1))
    fit, held = vslice.split(C0)
    assert held.nnz == 50 * 3  # round(0.2 * 15) of each reader
    when = dict(zip(keys.tolist(), last.tolist()))
    for u in range(50):
        kept = [when[u * N_PAPERS + j] for j in fit[u].indices]
        out = [when[u * N_PAPERS + j] for j in held[u].indices]
        assert min(out) >= max(kept)


def test_a_mixed_slice_holds_out_each_readers_latest_and_some_earlier_at_random():
    """latest_share 0.5: of each reader's round(0.2 * 15) = 3 held-out papers, the 2 latest
    and one drawn from the other 13, not the same one for every reader."""
    users, items, kinds, ts = readers(drift=True, n_users=50)
    C0, _ = confidence_matrix(users, items, kinds, ts, (50, N_PAPERS), config=ConfidenceConfig(half_life_days=0))
    keys, last = latest_pair_times(users, items, ts, N_PAPERS)
    vslice = carve(C0, last[np.searchsorted(keys, pair_keys(C0))], 0.0, 0.2, np.random.default_rng(1),
                   latest_share=0.5)
    fit, held = vslice.split(C0)
    assert held.nnz == 50 * 3 and vslice.stats()["held_out_by"].startswith("per reader: 50%")
    when = dict(zip(keys.tolist(), last.tolist()))
    earlier_ranks = set()
    for u in range(50):
        times = sorted(when[u * N_PAPERS + j] for j in C0[u].indices)
        out = sorted(when[u * N_PAPERS + j] for j in held[u].indices)
        assert out[-2:] == times[-2:]  # the two latest
        assert out[0] < times[-2]
        earlier_ranks.add(times.index(out[0]))
    assert len(earlier_ranks) > 5  # at random among the earlier ones


def test_popularity_is_counted_once_per_reader_when_that_ranks_better():
    # one reader reads paper 0 fifty times; everyone else reads papers 1..5
    users = np.r_[np.zeros(50, int), np.repeat(np.arange(1, 201), 3)]
    rng = np.random.default_rng(0)
    items = np.r_[np.zeros(50, int), np.concatenate([rng.choice(np.arange(1, 6), 3, replace=False) for _ in range(200)])]
    kinds = np.full(len(users), "read", dtype=object)
    ts = np.full(len(users), np.nan)
    C0, _ = confidence_matrix(users, items, kinds, ts, (201, 10), config=ConfidenceConfig(half_life_days=0))
    vslice = carve(C0, None, 0.0, 0.34, np.random.default_rng(0))
    c = choose((users, items, kinds, ts), 201, 10, None, vslice, {}, collaborative=False)
    assert c.popularity == PopularityConfig(readers_once=True, half_life_days=0.0)
    assert 0 <= c.seconds < 60 and not _trials(c.log)  # popularity alone: no ALS or graph trial
    # each count's figure: NDCG@20 of its log mass on the slice, each reader's kept papers left out
    C_fit, V_pos = vslice.split(C0)
    judged = np.nonzero((np.diff(C_fit.indptr) > 0) & (np.diff(V_pos.indptr) > 0))[0]
    for once, t in zip((True, False), [t for t in c.log if "popularity" in t]):
        P_fit, _ = vslice.split(popularity_matrix(users, items, kinds, ts, (201, 10), None, PopularityConfig(once)))
        mass = np.log1p(np.asarray(P_fit.sum(axis=0)).ravel()).astype(np.float32)
        S = np.tile(mass, (len(judged), 1))
        assert t["ndcg"] == round(validation_ndcg(S, C_fit[judged], V_pos[judged]), 4)


def repeat_readers(informative: bool, n_users: int = 300, seed: int = 0, tail: float = 1.0):
    """Each reader clicks 10 papers of their topic and 5 drawn from the whole catalog, each
    click repeated: informative=False, a heavy-tailed number of times that says nothing
    (1 + Pareto(tail)); True, 3-11 times on the topic's papers and once on the others."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        topic = rng.integers(TOPICS)
        own = rng.choice(np.arange(topic * PER_TOPIC, (topic + 1) * PER_TOPIC), 10, replace=False)
        other = rng.choice(np.setdiff1d(np.arange(N_PAPERS), own), 5, replace=False)
        for n, j in enumerate(np.r_[own, other]):
            k = (int(rng.integers(3, 12)) if n < 10 else 1) if informative else 1 + min(int(rng.pareto(tail)), 200)
            users += [u] * k
            items += [int(j)] * k
    users = np.asarray(users)
    return users, np.asarray(items), np.full(len(users), "click", dtype=object), None


def chosen_repeats(informative: bool, tail: float = 1.0):
    users, items, kinds, ts = repeat_readers(informative, tail=tail)
    shape = (int(users.max()) + 1, N_PAPERS)
    C0, _ = confidence_matrix(users, items, kinds, ts, shape, config=ConfidenceConfig(half_life_days=0))
    vslice = carve(C0, None, 0.0, 0.2, np.random.default_rng(0))
    return choose((users, items, kinds, ts), shape[0], N_PAPERS, None, vslice, {}, budget_s=60)


def test_repeats_that_say_nothing_are_counted_by_their_log():
    c = chosen_repeats(informative=False)
    assert c.confidence.repeats == "log", [t for t in c.log if "repeats" in t]


def test_repeats_that_say_nothing_with_a_heavier_tail_count_once():
    """Clicks repeated 1 + Pareto(0.5) times (a few pairs clicked hundreds of times): even
    their log spreads pairs that mean the same apart, and each pair counted once as its
    strongest event ranks the slice best (graph 0.1835 summed, 0.2023 logged, 0.2137 once)."""
    c = chosen_repeats(informative=False, tail=0.5)
    assert c.confidence.repeats == "once", [t for t in c.log if "repeats" in t]
    graph = next(t for t in c.log if t.get("repeats") == "graph")
    assert graph["once"] > graph["log"] > graph["sum"]


def test_repeats_that_mark_a_readers_topic_keep_their_sum():
    c = chosen_repeats(informative=True)
    assert c.confidence.repeats == "sum", [t for t in c.log if "repeats" in t]


def test_a_funnel_of_kinds_is_not_a_repeat():
    """click, read, upvote on one paper is one reader's way in, not clicks on clicks: no
    repeats step (and so no extra trials) for such data, as for data without repeats."""
    users = np.repeat(np.arange(100), 3)
    items = np.repeat(np.arange(100) % N_PAPERS, 3)
    funnel = np.tile(np.array(["click", "read", "upvote"], dtype=object), 100)
    assert not repeats_common(users, items, funnel)
    assert repeats_common(users, items, np.full(300, "click", dtype=object))
    # one pair in a hundred clicked twice besides the funnels: under 5%
    assert not repeats_common(np.r_[users, 0], np.r_[items, 0], np.append(funnel, "click"))
    # a paper shown again and again is no interest repeated: impressions (weight 0) do not count
    shown = np.repeat(np.arange(100), 4), np.repeat(np.arange(100) % N_PAPERS, 4)
    once_each = np.tile(np.array(["click", "impression", "impression", "impression"], dtype=object), 100)
    assert not repeats_common(*shown, once_each)
    assert not repeats_common(*shown, np.full(400, "impression", dtype=object))
    assert not repeats_common(np.zeros(0, int), np.zeros(0, int), None)
    # one pair in 20 held twice is 5%, the least that counts; events without kinds are upvotes
    users, items = np.r_[np.arange(20), 0], np.r_[np.arange(20), 0]
    assert repeats_common(users, items, None) and repeats_common(users, items, np.full(21, "click", dtype=object))
    assert not repeats_common(np.r_[np.arange(21), 0], np.r_[np.arange(21), 0], None)  # 1 in 21
    # readers past 65,535 in a catalog of 65,536 papers: the pair keys pass 2**32, and two
    # readers of one paper are not one reader's repeat
    wide = np.array([0, 65_536, 1], np.int32), np.array([5, 5, 65_535], np.int32)
    assert not repeats_common(*wide, None) and not repeats_common(*wide, np.full(3, "click", dtype=object))
    log = chosen(drift=False).log
    assert not any("repeats" in t for t in log)


SMALL = HybridConfig(seed=0, min_val_positives=10, max_val_users=300, content_dim=8, pool_per_feature=20,
                     tune_budget_s=5)


@pytest.fixture(scope="module")
def drift_data():
    return readers(drift=True, n_users=120)


@pytest.fixture(scope="module")
def drift_model(drift_data):
    users, items, kinds, ts = drift_data
    return HybridModel.fit(texts(), users, items, kinds, ts, config=SMALL)


def test_the_choice_is_in_the_manifest(drift_model):
    m = drift_model.manifest()
    tuning = m["stats"]["tuning"]
    assert tuning["searched"] is True
    assert tuning["slice"]["held_out_by"] == "per reader: 50% their latest, the rest at random"
    assert m["confidence"] == tuning["confidence"]
    assert m["popularity"] == tuning["popularity"]
    assert m["config"]["als_alpha"] == tuning["als_alpha"] and m["config"]["als_regularization"] == tuning["als_regularization"]
    assert m["collaborative"]["alpha"] == tuning["als_alpha"]
    # the graph that serves is the one chosen on validation
    assert m["graph"]["alpha"] == tuning["graph_alpha"] and m["graph"]["beta"] == tuning["graph_beta"]
    assert m["config"]["graph_beta"] == tuning["graph_beta"]


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shift_days=st.integers(-5000, 5000))
def test_shifting_every_timestamp_gives_the_same_lists(drift_data, drift_model, shift_days):
    users, items, kinds, ts = drift_data
    shifted = HybridModel.fit(texts(), users, items, kinds, ts + shift_days * DAY, config=SMALL)
    assert shifted.manifest()["stats"]["tuning"]["confidence"] == drift_model.manifest()["stats"]["tuning"]["confidence"]
    for u in (0, 7, 42):
        mine = users == u
        hist = [(int(i), "upvote", float(t)) for i, t in zip(items[mine], ts[mine])]
        moved = [(i, k, t + shift_days * DAY) for i, k, t in hist]
        a = [r.index for r in drift_model.recommend(hist, k=10)]
        b = [r.index for r in shifted.recommend(moved, k=10)]
        assert a == b


def test_data_without_timestamps_trains_and_serves(drift_data):
    users, items, kinds, _ = drift_data
    model = HybridModel.fit(texts(), users, items, kinds, None, config=SMALL)
    tuning = model.manifest()["stats"]["tuning"]
    assert tuning["slice"]["held_out_by"] == "random per reader"
    assert tuning["confidence"]["half_life_days"] == 0.0
    recs = model.recommend([(3, "upvote", None), (5, "read", None)], k=5)
    assert len(recs) == 5 and all(r.index not in (3, 5) for r in recs)


def _graph_data(kind: str, seed: int, n_users: int = 400, n_items: int = 80):
    """A reader a day-numbered sequence of reads. "popular": every reader samples papers by
    one steep popularity curve (the popular papers are what readers hold out, next or
    not); "canon": readers first read 3 of 5 canonical papers, then 4 of the 10 papers of
    one of 7 topics (the canon is what everyone has read, never what they read next);
    "uniform": 7 papers at random (the penalty cannot matter)."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1) ** 1.2
    pop /= pop.sum()
    us, its, ts = [], [], []
    for u in range(n_users):
        if kind == "popular":
            items = rng.choice(n_items, 8, replace=False, p=pop)
        elif kind == "canon":
            topic = rng.integers(0, 7)
            items = np.r_[rng.choice(5, 3, replace=False), 10 + topic * 10 + rng.choice(10, 4, replace=False)]
        else:
            items = rng.choice(n_items, 7, replace=False)
        us += [u] * len(items)
        its += list(items)
        ts += list(1_600_000_000 + DAY * np.arange(len(items)))
    return np.array(us), np.array(its), np.array(ts, np.float64)


@pytest.mark.parametrize("kind, beta, seed", [("popular", 0.2, 1), ("canon", 0.6, 1), ("uniform", 0.4, 2)])
def test_the_item_graphs_popularity_penalty_comes_from_the_data(kind, beta, seed):
    """Where the popular papers are what readers hold out, a weak penalty; where they are
    what everyone read first, a strong one; where nothing tells them apart, the default
    (0.8, 0.4) is kept: a setting is taken only when it wins beyond noise."""
    users, items, ts = _graph_data(kind, seed=seed)
    kinds = np.full(len(users), "read", dtype=object)
    C0, _ = confidence_matrix(users, items, kinds, ts, (400, 80), config=ConfidenceConfig(half_life_days=0))
    keys, last = latest_pair_times(users, items, ts, 80)
    vslice = carve(C0, last[np.searchsorted(keys, pair_keys(C0))], 0.0, 0.2, np.random.default_rng(1),
                   latest_share=HybridConfig().val_latest_share)
    c = choose((users, items, kinds, ts), 400, 80, None, vslice,
               {"alpha": 10.0, "regularization": 50.0, "half_life_days": 0})
    assert c.graph_beta == beta
    C_fit, V_pos = vslice.split(C0)
    readers = np.nonzero(np.diff(V_pos.indptr) > 0)[0]

    def per_reader(a, b):
        g = ItemGraph.fit(C_fit, alpha=a, beta=b)
        return validation_ndcg(g.scores(C_fit[readers]), C_fit[readers], V_pos[readers], per_reader=True)

    default = per_reader(0.8, 0.4)
    chosen = per_reader(c.graph_alpha, c.graph_beta)
    # every setting tried is logged once, with its figure on the slice
    tried = [t for t in c.log if "graph_alpha" in t]
    assert len({(t["graph_alpha"], t["graph_beta"]) for t in tried}) == len(tried) >= 3
    for t in tried:
        assert t["ndcg"] == round(float(per_reader(t["graph_alpha"], t["graph_beta"]).mean()), 4)
    # the repeats step's graph is the default one
    np.testing.assert_array_equal(_graph_ndcg(C_fit, V_pos, readers), default)
    if beta == 0.4:
        assert (c.graph_alpha, c.graph_beta) == (0.8, 0.4)
        # (this seed: beta 0.2 wins by a hair, 0.1016 against 0.0983, and is not taken)
        assert per_reader(0.8, 0.2).mean() > default.mean() + 0.002
        assert not any(beyond_noise(per_reader(0.8, b), default) for b in (0.2, 0.6))
    else:
        assert beyond_noise(chosen, default)
        assert not beyond_noise(per_reader(0.8, 0.8 - beta), chosen)  # the other side does not win


def test_a_graph_trial_is_the_graph_of_its_own_settings():
    """Readers of 2 to 30 papers (the walk's alpha weighs them apart only when their
    numbers of papers differ): each setting's figures are those of its own graph."""
    rng = np.random.default_rng(3)
    pop = 1.0 / np.arange(1, 81) ** 0.8
    users, items = [], []
    for u in range(300):
        got = rng.choice(80, int(rng.integers(2, 31)), replace=False, p=pop / pop.sum())
        users += [u] * len(got)
        items += list(got)
    C0 = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(300, 80))
    C_fit, V_pos = carve(C0, None, 0.0, 0.2, np.random.default_rng(0)).split(C0)
    readers = np.nonzero(np.diff(V_pos.indptr) > 0)[0]
    figures = {}
    for a, b in ((0.5, 0.4), (1.0, 0.4), (0.8, 0.2)):
        g = ItemGraph.fit(C_fit, alpha=a, beta=b)
        figures[a, b] = validation_ndcg(g.scores(C_fit[readers]), C_fit[readers], V_pos[readers], per_reader=True)
        np.testing.assert_array_equal(_graph_ndcg(C_fit, V_pos, readers, a, b), figures[a, b])
    assert not np.array_equal(figures[0.5, 0.4], figures[1.0, 0.4])
    default = ItemGraph.fit(C_fit, alpha=0.8, beta=0.4)  # the repeats step's graph
    np.testing.assert_array_equal(_graph_ndcg(C_fit, V_pos, readers), validation_ndcg(
        default.scores(C_fit[readers]), C_fit[readers], V_pos[readers], per_reader=True))


def test_the_search_budget_counts_cpu_time_not_waiting():
    """A budget of CPU seconds is not spent by time the process does not run (here a sleep;
    on a busy machine, other jobs' turns on the cores), and is spent by work."""
    budget = _Budget(0.2)
    time.sleep(0.3)
    assert budget.left() and budget.spent() < 0.2
    end = time.process_time() + 0.25
    while time.process_time() < end:
        pass
    assert not budget.left() and budget.spent() >= 0.2


class _Switch:
    """A budget whose end a test sets (`_Switch.ended = True`), in place of the CPU clock."""
    ended = False

    def __init__(self, cpu_seconds: float):
        pass

    def left(self) -> bool:
        return not _Switch.ended

    def spent(self) -> float:
        return 0.0


def _trials(log: list) -> list:
    return [t for t in log if "proxy_ndcg" in t or "graph_alpha" in t or t.get("repeats") == "graph"]


def test_a_spent_budget_tries_nothing_and_keeps_every_default():
    """With no budget the search runs no ALS, graph or decay trial (the first popularity
    count is read either way: it costs a column sum) and keeps the defaults, saying where it
    stopped."""
    users, items, kinds, ts = readers(drift=True)
    shape = (int(users.max()) + 1, N_PAPERS)
    C0, _ = confidence_matrix(users, items, kinds, ts, shape, config=ConfidenceConfig(half_life_days=0))
    keys, last = latest_pair_times(users, items, ts, N_PAPERS)
    vslice = carve(C0, last[np.searchsorted(keys, pair_keys(C0))], 0.0, 0.2, np.random.default_rng(0))
    c = choose((users, items, kinds, ts), shape[0], N_PAPERS, None, vslice, {}, budget_s=0.0)
    assert _trials(c.log) == []
    assert (c.alpha, c.regularization, c.graph_alpha, c.graph_beta) == (10.0, 50.0, 0.8, 0.4)
    assert not c.confidence.decays
    stops = {t["at"] for t in c.log if t.get("stopped") == "budget"}
    assert {"popularity", "alpha", "regularization", "decay", "graph_beta"} <= stops
    assert len([t for t in c.log if "popularity" in t]) == 1


@pytest.fixture
def switched_budget(monkeypatch):
    """The search's budget is a `_Switch` the test ends; returns the tuning module."""
    from recommender.model import tuning
    _Switch.ended = False
    monkeypatch.setattr(tuning, "_Budget", _Switch)
    yield tuning
    _Switch.ended = False


def test_trials_run_before_the_budget_ended_still_count(switched_budget, monkeypatch):
    """The repeats step tries every confidence scale for both ways; when the budget ends
    right after it, the scale search still takes the best of those figures (free) instead of
    the default, and runs no trial of its own."""
    real = switched_budget._compare_repeats

    def then_spent(*args, **kwargs):
        out = real(*args, **kwargs)
        _Switch.ended = True
        return out

    monkeypatch.setattr(switched_budget, "_compare_repeats", then_spent)
    c = chosen_repeats(informative=False)
    assert c.confidence.repeats == "log"
    way = [t for t in c.log if "proxy_ndcg" in t and t.get("repeats") == "log" and t["regularization"] == 50.0]
    best = max(way, key=lambda t: t["proxy_ndcg"])
    assert best["alpha"] != 10.0  # else this data could not tell the two behaviours apart
    assert c.alpha == best["alpha"]
    after = c.log[c.log.index(next(t for t in c.log if t.get("repeats") == "graph")):]
    assert not _trials(after[1:]), "no trial after the budget ended"


def test_the_repeats_step_stops_with_the_budget(switched_budget, monkeypatch):
    """The repeats step's ALS trials stop when the budget ends, and repeats stay summed."""
    calls = []
    real = switched_budget._proxy_als_ndcg

    def counted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            _Switch.ended = True
        return real(*args, **kwargs)

    monkeypatch.setattr(switched_budget, "_proxy_als_ndcg", counted)
    c = chosen_repeats(informative=False)
    assert len(calls) == 3
    assert c.confidence.repeats == "sum"
    assert {"stopped": "budget", "at": "repeats"} in c.log


def test_a_setting_is_taken_only_beyond_noise():
    rng = np.random.default_rng(0)
    old = rng.random(400)
    assert not beyond_noise(old, old)
    assert beyond_noise(old + 0.01, old)  # every reader gains
    noisy = old + rng.normal(0.005, 0.2, 400)  # a small mean gain in a lot of noise
    assert not beyond_noise(noisy, old)
    assert not beyond_noise(old[:1] + 1, old[:1])  # one reader says nothing
    assert beyond_noise(np.array([1.0, 1.1]), np.zeros(2))  # two readers can
    # two and a half standard errors: beyond the rule's two
    d = np.tile([-1.0, 1.0], 200)
    se = d.std(ddof=1) / np.sqrt(400)
    assert beyond_noise(old + d + 2.5 * se, old) and not beyond_noise(old + d + 1.5 * se, old)


def test_the_words_go_in_unless_readers_alone_beat_them_beyond_noise(drift_model):
    """The proxy picks the words' weight among three; it is kept unless ALS without the
    words does better beyond noise (per reader, two standard errors)."""
    tuning = drift_model.manifest()["stats"]["tuning"]
    words = [t for t in tuning["trials"] if "text_weight" in t]
    assert [t["text_weight"] for t in words] == [0.25, 0.5, 1.0]
    best = max(words, key=lambda t: t["proxy_ndcg"])
    alone = [t for t in tuning["trials"] if "alpha" in t and t["alpha"] == tuning["als_alpha"]
             and t["regularization"] == tuning["als_regularization"] and t["decay"] == tuning["decay"]]
    assert alone
    if tuning["text_weight"] == 0.0:  # only when readers alone did better
        assert alone[0]["proxy_ndcg"] > best["proxy_ndcg"]
    else:
        assert tuning["text_weight"] == best["text_weight"]
    assert drift_model.manifest()["config"]["text_weight"] == tuning["text_weight"]


# --- the search's small rules, each on its own (cheap: no ALS fit) ---

def test_popularity_counting_reads_back_from_a_manifest_and_old_ones_count_readers_once():
    """A loaded model counts popularity as its manifest says; a manifest from before the
    counting was chosen (no field, or a field without a half-life) counts each reader once,
    undecayed, as every model did then."""
    for pc in (PopularityConfig(True, 0.0), PopularityConfig(False, 0.0), PopularityConfig(False, 180.0)):
        assert PopularityConfig.from_dict(pc.to_dict()) == pc
    assert PopularityConfig.from_dict(None) == PopularityConfig(True, 0.0)
    assert PopularityConfig.from_dict({}) == PopularityConfig(True, 0.0)
    assert PopularityConfig.from_dict({"readers_once": False, "half_life_days": None}) == PopularityConfig(False, 0.0)
    got = PopularityConfig.from_dict({"readers_once": 0, "half_life_days": "30"})
    assert got == PopularityConfig(False, 30.0) and type(got.readers_once) is bool
    assert PopularityConfig(False, 30.0).describe() == "events, half-life 30 days"
    assert PopularityConfig(True, 0.0).describe() == "readers (once each)"


def test_the_choice_reads_out_every_setting_it_holds():
    conf = ConfidenceConfig(half_life_days=180.0, decay_from="reader")
    c = Choice(conf, PopularityConfig(False, 30.0), 50.0, 10.0, [{"x": 1}], seconds=1.234, cpu_seconds=2.345,
               graph_alpha=0.5, graph_beta=0.6, text_weight=0.25)
    d = c.to_dict()
    assert d == {"confidence": conf.to_dict(), "decay": conf.describe(),
                 "popularity": {"readers_once": False, "half_life_days": 30.0},
                 "popularity_counted": "events, half-life 30 days",
                 "als_regularization": 50.0, "als_alpha": 10.0, "graph_alpha": 0.5, "graph_beta": 0.6,
                 "text_weight": 0.25, "seconds": 1.23, "cpu_seconds": 2.35, "trials": [{"x": 1}]}


def test_the_repeats_step_takes_the_first_of_tied_confidence_scales():
    """Each way's ALS figures are those of its best scale; on a tie the first scale tried
    (the smaller, `ALPHAS` ascending) keeps its per-reader figures."""
    ways = (NO_DECAY, replace(NO_DECAY, repeats="log"))

    def als_of(way, a):  # one mean for every scale, per-reader figures that tell them apart
        return 0.5, np.full(3, a)

    graph, als = _compare_repeats(ways, lambda w: np.full(3, 1.0 if w.repeats == "log" else 0.0),
                                  als_of, (1.0, 3.0, 10.0), _Budget(60))
    assert set(graph) == set(als) == {"sum", "log"}
    assert graph["log"][0] == 1.0 and graph["sum"][0] == 0.0
    assert als["sum"][0] == 1.0 and als["log"][0] == 1.0


def topic_words():
    """The papers' TF-IDF rows (papers x words): each paper's topic words, its own number."""
    return TfidfVectorizer().fit_transform(texts()).tocsr().astype(np.float32)


def sliced(users, items, ts, n_users):
    C0, _ = confidence_matrix(users, items, None, ts, (n_users, N_PAPERS), config=ConfidenceConfig(half_life_days=0))
    return carve(C0, None, 0.0, 0.2, np.random.default_rng(0))


def test_the_words_weight_is_the_proxys_best_and_fixed_or_spent_tries_none():
    """With the papers' words, the three weights are each tried by the proxy and the best is
    taken (words that name each reader's topic help ALS on 300 readers); a weight the caller
    fixes is kept with no trial; with the budget spent, none is tried and the words stay out."""
    users, items, kinds, _ = readers(drift=False)
    n = int(users.max()) + 1
    vslice = sliced(users, items, None, n)
    fixed = {"alpha": 10.0, "regularization": 50.0, "graph_alpha": 0.8, "graph_beta": 0.4}
    c = choose((users, items, kinds, None), n, N_PAPERS, None, vslice, fixed, text=topic_words())
    words = [t for t in c.log if "text_weight" in t]
    assert [t["text_weight"] for t in words] == [0.25, 0.5, 1.0]
    assert c.text_weight == max(words, key=lambda t: t["proxy_ndcg"])["text_weight"] > 0
    kept = choose((users, items, kinds, None), n, N_PAPERS, None, vslice, {**fixed, "text_weight": 0.5},
                  text=topic_words())
    assert kept.text_weight == 0.5 and not any("text_weight" in t for t in kept.log)
    spent = choose((users, items, kinds, None), n, N_PAPERS, None, vslice, fixed, text=topic_words(), budget_s=0.0)
    assert spent.text_weight == 0.0 and {"stopped": "budget", "at": "text_weight"} in spent.log
    fixed_spent = choose((users, items, kinds, None), n, N_PAPERS, None, vslice, {**fixed, "text_weight": 0.5},
                         text=topic_words(), budget_s=0.0)  # a fixed weight is no search the budget stops
    assert fixed_spent.text_weight == 0.5 and {"stopped": "budget", "at": "text_weight"} not in fixed_spent.log
    assert not any("proxy_ndcg" in t for t in spent.log)
    without = choose((users, items, kinds, None), n, N_PAPERS, None, vslice, fixed)
    assert without.text_weight == 0.0 and not any("text_weight" in t for t in without.log)


def test_without_a_validation_reader_the_words_enter_at_the_default_weight():
    """Every reader has one paper: no slice to judge on, so nothing is searched; the words
    go in at `TEXT_DEFAULT` (they are all ALS can place a paper by), or at a fixed weight,
    and a fixed decay and repeats are kept."""
    users = np.arange(50)
    items = np.arange(50) % N_PAPERS
    ts = T0 + np.arange(50) * DAY * 30
    vslice = sliced(users, items, ts, 50)
    events = (users, items, None, ts)
    c = choose(events, 50, N_PAPERS, None, vslice, {}, text=topic_words())
    assert {"skipped": "no validation reader with a history"} in c.log
    assert c.text_weight == TEXT_DEFAULT == 1.0 and not c.confidence.decays and c.confidence.repeats == "sum"
    assert c.popularity == PopularityConfig()  # every reader once, undecayed: the manifest needs one
    assert 0 <= c.seconds < 60 and 0 <= c.cpu_seconds < 60
    assert (c.alpha, c.regularization, c.graph_alpha, c.graph_beta) == (None, None, None, None)
    f = choose(events, 50, N_PAPERS, None, vslice,
               {"text_weight": 0.25, "half_life_days": 30.0, "decay_from": "reader", "repeats": "log",
                "alpha": 3.0, "regularization": 10.0}, text=topic_words())
    assert f.text_weight == 0.25 and (f.alpha, f.regularization) == (3.0, 10.0)
    assert (f.confidence.half_life_days, f.confidence.decay_from, f.confidence.repeats) == (30.0, "reader", "log")
    assert choose(events, 50, N_PAPERS, None, vslice, {"half_life_days": 30.0}).confidence.decay_from == "newest"
    assert choose(events, 50, N_PAPERS, None, vslice, {}).text_weight == 0.0  # no words given
    assert choose(events, 50, N_PAPERS, None, vslice, {}, text=topic_words(), collaborative=False).text_weight == 0.0


def test_each_pairs_newest_known_time():
    """One key per (reader, paper), sorted, with the newest of its events' times; an event
    without a time does not hide a known one, a pair with none has NaN; no times at all, or
    no events, work too; reader ids past 2**31 / papers do not overflow."""
    users = np.array([2, 0, 2, 0, 1, 2], np.int32)
    items = np.array([1, 3, 1, 3, 0, 1], np.int32)
    ts = np.array([5.0, np.nan, 9.0, 4.0, np.nan, np.nan])
    keys, last = latest_pair_times(users, items, ts, 4)
    np.testing.assert_array_equal(keys, [0 * 4 + 3, 1 * 4 + 0, 2 * 4 + 1])
    np.testing.assert_array_equal(last, [4.0, np.nan, 9.0])
    keys, last = latest_pair_times(users, items, None, 4)
    assert len(keys) == 3 and np.isnan(last).all()
    keys, last = latest_pair_times(np.zeros(0, int), np.zeros(0, int), np.zeros(0), 4)
    assert len(keys) == len(last) == 0
    big = np.array([100_000, 100_000], np.int32)
    keys, _ = latest_pair_times(big, np.array([49_999, 0], np.int32), np.array([1.0, 2.0]), 50_000)
    np.testing.assert_array_equal(keys, [100_000 * 50_000, 100_000 * 50_000 + 49_999])


def test_the_slice_says_how_it_was_carved():
    held, cold = np.array([1, 5, 9]), np.array([2])
    s = ValidationSlice(held, cold, by_time=False, shape=(3, 4))
    assert s.stats() == {"held_out": 3, "cold_items": 1, "held_out_by": "random per reader", "new_papers": "at random"}
    assert ValidationSlice(held, cold, True, (3, 4)).held_out_by() == "latest per reader"
    assert ValidationSlice(held, cold, True, (3, 4), latest_share=0.999).held_out_by() == \
        "per reader: 100% their latest, the rest at random"
    assert ValidationSlice(held, cold, True, (3, 4), 0.5, new_by_time=True).stats() == {
        "held_out": 3, "cold_items": 1, "held_out_by": "per reader: 50% their latest, the rest at random",
        "new_papers": "the most recently published"}


def test_the_same_data_gives_the_same_choice_and_each_weight_its_own_figure():
    """The search is a function of the data: two runs on one slice log the same trials and
    choose the same settings (the proxies' seed is fixed); the words' weights are each a
    different ALS, so their figures differ (to the log's four digits, two of them here)."""
    users, items, kinds, _ = readers(drift=False)
    n = int(users.max()) + 1
    vslice = sliced(users, items, None, n)
    fixed = {"regularization": 50.0, "graph_alpha": 0.8, "graph_beta": 0.4}
    runs = [choose((users, items, kinds, None), n, N_PAPERS, None, vslice, fixed, text=topic_words()) for _ in range(2)]
    a, b = (r.to_dict() for r in runs)
    for d in (a, b):
        d.pop("seconds"), d.pop("cpu_seconds")
    assert a == b
    words = [t["proxy_ndcg"] for t in runs[0].log if "text_weight" in t]
    alone = [t["proxy_ndcg"] for t in runs[0].log if "alpha" in t and t["alpha"] == runs[0].alpha]
    assert len(words) == 3 and len(set(words)) > 1 and set(words) != {alone[0]}


def test_the_words_search_stops_with_the_budget_between_weights(switched_budget, monkeypatch):
    """A budget that ends after the first weight's trial stops the words' search there: the
    first weight is the best tried, kept unless readers alone beat it beyond noise."""
    calls = []
    real = switched_budget._proxy_als_ndcg

    def counted(*args, **kwargs):
        if kwargs.get("side") is not None:
            calls.append(1)
            _Switch.ended = True
        return real(*args, **kwargs)

    monkeypatch.setattr(switched_budget, "_proxy_als_ndcg", counted)
    users, items, kinds, _ = readers(drift=False)
    n = int(users.max()) + 1
    c = choose((users, items, kinds, None), n, N_PAPERS, None, sliced(users, items, None, n),
               {"alpha": 10.0, "regularization": 50.0, "graph_alpha": 0.8, "graph_beta": 0.4}, text=topic_words())
    assert len(calls) == 1
    assert [t["text_weight"] for t in c.log if "text_weight" in t] == [0.25]
    assert {"stopped": "budget", "at": "text_weight"} in c.log
    assert c.text_weight == 0.25


def graph_search(fixed: dict):
    """`choose` on `_graph_data("canon")` with ALS and the decay fixed: the graph's search only."""
    users, items, ts = _graph_data("canon", seed=1)
    kinds = np.full(len(users), "read", dtype=object)
    C0, _ = confidence_matrix(users, items, kinds, ts, (400, 80), config=ConfidenceConfig(half_life_days=0))
    keys, last = latest_pair_times(users, items, ts, 80)
    vslice = carve(C0, last[np.searchsorted(keys, pair_keys(C0))], 0.0, 0.2, np.random.default_rng(1),
                   latest_share=HybridConfig().val_latest_share)
    return choose((users, items, kinds, ts), 400, 80, None, vslice,
                  {"alpha": 10.0, "regularization": 50.0, "half_life_days": 0, **fixed})


def test_a_graph_setting_the_caller_fixes_is_kept_and_the_other_searched():
    """(On these readers the search alone moves beta to 0.6.)"""
    c = graph_search({"graph_alpha": 0.5})
    tried = [t for t in c.log if "graph_alpha" in t]
    assert c.graph_alpha == 0.5 and {t["graph_alpha"] for t in tried} == {0.5}
    assert {t["graph_beta"] for t in tried} == {0.4, *GRAPH_BETAS}
    c = graph_search({"graph_beta": 0.2})
    tried = [t for t in c.log if "graph_alpha" in t]
    assert c.graph_beta == 0.2 and {t["graph_beta"] for t in tried} == {0.2}
    assert {t["graph_alpha"] for t in tried} == {0.8, *GRAPH_ALPHAS}
    c = graph_search({"graph_alpha": 0.5, "graph_beta": 0.2})
    assert (c.graph_alpha, c.graph_beta) == (0.5, 0.2) and not [t for t in c.log if "graph_alpha" in t]


def test_a_setting_the_caller_fixes_at_zero_is_kept_at_zero():
    """Zero is a setting, not "unset": RP3beta with beta 0 is the walk without a popularity
    penalty, and ALS can run unregularised. (The search once read a fixed 0 as no value and
    put its default, 0.4 or 50, in its place.)"""
    c = graph_search({"graph_beta": 0.0})
    tried = [t for t in c.log if "graph_alpha" in t]
    assert c.graph_beta == 0.0 and tried and {t["graph_beta"] for t in tried} == {0.0}
    c = graph_search({"graph_alpha": 0.0, "graph_beta": 0.4})
    assert (c.graph_alpha, c.graph_beta) == (0.0, 0.4)
    users, items, kinds, _ = readers(drift=False, n_users=120)
    n = int(users.max()) + 1
    c = choose((users, items, kinds, None), n, N_PAPERS, None, sliced(users, items, None, n),
               {"regularization": 0.0, "graph_alpha": 0.8, "graph_beta": 0.4})
    assert c.regularization == 0.0 and {t["regularization"] for t in c.log if "proxy_ndcg" in t} == {0.0}


def test_a_fit_with_the_graphs_penalty_fixed_at_zero_walks_without_one():
    """The fixed 0 reaches the fitted item graph too (the components once read it as unset)."""
    users, items, kinds, ts = readers(drift=False, n_users=100)
    config = replace(SMALL, half_life_days=0.0, repeats="sum", popularity={"readers_once": True},
                     als_alpha=10.0, als_regularization=50.0, text_weight=0.0, graph_alpha=0.5, graph_beta=0.0,
                     ease=False)
    model = HybridModel.fit(texts(), users, items, kinds, ts, config=config)
    assert (model.comps.graph.alpha, model.comps.graph.beta) == (0.5, 0.0)
    assert model.manifest()["graph"] == {"alpha": 0.5, "beta": 0.0, "top_k": 200}
    C, _ = confidence_matrix(users, items, kinds, ts, (100, N_PAPERS), config=NO_DECAY)
    walk = ItemGraph.fit(C, alpha=0.5, beta=0.0).weights
    assert abs(model.comps.graph.weights - walk).max() < 1e-6
    assert abs(ItemGraph.fit(C, alpha=0.5, beta=0.4).weights - walk).max() > 1e-3  # the penalty matters here


def test_the_words_are_judged_on_the_chosen_confidences_and_against_readers_alone(monkeypatch):
    """The words' trials fit ALS on the confidences the earlier steps chose (here a fixed
    30-day decay from each reader's own latest event), the same matrix as the readers-alone
    trial they are held against; and words that cost every reader are left out."""
    from recommender.model import tuning
    real = tuning._proxy_als_ndcg
    calls = []

    def costly_words(C_fit, V_pos, readers_, *args, side=None, **kwargs):
        per = real(C_fit, V_pos, readers_, *args, side=side, **kwargs)
        calls.append((side is not None, C_fit))
        return per - 1.0 if side is not None else per

    monkeypatch.setattr(tuning, "_proxy_als_ndcg", costly_words)
    users, items, kinds, ts = readers(drift=True, n_users=120)
    n = int(users.max()) + 1
    vslice = sliced(users, items, ts, n)
    fixed = {"half_life_days": 30.0, "decay_from": "reader", "alpha": 10.0, "regularization": 50.0,
             "graph_alpha": 0.8, "graph_beta": 0.4}
    c = choose((users, items, kinds, ts), n, N_PAPERS, None, vslice, fixed, text=topic_words())
    assert c.text_weight == 0.0 and [t["text_weight"] for t in c.log if "text_weight" in t] == list(TEXT_WEIGHTS)
    alone = [C for with_words, C in calls if not with_words]
    words = [C for with_words, C in calls if with_words]
    assert len(alone) == 1 and len(words) == len(TEXT_WEIGHTS)
    undecayed, _ = vslice.split(confidence_matrix(users, items, kinds, ts, (n, N_PAPERS), config=NO_DECAY)[0])
    assert (alone[0] != undecayed).nnz > 0  # the decay moved the confidences
    for C in words:
        assert (C != alone[0]).nnz == 0


def test_the_graph_search_stops_with_the_budget_and_keeps_the_setting_in_hand(switched_budget, monkeypatch):
    real = switched_budget._graph_ndcg
    calls = []

    def then_spent(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            _Switch.ended = True
        return real(*args, **kwargs)

    monkeypatch.setattr(switched_budget, "_graph_ndcg", then_spent)
    c = graph_search({})
    assert len(calls) == 2 and {"stopped": "budget", "at": "graph_beta"} in c.log
    # the second trial (beta 0.2) was the only other one: kept only were it beyond noise
    assert c.graph_alpha == 0.8 and c.graph_beta in (0.4, 0.2)
    assert not [t for t in c.log if t.get("at") == "graph_alpha"]


def words_weight_given(monkeypatch, figures: list, without: np.ndarray, budget=None) -> tuple[float, list]:
    """`_choose_text_weight` where the proxy's per-reader figures for the weights, in the
    order tried, are `figures` (the rule under test is what it does with them)."""
    from recommender.model import tuning
    given_back = iter(figures)
    monkeypatch.setattr(tuning, "_proxy_als_ndcg", lambda *a, **k: next(given_back))
    log: list = []
    C = sp.csr_matrix(np.eye(4, N_PAPERS, dtype=np.float32))
    w = tuning._choose_text_weight((C, C), np.arange(4), topic_words(), 8, 2, 50.0, 10.0, 0,
                                   budget or _Budget(60), log, without)
    return w, log


def test_a_words_weight_replaces_the_best_so_far_only_by_more_than_a_hair(monkeypatch):
    m, hair = 0.25, 2.0 ** -14  # 6.1e-05, under the 1e-4 a weight must gain
    base = np.full(400, m)
    w, log = words_weight_given(monkeypatch, [base, base - hair, base + hair], base - 0.2)
    assert w == 0.25 and [t["text_weight"] for t in log] == [0.25, 0.5, 1.0]
    assert log[1]["proxy_ndcg"] == round(m - hair, 4)
    w, _ = words_weight_given(monkeypatch, [base, base + 2 * hair, base + 4 * hair], base - 0.2)
    assert w == 1.0  # 1.2e-4 over 0.25, then 1.2e-4 over 0.5


def test_the_words_stay_out_when_readers_alone_beat_them_beyond_noise(monkeypatch):
    rng = np.random.default_rng(0)
    words = rng.random(400)
    w, _ = words_weight_given(monkeypatch, [words, words - 0.01, words - 0.02], words + 0.01)
    assert w == 0.0
    w, _ = words_weight_given(monkeypatch, [words, words - 0.01, words - 0.02], words + rng.normal(0.005, 0.2, 400))
    assert w == 0.25  # readers alone ahead, but not beyond noise
    w, log = words_weight_given(monkeypatch, [], words, budget=_Budget(0.0))
    assert w == 0.0 and log == [{"stopped": "budget", "at": "text_weight"}]


def test_the_proxies_judge_at_most_max_readers_drawn_from_those_with_held_out_papers(monkeypatch):
    """A big slice is judged on a sample of its readers (`max_readers`), drawn among those
    with papers both kept and held out, the same sample for every trial."""
    from recommender.model import tuning
    seen = []
    real = tuning._proxy_als_ndcg

    def spy(C_fit, V_pos, readers, *args, **kwargs):
        seen.append(np.array(readers))
        return real(C_fit, V_pos, readers, *args, **kwargs)

    monkeypatch.setattr(tuning, "_proxy_als_ndcg", spy)
    users, items, kinds, _ = readers(drift=False)
    n = int(users.max()) + 1
    vslice = sliced(users, items, None, n)
    C_fit, V_pos = vslice.split(confidence_matrix(users, items, kinds, None, (n, N_PAPERS))[0])
    eligible = np.nonzero((np.diff(C_fit.indptr) > 0) & (np.diff(V_pos.indptr) > 0))[0]
    fixed = {"regularization": 50.0, "graph_alpha": 0.8, "graph_beta": 0.4}
    for cap, expected in ((50, 50), (len(eligible), len(eligible)), (len(eligible) - 1, len(eligible) - 1)):
        seen.clear()
        choose((users, items, kinds, None), n, N_PAPERS, None, vslice, fixed, max_readers=cap)
        assert seen and all(np.array_equal(r, seen[0]) for r in seen)
        assert len(seen[0]) == expected and np.all(np.diff(seen[0]) > 0) and np.isin(seen[0], eligible).all()
        first = seen[0]
        seen.clear()
        choose((users, items, kinds, None), n, N_PAPERS, None, vslice, fixed, max_readers=cap)
        np.testing.assert_array_equal(seen[0], first)  # and the same on every run (the seed's)


def test_validation_ndcg_ranks_unread_papers_against_the_held_out_ones():
    """NDCG@k of each row's best-scored papers, its fit papers left out, against its
    held-out papers; `allowed` ranks among some papers only; k larger than the catalog
    ranks what there is."""
    S = np.array([[0.9, 0.1, 0.3, 0.5, 0.0],    # reader 0: fit {0}, held out {1, 3}
                  [0.1, 0.5, 0.4, 0.3, 0.9]], np.float32)  # reader 1: fit {4}, held out {0}
    fit = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 0, 0, 0, 1]], np.float32))
    held = sp.csr_matrix(np.array([[0, 1, 0, 1, 0], [1, 0, 0, 0, 0]], np.float32))
    gain = lambda rank: 1 / np.log2(rank + 1)  # noqa: E731 (rank from 1)
    # reader 0 ranks 3, 2, 1, 4: hits at 1 and 3; reader 1 ranks 1, 2, 3, 0: a hit at 4
    expected = [(gain(1) + gain(3)) / (gain(1) + gain(2)), gain(4)]
    np.testing.assert_allclose(validation_ndcg(S, fit, held, per_reader=True), expected, rtol=1e-6)
    assert validation_ndcg(S, fit, held) == pytest.approx(np.mean(expected), rel=1e-6)
    assert validation_ndcg(S, fit, held, k=1, per_reader=True).tolist() == [1.0, 0.0]
    # among papers 0-2 only: reader 0 ranks 2, 1 (one of its two held out is not there),
    # reader 1 ranks 1, 2, 0
    allowed = np.array([True, True, True, False, False])
    np.testing.assert_allclose(validation_ndcg(S, fit, held, allowed=allowed, per_reader=True),
                               [gain(2) / (gain(1) + gain(2)), gain(3)], rtol=1e-6)


def counted_matrix(counts: list[int], n_papers: int = 40) -> sp.csr_matrix:
    """Reader r reads papers 0 .. counts[r] - 1."""
    rows = np.repeat(np.arange(len(counts)), counts)
    cols = np.concatenate([np.arange(c) for c in counts])
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(counts), n_papers))


def test_the_slice_holds_out_a_share_of_each_reader_never_all_and_none_of_one_paper():
    """round(share x papers), at least one, never all: a reader of one paper keeps it, of
    two holds out one, of ten two (share 0.2) or five (0.45)."""
    C = counted_matrix([1, 2, 3, 10, 11])
    for share, expected in ((0.2, [0, 1, 1, 2, 2]), (0.45, [0, 1, 1, 4, 5]), (0.99, [0, 1, 2, 9, 10])):
        s = carve(C, None, 0.0, share, np.random.default_rng(0))
        fit, held = s.split(C)
        assert np.diff(held.indptr).tolist() == expected
        assert (np.diff(fit.indptr) + np.diff(held.indptr)).tolist() == [1, 2, 3, 10, 11]
        assert np.all(np.diff(s.held) > 0) and not s.by_time and len(s.cold_items) == 0
    # any matrix of the shape is cut the same way, into the float32 ALS fits on
    fit64, held64 = s.split(C.astype(np.float64) * 2)
    assert fit64.dtype == held64.dtype == fit.dtype == held.dtype == np.float32
    assert (fit64 != 2 * fit).nnz == 0 and (held64 != held).nnz == 0


def test_new_papers_are_carved_from_twenty_read_papers_on_and_all_their_readers_lose_them():
    C = counted_matrix([19] * 30)  # 19 papers with readers: too few to make any new
    assert len(carve(C, None, 0.5, 0.2, np.random.default_rng(0)).cold_items) == 0
    C = counted_matrix([20] * 30)
    s = carve(C, None, 0.1, 0.2, np.random.default_rng(0))
    assert len(s.cold_items) == 2 and np.all(np.diff(s.cold_items) > 0) and s.cold_items.max() < 20
    fit, held = s.split(C)
    assert fit[:, s.cold_items].nnz == 0 and held[:, s.cold_items].nnz == 60
    # each reader's own share comes from the other 18: round(0.2 x 18) = 4 more
    assert (np.diff(held.indptr) == 2 + 4).all()
    drawn = {tuple(carve(C, None, 0.1, 0.2, np.random.default_rng(seed)).cold_items) for seed in range(5)}
    assert len(drawn) > 1  # at random
    half = carve(counted_matrix([100] * 3, 100), None, 0.5, 0.2, np.random.default_rng(0))
    assert len(np.unique(half.cold_items)) == 50  # drawn without replacement


def test_a_catalog_past_65536_papers_and_readers_is_carved_where_it_is_split():
    """Pair keys pass 2**32: the slice's keys and the split's agree (int64 on both sides)."""
    n = 70_000
    rows = np.repeat(np.arange(n - 30, n), 5)
    cols = (np.arange(150) * 467) % n
    C = sp.csr_matrix((np.ones(150, np.float32), (rows, cols)), shape=(n, n))
    s = carve(C, None, 0.0, 0.2, np.random.default_rng(0))
    fit, held = s.split(C)
    assert held.nnz == 30 and fit.nnz == 120 and (np.diff(held.indptr)[n - 30:] == 1).all()


def test_times_carve_by_time_only_where_most_pairs_have_one():
    """Held-out papers are each reader's latest when at least half the pairs carry a time;
    `latest_share` of them (rounded up) are, the rest drawn at random."""
    C = counted_matrix([10] * 20)
    when = np.tile(np.arange(10.0), 20)  # each reader read paper j at time j
    half = when.copy()
    half[np.arange(len(half)) % 2 == 1] = np.nan  # half the pairs timed: still by time
    for times in (when, half):
        s = carve(C, times, 0.0, 0.3, np.random.default_rng(0))
        assert s.by_time and s.held_out_by() == "latest per reader"
        _, held = s.split(C)
        expected = [9, 8, 7] if times is when else [8, 6, 4]  # untimed pairs count as oldest
        assert all(sorted(held[r].indices.tolist(), reverse=True) == expected for r in range(20))
    fewer = half.copy()
    fewer[0] = np.nan  # under half timed: at random
    s = carve(C, fewer, 0.0, 0.3, np.random.default_rng(0))
    assert not s.by_time and s.latest_share == 1.0
    s = carve(C, when, 0.0, 0.3, np.random.default_rng(0), latest_share=0.5)  # ceil(1.5) = 2 latest
    _, held = s.split(C)
    for r in range(20):
        got = sorted(held[r].indices.tolist())
        assert len(got) == 3 and got[1:] == [8, 9] and got[0] < 8


def test_with_publication_times_the_new_papers_are_the_newest_published():
    """(The feed's own test is in test_freshness.py.) Only with event times for at least half
    the pairs and publication times for at least half the read papers; papers without one
    count as the oldest."""
    C = counted_matrix([30] * 20)
    when = np.tile(np.arange(30.0), 20)
    published = np.r_[np.arange(30.0)[::-1], np.zeros(10)]  # paper 0 the newest
    s = carve(C, when, 0.1, 0.2, np.random.default_rng(0), published=published)
    assert s.new_by_time and s.cold_items.tolist() == [0, 1, 2]
    part = published.copy()
    part[:15] = np.nan  # 15 of 30 read papers dated: half is enough, and the undated are never new
    s = carve(C, when, 0.1, 0.2, np.random.default_rng(0), published=part)
    assert s.new_by_time and s.cold_items.tolist() == [15, 16, 17]
    part[15] = np.nan  # 14 of 30: under half
    assert not carve(C, when, 0.1, 0.2, np.random.default_rng(0), published=part).new_by_time
    assert not carve(C, None, 0.1, 0.2, np.random.default_rng(0), published=published).new_by_time
    assert not carve(C, when, 0.0, 0.2, np.random.default_rng(0), published=published).new_by_time
    one = carve(C, when, 0.02, 0.2, np.random.default_rng(0), published=published)  # round(0.6): one new paper
    assert one.new_by_time and one.cold_items.tolist() == [0]


def test_popularity_mass_counts_readers_once_or_every_event_by_kind_and_decays_from_now():
    # reader 0 upvotes paper 0 three times (30 days before the newest event); reader 1
    # clicks paper 1 at the newest event, reader 2 clicks paper 1 twice at it
    users, items = np.array([0, 0, 0, 1, 2, 2]), np.array([0, 0, 0, 1, 1, 1])
    kinds = np.array(["upvote"] * 3 + ["click"] * 3, dtype=object)
    ts = np.r_[np.full(3, T0), np.full(3, T0 + 30 * DAY)]

    def mass(config, now=None, kinds=kinds):
        P = popularity_matrix(users, items, kinds, ts, (3, 2), now, config)
        return np.asarray(P.sum(axis=0)).ravel().tolist()

    assert mass(PopularityConfig(True, 0.0)) == [1.0, 0.25 + 0.5]  # a reader at most 1 a paper
    assert mass(PopularityConfig(False, 0.0)) == [3.0, 0.75]  # every event by its kind's weight
    assert mass(PopularityConfig(False, 0.0), kinds=None) == [3.0, 3.0]  # no kinds: upvotes
    assert mass(PopularityConfig(False, 30.0)) == pytest.approx([1.5, 0.75])  # 30 days older: half
    assert mass(PopularityConfig(False, 30.0), now=T0 + 60 * DAY) == pytest.approx([0.75, 0.375])


def test_a_decay_is_measured_from_the_now_given():
    """With a decay measured from the newest event, a `now` a year past it weighs every event
    2**-12 as much (30-day half-life), and ALS's figures on the slice move with it."""
    users, items, kinds, ts = readers(drift=True, n_users=150)
    n = int(users.max()) + 1
    vslice = sliced(users, items, ts, n)
    fixed = {"half_life_days": 30.0, "decay_from": "newest", "regularization": 50.0,
             "graph_alpha": 0.8, "graph_beta": 0.4}
    figures = [[t["proxy_ndcg"] for t in choose((users, items, kinds, ts), n, N_PAPERS, now, vslice, fixed).log
                if "proxy_ndcg" in t] for now in (None, float(ts.max()) + 360 * DAY)]
    assert figures[0] and figures[1] and figures[0] != figures[1]


def repeats_given(monkeypatch, graph: dict, als: dict):
    """`choose` on repeated clicks where the repeats step's figures are `graph` and `als`
    (per reader, by way: "sum" / "log" / "once"): the rule under test is what it takes from them."""
    from recommender.model import tuning
    monkeypatch.setattr(tuning, "_compare_repeats", lambda *a, **k: (graph, als))
    users, items, kinds, ts = repeat_readers(informative=False, n_users=120)
    n = int(users.max()) + 1
    C0, _ = confidence_matrix(users, items, kinds, ts, (n, N_PAPERS), config=ConfidenceConfig(half_life_days=0))
    vslice = carve(C0, None, 0.0, 0.2, np.random.default_rng(0))
    return choose((users, items, kinds, ts), n, N_PAPERS, None, vslice,
                  {"alpha": 10.0, "regularization": 50.0, "graph_alpha": 0.8, "graph_beta": 0.4})


def test_repeats_are_logged_when_the_graph_gains_beyond_noise_and_als_does_not_lose_beyond_it(monkeypatch):
    rng = np.random.default_rng(0)
    base = rng.random(300)
    better, noisy = base + 0.05, base + rng.normal(0.0, 0.2, 300)
    c = repeats_given(monkeypatch, {"sum": base, "log": better, "once": noisy},
                      {"sum": base, "log": noisy, "once": base})
    assert c.confidence.repeats == "log"
    entry = next(t for t in c.log if t.get("repeats") == "graph")
    assert entry == {"repeats": "graph", "sum": round(float(base.mean()), 4), "log": round(float(better.mean()), 4),
                     "once": round(float(noisy.mean()), 4)}
    assert {"repeats": "once", "not_taken": "not beyond noise of summed"} in c.log
    c = repeats_given(monkeypatch, {"sum": base, "log": better, "once": base},
                      {"sum": better, "log": base, "once": base})  # ALS loses
    assert c.confidence.repeats == "sum"
    assert {"repeats": "log", "not_taken": "not beyond noise of summed"} in c.log
    c = repeats_given(monkeypatch, {"sum": base, "log": noisy, "once": noisy},
                      {"sum": base, "log": better, "once": better})  # graph: noise
    assert c.confidence.repeats == "sum"


def test_of_the_ways_that_beat_summing_the_best_graph_is_taken(monkeypatch):
    """Two ways beyond noise of summing: the one whose item graph scores higher, whichever
    comes first in REPEATS; one whose ALS loses beyond noise is out even with the best graph."""
    rng = np.random.default_rng(1)
    base = rng.random(300)
    good, best = base + 0.03, base + 0.06
    c = repeats_given(monkeypatch, {"sum": base, "log": good, "once": best}, {"sum": base, "log": base, "once": base})
    assert c.confidence.repeats == "once"
    assert not any(t.get("not_taken") for t in c.log if "repeats" in t)
    c = repeats_given(monkeypatch, {"sum": base, "log": best, "once": good}, {"sum": base, "log": base, "once": base})
    assert c.confidence.repeats == "log"
    c = repeats_given(monkeypatch, {"sum": base, "log": good, "once": best},
                      {"sum": base + 0.05, "log": base + 0.05, "once": base})  # once's ALS loses
    assert c.confidence.repeats == "log"
    assert {"repeats": "once", "not_taken": "not beyond noise of summed"} in c.log


def test_repeats_or_a_decay_the_caller_fixes_are_kept_with_no_trial():
    users, items, kinds, ts = repeat_readers(informative=False, n_users=120)
    n = int(users.max()) + 1
    C0, _ = confidence_matrix(users, items, kinds, ts, (n, N_PAPERS), config=ConfidenceConfig(half_life_days=0))
    vslice = carve(C0, None, 0.0, 0.2, np.random.default_rng(0))
    graph = {"graph_alpha": 0.8, "graph_beta": 0.4}
    c = choose((users, items, kinds, ts), n, N_PAPERS, None, vslice, {"repeats": "log", **graph})
    assert c.confidence.repeats == "log" and not any(t.get("repeats") == "graph" for t in c.log)
    assert all(t.get("repeats") == "log" for t in c.log if "proxy_ndcg" in t)
    # with the scale fixed, the repeats step compares each way at that scale only
    c = choose((users, items, kinds, ts), n, N_PAPERS, None, vslice, {"alpha": 3.0, **graph})
    assert {t["alpha"] for t in c.log if "proxy_ndcg" in t} == {3.0}
    c = choose((users, items, kinds, ts), n, N_PAPERS, None, vslice, {"regularization": 200.0, **graph})
    assert {t["regularization"] for t in c.log if "proxy_ndcg" in t} == {200.0} and c.regularization == 200.0
    # a fixed decay (times or none): no decay trial, the fixed one in every ALS trial
    du, di, dk, dts = readers(drift=True, n_users=120)
    dn = int(du.max()) + 1
    fixed = {"half_life_days": 180.0, "decay_from": "reader", **graph}
    c = choose((du, di, dk, dts), dn, N_PAPERS, None, sliced(du, di, dts, dn), fixed)
    assert (c.confidence.half_life_days, c.confidence.decay_from) == (180.0, "reader")
    assert {t["decay"] for t in c.log if "proxy_ndcg" in t} == {c.confidence.describe()}
    # a fixed scale stays fixed after a decay is chosen (the scale is otherwise looked at again)
    C0, _ = confidence_matrix(du, di, dk, dts, (dn, N_PAPERS), config=ConfidenceConfig(half_life_days=0))
    keys, last = latest_pair_times(du, di, dts, N_PAPERS)
    latest = carve(C0, last[np.searchsorted(keys, pair_keys(C0))], 0.0, 0.2, np.random.default_rng(0),
                   latest_share=HybridConfig().val_latest_share)
    c = choose((du, di, dk, dts), dn, N_PAPERS, None, latest, {"alpha": 3.0, **graph})
    assert c.confidence.decays and c.alpha == 3.0 and {t["alpha"] for t in c.log if "proxy_ndcg" in t} == {3.0}


def test_a_budget_that_ends_inside_a_search_says_so_once_and_keeps_the_best_so_far(switched_budget, monkeypatch):
    real = switched_budget._proxy_als_ndcg
    figures = []

    def then_spent(*args, **kwargs):
        per = real(*args, **kwargs)
        figures.append(per)
        if len(figures) == 2:
            _Switch.ended = True
        return per

    monkeypatch.setattr(switched_budget, "_proxy_als_ndcg", then_spent)
    users, items, kinds, _ = readers(drift=False)
    n = int(users.max()) + 1
    c = choose((users, items, kinds, None), n, N_PAPERS, None, sliced(users, items, None, n),
               {"regularization": 50.0, "graph_alpha": 0.8, "graph_beta": 0.4})
    trials = [t for t in c.log if "proxy_ndcg" in t]
    assert [t["alpha"] for t in trials] == [10.0, 1.0]  # the one in hand, then the first of the grid
    assert [t["proxy_ndcg"] for t in trials] == [round(float(f.mean()), 4) for f in figures]
    assert c.log.count({"stopped": "budget", "at": "alpha"}) == 1
    assert c.alpha == (1.0 if figures[1].mean() > figures[0].mean() + 1e-4 else 10.0)


def test_a_budget_that_ends_after_the_decay_is_logged_at_the_scales_second_look(switched_budget, monkeypatch):
    """A decay rescales the confidences, so the scale is searched again after it; a budget
    that ends there keeps the scale in hand and says where it stopped."""
    real = switched_budget._proxy_als_ndcg
    calls = []
    first_looks = len(switched_budget.ALPHAS) + 2 * len(switched_budget.HALF_LIVES_DAYS)  # the scale's, the decays

    def then_spent(*args, **kwargs):
        calls.append(args[6])
        if len(calls) == first_looks:
            _Switch.ended = True
        return real(*args, **kwargs)

    monkeypatch.setattr(switched_budget, "_proxy_als_ndcg", then_spent)
    users, items, kinds, ts = readers(drift=True)
    n = int(users.max()) + 1
    C0, _ = confidence_matrix(users, items, kinds, ts, (n, N_PAPERS), config=NO_DECAY)
    keys, last = latest_pair_times(users, items, ts, N_PAPERS)
    latest = carve(C0, last[np.searchsorted(keys, pair_keys(C0))], 0.0, 0.2, np.random.default_rng(0),
                   latest_share=HybridConfig().val_latest_share)
    c = choose((users, items, kinds, ts), n, N_PAPERS, None, latest,
               {"regularization": 50.0, "graph_alpha": 0.8, "graph_beta": 0.4})
    assert c.confidence.decays and len(calls) == first_looks  # no decay's trial was the scale's last
    assert c.alpha == calls[-1] and calls[:len(switched_budget.ALPHAS)].count(c.alpha) == 1
    assert c.log.count({"stopped": "budget", "at": "alpha after decay"}) == 1
    assert [t for t in c.log if "stopped" in t] == [{"stopped": "budget", "at": "alpha after decay"}]


def test_the_proxies_are_a_small_als_seeded_by_the_fit(monkeypatch):
    """Every trial of the search is the same 32-factor, 8-sweep ALS (README, "What the data
    decides"), started from the fit's seed: the same data and seed give the same choice."""
    from recommender.model import tuning
    real = tuning._proxy_als_ndcg
    seen = set()

    def spy(C_fit, V_pos, readers_, factors, iterations, reg, alpha, seed, **kwargs):
        seen.add((factors, iterations, seed))
        return real(C_fit, V_pos, readers_, factors, iterations, reg, alpha, seed, **kwargs)

    monkeypatch.setattr(tuning, "_proxy_als_ndcg", spy)
    users, items, kinds, _ = readers(drift=False, n_users=120)
    n = int(users.max()) + 1
    fixed = {"regularization": 50.0, "graph_alpha": 0.8, "graph_beta": 0.4}
    choose((users, items, kinds, None), n, N_PAPERS, None, sliced(users, items, None, n), fixed)
    assert seen == {(32, 8, 0)}
    seen.clear()
    choose((users, items, kinds, None), n, N_PAPERS, None, sliced(users, items, None, n), fixed, seed=3)
    assert seen == {(32, 8, 3)}


def _spy_trials(monkeypatch) -> list:
    """Each ALS proxy's and graph trial's (matrix it fits, readers it judges), in order."""
    from recommender.model import tuning
    seen: list = []
    real_als, real_graph = tuning._proxy_als_ndcg, tuning._graph_ndcg

    def als(C_fit, V_pos, readers_, *args, **kwargs):
        seen.append((C_fit, np.array(readers_)))
        return real_als(C_fit, V_pos, readers_, *args, **kwargs)

    def graph(C_fit, V_pos, readers_, *args, **kwargs):
        seen.append((C_fit, np.array(readers_)))
        return real_graph(C_fit, V_pos, readers_, *args, **kwargs)

    monkeypatch.setattr(tuning, "_proxy_als_ndcg", als)
    monkeypatch.setattr(tuning, "_graph_ndcg", graph)
    return seen


def test_the_search_judges_readers_with_a_paper_kept_and_one_held_out(monkeypatch):
    """A reader whose papers are all held out has no history to rank from, and one with
    none held out has nothing to find: neither is judged. One kept paper is enough."""
    seen = _spy_trials(monkeypatch)
    users, items, kinds, _ = readers(drift=False, n_users=60)
    C0, _ = confidence_matrix(users, items, kinds, None, (60, N_PAPERS))
    keys = pair_keys(C0)
    row = keys // N_PAPERS
    held = [keys[row == 0][1:], keys[row == 1]]  # reader 0 keeps one paper, reader 1 none
    held += [keys[row == r][:2] for r in range(3, 60)]  # reader 2 keeps all
    vslice = ValidationSlice(np.sort(np.concatenate(held)), np.zeros(0, np.int64), False, C0.shape)
    choose((users, items, kinds, None), 60, N_PAPERS, None, vslice, {"regularization": 50.0, "alpha": 10.0})
    assert seen and all(np.array_equal(r, np.r_[0, np.arange(3, 60)]) for _, r in seen)


def test_every_trial_weighs_events_by_their_kind(monkeypatch):
    """An impression (weight 0) is no confidence: no trial's matrix has a paper a reader was
    only shown, whatever is searched."""
    seen = _spy_trials(monkeypatch)
    users, items, kinds, ts = readers(drift=True, n_users=120)
    rng = np.random.default_rng(1)
    shown_u = np.repeat(np.arange(120), 5)
    shown_i = rng.integers(0, N_PAPERS, len(shown_u))
    shown_u, shown_i = np.tile(shown_u, 3), np.tile(shown_i, 3)  # each shown three times: no repeated interest
    users, items = np.r_[users, shown_u], np.r_[items, shown_i]
    kinds = np.r_[kinds, np.full(len(shown_u), "impression", dtype=object)]
    ts = np.r_[ts, np.full(len(shown_u), ts.max())]
    C0, _ = confidence_matrix(users, items, kinds, ts, (120, N_PAPERS), config=NO_DECAY)
    keys, last = latest_pair_times(users, items, ts, N_PAPERS)
    vslice = carve(C0, last[np.searchsorted(keys, pair_keys(C0))], 0.0, 0.2, np.random.default_rng(0),
                   latest_share=HybridConfig().val_latest_share)
    read = sp.csr_matrix((np.ones(len(users)), (users, items)), shape=(120, N_PAPERS))
    only_shown = sp.csr_matrix((np.ones(len(shown_u)), (shown_u, shown_i)), shape=(120, N_PAPERS))
    only_shown = only_shown - only_shown.multiply(C0 != 0)
    only_shown.eliminate_zeros()
    assert only_shown.nnz > 400 and read.nnz > C0.nnz
    from recommender.model import tuning
    counted = []
    real_count = tuning.popularity_matrix
    monkeypatch.setattr(tuning, "popularity_matrix", lambda *args: counted.append((args[-1], real_count(*args)))
                        or counted[-1][1])
    now = float(ts.max()) + 400 * DAY
    c = choose((users, items, kinds, ts), 120, N_PAPERS, now, vslice, {})
    assert len(seen) > 10 and not [t for t in c.log if "repeats" in t]
    for C_fit, _ in seen:
        assert C_fit.multiply(only_shown).nnz == 0
    # popularity is counted every way there is, each from the events as they are
    assert [pc for pc, _ in counted] == [PopularityConfig(True, 0.0), PopularityConfig(False, 0.0)] + [
        PopularityConfig(True, h) for h in tuning.HALF_LIVES_DAYS]
    for pc, P in counted:
        assert P.multiply(only_shown).nnz == 0
        assert (P != popularity_matrix(users, items, kinds, ts, (120, N_PAPERS), now, pc)).nnz == 0


def test_the_proxy_is_the_als_it_is_asked_for():
    """One factor cannot place four topics apart where 32 can, and one sweep from a random
    start is not eight: the proxy fits the size it is given, and the same fit twice scores
    the same."""
    from recommender.model.tuning import _proxy_als_ndcg
    users, items, kinds, _ = readers(drift=False, n_users=120)
    n = int(users.max()) + 1
    C_fit, V_pos = sliced(users, items, None, n).split(confidence_matrix(users, items, kinds, None, (n, N_PAPERS))[0])
    judged = np.nonzero((np.diff(C_fit.indptr) > 0) & (np.diff(V_pos.indptr) > 0))[0]

    def proxy(factors, sweeps):
        return _proxy_als_ndcg(C_fit, V_pos, judged, factors, sweeps, 50.0, 10.0, 0)

    full = proxy(32, 8)
    assert full.shape == (len(judged),) and full.mean() > proxy(1, 8).mean() + 0.05
    assert not np.array_equal(full, proxy(32, 1))
    np.testing.assert_array_equal(full, proxy(32, 8))


def test_a_trend_is_counted_with_a_half_life_when_that_ranks_better():
    """Readers took up papers 0-19 over two years and papers 20-39 in the last month, and
    the slice holds out their latest: counted undecayed, the old papers crowd the top;
    counted with a half-life, the new trend leads, and the search takes it."""
    rng = np.random.default_rng(0)
    users, items, ts = [], [], []
    for u in range(200):
        for i in rng.choice(20, 8, replace=False):
            users.append(u), items.append(i), ts.append(T0 + rng.uniform(0, 730) * DAY)
        for i in rng.choice(np.arange(20, 40), 3, replace=False):
            users.append(u), items.append(i), ts.append(T0 + (760 - rng.uniform(0, 30)) * DAY)
    users, items, ts = np.asarray(users), np.asarray(items), np.asarray(ts)
    kinds = np.full(len(users), "read", dtype=object)
    C0, _ = confidence_matrix(users, items, kinds, ts, (200, 40), config=NO_DECAY)
    keys, last = latest_pair_times(users, items, ts, 40)
    vslice = carve(C0, last[np.searchsorted(keys, pair_keys(C0))], 0.0, 0.2, np.random.default_rng(0))
    c = choose((users, items, kinds, ts), 200, 40, None, vslice, {}, collaborative=False)
    figures = {t["popularity"]: t["ndcg"] for t in c.log if "popularity" in t}
    assert c.popularity.readers_once and c.popularity.half_life_days > 0
    assert figures[c.popularity.describe()] > figures["readers (once each)"] + 0.1


def test_a_search_keeps_the_setting_in_hand_on_a_tie(monkeypatch):
    """Trials that score alike move nothing: the scale, the regularisation and no decay stay
    as they started, where a later setting with the same figure would otherwise win."""
    from recommender.model import tuning
    monkeypatch.setattr(tuning, "_proxy_als_ndcg", lambda C_fit, V_pos, readers_, *a, **k: np.full(len(readers_), 0.3))
    users, items, kinds, ts = readers(drift=True, n_users=120)
    n = int(users.max()) + 1
    c = choose((users, items, kinds, ts), n, N_PAPERS, None, sliced(users, items, ts, n),
               {"graph_alpha": 0.8, "graph_beta": 0.4})
    assert len([t for t in c.log if "proxy_ndcg" in t]) >= len(tuning.ALPHAS) + len(tuning.REGULARIZATIONS)
    assert (c.alpha, c.regularization, c.confidence.decays) == (10.0, 50.0, False)
    assert 0 < c.seconds < 60 and 0 < c.cpu_seconds  # the whole search, on the clock and in CPU time
