"""How many ALS factors (recommender/model/factors.py): the data size's rule, or fewer where
the validation slice says so beyond noise. Generated readers of a few topics whose reading
within a topic follows its popularity: with a tiny regularisation and a small confidence
scale, ALS at the rule's size fits noise and a quarter of it ranks the held-out papers far
better; with a large confidence scale the rule's size ranks best and stays, and once half
of it loses beyond noise a quarter is not tried."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.model.collaborative import CollaborativeModel, CollaborativeParams
from recommender.model.factors import MIN_FACTORS, PROBE_SWEEPS, choose_factors, slice_ndcg, smaller_sizes
from recommender.model.hybrid import HybridModel
from tests.helpers import CONFIG


def topical(topics: int = 2, readers: int = 800, papers: int = 400, per: int = 20, seed: int = 0):
    """(readers' papers less three each, the three held out, each reader's topic)."""
    rng = np.random.default_rng(seed)
    size = papers // topics
    p = 1.0 / np.arange(1, size + 1)
    p /= p.sum()
    topic = rng.integers(topics, size=readers)
    rows, cols = [], []
    for u in range(readers):
        for j in rng.choice(size, per, replace=False, p=p):
            rows.append(u)
            cols.append(int(topic[u]) * size + int(j))
    C = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(readers, papers)).tolil()
    V = sp.lil_matrix(C.shape, dtype=np.float32)
    for u in range(readers):
        for j in rng.choice(C.rows[u], 3, replace=False):
            C[u, j] = 0
            V[u, j] = 1
    C = C.tocsr()
    C.eliminate_zeros()
    return C, V.tocsr(), topic


def test_the_sizes_tried_are_a_half_and_a_quarter_never_below_the_floor():
    assert smaller_sizes(512) == [256, 128]
    assert smaller_sizes(152) == [72, 32]
    assert smaller_sizes(40) == [16]
    assert smaller_sizes(MIN_FACTORS) == []


@pytest.mark.parametrize("alpha,expect_fewer", [(10.0, True), (100.0, False)])
def test_fewer_factors_are_taken_only_where_the_slice_ranks_better_with_them(alpha, expect_fewer):
    C, V, _ = topical()
    params = CollaborativeParams(factors=128, regularization=0.01, alpha=alpha, iterations=15, seed=0)
    fitted = CollaborativeModel.fit(C, params)
    factors, record = choose_factors(fitted, C, V, np.arange(C.shape[0]), params, None, 15)
    assert record["rule"] == 128 and record["chosen"] == factors
    if expect_fewer:
        assert set(record["ndcg"]) == {"128", "64", "32"}
        assert factors == 32 and record["ndcg"]["32"] > record["ndcg"]["128"] + 0.1
    else:
        # the half lost beyond noise, so the quarter was not fit
        assert set(record["ndcg"]) == {"128", "64"}
        assert factors == 128 and record["ndcg"]["128"] > record["ndcg"]["64"]


def test_a_fit_keeps_the_chosen_size_in_its_model_its_refit_and_its_manifest():
    C, V, topic = topical()
    C = C + V  # the fit carves its own slice
    users, items = C.nonzero()
    words = ["graph node edge", "gene cell protein"]
    texts = [f"{words[j // 200]} paper {j}" for j in range(C.shape[1])]
    config = replace(CONFIG, als_regularization=0.01, als_alpha=10.0, max_val_users=800)
    model = HybridModel.fit(texts, users, items, config=config)
    record = model.stats["validation"]["als_factors"]
    assert record["chosen"] < record["rule"]
    assert model.comps.cf.factors == record["chosen"] == model.config.factors
    again = model.refit(users, items)
    assert again.comps.cf.factors == record["chosen"]
    # a size fixed by the caller is kept and not searched
    fixed = HybridModel.fit(texts, users, items, config=replace(config, factors=48))
    assert fixed.comps.cf.factors == 48 and "als_factors" not in fixed.stats["validation"]


def _spy_fits(monkeypatch) -> list[dict]:
    """Record how each ALS fit is asked for (the fits themselves run)."""
    calls: list[dict] = []
    real = CollaborativeModel.fit.__func__

    def spy(cls, C, params, iterations=None, side=None, **kwargs):
        calls.append({"factors": params.factors, "iterations": iterations, "side": side})
        return real(cls, C, params, iterations=iterations, side=side, **kwargs)

    monkeypatch.setattr(CollaborativeModel, "fit", classmethod(spy))
    return calls


@pytest.mark.parametrize("sweeps,probe", [(5, 5), (None, PROBE_SWEEPS), (15, PROBE_SWEEPS)])
def test_each_smaller_size_is_fit_with_the_papers_words_and_at_most_the_probes_sweeps(monkeypatch, sweeps, probe):
    """The smaller sizes' ALS gets the rule's size's sweeps (`sweeps`, or the settings'
    15 where the caller gives none), but no more than `PROBE_SWEEPS`, and the same word
    rows (`side`) as the rule's size had."""
    C, V, _ = topical(readers=300, papers=200)
    side = sp.csr_matrix((np.random.default_rng(1).random((6, 200)) < 0.2).astype(np.float32))
    params = CollaborativeParams(factors=64, regularization=0.01, alpha=10.0, iterations=15, seed=0)
    fitted = CollaborativeModel.fit(C, params, side=side)
    calls = _spy_fits(monkeypatch)
    choose_factors(fitted, C, V, np.arange(C.shape[0]), params, side, sweeps)
    assert [c["factors"] for c in calls] in ([32], [32, 16])
    for c in calls:
        assert c["iterations"] == probe and c["side"] is side


