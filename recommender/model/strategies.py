"""One interface for every ranking strategy backed by a fitted `HybridModel`.

A strategy is a named ranking function: `score(rows)` for a batch of readers' confidence
rows and `recommend(history, k, ...)` for one reader. `popular`, `content`, `collaborative`
and `hybrid` all come from the same fitted model (one artifact), so an experiment can switch
a variant's strategy without loading anything else. (`trending` as of a time lives in
`recommender/serving/trending.py`.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.model.hybrid import STRATEGIES, HybridModel, Recommendation


@dataclass(frozen=True)
class ModelStrategy:
    name: str
    model: HybridModel

    def score(self, rows: sp.csr_matrix) -> np.ndarray:
        return self.model.score_rows(rows, self.name)

    def recommend(self, history, k: int = 20, exclude_seen: bool = True, candidates=None,
                  now: float | None = None, with_reasons: bool = True) -> list[Recommendation]:
        return self.model.recommend(history, k=k, strategy=self.name, exclude_seen=exclude_seen,
                                    candidates=candidates, now=now, with_reasons=with_reasons)


def get_strategy(model: HybridModel, name: str) -> ModelStrategy:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
    if name in ("collaborative",) and model.comps.cf is None:
        raise ValueError("this model was fit without its collaborative component")
    return ModelStrategy(name, model)


def all_strategies(model: HybridModel) -> dict[str, ModelStrategy]:
    return {n: ModelStrategy(n, model) for n in STRATEGIES if n != "collaborative" or model.comps.cf is not None}
