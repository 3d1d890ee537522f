"""Serving one list: the reader's experiment (if any) picks the strategy, or interleaves two;
the list is ranked by the live recommender and logged before it is returned, so every event
that carries its request_id can be attributed to it.

This is the entry point of every list a reader is shown (GET /recommendations, the reader
page, the simulator).
"""
from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recommender.core.ranking import Ranked
from recommender.experiments.assignment import assign_variant, choose_experiment, running_experiments
from recommender.experiments.config import Experiment
from recommender.experiments.interleaving import team_draft
from recommender.serving.live import LiveRecommender
from recommender.storage import Store


@dataclass(frozen=True)
class ServedList:
    request_id: str
    user_id: str
    strategy: str
    rows: np.ndarray
    scores: np.ndarray
    reasons: list[str]
    paper_ids: list[str]
    experiment: str | None = None
    variant: str | None = None
    sources: list[str] | None = None
    model_version: str | None = None
    # The recommender's own list when it is served as ranked (not interleaved): the same
    # object for as long as the recommender keeps a reader's list, so what is derived
    # from it (the service's JSON) can be kept with it.
    ranked: Ranked | None = None


def interleave_label(experiment: Experiment) -> str:
    return "interleave(" + ",".join(v.strategy for v in experiment.variants) + ")"


def serve_list(store: Store, recommender: LiveRecommender, user_id: str, k: int,
               exclude_seen: bool = True,
               as_of: float | None = None, strategy: str | None = None,
               running: Sequence[Experiment] | None = None,
               request_id: str | None = None) -> ServedList:
    """Rank one list for a reader under the running experiments and log it.

    An explicit ``strategy`` (a debug override) bypasses experiments. Otherwise the reader's
    experiment (if any) picks the strategy, or interleaves two. The list is logged with its
    request_id (and, for interleaving, the variant behind each slot) before it is returned,
    so every event that carries the request_id can be attributed to it."""
    request_id = request_id or uuid.uuid4().hex
    exp = None
    if strategy is None:
        if running is None:
            running = running_experiments(store)
        exp = choose_experiment(running, user_id)
    variant_name: str | None = None
    sources: list[str] | None = None
    as_ranked = None
    if exp is not None and exp.kind == "interleave":
        a, b = exp.variants
        _, ranked_a = recommender.recommend(user_id, k, exclude_seen, as_of, a.strategy)
        _, ranked_b = recommender.recommend(user_id, k, exclude_seen, as_of, b.strategy)
        merged, teams = team_draft(ranked_a.rows.tolist(), ranked_b.rows.tolist(), k,
                                   random.Random(request_id))
        pos_a = {int(r): i for i, r in enumerate(ranked_a.rows)}
        pos_b = {int(r): i for i, r in enumerate(ranked_b.rows)}
        scores, reasons = [], []
        for row, team in zip(merged, teams):
            src, pos = (ranked_a, pos_a) if team == 0 else (ranked_b, pos_b)
            scores.append(float(src.scores[pos[row]]))
            reasons.append(src.reasons[pos[row]])
        rows = np.array(merged, dtype=np.int64)
        used = interleave_label(exp)
        variant_name = "interleaved"
        sources = [exp.variants[t].name for t in teams]
        ranked_rows, ranked_scores, ranked_reasons = rows, np.array(scores), reasons
    else:
        if exp is not None:
            v = assign_variant(exp, user_id)
            variant_name, strategy = v.name, v.strategy
        used, ranked = recommender.recommend(user_id, k, exclude_seen, as_of, strategy)
        ranked_rows, ranked_scores, ranked_reasons = ranked.rows, ranked.scores, ranked.reasons
        as_ranked = ranked
    catalog = recommender.catalog  # after ranking: recommend() may have added papers
    paper_ids = [catalog.paper_ids[int(r)] for r in ranked_rows]
    model_version = recommender.model_version
    store.log_served_list(
        request_id, user_id, used, paper_ids, model_version=model_version,
        experiment=exp.name if exp else None, variant=variant_name, sources=sources,
        served_at_unix=as_of,
    )
    return ServedList(request_id=request_id, user_id=user_id, strategy=used, rows=ranked_rows,
                      scores=ranked_scores, reasons=list(ranked_reasons), paper_ids=paper_ids,
                      experiment=exp.name if exp else None, variant=variant_name,
                      sources=sources, model_version=model_version, ranked=as_ranked)
