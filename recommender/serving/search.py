"""Search over title + abstract, and papers similar to a paper.

Why the content model's own TF-IDF and not a search engine: the encoder the service already
keeps (vocabulary, idf, SVD basis) gives sharp lexical matches (sparse TF-IDF, word uni- and
bigrams, stop words and accents handled by scikit-learn) and a semantic one (the dense unit
vectors every content score uses) for one query at the cost of a sparse lookup and one
matrix-vector product: well under the 20 ms p99 target over 17,000 papers, with no second
index to keep in step with the catalog.

A result must contain a query term (in its title or abstract); among those the order is

    full-text cosine + TITLE_WEIGHT * title cosine + DENSE_WEIGHT * dense cosine
    + PROFILE_WEIGHT * (reader's content profile . paper)      (signed-in readers only)

so a word of the title finds its paper first, and for a reader with a history ties among
equally good matches go to what they read. Every result says which terms matched.

Similar papers combine the same dense vectors (text) with readership: the share of the
paper's readers who also acted on the other paper (clicks, reads, upvotes).
"""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from recommender.core import reasons
from recommender.core.kinds import INTEREST_KINDS
from recommender.core.ranking import EMPTY_ROWS, Ranked, top_k
from recommender.model.content import NGRAMS, ContentEncoder, paper_text
from recommender.serving.catalog import CatalogSnapshot
from recommender.serving.live import LiveRecommender
from recommender.serving.reader_history import content_profile
from recommender.storage import Store

# List names a served list of these is logged under (impressions.strategy); they are not
# ranking strategies an experiment can pick (see serving/strategies.py).
SEARCH_LIST = "search"
SIMILAR_LIST = "similar"

MAX_QUERY_CHARS = 200
TITLE_WEIGHT = 0.5
DENSE_WEIGHT = 0.3
PROFILE_WEIGHT = 0.15
# Similar papers: text and readership, each in [0, 1].
TEXT_WEIGHT, READERSHIP_WEIGHT = 0.6, 0.4
# Kinds that show interest in a paper: what makes a reader one of its readers.
READERSHIP_KINDS = INTEREST_KINDS


def query_problem(query: str | None) -> str | None:
    """Why a search query cannot be run (None if it can): the one rule for the API and the
    page."""
    if not (query or "").strip():
        return "must not be empty"
    if len(query) > MAX_QUERY_CHARS:
        return f"at most {MAX_QUERY_CHARS} characters"
    return None


@dataclass(frozen=True)
class _Index:
    """One catalog snapshot under one encoder: the words of every paper (hashed, so a word
    only one paper has is found too: the encoder's vocabulary drops those), stored
    term-major (terms x papers) so a query reads only the rows of its own words; and the
    encoder's TF-IDF rows, which name the words two similar papers share."""

    encoder: ContentEncoder
    catalog: CatalogSnapshot
    full: sp.csr_matrix  # papers x encoder terms: TF-IDF of title + abstract
    tf: sp.csr_matrix  # papers x hashed words: sublinear counts of title + abstract
    title_tf: sp.csr_matrix  # papers x hashed words: the title alone
    idf: np.ndarray  # per hashed word, from `tf`
    full_t: sp.csr_matrix  # hashed words x papers, TF-IDF, unit paper rows
    title_t: sp.csr_matrix  # hashed words x papers, titles


# The content encoder's analysis (content._vectorizer: word uni- and bigrams, English stop
# words, accents stripped), with a hash in place of a vocabulary.
WORDS = HashingVectorizer(ngram_range=NGRAMS, stop_words="english", strip_accents="unicode",
                          alternate_sign=False, norm=None, n_features=2**20, dtype=np.float32)


def _sublinear(X: sp.csr_matrix) -> sp.csr_matrix:
    X = X.tocsr().astype(np.float32)
    X.data = 1.0 + np.log(X.data)
    return X


