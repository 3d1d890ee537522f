"""The sequence graph (recommender/model/sequence_graph.py): papers a reader took up close
together are linked, farther apart less, beyond `reach` not at all; it exists only where
times order the reading; the validation fit's graph never sees a held-out paper; and the
hybrid keeps it through its artifact."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import recommender.model.sequence_graph as sequence_graph
from recommender.model.components import fit_components
from recommender.model.hybrid import HybridModel
from recommender.model.sequence_graph import SequenceGraph, reading_order
from tests.helpers import CONFIG, synthetic


def test_reading_order_is_each_readers_papers_by_first_event():
    users = np.array([1, 0, 0, 1, 0, 0])
    items = np.array([5, 2, 3, 4, 2, 1])
    ts = np.array([9.0, 3.0, 1.0, 2.0, 0.5, 4.0])  # reader 0: 2 (0.5), 3, 2 again, 1
    readers, papers = reading_order(users, items, ts, 10)
    assert readers.tolist() == [0, 0, 0, 1, 1] and papers.tolist() == [2, 3, 1, 4, 5]


def test_no_order_without_times_or_with_one_time_for_all():
    users, items = np.array([0, 0, 1, 1]), np.array([1, 2, 3, 1])
    assert reading_order(users, items, None, 5) is None
    assert reading_order(users, items, np.full(4, 7.0), 5) is None  # an import without times
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


def test_near_papers_are_linked_and_far_ones_not():
    # one reader takes up papers 0..14 in order; another reads 14 then 0 (a link both ways)
    readers = np.r_[np.zeros(15, np.int64), [1, 1]]
    papers = np.r_[np.arange(15), [14, 0]]
    W = SequenceGraph.fit(readers, papers, 15, reach=10, beta=0.0).weights.toarray()
    assert (W[0, 1:11] > 0).all() and (W[0, 11:14] == 0).all() and W[0, 14] > 0
    assert W[0, 1] > W[0, 2] > W[0, 10]  # nearer, stronger
    assert np.allclose(W.sum(axis=1), 1.0) and (np.diag(W) == 0).all()
    # a reader's steps only: the second reader's papers do not link to the first's
    Wc = SequenceGraph.fit(np.array([0, 0, 1, 1]), np.array([0, 1, 2, 3]), 4).weights.toarray()
    assert Wc[1, 2] == 0 and Wc[0, 1] > 0 and Wc[2, 3] > 0


def test_pairs_in_blocks_equal_one_block(monkeypatch):
    rng = np.random.default_rng(0)
    readers = np.sort(rng.integers(0, 30, 400))
    papers = rng.integers(0, 50, 400)
    whole = SequenceGraph.fit(readers, papers, 50).weights
    monkeypatch.setattr(sequence_graph, "PAIR_BLOCK", 50)
    blocks = SequenceGraph.fit(readers, papers, 50).weights
    np.testing.assert_allclose(blocks.toarray(), whole.toarray(), rtol=1e-6, atol=1e-7)


def test_a_pair_the_matrix_does_not_hold_leaves_the_order():
    """The validation fit's confidence matrix lacks the held-out pairs: the graph built
    beside it must not link them either (it would leak the answers into the blend)."""
    texts, titles, users, items, _ = synthetic(n_papers=40, n_users=60)
    model = HybridModel.fit(texts, users, items, titles=titles, config=CONFIG)
    n = len(texts)
    readers = np.array([0, 0, 0])
    papers = np.array([1, 2, 3])
    C = sp.csr_matrix((np.ones(2, np.float32), ([0, 0], [1, 3])), shape=(1, n))  # (0, 2) held out
    comps = fit_components(C, C, model.X, model.V, model.lengths, None, model.config, order=(readers, papers))
    W = comps.seq.weights.toarray()
    assert W[1, 3] > 0 and W[1, 2] == 0 and W[2].sum() == 0


def timed_synthetic():
    texts, titles, users, items, topic = synthetic()
    return texts, titles, users, items, 1.6e9 + 60.0 * np.arange(len(users))


def test_the_hybrid_keeps_the_graph_through_its_artifact_and_a_refit():
    texts, titles, users, items, ts = timed_synthetic()
    model = HybridModel.fit(texts, users, items, ts=ts, titles=titles, config=CONFIG)
    assert model.comps.seq is not None and model.stats["validation"]["sequence_graph"]
    assert model.manifest()["sequence"] == {"reach": 10, "decay": 0.9, "beta": 0.4, "top_k": 200}
    again = HybridModel.from_arrays(model.to_arrays(), model.manifest())
    assert abs(again.comps.seq.weights - model.comps.seq.weights).max() == 0
    hist = [(int(i), "read", None) for i in items[users == 3]]
    np.testing.assert_array_equal(again.score_history(hist), model.score_history(hist))
    assert model.refit(users, items, ts=ts).comps.seq is not None
    untimed = HybridModel.fit(texts, users, items, titles=titles, config=CONFIG)
    assert untimed.comps.seq is None and untimed.manifest()["sequence"] is None
    assert untimed.refit(users, items, ts=ts).comps.seq is None  # its blend never weighed one


def test_new_papers_join_the_graph_empty():
    texts, titles, users, items, ts = timed_synthetic()
    model = HybridModel.fit(texts, users, items, ts=ts, titles=titles, config=CONFIG)
    n = model.n_items
    j = model.add_paper("graph spectral clustering", "random walks")
    W = model.comps.seq.weights
    assert W.shape == (n + 1, n + 1) and W[j].nnz == 0 and W[:, j].nnz == 0
