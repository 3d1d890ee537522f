"""Popularity (recommender/model/popularity.py): observed engagement plus prior upvotes, and
a prediction from a paper's text that gives a new paper a prior."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.model.content import ContentEncoder
from recommender.model.popularity import Popularity, text_lengths

TEXTS = [f"graph neural network study {i}" if i % 2 else f"protein folding genome study {i}"
         for i in range(40)]


@pytest.fixture(scope="module")
def fitted():
    encoder, X = ContentEncoder.fit_transform(TEXTS, dim=8)
    # readers engage with the graph papers only
    C = sp.csr_matrix(np.array([[3.0 if i % 2 else 0.0 for i in range(40)]] * 4, dtype=np.float32))
    prior = np.zeros(40)
    prior[0] = 9.0
    return encoder, X, Popularity.fit(C, X, text_lengths(TEXTS), prior)


def test_observed_is_log_mass_plus_prior_upvotes(fitted):
    _, _, pop = fitted
    assert pop.observed[1] == pytest.approx(np.log1p(12.0))
    assert pop.observed[0] == pytest.approx(np.log1p(9.0)) and pop.observed[2] == 0.0


def test_a_new_paper_gets_a_prior_from_its_text(fitted):
    encoder, _, pop = fitted
    graph, genome = encoder.tfidf(["graph neural network study x"]), encoder.tfidf(["protein genome study x"])
    lengths = text_lengths(["graph neural network study x", "protein genome study x"])
    predicted = pop.predict(sp.vstack([graph, genome]).tocsr(), lengths)
    assert predicted[0] > predicted[1]
    n = len(pop.observed)
    pop2 = Popularity(pop.observed.copy(), pop.predicted.copy(), pop.coef.copy())
    pop2.add_items(graph, lengths[:1])
    assert len(pop2.observed) == n + 1 and pop2.observed[-1] == 0.0
    assert pop2.predicted[-1] == pytest.approx(predicted[0])


def test_too_few_papers_with_readers_predict_nothing():
    encoder, X = ContentEncoder.fit_transform(TEXTS, dim=8)
    C = sp.csr_matrix((1, 40), dtype=np.float32)
    pop = Popularity.fit(C, X, text_lengths(TEXTS))
    assert not pop.coef.any() and not pop.predicted.any()


def test_arrays_round_trip(fitted):
    _, _, pop = fitted
    again = Popularity.from_arrays(pop.to_arrays())
    for a, b in ((pop.observed, again.observed), (pop.predicted, again.predicted), (pop.coef, again.coef)):
        np.testing.assert_array_equal(a, b)
    assert text_lengths(["two words", "", None]).tolist() == [2.0, 0.0, 0.0]
