"""The papers' words as pseudo-readers of ALS (recommender/model/text_rows.py).

Generated catalogs of four topics, each with its own words. Whether words go into the
factorisation is chosen on the validation slice: where a paper's words say which readers
it has, they do. An unread paper is
placed among its topic by its words; papers added later get the same treatment in one
batch as one at a time; the model round-trips through arrays; and data with one paper per
reader (no validation slice) still gets a collaborative signal from the words.
(Whether words that say nothing about readership stay out is seen on MovieLens, whose
"abstracts" are genre lists: the search chooses weight 0 there; see the README.)"""
from __future__ import annotations

import numpy as np
import pytest

from recommender.model.confidence import ConfidenceConfig, confidence_matrix
from recommender.model.content import ContentEncoder
from recommender.model.hybrid import HybridConfig, HybridModel
from recommender.model.tuning import carve, choose

TOPICS = 4
PER_TOPIC = 40
N_PAPERS = TOPICS * PER_TOPIC
WORDS = [["graph", "node", "edge", "walk", "spectral", "community"],
         ["gene", "cell", "protein", "sequence", "expression", "tissue"],
         ["image", "pixel", "camera", "segmentation", "scene", "visual"],
         ["word", "text", "language", "parser", "token", "grammar"]]
FAST = dict(seed=0, min_val_positives=10, max_val_users=300, content_dim=8, pool_per_feature=20, tune_budget_s=10,
            factors=16)


def topic_of(i: int) -> int:
    return i // PER_TOPIC


def catalog(aligned: bool = True, seed: int = 0) -> list[str]:
    """Each paper: four words of a topic plus its number. aligned=False gives each paper the
    words of a random topic, unrelated to who reads it."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(N_PAPERS):
        t = topic_of(i) if aligned else int(rng.integers(TOPICS))
        out.append(" ".join(rng.choice(WORDS[t], 4, replace=False)) + f" paper{i}")
    return out


def readers(n_users: int = 240, per_reader: int = 8, seed: int = 0, unread=()):
    """Each reader reads `per_reader` papers of one topic; papers in `unread` have no reader."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        t = u % TOPICS
        pool = [i for i in range(t * PER_TOPIC, (t + 1) * PER_TOPIC) if i not in set(unread)]
        for i in rng.choice(pool, min(per_reader, len(pool)), replace=False):
            users.append(u)
            items.append(int(i))
    users = np.asarray(users)
    return users, np.asarray(items), np.full(len(users), "upvote", dtype=object), np.full(len(users), np.nan)


def test_words_that_say_who_reads_a_paper_go_into_the_factorisation():
    """Readers read most of their topic, and a fifth of the papers are new in the slice: only
    their words can place them, and the search takes the words in."""
    users, items, kinds, ts = readers(per_reader=30)
    _, X = ContentEncoder.fit_transform(catalog(), dim=8)
    shape = (int(users.max()) + 1, N_PAPERS)
    C0, _ = confidence_matrix(users, items, kinds, ts, shape, config=ConfidenceConfig(half_life_days=0))
    vslice = carve(C0, None, 0.2, 0.2, np.random.default_rng(0))
    fixed = {"alpha": 10.0, "regularization": 10.0, "half_life_days": 0, "graph_alpha": 0.8, "graph_beta": 0.4}
    c = choose((users, items, kinds, ts), shape[0], N_PAPERS, None, vslice, fixed, proxy_factors=8, text=X)
    without = [t["proxy_ndcg"] for t in c.log if "decay" in t][-1]
    tried = {t["text_weight"]: t["proxy_ndcg"] for t in c.log if "text_weight" in t}
    assert set(tried) == {0.25, 0.5, 1.0}
    assert c.text_weight > 0 and tried[c.text_weight] == max(tried.values())
    assert tried[c.text_weight] > without + 0.1
    # told not to, it does not
    c = choose((users, items, kinds, ts), shape[0], N_PAPERS, None, vslice, {**fixed, "text_weight": 0.0},
               proxy_factors=8, text=X)
    assert c.text_weight == 0.0 and not [t for t in c.log if "text_weight" in t]


UNREAD = (3, 45, 88, 130)  # one unread paper per topic


@pytest.fixture(scope="module")
def model():
    users, items, kinds, ts = readers(unread=UNREAD)
    return HybridModel.fit(catalog(), users, items, kinds, ts, n_users=int(users.max()) + 1,
                           config=HybridConfig(**FAST, text_weight=1.0))


def test_an_unread_paper_is_placed_among_its_topic_by_its_words(model):
    cf = model.comps.cf
    assert cf.side_factors is not None and model.comps.text_rows is not None
    Y = cf.item_factors / np.linalg.norm(cf.item_factors, axis=1, keepdims=True)
    for j in UNREAD:
        own = Y[j]  # the fit's own factors, before any content-neighbour map
        same = [i for i in range(N_PAPERS) if topic_of(i) == topic_of(j) and i != j and i not in UNREAD]
        other = [i for i in range(N_PAPERS) if topic_of(i) != topic_of(j) and i not in UNREAD]
        assert (Y[same] @ own).mean() > (Y[other] @ own).mean() + 0.2
    # and a reader of that topic gets it from the collaborative strategy alone
    history = [(i, "upvote", None) for i in range(PER_TOPIC + 6, PER_TOPIC + 12)]  # topic 1, not paper 45
    top = [r.index for r in model.recommend(history, k=PER_TOPIC - 6, strategy="collaborative")]
    assert 45 in top


def copy_of(model: HybridModel) -> HybridModel:
    return HybridModel.from_arrays({k: np.array(v, copy=True) for k, v in model.to_arrays().items()},
                                   model.manifest())