def _weighted(tf: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """Rows of tf * idf, each L2-normalised: TfidfVectorizer's weighting."""
    X = tf.copy()
    X.data = X.data * idf[X.indices]
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ X
    return X.tocsr().astype(np.float32)


class PaperSearch:
    """Keeps a search index in step with the live catalog (rebuilt for a new encoder,
    extended for added or updated papers) and answers queries against it.

    `texts_of(paper_ids)` returns {paper_id: title + abstract} (the catalog snapshot holds
    titles and vectors, not abstracts)."""

    def __init__(self, texts_of: Callable[[list[str]], dict[str, str]]):
        self._texts_of = texts_of
        self._lock = threading.Lock()
        self._index: _Index | None = None

    def index_for(self, catalog: CatalogSnapshot, encoder: ContentEncoder) -> _Index:
        index = self._index
        if index is not None and index.catalog is catalog and index.encoder is encoder:
            return index
        with self._lock:
            index = self._index
            if index is None or index.catalog is not catalog or index.encoder is not encoder:
                index = self._index = self._build(index, catalog, encoder)
        return index

    def _build(self, old: _Index | None, catalog: CatalogSnapshot,
               encoder: ContentEncoder) -> _Index:
        n = catalog.size
        if old is not None and old.encoder is encoder and old.catalog.size <= n:
            # Rows only ever append; an updated paper gets a new title object in place.
            prev = old.catalog
            rows = ([i for i in range(prev.size) if catalog.titles[i] is not prev.titles[i]]
                    + list(range(prev.size, n)))
            full, tf, title_tf = _grown(old.full, n), _grown(old.tf, n), _grown(old.title_tf, n)
        else:
            rows = list(range(n))
            full = sp.csr_matrix((n, len(encoder.terms)), dtype=np.float32)
            tf = sp.csr_matrix((n, WORDS.n_features), dtype=np.float32)
            title_tf = tf
        if rows:
            ids = [catalog.paper_ids[i] for i in rows]
            found = self._texts_of(ids)
            texts = [found.get(p, catalog.titles[i]) for p, i in zip(ids, rows)]
            where = np.array(rows, dtype=np.int64)
            full = _replace_rows(full, where, encoder.tfidf(texts))
            tf = _replace_rows(tf, where, _sublinear(WORDS.transform(texts)))
            title_tf = _replace_rows(title_tf, where,
                                     _sublinear(WORDS.transform([catalog.titles[i] for i in rows])))
        df = np.bincount(tf.indices, minlength=WORDS.n_features)
        idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
        return _Index(encoder, catalog, full, tf, title_tf, idf,
                      _weighted(tf, idf).T.tocsr(), _weighted(title_tf, idf).T.tocsr())

    # -- search --------------------------------------------------------------------------
    def search(self, catalog: CatalogSnapshot, encoder: ContentEncoder, query: str, k: int,
               profile: np.ndarray | None = None,
               excluded: np.ndarray | None = None) -> Ranked:
        """The k best matches of `query`; `profile` (a unit content profile) personalises
        the order, `excluded` rows are left out."""
        index = self.index_for(catalog, encoder)
        q = _weighted(_sublinear(WORDS.transform([query])), index.idf)
        terms, weights = q.indices, q.data
        n = catalog.size
        if len(terms) == 0:
            return Ranked(EMPTY_ROWS, np.zeros(0), [])
        full = _term_scores(index.full_t, terms, weights, n)
        title = _term_scores(index.title_t, terms, weights, n)
        matches = (full > 0) | (title > 0)
        dense_q = encoder.encode([query])[0]
        scores = full + TITLE_WEIGHT * title + DENSE_WEIGHT * (catalog.vectors @ dense_q)
        personal = None
        if profile is not None and np.any(profile):
            personal = PROFILE_WEIGHT * np.maximum(catalog.vectors @ profile, 0.0)
            scores = scores + personal
        scores = np.where(matches, scores, -np.inf)
        rows = top_k(scores, k, excluded)
        words = _query_words(query)
        why = [self._match_reason(index, int(r), words, title[r] > 0,
                                  personal is not None and personal[r] >= 0.5 * PROFILE_WEIGHT)
               for r in rows]
        return Ranked(rows, scores[rows], why)

    @staticmethod
    def _match_reason(index: _Index, row: int, words: list[tuple[int, str]], in_title: bool,
                      personal: bool) -> str:
        found = [w for col, w in words if index.tf[row, col] > 0]
        return reasons.search_match(found[:3], in_title, personal)

    # -- similar papers ------------------------------------------------------------------
    def similar(self, catalog: CatalogSnapshot, encoder: ContentEncoder, row: int, k: int,
                readership: tuple[int, dict[str, int]] = (0, {})) -> Ranked:
        """Papers near catalog row `row` in text (dense cosine) and readership
        (`readership` = the paper's reader count and, per other paper, how many of those
        readers acted on it too: Store.co_readers)."""
        index = self.index_for(catalog, encoder)
        vectors = catalog.vectors
        text = np.clip(vectors @ vectors[row], 0.0, 1.0)
        readers, shared = readership
        read = np.zeros(catalog.size)
        counts = np.zeros(catalog.size, dtype=np.int64)
        for pid, c in shared.items():
            r = catalog.row_of.get(pid)
            if r is not None:
                counts[r] = c
                # shrunk toward 0 for a paper with few readers: 1 of 1 is not 100%
                read[r] = c / (readers + 2.0)
        scores = TEXT_WEIGHT * text + READERSHIP_WEIGHT * read
        rows = top_k(scores, k, np.array([row], dtype=np.int64))
        why = []
        for r in rows:
            r = int(r)
            words = _shared_terms(index.full, encoder.terms, row, r)
            by_readers = counts[r] > 0 and READERSHIP_WEIGHT * read[r] >= TEXT_WEIGHT * text[r] / 4
            why.append(reasons.similar_paper(words, int(counts[r]) if by_readers else 0))
        return Ranked(rows, scores[rows], why)


def _query_words(query: str) -> list[tuple[int, str]]:
    """The query's single words as analysed (stop words gone), with their hashed column."""
    seen: dict[str, int] = {}
    for token in WORDS.build_analyzer()(query):
        if " " not in token and token not in seen:
            seen[token] = int(WORDS.transform([token]).indices[0])
    return [(col, w) for w, col in seen.items()]


def _grown(M: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """M with empty rows appended up to n rows."""
    if M.shape[0] >= n:
        return M
    return sp.vstack([M, sp.csr_matrix((n - M.shape[0], M.shape[1]), dtype=M.dtype)], format="csr")


def _term_scores(by_term: sp.csr_matrix, terms: np.ndarray, weights: np.ndarray,
                 n: int) -> np.ndarray:
    """weights . by_term[terms]: one dense score per paper from the query terms' rows."""
    sub = by_term[terms]
    out = np.asarray(sub.T @ weights, dtype=np.float64).ravel()
    return out[:n] if len(out) >= n else np.pad(out, (0, n - len(out)))


def _replace_rows(M: sp.csr_matrix, rows: np.ndarray, fresh: sp.csr_matrix) -> sp.csr_matrix:
    """M with `rows` replaced by the rows of `fresh` (same column count)."""
    keep = np.ones(M.shape[0], dtype=bool)
    keep[rows] = False
    kept = sp.diags(keep.astype(np.float32)) @ M
    placed = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, np.arange(len(rows)))),
                           shape=(M.shape[0], len(rows))) @ fresh
    out = (kept + placed).tocsr()
    out.sort_indices()
    return out.astype(np.float32)


