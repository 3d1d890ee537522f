"""Two models on the same readers: the difference in a per-reader metric and how sure it is.

Why paired and per reader: both models rank for the same readers, so each reader gives
one difference, and readers (not their test papers) are the independent units; resampling
readers with their difference (a paired bootstrap) keeps what is shared between the two
lists out of the interval. The nightly promotion gate (training/train_job.py) decides on
it, and the registry keeps it with each version.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class Comparison:
    """candidate - serving over `readers` readers: means, their difference, its interval."""

    readers: int
    candidate: float
    serving: float
    diff: float
    low: float
    high: float
    confidence: float = CONFIDENCE

    def to_dict(self) -> dict:
        return {"readers": self.readers, "candidate": self.candidate, "serving": self.serving,
                "diff": self.diff, "ci_low": self.low, "ci_high": self.high,
                "confidence": self.confidence}

    def describe(self, metric: str) -> str:
        return (f"{metric} {self.candidate:.4f} vs serving {self.serving:.4f}: difference "
                f"{self.diff:+.4f}, {self.confidence:.0%} interval [{self.low:+.4f}, {self.high:+.4f}] "
                f"over {self.readers} readers")


def paired_bootstrap(candidate: np.ndarray, serving: np.ndarray, seed: int = 0,
                     resamples: int = RESAMPLES, confidence: float = CONFIDENCE) -> Comparison:
    """Compare per-reader values (the same readers, in the same order). The interval is
    the percentile interval of the mean difference over `resamples` resamples of readers
    (percentile rather than BCa: it stays defined when every difference is equal)."""
    a = np.asarray(candidate, np.float64)
    b = np.asarray(serving, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"per-reader values of different readers: {a.shape} vs {b.shape}")
    n = len(a)
    if n == 0:
        return Comparison(0, 0.0, 0.0, 0.0, float("nan"), float("nan"), confidence)
    d = a - b
    if n == 1 or np.all(d == d[0]):
        low = high = float(d[0])
    else:
        res = stats.bootstrap((d,), np.mean, n_resamples=resamples, batch=200,
                              vectorized=True, confidence_level=confidence,
                              method="percentile", rng=np.random.default_rng(seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return Comparison(n, float(a.mean()), float(b.mean()), float(d.mean()), low, high, confidence)
