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
from recommender.model.factors import MIN_FACTORS, choose_factors, smaller_sizes
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
