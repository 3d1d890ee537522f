"""Properties of the hybrid model on a small synthetic catalog (readers with topical tastes).

Fitting is done once per module; hypothesis then varies histories, k, candidates and
strategies. Covers: finite scores, excluded seen papers, exactly min(k, allowed) items,
determinism for a fixed seed, popularity order for an unknown reader, array round trip,
live updates (an upvote moves the list; a new paper is recommendable at once)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.core.ranking import top_k
from recommender.model.hybrid import STRATEGIES, HybridModel
from tests.helpers import CONFIG, synthetic

@pytest.fixture(scope="module")
def data():
    return synthetic()


@pytest.fixture(scope="module")
def model(data):
    texts, titles, users, items, _ = data
    return HybridModel.fit(texts, users, items, n_users=int(users.max()) + 1, titles=titles, config=CONFIG)


history_st = st.lists(st.tuples(st.integers(0, 79), st.sampled_from(["read", "click", "upvote"]),
                                st.one_of(st.none(), st.floats(1.6e9, 1.7e9))), max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=history_st, strategy=st.sampled_from(STRATEGIES))
def test_scores_are_finite(model, history, strategy):
    s = model.score_history(history, strategy)
    assert s.shape == (model.n_items,)
    assert np.isfinite(s).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=history_st, k=st.integers(0, 100), strategy=st.sampled_from(STRATEGIES),
       candidates=st.one_of(st.none(), st.lists(st.integers(0, 79), max_size=30, unique=True)))
def test_seen_excluded_and_exact_length(model, history, k, strategy, candidates):
    recs = model.recommend(history, k=k, strategy=strategy, candidates=candidates, with_reasons=False)
    ids = [r.index for r in recs]
    seen = {h[0] for h in history}
    allowed = set(range(model.n_items) if candidates is None else candidates) - seen
    assert not seen & set(ids)
    assert set(ids) <= allowed
    assert len(ids) == len(set(ids)) == min(k, len(allowed))
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=history_st)
def test_seen_may_be_kept_when_asked(model, history):
    recs = model.recommend(history, k=model.n_items, exclude_seen=False, with_reasons=False)
    assert len(recs) == model.n_items


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_unknown_reader_gets_popularity_order(model, data, strategy):
    _, _, users, items, _ = data
    recs = model.recommend([], k=10, strategy=strategy)
    counts = np.bincount(items, minlength=model.n_items)
    got = [r.index for r in recs]
    assert [counts[i] for i in got] == sorted(counts, reverse=True)[:10]
    assert all(r.reason.startswith("trending") for r in recs)


def test_deterministic_for_fixed_seed(data, model):
    texts, titles, users, items, _ = data
    again = HybridModel.fit(texts, users, items, n_users=int(users.max()) + 1, titles=titles, config=CONFIG)
    history = [(int(i), "upvote", None) for i in items[users == 3]]
    for strategy in STRATEGIES:
        a = [r.index for r in model.recommend(history, k=15, strategy=strategy)]
        b = [r.index for r in again.recommend(history, k=15, strategy=strategy)]
        assert a == b
    np.testing.assert_allclose(model.score_history(history), again.score_history(history), rtol=1e-5, atol=1e-6)


def test_blend_is_learned_not_prior(model):
    assert model.blender.learned
    assert model.manifest()["blend"]["info"].get("val_ndcg") is not None


def test_array_round_trip_gives_same_lists(model, data):
    import json

    arrays = model.to_arrays()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in arrays.values())
    manifest = json.loads(json.dumps(model.manifest()))
    loaded = HybridModel.from_arrays(arrays, manifest)
    history = [(3, "upvote", None), (10, "read", None)]
    for strategy in STRATEGIES:
        np.testing.assert_allclose(model.score_history(history, strategy), loaded.score_history(history, strategy),
                                   rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        HybridModel.from_arrays(arrays, {**manifest, "n_items": manifest["n_items"] + 1})
    with pytest.raises(ValueError):
        HybridModel.from_arrays(arrays, {**manifest, "format_version": 999})


def test_upvoting_a_topic_raises_it(model, data):
    *_, topic = data
    genes = np.nonzero(topic == 1)[0]
    before = model.recommend([], k=20)
    after = model.recommend([(int(i), "upvote", None) for i in genes[:3]], k=20)
    share = lambda recs: np.mean([topic[r.index] == 1 for r in recs])  # noqa: E731
    assert share(after) > share(before)
    assert share(after) >= 0.5
    assert any("similar to" in r.reason or "readers like you" in r.reason for r in after)


def test_new_paper_recommendable_from_text(data):
    texts, titles, users, items, topic = data
    m = HybridModel.fit(texts, users, items, n_users=int(users.max()) + 1, titles=titles, config=CONFIG)
    vision = np.nonzero(topic == 2)[0][:4]
    history = [(int(i), "upvote", None) for i in vision]
    # shaped like the catalog's vision papers (title "w w study i" and 12 topic words): the
    # popularity predicted from text then sees a typical paper, not a short outlier
    new = m.add_paper("convolutional camera study 80",
                      "image convolutional pixel segmentation detection camera visual scene image pixel camera visual")
    assert new == len(texts)
    # every unseen vision paper is equally on-topic: the new one must rank among them,
    # ahead of all other topics, with no reader yet
    same_topic = int((topic == 2).sum()) - len(vision)
    recs = m.recommend(history, k=same_topic + 1)
    assert new in [r.index for r in recs]
    assert all(topic[r.index] == 2 for r in recs if r.index != new)
    assert np.isfinite(m.score_history(history)).all()
    # unrelated reader: the new paper is not pushed on them
    genes = [(int(i), "upvote", None) for i in np.nonzero(topic == 1)[0][:4]]
    assert new not in [r.index for r in m.recommend(genes, k=5)]


def test_dismiss_and_remove_upvote_do_not_add_interest(model, data):
    """Same times on both sides, so only the kinds differ: an upvote shows interest in the
    paper's topic; the same upvote taken back, a dismissal (alone or after a read) and an
    undo with nothing to undo leave the reader exactly where no history leaves them."""
    topic = data[4]
    near = (topic == topic[5]) & (np.arange(len(topic)) != 5)

    def interest(scores):
        return scores[near].mean() - scores[topic != topic[5]].mean()
    t = 1.7e9
    nothing = model.score_history([])
    upvoted = model.score_history([(5, "upvote", t)])
    assert interest(upvoted) > interest(nothing) + 1.0
    for history in ([(5, "upvote", t), (5, "remove_upvote", t + 1)],
                    [(5, "dismiss", t)],
                    [(5, "read", t), (5, "dismiss", t + 1)],
                    [(5, "remove_upvote", t)]):
        np.testing.assert_allclose(model.score_history(history), nothing, atol=1e-9,
                                   err_msg=str(history))
    recs = model.recommend([(5, "read", t), (5, "dismiss", t + 1)], k=80)
    assert 5 not in [r.index for r in recs] and len(recs) == 79


def test_every_scoring_of_the_model_ranks_its_own_scores(model):
    """The model's scorings (what serving's model strategies and offline evaluation use):
    a list is the top of its scores, seen papers left out; an unknown name is refused."""
    history = [(1, "upvote", None), (2, "read", None)]
    row, seen = model.history_row(history)
    for name in STRATEGIES:
        scores = model.score_history(history, name)
        np.testing.assert_allclose(model.score_rows(row, name)[0], scores, rtol=1e-6)
        assert [r.index for r in model.recommend(history, k=5, strategy=name)] == \
            top_k(scores, 5, seen).tolist()
    with pytest.raises(ValueError):
        model.score_rows(row, "nope")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 60), st.integers(1, 400), st.integers(0, 30), st.integers(0, 2**31 - 1))
def test_a_big_batch_ranks_as_each_row_alone(n_rows, n_items, k, seed):
    """`top_k` ranks big batches in row blocks on threads and keeps float32 scores float32:
    the indices must be those of each row ranked alone in float64, ties, exclusions,
    candidates and -1 padding included (the fit's choices depend on this order)."""
    import scipy.sparse as sp

    from recommender.core import ranking

    rng = np.random.default_rng(seed)
    # many ties, and differences a narrower float would lose
    fine = np.round(rng.random((n_rows, n_items)), 4) * (rng.random((n_rows, n_items)) < 0.5)
    scores = (rng.integers(0, 4, (n_rows, n_items)) + fine).astype(np.float32)
    excluded = sp.random(n_rows, n_items, density=0.3, format="csr", random_state=seed)
    candidates = rng.choice(n_items, int(rng.integers(1, n_items + 1)), replace=False) if seed % 2 else None
    old = ranking.PARALLEL_CELLS, ranking.ROW_BLOCK_CELLS
    # every batch goes to the threads, cut into blocks of two rows (one where a row is larger)
    ranking.PARALLEL_CELLS, ranking.ROW_BLOCK_CELLS = 1, 2 * n_items
    try:
        batch = top_k(scores, k, excluded, candidates)
    finally:
        ranking.PARALLEL_CELLS, ranking.ROW_BLOCK_CELLS = old
    assert batch.shape == (n_rows, min(k, n_items))
    kk = min(k, n_items)
    for r in range(n_rows):
        # the rule written out for one row in float64: excluded and non-candidate papers
        # out, argpartition's k best, sorted stably by score
        row = -scores[r].astype(np.float64)
        row[excluded.indices[excluded.indptr[r]:excluded.indptr[r + 1]]] = np.inf
        if candidates is not None:
            row[np.setdiff1d(np.arange(n_items), candidates)] = np.inf
        alone = np.argpartition(row, kk - 1)[:kk] if 0 < kk < n_items else np.arange(kk)
        alone = alone[np.argsort(row[alone], kind="stable")]
        alone = alone[np.isfinite(row[alone])]
        assert batch[r][:len(alone)].tolist() == alone.tolist()
        assert (batch[r][len(alone):] == -1).all()