def test_papers_added_in_one_batch_equal_papers_added_one_by_one(model):
    new = [("spectral graph walk", "community node edge graph", 3.0),
           ("protein cell expression", "gene sequence tissue", 0.0),
           ("parser grammar token", None, 1.0)]
    one, batch = copy_of(model), copy_of(model)
    idx = [one.add_paper(*p) for p in new]
    assert list(batch.add_papers(new)) == idx == [N_PAPERS, N_PAPERS + 1, N_PAPERS + 2]
    for a, b in ((one.comps.item_factors, batch.comps.item_factors), (one.comps.cf.item_factors, batch.comps.cf.item_factors),
                 (one.V, batch.V), (one.comps.pop.observed, batch.comps.pop.observed)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert one.titles == batch.titles
    history = [(i, "upvote", None) for i in range(6)]
    assert [r.index for r in one.recommend(history, k=10)] == [r.index for r in batch.recommend(history, k=10)]
    # the new graph paper is placed with the graph papers, from its words
    Y = batch.comps.item_factors
    graph_papers = [i for i in range(PER_TOPIC) if i not in UNREAD]
    gene_papers = [i for i in range(PER_TOPIC, 2 * PER_TOPIC) if i not in UNREAD]
    assert (Y[graph_papers] @ Y[N_PAPERS]).mean() > (Y[gene_papers] @ Y[N_PAPERS]).mean()


def test_an_unread_paper_and_the_same_paper_added_after_the_fit_get_the_same_factors(model):
    """A paper nobody read has the ALS factors its words alone give it, the readers' entries
    unobserved rather than 0s (`CollaborativeModel.solve_unread`), as a paper added after
    the fit is folded in: the same words added after the fit get the same factors, so the
    two kinds of unread paper compete on equal terms. (Left to ALS's own solve, which
    counts every reader's 0, the fit's unread papers pointed elsewhere: cosine 0.95 to
    their folded-in factors here.)"""
    cf = model.comps.cf
    unread = list(UNREAD)
    rows = model.comps.text_rows.columns(model.X[unread])
    np.testing.assert_allclose(cf.fold_in_items(rows), cf.item_factors[unread], rtol=1e-4, atol=1e-6)
    texts = catalog()
    for j in unread[:2]:
        m = copy_of(model)
        new = m.add_paper(texts[j])
        # its own factors mixed with its content neighbours' map, as the fit mixed paper j's
        np.testing.assert_allclose(m.comps.item_factors[new], model.comps.item_factors[j], rtol=1e-4, atol=1e-5)
    # read papers keep the factors ALS's sweeps gave them
    read = [i for i in range(N_PAPERS) if i not in UNREAD]
    folded = cf.fold_in_items(model.comps.text_rows.columns(model.X[read]))
    assert not np.allclose(folded, cf.item_factors[read], atol=1e-3)


def test_the_word_factors_round_trip_and_a_mismatch_is_refused(model):
    back = copy_of(model)
    np.testing.assert_array_equal(back.comps.cf.side_factors, model.comps.cf.side_factors)
    np.testing.assert_array_equal(back.comps.text_rows.terms, model.comps.text_rows.terms)
    history = [(i, "upvote", None) for i in range(5)]
    np.testing.assert_array_equal(back.score_history(history), model.score_history(history))
    arrays = model.to_arrays()
    del arrays["cf_side_factors"]
    with pytest.raises(ValueError, match="word rows"):
        HybridModel.from_arrays(arrays, model.manifest())


def test_one_paper_per_reader_still_gets_a_collaborative_signal_from_words():
    users, items, kinds, ts = readers(per_reader=1)
    m = HybridModel.fit(catalog(), users, items, kinds, ts, n_users=int(users.max()) + 1,
                        config=HybridConfig(**FAST))
    assert m.stats["tuning"]["text_weight"] == 1.0  # no slice to choose on: the default
    assert not m.blender.learned and m.blender.coefficients()["cf:warm"] > 0
    top = [r.index for r in m.recommend([(PER_TOPIC * 2 + 1, "upvote", None)], k=10, strategy="collaborative")]
    assert sum(topic_of(i) == 2 for i in top) >= 8


def test_the_rows_are_the_terms_of_at_least_min_df_papers_at_the_weight():
    import scipy.sparse as sp

    from recommender.model.text_rows import TextRows
    # term 0 in 5 papers, term 1 in 4, term 2 in 6, term 3 in none
    X = sp.csr_matrix(np.array([[0.5, 0.2, 0.1, 0]] * 4 + [[0.5, 0, 0.3, 0], [0, 0, 0.7, 0]], np.float32))
    rows = TextRows.fit(X, weight=3.0)
    assert rows.terms.tolist() == [0, 2] and rows.active
    assert TextRows.fit(X, weight=3.0, min_df=4).terms.tolist() == [0, 1, 2]
    np.testing.assert_allclose(rows.columns(X).toarray(), 3.0 * X.toarray()[:, [0, 2]])
    np.testing.assert_allclose(rows.matrix(X).toarray(), 3.0 * X.toarray()[:, [0, 2]].T)
    assert rows.matrix(X).shape == (2, 6) and rows.columns(X).dtype == np.float32
    assert rows.columns(X).nnz == 11  # the zeros are not stored
    assert rows.params() == {"weight": 3.0, "rows": 2}
    back = TextRows.from_arrays(rows.to_arrays(), rows.params())
    assert back.terms.tolist() == [0, 2] and back.weight == 3.0 and back.terms.dtype == np.int64
    assert TextRows.from_arrays(rows.to_arrays(), {}).weight == 0.0  # an old manifest: no words
    assert not TextRows.fit(X, weight=0.0).active and not TextRows.fit(X, weight=1.0, min_df=7).active
