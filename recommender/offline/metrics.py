"""Ranking metrics of the offline protocol (DESIGN.md), per reader and averaged.

For a reader with test items T and a ranked list L (top k, train items already removed):
- recall@k  = |L ∩ T| / |T|
- ndcg@k    = DCG / IDCG with binary gains, DCG = sum over hits at 1-based rank r of
              1 / log2(r + 1), IDCG over min(k, |T|) hits
- hitrate@k = 1 if |L ∩ T| > 0 else 0
Readers are averaged with equal weight. `|T|` counts all of the reader's test items, so a
test item that can never be ranked (outside the candidates) still counts as a miss.
"""
from __future__ import annotations

import numpy as np

from recommender.core.ranking import ndcg_from_hits


def hits_matrix(top: np.ndarray, relevant: list[set] | list[np.ndarray]) -> np.ndarray:
    """(B, k) ranked item ids (-1 = empty slot), relevant sets -> (B, k) bool hits."""
    top = np.asarray(top)
    out = np.zeros(top.shape, dtype=bool)
    for r in range(top.shape[0]):
        rel = relevant[r]
        rel = rel if isinstance(rel, (set, frozenset)) else set(np.asarray(rel).tolist())
        out[r] = [int(j) in rel for j in top[r]]
    return out


def metrics_from_hits(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-reader recall/ndcg/hitrate from a (B, >=k) hit matrix and |T| per reader."""
    hits = np.asarray(hits, dtype=bool)[:, :k]
    n_relevant = np.asarray(n_relevant, dtype=np.int64)
    n_hit = hits.sum(axis=1)
    return {
        "recall": np.where(n_relevant > 0, n_hit / np.maximum(n_relevant, 1), 0.0),
        "ndcg": ndcg_from_hits(hits, n_relevant, k),
        "hitrate": (n_hit > 0).astype(np.float64),
    }


def recall_at_k(ranked, relevant, k: int = 20) -> float:
    return float(metrics_from_hits(hits_matrix(np.asarray([ranked]), [relevant]), [len(set(relevant))], k)["recall"][0])


def ndcg_at_k(ranked, relevant, k: int = 20) -> float:
    return float(metrics_from_hits(hits_matrix(np.asarray([ranked]), [relevant]), [len(set(relevant))], k)["ndcg"][0])


def hitrate_at_k(ranked, relevant, k: int = 20) -> float:
    return float(metrics_from_hits(hits_matrix(np.asarray([ranked]), [relevant]), [len(set(relevant))], k)["hitrate"][0])


def summarize(per_user: dict[str, np.ndarray], k: int = 20) -> dict[str, float]:
    n = len(per_user["ndcg"])
    return {f"recall@{k}": float(np.mean(per_user["recall"])) if n else 0.0,
            f"ndcg@{k}": float(np.mean(per_user["ndcg"])) if n else 0.0,
            f"hitrate@{k}": float(np.mean(per_user["hitrate"])) if n else 0.0,
            "users": int(n)}
