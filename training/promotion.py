"""The promotion gate: whether tonight's candidate replaces the serving model, and why.

Its own module (out of train_job.py) because it is the decision the nightly job exists to
make, and `make mutation` mutates it on its own: the rest of the job (fitting, writing,
registering) is exercised by the slow lifecycle tests, the rule here by exact cases.

The rule (figures from recommender/offline/comparison.py, candidate minus serving on the
same readers): `--force`, or no usable model serving, promotes whatever the figures. With
fewer readers than `min_readers` (PAPERREC_PROMOTION_MIN_READERS, default 30) it is too
few to judge and the serving model stays. Otherwise the candidate -- the newest data -- is
promoted unless it is surely worse: its whole interval below -TOLERANCE. Two equally good
models (an interval around 0) therefore promote the candidate.
"""
from __future__ import annotations

from recommender.core.settings import PROMOTION_MIN_READERS
from recommender.offline.comparison import Comparison

METRIC = "ndcg@20"
# A difference smaller than this does not matter: a candidate is kept back only when its
# whole interval lies below -TOLERANCE.
TOLERANCE = 0.005
# Fewer readers in the comparison than this: too few to judge, the serving model stays.
MIN_READERS = PROMOTION_MIN_READERS


def decide(comparison: Comparison | None, active_row: dict | None, active_problem: str | None,
           force: bool, min_readers: int = MIN_READERS) -> tuple[bool, str]:
    """Whether the candidate serves, and why (see the module docstring)."""
    if force:
        return True, "forced"
    if active_row is None:
        return True, "no model was serving"
    if active_problem:
        return True, active_problem
    kept = active_row["version"]
    readers = comparison.readers if comparison else 0
    if readers < min_readers:
        return False, f"too few readers to judge: {readers} < {min_readers}; kept {kept}"
    if comparison.high < -TOLERANCE:
        return False, f"surely worse: {comparison.describe(METRIC)}; kept {kept}"
    return True, f"not surely worse: {comparison.describe(METRIC)}"