def test_a_smaller_size_that_wins_within_noise_leaves_the_rule(monkeypatch):
    """The rule's size is kept unless the best smaller one beats it beyond noise
    (`tuning.beyond_noise`): here the half scores a hair above the rule on the slice, by
    far less than two standard errors of the per-reader difference."""
    C, V, _ = topical(readers=300, papers=200)
    params = CollaborativeParams(factors=64, regularization=1.0, alpha=30.0, iterations=8, seed=0)
    fitted = CollaborativeModel.fit(C, params)
    per_reader = np.random.default_rng(2).random(C.shape[0])
    swing = np.random.default_rng(3).normal(0.0, 0.1, C.shape[0])
    hair = swing - swing.mean() + 0.001  # readers gain or lose ~0.1 each: +0.001 on average
    from recommender.model import factors as factors_module
    monkeypatch.setattr(factors_module, "slice_ndcg",
                        lambda cf, *a: per_reader + (hair if cf.factors == 32 else 0.0))
    factors, record = choose_factors(fitted, C, V, np.arange(C.shape[0]), params, None, 8)
    assert record["ndcg"]["32"] > record["ndcg"]["64"]
    assert factors == 64 == record["chosen"]
    # a lead of 0.001 that every reader shares is beyond noise: the half is taken
    monkeypatch.setattr(factors_module, "slice_ndcg",
                        lambda cf, *a: per_reader + (0.001 if cf.factors == 32 else 0.0))
    assert choose_factors(fitted, C, V, np.arange(C.shape[0]), params, None, 8)[0] == 32


def test_the_slice_is_ranked_as_a_list_is_over_papers_with_readers_less_the_readers_own():
    """`slice_ndcg`, written out: each reader folded in from their training row, the papers
    ranked by the item factors, their own papers and papers nobody read in the slice left
    out, NDCG@20 of the held-out papers. Here half the catalog has no reader and its held-out
    papers can never be found."""
    C, V, _ = topical(readers=200, papers=200)
    C = C.tolil()
    C[:, 150:] = 0  # papers 150-199: nobody read them in the slice
    C = C.tocsr()
    C.eliminate_zeros()
    params = CollaborativeParams(factors=32, regularization=1.0, alpha=10.0, iterations=8, seed=0)
    cf = CollaborativeModel.fit(C, params)
    # the unread papers' factors as strong as the most read ones': only the mask keeps them out
    cf.item_factors[150:] = cf.item_factors[:50] * 3.0
    readers = np.arange(0, 200, 3)
    read = np.asarray(C.sum(axis=0)).ravel() > 0
    got = slice_ndcg(cf, C, V, readers, read)
    assert not np.allclose(got, slice_ndcg(cf, C, V, readers, np.ones(200, bool)))
    rows = C[readers]
    S = cf.fold_in(rows, cg_steps=6) @ cf.item_factors.T
    want = []
    for i, u in enumerate(readers):
        s = S[i].astype(np.float64)
        s[~read] = -np.inf
        s[rows[i].indices] = -np.inf
        top = np.argsort(-s, kind="stable")[:20]
        held = set(V[u].indices)
        dcg = sum(1.0 / np.log2(r + 2) for r, j in enumerate(top) if j in held and np.isfinite(s[j]))
        ideal = sum(1.0 / np.log2(r + 2) for r in range(min(len(held), 20)))
        want.append(dcg / ideal if ideal else 0.0)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert got.shape == (len(readers),) and 0 < got.mean() < 1


def test_every_size_is_judged_on_the_papers_with_readers():
    """What `choose_factors` records for the rule's size is `slice_ndcg` over the papers
    someone read in the slice (read once is read), whatever the others' factors say."""
    C, V, _ = topical(readers=200, papers=200)
    C = C.tolil()
    C[:, 150:] = 0
    C = C.tocsr()
    C.eliminate_zeros()
    counts = np.asarray(C.sum(axis=0)).ravel()
    assert (counts == 1).any()  # papers read once are papers with readers
    params = CollaborativeParams(factors=32, regularization=1.0, alpha=10.0, iterations=8, seed=0)
    fitted = CollaborativeModel.fit(C, params)
    fitted.item_factors[150:] = fitted.item_factors[:50] * 3.0
    fitted.item_factors[counts == 1] *= 5.0
    readers = np.arange(C.shape[0])
    _, record = choose_factors(fitted, C, V, readers, params, None, 8)
    for mask, same in ((counts > 0, True), (counts > 1, False), (np.ones(200, bool), False)):
        figure = round(float(slice_ndcg(fitted, C, V, readers, mask).mean()), 4)
        assert (record["ndcg"]["32"] == figure) is same
