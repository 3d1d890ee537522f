"""Reader content profiles of the model (recommender/model/profiles.py): the confidence-
weighted mean of what a reader read, in TF-IDF and in the dense space, scored by cosine."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.model.content import ContentEncoder
from recommender.model.profiles import dense_profiles, dense_scores, tfidf_profiles, tfidf_scores

TEXTS = ["graph network node edge", "graph clustering spectral", "protein genome sequence",
         "genome expression cell", "image pixel camera"]


@pytest.fixture(scope="module")
def space():
    encoder, X = ContentEncoder.fit_transform(TEXTS, dim=3)
    return X, encoder.encode_tfidf(X)


def test_profiles_are_unit_and_empty_rows_stay_zero(space):
    X, V = space
    rows = sp.csr_matrix(np.array([[1.0, 2.0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float32))
    P = tfidf_profiles(rows, X)
    assert np.linalg.norm(P[0].toarray()) == pytest.approx(1.0) and P[1].nnz == 0
    D = dense_profiles(rows, V)
    assert np.linalg.norm(D[0]) == pytest.approx(1.0) and not D[1].any()


def test_a_graph_reader_scores_graph_papers_highest(space):
    X, V = space
    rows = sp.csr_matrix(np.array([[1.0, 0, 0, 0, 0]], dtype=np.float32))
    for scores in (tfidf_scores(rows, X)[0], dense_scores(rows, V)[0]):
        assert scores.shape == (5,) and np.argsort(-scores)[:2].tolist() == [0, 1]
        assert np.all(scores <= 1.0 + 1e-6)


def test_confidences_weigh_the_profile(space):
    X, _ = space
    graph_heavy = sp.csr_matrix(np.array([[5.0, 0, 1.0, 0, 0]], dtype=np.float32))
    genome_heavy = sp.csr_matrix(np.array([[1.0, 0, 5.0, 0, 0]], dtype=np.float32))
    assert tfidf_scores(graph_heavy, X)[0, 1] > tfidf_scores(genome_heavy, X)[0, 1]
    assert tfidf_scores(genome_heavy, X)[0, 3] > tfidf_scores(graph_heavy, X)[0, 3]


def test_the_scores_are_the_cosines_written_out(space):
    """Each reader's profile is the confidence-weighted sum of their papers' rows, scaled to
    unit length, and a paper's score is its dot product with it: written out densely in
    float64 for both spaces, readers with no paper scoring 0 everywhere."""
    X, V = space
    # confidences that sum to more than 1, none, and less than 1 (a profile shorter than a unit)
    rows = sp.csr_matrix(np.array([[2.0, 0, 0.5, 0, 0], [0, 0, 0, 0, 0], [0, 1.0, 0, 3.0, 1.0],
                                   [0, 0, 0, 0, 0.3]], np.float32))
    for scores, M in ((tfidf_scores(rows, X), X.toarray().astype(np.float64)),
                      (dense_scores(rows, V), V.astype(np.float64))):
        profile = rows.toarray().astype(np.float64) @ M
        norms = np.linalg.norm(profile, axis=1, keepdims=True)
        profile = np.divide(profile, norms, out=np.zeros_like(profile), where=norms > 0)
        assert scores.dtype == np.float32 and scores.shape == (4, 5)
        np.testing.assert_allclose(scores, profile @ M.T, rtol=1e-5, atol=1e-6)
        assert not scores[1].any()
    P = tfidf_profiles(rows, X)
    assert P.dtype == np.float32 and sp.isspmatrix_csr(P)
    assert dense_profiles(rows, V).dtype == np.float32