def _shared_terms(X: sp.csr_matrix, vocabulary: list[str], a: int, b: int,
                  n: int = 2) -> list[str]:
    """The single words that weigh most in both papers' TF-IDF rows (the text reason)."""
    ra, rb = X.getrow(a), X.getrow(b)
    common, ia, ib = np.intersect1d(ra.indices, rb.indices, return_indices=True)
    if len(common) == 0:
        return []
    order = np.argsort(-(ra.data[ia] * rb.data[ib]), kind="stable")
    words = [vocabulary[int(t)] for t in common[order]]
    return [w for w in words if " " not in w][:n]


def texts_from_store(store: Store) -> Callable[[list[str]], dict[str, str]]:
    """`texts_of` for PaperSearch: title + abstract of stored papers, as the encoder saw them."""
    def texts_of(paper_ids: list[str]) -> dict[str, str]:
        papers = store.get_papers(paper_ids)
        return {pid: paper_text(p["title"], p.get("abstract")) for pid, p in papers.items()}
    return texts_of


@dataclass(frozen=True)
class ServedSearch:
    """A search or similar list as served: the request_id it is logged under (None when
    no reader is named: nobody to attribute it to) and the ranked rows."""

    request_id: str | None
    ranked: Ranked


def serve_search(store: Store, recommender: LiveRecommender, search: PaperSearch, query: str,
                 k: int, user_id: str | None = None) -> ServedSearch:
    """Search, personalised by the reader's content profile when a reader with a history
    is named, and logged as a served list of that reader (so what they open from it is
    attributed to the search, not to an earlier recommendation list)."""
    recommender.refresh()
    catalog = recommender.catalog
    encoder = catalog.encoder
    profile = None
    if user_id is not None:
        history = recommender.history(user_id)
        if not history.is_empty:
            profile = content_profile(history, catalog.vectors, time.time())
    ranked = search.search(catalog, encoder, query, k, profile=profile)
    return ServedSearch(_log(store, recommender, user_id, SEARCH_LIST, catalog, ranked), ranked)


def serve_similar(store: Store, recommender: LiveRecommender, search: PaperSearch,
                  paper_id: str, k: int, user_id: str | None = None) -> ServedSearch | None:
    """Papers similar to `paper_id` (None if the catalog has no such paper)."""
    recommender.refresh()
    catalog = recommender.catalog
    encoder = catalog.encoder
    row = catalog.row_of.get(paper_id)
    if row is None:
        return None
    readership = store.co_readers(paper_id, READERSHIP_KINDS)
    ranked = search.similar(catalog, encoder, row, k, readership)
    return ServedSearch(_log(store, recommender, user_id, SIMILAR_LIST, catalog, ranked), ranked)


def _log(store: Store, recommender: LiveRecommender, user_id, name, catalog, ranked) -> str | None:
    if user_id is None:
        return None
    request_id = uuid.uuid4().hex
    store.log_served_list(request_id, user_id, name,
                          [catalog.paper_ids[int(r)] for r in ranked.rows],
                          model_version=recommender.model_version)
    return request_id
