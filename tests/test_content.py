"""The papers' content vectors (recommender/model/content.py): which terms the vocabulary
keeps and when, how many SVD dimensions a catalog gets, what a text encodes to, the terms
that explain a vector, and the arrays a model is saved as."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.model.content import NO_TERM, ContentEncoder, paper_text, relates_papers


def catalog(n: int, seed: int = 0, words: int = 400, length: int = 30) -> list[str]:
    """n texts of `length` words drawn from `words` made-up words (none a stop word)."""
    rng = np.random.default_rng(seed)
    return [" ".join(f"w{k}" for k in rng.integers(0, words, length)) for _ in range(n)]


def terms_of(texts: list[str]) -> set[str]:
    return set(ContentEncoder.fit(texts, dim=4).terms)


def test_a_papers_text_is_its_title_then_its_abstract():
    assert paper_text("A title", "an abstract") == "A title an abstract"
    assert paper_text(None, "an abstract") == "an abstract"
    assert paper_text("A title", None) == "A title"
    assert paper_text(None, None) == paper_text("", "") == ""


def test_the_vectorizer_drops_stop_words_strips_accents_and_keeps_bigrams():
    texts = ["the café of quantum networks", "quantum networks for the café", "graph networks"] * 2
    terms = terms_of(texts)
    assert "the" not in terms and "of" not in terms  # English stop words
    assert "cafe" in terms and "café" not in terms  # accents stripped
    assert "quantum networks" in terms  # word bigrams


def test_a_repeated_word_counts_sublinearly():
    """sublinear_tf: a word 10 times in a text weighs 1 + ln 10 against 1 for a word once
    (before the row's L2 norm, which scales both alike)."""
    enc = ContentEncoder.fit(["alpha beta", "beta gamma", "alpha gamma"], dim=1)
    row = enc.tfidf([" ".join(["alpha"] * 10 + ["beta"])]).toarray()[0]
    a, b = enc.terms.index("alpha"), enc.terms.index("beta")
    ratio = (row[a] / enc.idf[a]) / (row[b] / enc.idf[b])
    assert ratio == pytest.approx(1 + np.log(10), rel=1e-5)
    assert row.dtype == np.float32


def test_catalogs_of_fifty_papers_or_more_keep_terms_in_two_to_half_of_them():
    """Under 50 papers every term is kept; from 50 on, those in at least 2 papers and at most
    half of them (25 of 50: kept; 26: not)."""
    def texts(n: int) -> list[str]:
        out = []
        for p in range(n):
            words = [f"own{p}"]  # in one paper
            words += ["pair"] if p < 2 else []  # in two
            words += ["half"] if p < n // 2 else []  # in exactly half
            words += ["majority"] if p <= n // 2 else []  # in one more than half
            out.append(" ".join(words))
        return out

    small = terms_of(texts(49))
    assert {"own0", "pair", "half", "majority"} <= small
    large = terms_of(texts(50))
    assert {"pair", "half"} <= large and "own0" not in large and "majority" not in large


def test_a_catalog_whose_every_term_is_in_one_paper_keeps_every_term():
    """Titles that are ids: no term is in two papers, so the 2-to-half rule leaves none and
    the vocabulary falls back to every term."""
    texts = [f"id{p}x" for p in range(60)]
    enc, X = ContentEncoder.fit_transform(texts, dim=4)
    assert set(enc.terms) == set(texts) and X.nnz == 60


def test_a_catalog_without_a_word_has_the_one_term_no_text_yields():
    texts = ["the and of", "", "a an the"] * 20
    enc, X = ContentEncoder.fit_transform(texts)
    assert enc.terms == [NO_TERM] and X.nnz == 0 and X.shape == (60, 1)
    assert not relates_papers(X)
    np.testing.assert_array_equal(enc.encode(["the", "anything at all"]), np.zeros((2, enc.dim), np.float32))


@pytest.mark.parametrize("df, expected", [((1,), False), ((2,), True), ((5,), True), ((6,), False),
                                          ((10,), False), ((1, 6, 10), False), ((1, 3), True)])
def test_papers_are_related_by_a_term_in_two_to_half_of_them(df, expected):
    # 10 papers and 40 terms: term t is in the first df[t] papers (the others in none)
    dense = np.zeros((10, 40), np.float32)
    for t, d in enumerate(df):
        dense[:d, t] = 1.0
    assert relates_papers(sp.csr_matrix(dense)) is expected


def test_in_three_papers_a_term_in_two_relates_them():
    # half of 3 rounds down to 1: the floor of 2 keeps a pair of papers related
    assert relates_papers(sp.csr_matrix(np.array([[1, 0], [1, 0], [0, 0]], np.float32)))
    # and in five papers a term in three is in more than half of them
    assert not relates_papers(sp.csr_matrix(np.array([[1], [1], [1], [0], [0]], np.float32)))


def test_the_dimensions_are_the_asked_for_at_most_terms_less_one_and_papers_less_one():
    many = catalog(200)
    assert ContentEncoder.fit(many).dim == ContentEncoder.fit_transform(many)[0].dim == 128  # the default
    assert ContentEncoder.fit(many, dim=3).dim == 3
    assert ContentEncoder.fit(catalog(5), dim=128).dim == 4  # papers less one
    few_terms = ["alpha beta gamma", "alpha beta", "beta gamma", "gamma alpha"] * 3  # 6 terms with bigrams
    enc = ContentEncoder.fit(few_terms, dim=128)
    assert enc.dim == len(enc.terms) - 1 and enc.components.shape == (enc.dim, len(enc.terms))


def test_a_catalog_of_one_paper_or_one_term_gets_the_first_term_as_its_one_dimension():
    one_paper, X = ContentEncoder.fit_transform(["alpha beta"])
    np.testing.assert_array_equal(one_paper.components, np.eye(1, X.shape[1], dtype=np.float32))
    assert one_paper.components.dtype == np.float32
    one_term = ContentEncoder.fit(["alpha", "alpha", "alpha"])
    assert one_term.terms == ["alpha"]
    np.testing.assert_array_equal(one_term.components, np.ones((1, 1), np.float32))


def test_two_papers_get_an_svd_direction_that_encodes_both():
    """Two papers: one dimension, from the SVD (not the first term alone), so both papers
    encode to a unit vector."""
    texts = ["alpha beta", "beta gamma"]
    enc, X = ContentEncoder.fit_transform(texts)
    assert enc.dim == 1
    vectors = enc.encode(texts)
    np.testing.assert_allclose(np.abs(vectors), 1.0, rtol=1e-6)


def test_two_terms_get_an_svd_direction_that_encodes_both():
    """Two terms (60 papers: alpha alone, beta alone, both with a word of the paper's own
    between them, so no bigram or filler word is in two papers): one dimension, from the
    SVD, so each term alone encodes to a unit vector."""
    texts = (["alpha"] * 10 + ["beta"] * 10 + [f"alpha z{p}x beta" for p in range(20)]
             + [f"filler{p}x" for p in range(20)])
    enc = ContentEncoder.fit(texts)
    assert enc.terms == ["alpha", "beta"] and enc.dim == 1
    np.testing.assert_allclose(np.abs(enc.encode(["alpha", "beta"])), 1.0, rtol=1e-6)


def test_the_fit_returns_the_encoder_and_the_rows_it_would_compute_again():
    texts = catalog(80, seed=1)
    enc, X = ContentEncoder.fit_transform(texts, dim=8)
    assert X.dtype == np.float32 and sp.isspmatrix_csr(X)
    np.testing.assert_allclose(X.toarray(), enc.tfidf(texts).toarray(), rtol=1e-6)
    # `fit` is the same fit (seed 0, dim as given): the same SVD basis to the bit
    again = ContentEncoder.fit(texts, dim=8)
    assert isinstance(again, ContentEncoder) and again.terms == enc.terms
    np.testing.assert_array_equal(again.components, enc.components)
    assert again.idf.dtype == np.float32 and again.components.dtype == np.float32
    other = ContentEncoder.fit(texts, dim=8, seed=1)
    assert not np.array_equal(other.components, enc.components)


def test_texts_with_the_same_words_fit_without_a_warning():
    """Every paper with the same words: the TF-IDF rows have no variance and scikit-learn's
    explained-variance ratio divides 0 by 0, which must not reach `paperrec evaluate`'s output."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc = ContentEncoder.fit(["alpha beta gamma"] * 60, dim=2)
    assert enc.dim == 2


def test_encoded_texts_are_unit_vectors_or_zero_and_none_is_an_empty_block():
    enc = ContentEncoder.fit(catalog(80, seed=2), dim=8)
    empty = enc.encode([])
    assert empty.shape == (0, 8) and empty.dtype == np.float32
    vectors = enc.encode(["w1 w2 w3", "nothing known here", "w7"])
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), [1.0, 0.0, 1.0], atol=1e-6)
    assert np.isfinite(vectors).all()


def test_the_top_terms_are_the_heaviest_positive_ones():
    enc = ContentEncoder(terms=["a", "b", "c", "d"], idf=np.ones(4, np.float32),
                         components=np.eye(4, dtype=np.float32))
    assert enc.top_terms(np.array([0.1, 0.5, 0.2, 0.3], np.float32)) == ["b", "d", "c"]  # 3 by default
    assert enc.top_terms(np.array([0.1, 0.5, -0.2, 0.3], np.float32), n=4) == ["b", "d", "a"]
    assert enc.top_terms(np.array([0.0, 0.5, 0.0, 0.0], np.float32)) == ["b"]  # 0 explains nothing


def test_the_encoder_comes_back_from_its_arrays_in_float32():
    enc = ContentEncoder.fit(catalog(60, seed=3), dim=5)
    arrays = enc.to_arrays()
    assert arrays["content_terms"].dtype.kind == "U"
    loaded = ContentEncoder.from_arrays({k: (v.astype(np.float64) if v.dtype.kind == "f" else v)
                                         for k, v in arrays.items()})
    assert loaded.terms == enc.terms and all(type(t) is str for t in loaded.terms)
    assert loaded.idf.dtype == np.float32 and loaded.components.dtype == np.float32
    texts = ["w1 w5 w9", "w300"]
    np.testing.assert_array_equal(loaded.encode(texts), enc.encode(texts))
