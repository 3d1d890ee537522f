"""Reader content profiles: the confidence-weighted (hence time-decayed) mean of the content
of what a reader read and upvoted, in two spaces.

- sparse TF-IDF (word uni+bigrams): sharp, keeps rare terms -- the strongest single content
  signal on CiteULike-a (NDCG@20 warm 0.160, cold-items 0.332, sparse-p1 0.108);
- dense SVD vectors: smoother, matches papers that share no exact term.
Scores are cosines between the profile and each paper.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recommender.core.threads import row_scores


def tfidf_profiles(rows: sp.csr_matrix, X: sp.csr_matrix) -> sp.csr_matrix:
    """(B x n_items) confidence rows, (n_items x n_terms) unit TF-IDF rows -> unit profiles."""
    return normalize(sp.csr_matrix(rows, dtype=np.float32) @ X).astype(np.float32).tocsr()


def dense_profiles(rows: sp.csr_matrix, V: np.ndarray) -> np.ndarray:
    P = np.asarray(sp.csr_matrix(rows, dtype=np.float32) @ V, dtype=np.float32)
    n = np.linalg.norm(P, axis=1, keepdims=True)
    return np.divide(P, n, out=np.zeros_like(P), where=n > 0)


def tfidf_scores(rows: sp.csr_matrix, X: sp.csr_matrix) -> np.ndarray:
    """Cosine of each reader's TF-IDF profile with every paper: dense (B x n_items)."""
    P = tfidf_profiles(rows, X)
    # X (CSR, papers x terms) @ P.T keeps the big matrix in its stored layout: no conversion
    return np.asarray((X @ P.T).T.toarray(), dtype=np.float32)


def dense_scores(rows: sp.csr_matrix, V: np.ndarray) -> np.ndarray:
    return row_scores(V, dense_profiles(rows, V))
