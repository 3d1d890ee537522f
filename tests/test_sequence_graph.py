"""The sequence graph (recommender/model/sequence_graph.py): a paper links to the papers
readers took up after it, nearer ones more, none beyond `reach` and none backwards; it
exists only where times order the reading; the validation fit's graph never sees a
held-out paper; the hybrid keeps it through its artifact, a refit and an added paper; a
model written before it still loads; and where the order of reading says what comes next,
the blend weighs it and the lists find the next paper."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import recommender.model.sequence_graph as sequence_graph
from recommender.core import reasons
from recommender.model.blend import FEATURES, V2_FEATURES
from recommender.model.components import fit_components
from recommender.model.hybrid import HybridModel
from recommender.model.sequence_graph import SequenceGraph, reading_order
from tests.helpers import CONFIG, synthetic


def test_reading_order_is_each_readers_papers_by_first_event():
    users = np.array([1, 0, 0, 1, 0, 0])
    items = np.array([5, 2, 3, 4, 2, 1])
    ts = np.array([9.0, 3.0, 1.0, 2.0, 0.5, 4.0])  # reader 0: 2 (0.5), 3, 2 again, 1
    readers, papers, times = reading_order(users, items, ts, 10)
    assert readers.tolist() == [0, 0, 0, 1, 1] and papers.tolist() == [2, 3, 1, 4, 5]
    assert times.tolist() == [0.5, 1.0, 4.0, 2.0, 9.0]


def test_no_order_without_times_or_with_one_time_for_all():
    users, items = np.array([0, 0, 1, 1]), np.array([1, 2, 3, 1])
    assert reading_order(users, items, None, 5) is None
    assert reading_order(users, items, np.full(4, 7.0), 5) is None  # an import without times
    assert reading_order(users, items, np.array([1.0, np.nan, 1.0, 2.0]), 5) is None  # some unknown
    assert reading_order(users, items, np.array([1.0, 2.0, 1.0, 2.0]), 5) is not None


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), shift=st.floats(-1e9, 1e9))
def test_shifted_times_give_the_same_graph(seed, shift):
    rng = np.random.default_rng(seed)
    users, items = rng.integers(0, 8, 60), rng.integers(0, 20, 60)
    ts = np.round(rng.uniform(0, 1e6, 60))
    a, b = reading_order(users, items, ts, 20), reading_order(users, items, ts + np.round(shift), 20)
    assert a is not None and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    Wa, Wb = SequenceGraph.fit(*a, 20).weights, SequenceGraph.fit(*b, 20).weights
    assert abs(Wa - Wb).max() == 0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000))
def test_the_order_of_the_events_given_changes_nothing(seed):
    """Times with many ties (readings in the same second, as MovieLens's bulk ratings): the
    events in another order give the same graph, to the bit."""
    rng = np.random.default_rng(seed)
    users, items = rng.integers(0, 8, 80), rng.integers(0, 20, 80)
    ts = rng.integers(0, 30, 80).astype(np.float64)  # ten events a reader: ties in most histories
    shuffle = rng.permutation(80)
    a = reading_order(users, items, ts, 20)
    b = reading_order(users[shuffle], items[shuffle], ts[shuffle], 20)
    assert a is not None and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert abs(SequenceGraph.fit(*a, 20).weights - SequenceGraph.fit(*b, 20).weights).max() == 0


def test_a_paper_links_forward_to_near_papers_only():
    # one reader takes up papers 0..14 in order; another reads 14, then 0
    readers = np.r_[np.zeros(15, np.int64), [1, 1]]
    papers = np.r_[np.arange(15), [14, 0]]
    times = np.r_[np.arange(15.0), [0.0, 1.0]]
    W = SequenceGraph.fit(readers, papers, times, 15, reach=10, beta=0.0).weights.toarray()
    assert (W[0, 1:11] > 0).all() and (W[0, 11:] == 0).all()  # within reach, forward
    assert W[0, 1] > W[0, 2] > W[0, 10]  # nearer, stronger
    assert W[14, 0] > 0 and (W[5, :5] == 0).all()  # what came after, never what came before
    assert np.allclose(W.sum(axis=1), 1.0) and (np.diag(W) == 0).all()
    # a reader's own steps only: the second reader's papers do not follow the first's
    Wc = SequenceGraph.fit(np.array([0, 0, 1, 1]), np.array([0, 1, 2, 3]), np.arange(4.0), 4).weights.toarray()
    assert Wc[1, 2] == 0 and Wc[0, 1] > 0 and Wc[2, 3] > 0 and Wc[1, 0] == 0


def test_papers_taken_up_at_one_instant_link_both_ways():
    readers = np.zeros(4, np.int64)
    papers = np.array([0, 1, 2, 3])
    W = SequenceGraph.fit(readers, papers, np.array([1.0, 5.0, 5.0, 9.0]), 4, beta=0.0).weights.toarray()
    assert W[1, 2] > 0 and W[2, 1] > 0  # 1 and 2 at the same time: no order between them
    assert W[0, 1] > 0 and W[1, 0] == 0 and W[3].sum() == 0  # the others keep theirs


def test_pairs_in_blocks_equal_one_block(monkeypatch):
    rng = np.random.default_rng(0)
    readers = np.sort(rng.integers(0, 30, 400))
    papers = rng.integers(0, 50, 400)
    times = rng.integers(0, 100, 400).astype(np.float64)
    whole = SequenceGraph.fit(readers, papers, times, 50).weights
    monkeypatch.setattr(sequence_graph, "PAIR_BLOCK", 50)
    blocks = SequenceGraph.fit(readers, papers, times, 50).weights
    np.testing.assert_allclose(blocks.toarray(), whole.toarray(), rtol=1e-6, atol=1e-7)


def test_the_reach_shrinks_with_the_log_within_its_budget(monkeypatch):
    assert sequence_graph.bounded_reach(41_265, 30) == 30  # MovieLens-small
    assert sequence_graph.bounded_reach(5_000_000, 30) == 8
    assert sequence_graph.bounded_reach(10**9, 30) == sequence_graph.MIN_REACH
    monkeypatch.setattr(sequence_graph, "LINK_BUDGET", 15 * 6)  # 15 positions: reach 6
    readers, papers, times = np.zeros(15, np.int64), np.arange(15), np.arange(15.0)
    g = SequenceGraph.fit(readers, papers, times, 15, reach=30, beta=0.0)
    W = g.weights.toarray()
    assert g.reach == 6 and (W[0, 1:7] > 0).all() and (W[0, 7:] == 0).all()


def test_a_pair_the_matrix_does_not_hold_leaves_the_order():
    """The validation fit's confidence matrix lacks the held-out pairs: the graph built
    beside it must not link them either (it would leak the answers into the blend)."""
    texts, titles, users, items, _ = synthetic(n_papers=40, n_users=60)
    model = HybridModel.fit(texts, users, items, titles=titles, config=CONFIG)
    n = len(texts)
    readers = np.array([0, 0, 0])
    papers = np.array([1, 2, 3])
    C = sp.csr_matrix((np.ones(2, np.float32), ([0, 0], [1, 3])), shape=(1, n))  # (0, 2) held out
    comps = fit_components(C, C, model.X, model.V, model.lengths, None, model.config,
                           order=(readers, papers, np.arange(3.0)))
    W = comps.seq.weights.toarray()
    assert W[1, 3] > 0 and W[1, 2] == 0 and W[2].sum() == 0


def timed_synthetic():
    texts, titles, users, items, _ = synthetic()
    return texts, titles, users, items, 1.6e9 + 60.0 * np.arange(len(users))


def test_the_hybrid_keeps_the_graph_through_its_artifact_a_refit_and_a_new_paper():
    texts, titles, users, items, ts = timed_synthetic()
    model = HybridModel.fit(texts, users, items, ts=ts, titles=titles, config=CONFIG)
    assert model.comps.seq is not None and model.stats["validation"]["sequence_graph"]
    assert model.manifest()["sequence"] == {"reach": 30, "decay": 0.95, "beta": 0.4, "top_k": 200}
    again = HybridModel.from_arrays(model.to_arrays(), model.manifest())
    assert abs(again.comps.seq.weights - model.comps.seq.weights).max() == 0
    hist = [(int(i), "read", None) for i in items[users == 3]]
    np.testing.assert_array_equal(again.score_history(hist), model.score_history(hist))
    assert model.refit(users, items, ts=ts).comps.seq is not None
    n = model.n_items
    j = model.add_paper("graph spectral clustering", "random walks")
    W = model.comps.seq.weights
    assert W.shape == (n + 1, n + 1) and W[j].nnz == 0 and W[:, j].nnz == 0
    untimed = HybridModel.fit(texts, users, items, titles=titles, config=CONFIG)
    assert untimed.comps.seq is None and untimed.manifest()["sequence"] is None
    assert not untimed.stats["reading_ordered"]
    assert untimed.refit(users, items, ts=ts).comps.seq is None  # its blend never weighed one


def test_a_model_written_before_the_graph_still_loads():
    """A format-2 artifact (no sequence graph, seven features' weights) loads with the graph's
    weights at 0 and every other weight where it was: it ranks as it did."""
    texts, titles, users, items, _ = synthetic()
    model = HybridModel.fit(texts, users, items, titles=titles, config=CONFIG)
    arrays, manifest = model.to_arrays(), model.manifest()
    W = model.blender.weights
    k = FEATURES.index("seq")
    assert not W[4 * k: 4 * k + 4].any()
    arrays["blend_weights"] = np.r_[W[:4 * k], W[4 * k + 4:]].astype(np.float32)
    old = {key: v for key, v in manifest.items() if key != "sequence"}
    old["format_version"] = 2
    assert len(arrays["blend_weights"]) == 4 * len(V2_FEATURES) + 2
    loaded = HybridModel.from_arrays(arrays, old)
    np.testing.assert_array_equal(loaded.blender.weights, W)
    hist = [(int(i), "read", None) for i in items[users == 5]]
    np.testing.assert_array_equal(loaded.score_history(hist), model.score_history(hist))


def ordered_reading(n_papers: int = 120, n_users: int = 300, seed: int = 0):
    """Readers who take papers up along one chain: paper i is followed by paper i + 1 (mod
    n), each reader reads a run of 6-10 consecutive papers from a random start, and the test
    asks for the run's last two. The papers' words are one topic for all, so the text says
    nothing of which paper comes next."""
    rng = np.random.default_rng(seed)
    words = "graph node edge walk spectral cluster community network".split()
    texts = [f"paper {i} " + " ".join(rng.choice(words, 10)) for i in range(n_papers)]
    train_u, train_i, train_t, test = [], [], [], []
    for u in range(n_users):
        start, length = int(rng.integers(0, n_papers)), int(rng.integers(6, 11))
        run = [(start + s) % n_papers for s in range(length)]
        t0 = 1.6e9 + float(rng.uniform(0, 1e7))
        for s, i in enumerate(run[:-2]):
            train_u.append(u)
            train_i.append(i)
            train_t.append(t0 + 3600.0 * s)
        test.append(run[-2:])
    return texts, np.array(train_u), np.array(train_i), np.array(train_t), test


def recall(model: HybridModel, users, items, test, k: int = 2) -> float:
    found = 0
    for u, wanted in enumerate(test):
        hist = [(int(i), "read", None) for i in items[users == u]]
        top = [r.index for r in model.recommend(hist, k=k, with_reasons=False)]
        found += len(set(top) & set(wanted))
    return found / sum(len(w) for w in test)


def test_where_the_order_says_what_comes_next_the_blend_weighs_it():
    texts, users, items, ts, test = ordered_reading()
    timed = HybridModel.fit(texts, users, items, ts=ts, config=CONFIG)
    untimed = HybridModel.fit(texts, users, items, config=CONFIG)
    k = FEATURES.index("seq")
    assert timed.comps.seq is not None and timed.blender.weights[4 * k] > 0
    # who reads what together links a run's papers with those just before it as much as
    # with those just after: only the order says which come next
    with_order, without = recall(timed, users, items, test), recall(untimed, users, items, test)
    assert with_order > without + 0.2, (with_order, without)
    # and a paper the graph placed says so
    hist = [(int(i), "read", None) for i in items[users == 0]]
    assert timed.recommend(hist, k=1)[0].reason == reasons.READ_NEXT
    assert untimed.recommend(hist, k=1)[0].reason != reasons.READ_NEXT
