"""Papers' words as extra rows of the matrix ALS factorises (collective factorisation).

Each term that occurs in at least `min_df` papers becomes a pseudo-reader who "read" every
paper containing it, with confidence `weight` x the term's TF-IDF in that paper. ALS then
places a paper where both its readers and its words put it: a paper with three readers is
no longer positioned by three data points alone, and a paper with none gets a position from
its words in the same fit, instead of only from the content-neighbour map afterwards.

Measured (ALS alone, 504 factors, weight 1, terms in >= 5 papers: 17,325 rows, 448k
entries): CiteULike-a warm NDCG@20 0.2834 -> 0.3072, cold-items 0.0057 -> 0.3589 (own
factors; 0.3735 half own, half content-neighbour map), at about 1.5x the ALS fit time. A
rarer-term cut (>= 20 papers, 4,181 rows) fits faster but loses most of the cold-start gain
(0.3122). Whether a data set wants its words in the factorisation, and how strongly, is
chosen on the validation slice (`tuning.choose`); weight 0 leaves ALS as it was.

A paper added after the fit gets its factors by folding its word column into the fitted
term factors (`CollaborativeModel.fold_in_items`): the same least squares ALS solves for it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass
class TextRows:
    terms: np.ndarray  # (n_rows,) int64 column indices of the encoder's vocabulary
    weight: float

    @classmethod
    def fit(cls, X: sp.csr_matrix, weight: float, min_df: int = 5) -> "TextRows":
        df = np.diff(sp.csc_matrix(X).indptr)
        return cls(np.nonzero(df >= min_df)[0].astype(np.int64), float(weight))

    @property
    def active(self) -> bool:
        return self.weight > 0 and len(self.terms) > 0

    def matrix(self, X: sp.csr_matrix) -> sp.csr_matrix:
        """(n_rows x n_papers) pseudo-reader rows for papers X (papers x vocabulary)."""
        return self.columns(X).T.tocsr()

    def columns(self, X: sp.csr_matrix) -> sp.csr_matrix:
        """(n_papers x n_rows): each paper's confidences from the pseudo-readers."""
        M = sp.csr_matrix(X, dtype=np.float32)[:, self.terms] * np.float32(self.weight)
        M.eliminate_zeros()
        return sp.csr_matrix(M, dtype=np.float32)

    def params(self) -> dict:
        return {"weight": self.weight, "rows": int(len(self.terms))}

    def to_arrays(self, prefix: str = "text_rows_") -> dict[str, np.ndarray]:
        return {f"{prefix}terms": self.terms.astype(np.int32)}

    @classmethod
    def from_arrays(cls, arrays, params: dict, prefix: str = "text_rows_") -> "TextRows":
        return cls(np.asarray(arrays[f"{prefix}terms"], np.int64), float(params.get("weight", 0.0)))
