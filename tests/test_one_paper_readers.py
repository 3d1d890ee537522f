"""Readers with one paper each (a "sparse-p1" data set): no validation slice can be carved,
so the blend is `Blender.prior`, and the one thing the data can say, how often popularity
finds readers it has not seen, sets popularity's weight in it (`blend.prior_pop_scale`)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.model.blend import PRIOR_HIT_RATE, Blender, prior_pop_scale
from recommender.model.hybrid import HybridModel
from recommender.model.popularity import readers_out_hit_rate
from tests.helpers import CONFIG, synthetic


def one_each(papers: np.ndarray, n_items: int) -> sp.csr_matrix:
    """Reader r read papers[r], once."""
    n = len(papers)
    return sp.csr_matrix((np.ones(n, np.float32), (np.arange(n), papers)), shape=(n, n_items))


def test_the_hit_rate_is_the_share_of_held_out_readers_papers_in_the_others_top_k():
    # every reader reads one of three papers: the others' top 20 holds all three
    assert readers_out_hit_rate(one_each(np.arange(300) % 3, 100)) == 1.0
    # every reader a paper of their own: nobody else read it, so it is never in the top
    assert readers_out_hit_rate(one_each(np.arange(300), 300)) == 0.0
    # half the readers on paper 0, the rest on papers of their own: about half are found
    papers = np.where(np.arange(400) % 2 == 0, 0, np.arange(400))
    assert readers_out_hit_rate(one_each(papers, 400)) == pytest.approx(0.5, abs=0.08)
    assert readers_out_hit_rate(sp.csr_matrix((5, 10), dtype=np.float32)) == 0.0


def test_catalog_upvotes_count_as_the_others_reading():
    # nobody else read each reader's paper, but the catalog's upvotes put papers 0-19 first
    papers = np.arange(200)
    upvotes = np.where(np.arange(200) < 20, 1000.0, 0.0)
    assert readers_out_hit_rate(one_each(papers, 200)) == 0.0
    assert readers_out_hit_rate(one_each(papers, 200), upvotes) == pytest.approx(0.1, abs=0.05)



def test_the_others_popularity_is_their_reading_mass_not_their_count():
    """100 readers gave paper 0 a confidence of 10 each, 300 gave paper 1 a confidence of
    1: paper 0 tops the others' ranking, so with k 1 only paper 0's readers are found."""
    papers = np.r_[np.zeros(100, int), np.ones(300, int)]
    C = one_each(papers, 5)
    C.data[:100] = 10.0
    assert readers_out_hit_rate(C, k=1) == pytest.approx(0.25, abs=0.06)
    assert readers_out_hit_rate(C, k=2) == 1.0



def test_the_hit_rate_looks_at_a_lists_length_of_papers():
    """The others' top 20, as long as a list the reader sees: paper j has 40 - j readers, so
    the readers of the 21st paper are never found at the default length, and are at 21."""
    papers = np.concatenate([np.full(40 - j, j) for j in range(21)])
    C = one_each(papers, 30)
    assert readers_out_hit_rate(C) == readers_out_hit_rate(C, k=20) < 0.99
    assert readers_out_hit_rate(C, k=21) == 1.0


def test_a_round_that_holds_out_nobody_or_everybody_is_skipped():
    C = one_each(np.arange(30) % 3, 10)
    # share 1: every round holds out every reader, nobody is left to rank: no figure, 0
    assert readers_out_hit_rate(C, np.full(10, 50.0), share=1.0) == 0.0
    # a share so small that most rounds hold out nobody: those are skipped, the rest count
    few = one_each(np.arange(10) % 3, 10)
    draws = np.random.default_rng(0)  # the function's own draws: one a reader a round
    held = [(draws.random(10) < 0.01).any() for _ in range(5)]
    assert not held[0] and any(held)  # the first round holds out nobody, a later one does
    assert readers_out_hit_rate(few, share=0.01) == 1.0


def test_popularity_weighs_more_only_as_far_as_it_beats_chance():
    assert prior_pop_scale(0.0, 10_000) == 1.0
    assert prior_pop_scale(0.002 + PRIOR_HIT_RATE, 10_000) == pytest.approx(1.0)
    assert prior_pop_scale(0.002 + 8 * PRIOR_HIT_RATE, 10_000) == pytest.approx(8.0)
    # 20 of 40 papers find half of anything by chance: a 0.5 hit rate says nothing there
    assert prior_pop_scale(0.5, 40) == 1.0
    assert prior_pop_scale(0.9, 40) == pytest.approx(40.0)


def test_the_scale_multiplies_the_popularity_weights_and_nothing_else():
    base, scaled = Blender.prior(words=True), Blender.prior(words=True, pop_scale=4.0)
    a, b = base.coefficients(), scaled.coefficients()
    for name, w in a.items():
        feature = name.split(":")[0]
        assert b[name] == pytest.approx(w * 4.0 if feature in ("pop", "pop_text") else w)
    assert a["pop:warm"] > 0 and a["pop_text:cold"] > 0 and a["pop:cold"] == 0.0
    assert "pop_scale" not in base.info and scaled.info["pop_scale"] == 4.0
    # a catalog whose words relate no papers keeps the collaborative factors alone
    assert Blender.prior(text=False, pop_scale=4.0).coefficients() == Blender.prior(text=False).coefficients()


def test_the_prior_blend_is_the_text_first_with_popularity_at_half_and_no_offset():
    """`PRIOR` as the blend sees it, every coefficient: the text profiles at 1 in both
    regimes, popularity and its text prediction at half of that (observed popularity none
    for a paper nobody has read), the collaborative signals at 0 unless ALS factorised the
    words too (then cf weighs as the text does), no history-length term and no new-paper
    offset. Without text that relates papers, cf alone; a popularity scale multiplies the
    two popularity weights and is recorded to three digits."""
    def weights(blend: Blender) -> dict:
        return {name: w for name, w in blend.coefficients().items() if w != 0.0}

    text_first = {"tfidf:warm": 1.0, "tfidf:cold": 1.0, "dense:warm": 1.0, "dense:cold": 1.0,
                  "pop:warm": 0.5, "pop_text:warm": 0.5, "pop_text:cold": 0.5}
    base = Blender.prior()
    assert weights(base) == text_first
    assert base.learned is False and base.info == {"reason": "no validation slice"}
    assert weights(Blender.prior(words=True)) == {**text_first, "cf:warm": 1.0, "cf:cold": 1.0}
    assert weights(Blender.prior(text=False)) == {"cf:warm": 1.0, "cf:cold": 1.0}
    assert weights(Blender.prior(words=True, text=False)) == {"cf:warm": 1.0, "cf:cold": 1.0}
    scaled = Blender.prior("few readers", pop_scale=4.1234)
    assert weights(scaled) == pytest.approx({**text_first, "pop:warm": 2.0617, "pop_text:warm": 2.0617,
                                             "pop_text:cold": 2.0617})
    assert scaled.info == {"reason": "few readers", "pop_scale": 4.123} and scaled.learned is False


def _one_paper_fit(crowd: bool):
    """A synthetic catalog of 200 papers in topics, 600 readers with one paper each: drawn
    from a steep popularity over all papers (`crowd`), or uniformly."""
    texts, titles, _, _, _ = synthetic(n_papers=200)
    rng = np.random.default_rng(1)
    if crowd:
        p = 1.0 / np.arange(1, 201) ** 1.5
        items = rng.choice(200, 600, p=p / p.sum())
    else:
        items = rng.integers(0, 200, 600)
    model = HybridModel.fit(texts, np.arange(600), items, n_users=600, titles=titles, config=CONFIG)
    return model, items


def test_one_paper_readers_of_a_crowd_get_its_papers_and_of_a_spread_their_own_topic():
    model, items = _one_paper_fit(crowd=True)
    assert model.stats["validation"]["fallback"] == "too few held-out positives with a history"
    assert model.stats["validation"]["popularity_hit_rate"] > 0.5
    assert model.blender.info["pop_scale"] > 10
    top5 = set(np.argsort(-np.bincount(items, minlength=200), kind="stable")[:5].tolist())
    # a reader of an unread-by-others paper gets the crowd's papers first ...
    lonely = int(np.nonzero(np.bincount(items, minlength=200) == 1)[0][0])
    def listed():
        return {r.index for r in model.recommend([(lonely, "upvote", None)], k=5, with_reasons=False)}

    assert len(top5 & listed()) >= 4
    # ... which the unscaled prior would not have given them (so the scale is what did it)
    model.blender = Blender.prior(words=True)
    assert len(top5 & listed()) <= 2

    spread, _ = _one_paper_fit(crowd=False)
    assert spread.stats["validation"]["popularity_hit_rate"] < 0.1 + PRIOR_HIT_RATE  # chance: 20 of 200
    assert "pop_scale" not in spread.blender.info
    assert list(spread.blender.weights) == list(Blender.prior(words=True).weights)


def test_few_readers_with_many_papers_among_many_with_one_still_get_popularity():
    # 600 one-paper readers of a crowd, and 60 readers of 40 papers: enough held-out papers
    # to judge by, too few readers to learn a blend from (min_task_users 100)
    texts, titles, _, _, topic = synthetic(n_papers=200)
    rng = np.random.default_rng(2)
    p = 1.0 / np.arange(1, 201) ** 1.5
    users = list(range(600))
    items = list(rng.choice(200, 600, p=p / p.sum()))
    for u in range(600, 660):
        users += [u] * 40
        items += list(rng.choice(np.flatnonzero(topic == topic[u % 200]), 40, replace=True))
    model = HybridModel.fit(texts, np.asarray(users), np.asarray(items), n_users=660, titles=titles, config=CONFIG)
    v = model.stats["validation"]
    assert v["eligible_users"] < CONFIG.min_task_users and v["held_out"] >= CONFIG.min_val_positives
    assert v["fallback"] == "too few validation readers, most readers with one paper: prior blend"
    # the slice cut half the 60 to one paper (at most half), standing in for the 600
    assert v["one_paper_share"] == pytest.approx(600 / 660, abs=1e-4) and 25 <= v["one_paper_stand_ins"] <= 30
    assert model.blender.info["pop_scale"] > 10
