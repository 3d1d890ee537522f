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
    # float32 throughout, as the artifact stores them
    assert predicted.dtype == pop2.observed.dtype == pop2.predicted.dtype == np.float32


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
    wide = Popularity.from_arrays({k: v.astype(np.float64) for k, v in pop.to_arrays().items()})
    assert {a.dtype for a in (wide.observed, wide.predicted, wide.coef)} == {np.dtype(np.float32)}
    assert text_lengths(["two words", "", None]).tolist() == [2.0, 0.0, 0.0]


def test_the_text_prior_is_the_ridge_regression_over_papers_with_readers():
    """coef = argmin |D c - y|^2 + ridge |c|^2 over the papers with readers or prior
    upvotes, D their TF-IDF rows, log(1 + words) and 1; y their observed log-popularity."""
    rng = np.random.default_rng(0)
    X = sp.random(30, 6, density=0.5, format="csr", dtype=np.float32, random_state=1)
    lengths = rng.integers(0, 40, 30).astype(np.float32)
    mass = np.r_[rng.uniform(1, 50, 20), np.zeros(10)]
    C = sp.csr_matrix(mass[None, :].astype(np.float32))
    prior = np.r_[np.zeros(28), 4.0, 0.0]  # paper 28: upvotes and no reader
    for ridge in (1.0, 5.0):
        pop = Popularity.fit(C, X, lengths, prior, ridge=ridge)
        fit_rows = np.r_[np.arange(20), 28]
        D = np.c_[X.toarray(), np.log1p(lengths), np.ones(30)][fit_rows]
        y = np.log1p(mass + prior)[fit_rows]
        want = np.linalg.solve(D.T @ D + ridge * np.eye(D.shape[1]), D.T @ y)
        np.testing.assert_allclose(pop.coef, want, rtol=1e-3, atol=1e-4)
        full = np.c_[X.toarray(), np.log1p(lengths), np.ones(30)]
        np.testing.assert_allclose(pop.predicted, full @ pop.coef, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(pop.predict(X[25:], lengths[25:]), pop.predicted[25:], rtol=1e-6)
    assert abs(Popularity.fit(C, X, lengths, prior, ridge=50.0).coef).sum() < abs(pop.coef).sum()
    # the ridge where none is given is 1
    np.testing.assert_array_equal(Popularity.fit(C, X, lengths, prior).coef,
                                  Popularity.fit(C, X, lengths, prior, ridge=1.0).coef)


def test_ten_papers_with_readers_are_enough_to_learn_from_and_nine_are_not():
    X = sp.random(30, 6, density=0.5, format="csr", dtype=np.float32, random_state=2)
    lengths = np.full(30, 5.0, np.float32)
    for n, learns in ((10, True), (9, False)):
        C = sp.csr_matrix(np.r_[np.arange(1, n + 1), np.zeros(30 - n)][None, :].astype(np.float32))
        pop = Popularity.fit(C, X, lengths)
        assert pop.coef.any() == learns and pop.predicted.any() == learns
