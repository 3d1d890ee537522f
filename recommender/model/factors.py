"""How many ALS factors: the data size's rule, or fewer where the validation slice says so.

`collaborative.default_params` sizes ALS by the data (1.25 sqrt(pairs), 16 to 512: more
factors where there is more to explain, the cap a cost every list pays). A rule is not a
choice, and a data set can want fewer: on MovieLens warm's *test* split ALS alone peaked at
128 factors (0.2662 NDCG@20) against the rule's 248 (0.2649). So once the validation fit
has its ALS at the rule's size, ALS at half and then at a quarter of it is fit on the same
slice with the same settings, and a smaller size is taken only when it ranks the slice's
held-out papers better beyond noise (`tuning.beyond_noise`, the rule every setting follows
that the slice sees only weakly). Larger than the rule is not tried: the cap is a stated
cost. Compared on the papers with readers in the slice, where the factors are ALS's own (a
new paper's come from its words or its neighbours, `cold_start.py`).

What it costs: the smaller fits get at most `PROBE_SWEEPS` sweeps (a smaller model
converges sooner, and one that wins with fewer sweeps than the rule's wins with a
handicap; the bias is toward keeping the rule), and the quarter is not tried once the half
loses beyond noise. On CiteULike-a
warm the half (248 factors: 0.1404 against 0.1526 at 504) lost and the search took 5.2 s
(13.9 s with 15 sweeps at both sizes); on MovieLens, where neither lost, 1.4 s.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from recommender.core.threads import row_scores
from recommender.model.collaborative import CollaborativeModel, CollaborativeParams
from recommender.model.tuning import beyond_noise, validation_ndcg

# the smaller sizes tried, as shares of the rule's, the fewest factors a model gets, and
# the most sweeps a smaller size's trial gets
SHARES = (0.5, 0.25)
MIN_FACTORS = 16
PROBE_SWEEPS = 8


def smaller_sizes(factors: int) -> list[int]:
    """The sizes tried below `factors`, largest first (multiples of 8, at least MIN_FACTORS)."""
    sizes = {max(MIN_FACTORS, int(factors * s) // 8 * 8) for s in SHARES}
    return sorted((f for f in sizes if f < factors), reverse=True)


def slice_ndcg(cf: CollaborativeModel, C_fit: sp.csr_matrix, V_pos: sp.csr_matrix, readers: np.ndarray,
               read: np.ndarray) -> np.ndarray:
    """Each validation reader's NDCG@20 by ALS alone, folded in as a list folds them in,
    among the papers with readers (`read`)."""
    rows = C_fit[readers]
    S = row_scores(cf.item_factors, cf.fold_in(rows, cg_steps=6))
    return validation_ndcg(S, rows, V_pos[readers], allowed=read, per_reader=True)


def choose_factors(fitted: CollaborativeModel, C_fit: sp.csr_matrix, V_pos: sp.csr_matrix, readers: np.ndarray,
                   params: CollaborativeParams, side: sp.csr_matrix | None,
                   sweeps: int | None) -> tuple[int, dict]:
    """The factors to keep: `fitted`'s (ALS at the rule's size on C_fit, `sweeps` sweeps), or
    a smaller size whose ALS, fit with the same settings and at most `PROBE_SWEEPS` sweeps,
    beats it beyond noise on the readers' held-out papers.
    Returns (factors, a record of each size's NDCG and the choice)."""
    read = np.asarray(C_fit.sum(axis=0)).ravel() > 0
    base = slice_ndcg(fitted, C_fit, V_pos, readers, read)
    trials = {int(fitted.factors): base}
    probe = int(min(sweeps or params.iterations, PROBE_SWEEPS))
    for f in smaller_sizes(int(fitted.factors)):
        cf = CollaborativeModel.fit(C_fit, replace(params, factors=f), iterations=probe, side=side)
        trials[f] = slice_ndcg(cf, C_fit, V_pos, readers, read)
        if beyond_noise(base, trials[f]):  # fewer still would lose too
            break
    best = max(trials, key=lambda f: trials[f].mean())
    chosen = best if best != fitted.factors and beyond_noise(trials[best], base) else int(fitted.factors)
    return chosen, {"rule": int(fitted.factors), "chosen": chosen,
                    "ndcg": {str(f): round(float(v.mean()), 4) for f, v in trials.items()}}
