"""The offline protocol of DESIGN.md, for any strategy of `HybridModel`.

For each reader with at least one test item: rank the candidates (all papers when none are
given) minus the reader's train items, take the top k, and score recall/ndcg/hitrate@k
(`metrics.py`). Scoring is vectorised over batches of readers; the model is fit on the train
events only (any hyperparameter it chooses comes from a validation slice of those).
"""
from __future__ import annotations

import time
from contextlib import nullcontext

import numpy as np
import scipy.sparse as sp

from recommender.core.ranking import top_k
from recommender.core.threads import side_by_side
from recommender.model.confidence import confidence_matrix
from recommender.offline.dataset import Interactions, Papers
from recommender.model.hybrid import STRATEGIES, HybridConfig, HybridModel
from recommender.model.reading_order import reading_rows
from recommender.model.content import paper_text
from recommender.offline.metrics import metrics_from_hits, summarize


# Readers x papers ranked at once (side_by_side): two batches of 500 over CiteULike-a's
# 16,980 papers (each ~350 MB of feature arrays); a larger catalog ranks one batch at a time,
# as before, so the peak memory does not double with it.
CELLS_IN_FLIGHT = 20_000_000


def fit_model(papers: Papers, train: Interactions, strategies=STRATEGIES, config: HybridConfig | None = None,
              progress=None) -> HybridModel:
    texts = [paper_text(t, a) for t, a in zip(papers.titles, papers.abstracts)]
    return HybridModel.fit(texts, train.users, train.items, train.kinds, train.ts, n_users=train.n_users,
                           titles=papers.titles, prior_upvotes=papers.upvotes, config=config,
                           strategies=strategies, progress=progress, published=papers.published_ts)


def evaluate_model(model: HybridModel, strategy: str, train: Interactions, test: Interactions,
                   candidates: np.ndarray | None = None, k: int = 20, batch: int = 500,
                   progress=None) -> dict:
    """recall/ndcg/hitrate@k averaged over readers with test papers (per_reader_metrics)."""
    _, per = per_reader_metrics(model, strategy, train, test, candidates, k, batch, progress)
    return summarize(per, k)


def per_reader_metrics(model: HybridModel, strategy: str, train: Interactions, test: Interactions,
                       candidates: np.ndarray | None = None, k: int = 20, batch: int = 500,
                       progress=None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(reader indices with test papers, ascending; {"recall", "ndcg", "hitrate"}: one
    value per reader): what a paired comparison of two models on the same readers needs.
    The hybrid ranks them in the form a serving model has where that is cheaper for this
    many readers (`HybridModel.in_list_form_for`: EASE through XᵀK, built for the time of
    the evaluation), so the figures are those of the lists it would serve."""
    n_users = max(train.n_users, test.n_users)
    n_items = model.n_items
    C, seen = confidence_matrix(train.users, train.items, train.kinds, train.ts, (n_users, n_items),
                                now=model.now, config=model.conf_config)
    T = sp.csr_matrix((np.ones(len(test), bool), (test.users, test.items)), shape=(n_users, n_items))
    T.sum_duplicates()
    users = np.nonzero(np.diff(T.indptr) > 0)[0]
    # each reader's latest papers and windows, as a live history gives them (`reading_order`)
    reading = (reading_rows(train.users, train.items, train.ts, C, model.config.reading_latest,
                            model.config.reading_windows)
               if strategy == "hybrid" and model.comps.order is not None else None)
    per = {"recall": [], "ndcg": [], "hitrate": []}

    def one_batch(ub: np.ndarray) -> dict[str, np.ndarray]:
        S = model.score_rows(C[ub], strategy, reading=None if reading is None else reading.take(ub))
        top = top_k(S, k, seen[ub], candidates)
        Tb = T[ub]
        hits = np.zeros(top.shape, bool)
        for r in range(len(ub)):
            rel = Tb.indices[Tb.indptr[r]:Tb.indptr[r + 1]]
            hits[r] = np.isin(top[r], rel) & (top[r] >= 0)
        return metrics_from_hits(hits, np.diff(Tb.indptr), k)

    batches = [users[s:s + batch] for s in range(0, len(users), batch)]
    width = CELLS_IN_FLIGHT // max(1, min(batch, len(users)) * n_items)
    with model.in_list_form_for(C[users]) if strategy == "hybrid" else nullcontext():
        for ub, m in zip(batches, side_by_side(one_batch, batches, width)):
            for key in per:
                per[key].append(m[key])
            if progress is not None:
                progress(len(ub))
    return users, {key: np.concatenate(v) if v else np.zeros(0) for key, v in per.items()}


def evaluate_split(papers: Papers, train: Interactions, test: Interactions, candidates: np.ndarray | None = None,
                   strategies=STRATEGIES, k: int = 20, config: HybridConfig | None = None,
                   log=None) -> dict[str, dict]:
    """Fit each strategy on `train` (timed separately) and evaluate it on `test`."""
    results = {}
    for name in strategies:
        if name not in STRATEGIES:
            raise ValueError(f"unknown strategy {name!r}; expected some of {','.join(STRATEGIES)}")
        t0 = time.perf_counter()
        model = fit_model(papers, train, strategies=(name,), config=config)
        fit_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        res = evaluate_model(model, name, train, test, candidates, k)
        res["fit_s"] = round(fit_s, 2)
        res["eval_s"] = round(time.perf_counter() - t1, 2)
        if name == "hybrid":
            res["blend"] = model.manifest()["blend"]
            res["validation"] = model.stats.get("validation")
        res["tuning"] = model.stats.get("tuning")
        results[name] = res
        if log is not None:
            log(f"{name}: ndcg@{k}={res[f'ndcg@{k}']:.4f} recall@{k}={res[f'recall@{k}']:.4f} "
                f"fit {fit_s:.1f}s eval {res['eval_s']:.1f}s")
    return results
