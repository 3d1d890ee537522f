"""Reader-level statistics for A/B experiments.

Why reader level: one reader's impressions are not independent (a keen reader clicks on
many lists, a skimmer on none), so treating each impression as a trial understates the
variance and flags far more than 5% of A/A tests. The unit of randomisation is the reader,
so the unit of analysis is the reader:

- Per-reader metrics (clicks per reader, upvotes per reader) are means of per-reader
  counts: Welch's t-test and its 95% interval (scipy.stats.ttest_ind, equal_var=False).
- Per-impression rates (clicks / impressions) are ratios of sums over readers. Their
  variance comes from the delta method at the reader level: each reader i contributes the
  linearised value R + (x_i - R n_i) / mean(n), whose mean is exactly R = sum x / sum n and
  whose variance is the delta-method variance. Welch's test on these values is the usual
  cluster-robust test of a difference in ratios (Deng et al., "Applying the delta method in
  metric analytics", 2018). When every reader saw the same number of items it reduces to
  the t-test on per-reader rates.
- Sample-ratio mismatch: a chi-square goodness-of-fit test of readers per variant against
  the configured weights (scipy.stats.chisquare); p < 0.001 means the assignment or the
  logging is broken and the comparison should not be trusted.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
SRM_ALPHA = 0.001
# name -> (numerator count, denominator count or None for 'per reader')
METRICS: dict[str, tuple[str, str | None]] = {
    "click_rate": ("clicks", "impressions"),
    "upvote_rate": ("upvotes", "impressions"),
    "clicks_per_reader": ("clicks", None),
    "upvotes_per_reader": ("upvotes", None),
}
PRIMARY_METRIC = "click_rate"
COUNTS = ("lists", "impressions", "clicks", "reads", "upvotes")


@dataclass
class ReaderOutcomes:
    """One variant's readers, one entry per reader (same order in every array)."""

    lists: np.ndarray
    impressions: np.ndarray  # items shown
    clicks: np.ndarray
    reads: np.ndarray
    upvotes: np.ndarray
    # Order in which the readers joined the experiment, counted over all its variants
    # (None when unknown): lets a benchmark ask "what if it had stopped after m readers?".
    arrival: np.ndarray | None = None

    def __post_init__(self):
        for name in COUNTS:
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))

    @property
    def readers(self) -> int:
        return int(len(self.impressions))

    @classmethod
    def empty(cls) -> "ReaderOutcomes":
        z = np.zeros(0)
        return cls(z, z, z, z, z)

    def first(self, m: int) -> "ReaderOutcomes":
        """Only the readers among the first m to join the experiment (in any variant): the
        experiment as if it had stopped enrolling after m readers."""
        if self.arrival is None:
            raise ValueError("arrival order unknown")
        keep = self.arrival < m
        return ReaderOutcomes(*(getattr(self, c)[keep] for c in COUNTS),
                              arrival=self.arrival[keep])


@dataclass(frozen=True)
class Difference:
    metric: str
    control: float | None
    treatment: float | None
    diff: float | None  # treatment - control
    ci_low: float | None
    ci_high: float | None
    relative: float | None  # diff / control
    p_value: float | None
    significant: bool

    def to_dict(self) -> dict:
        return asdict(self)


def per_reader_values(o: ReaderOutcomes, metric: str) -> np.ndarray | None:
    """The per-reader values whose mean is the metric (linearised for ratio metrics)."""
    num_name, den_name = METRICS[metric]
    num = getattr(o, num_name)
    if den_name is None:
        return num
    den = getattr(o, den_name)
    if len(den) == 0 or den.sum() <= 0:
        return None
    ratio = num.sum() / den.sum()
    return ratio + (num - ratio * den) / den.mean()


def metric_value(o: ReaderOutcomes, metric: str) -> float | None:
    num_name, den_name = METRICS[metric]
    num = getattr(o, num_name)
    if den_name is None:
        return float(num.mean()) if len(num) else None
    den = getattr(o, den_name).sum()
    return float(num.sum() / den) if den > 0 else None


def welch(treatment: np.ndarray, control: np.ndarray,
          confidence: float = 0.95) -> tuple[float, float, float, float] | None:
    """(difference of means, CI low, CI high, two-sided p) by Welch's t-test, or None when
    there is too little data (fewer than 2 readers in an arm, or no variance at all)."""
    t = np.asarray(treatment, dtype=np.float64)
    c = np.asarray(control, dtype=np.float64)
    if len(t) < 2 or len(c) < 2:
        return None
    diff = float(t.mean() - c.mean())
    if t.var(ddof=1) + c.var(ddof=1) == 0:
        return None
    res = stats.ttest_ind(t, c, equal_var=False)
    ci = res.confidence_interval(confidence_level=confidence)
    return diff, float(ci.low), float(ci.high), float(res.pvalue)


def compare(treatment: ReaderOutcomes, control: ReaderOutcomes, metric: str,
            alpha: float = ALPHA) -> Difference:
    c_val, t_val = metric_value(control, metric), metric_value(treatment, metric)
    t_vals, c_vals = per_reader_values(treatment, metric), per_reader_values(control, metric)
    result = None if t_vals is None or c_vals is None else welch(t_vals, c_vals, 1 - alpha)
    if result is None:
        diff = None if c_val is None or t_val is None else t_val - c_val
        return Difference(metric, c_val, t_val, diff, None, None,
                          diff / c_val if diff is not None and c_val else None, None, False)
    diff, low, high, p = result
    return Difference(metric, c_val, t_val, diff, low, high,
                      diff / c_val if c_val else None, p, bool(p < alpha))


@dataclass(frozen=True)
class SrmResult:
    observed: list[int]
    expected: list[float]
    chi2: float | None
    p_value: float | None
    mismatch: bool


def srm_test(observed: Sequence[int], weights: Sequence[float],
             alpha: float = SRM_ALPHA) -> SrmResult:
    """Chi-square goodness of fit of readers per variant against the weights."""
    obs = np.asarray(observed, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if len(w) and np.isfinite(w.max()) and w.max() > 0:
        w = w / w.max()  # huge weights (1e308) must not sum to inf and silence the check
    keep = w > 0  # a zero-weight variant should get nobody; a reader there is a mismatch
    total = obs.sum()
    expected = total * w / w.sum()
    if total == 0:
        return SrmResult([int(x) for x in obs], expected.tolist(), None, None, False)
    if np.any(obs[~keep] > 0):
        return SrmResult([int(x) for x in obs], expected.tolist(), None, 0.0, True)
    res = stats.chisquare(obs[keep], expected[keep])
    p = float(res.pvalue)
    return SrmResult([int(x) for x in obs], expected.tolist(), float(res.statistic), p,
                     bool(p < alpha))


# A reader's lists count up to the pooled 99th percentile of lists per reader (at least
# VOLUME_CAP_MIN): beyond it, all of the reader's counts are scaled down to that many lists.
VOLUME_QUANTILE = 0.99
VOLUME_CAP_MIN = 10


def cap_volume(outcomes: Mapping[str, ReaderOutcomes]) -> tuple[dict[str, ReaderOutcomes], dict]:
    """Bound the weight of readers with abnormal volume (a bot, a script, a flood of lists
    for one reader id) by capping, the usual remedy in online experiments (Kohavi, Tang &
    Xu, "Trustworthy Online Controlled Experiments", ch. 3 and 22): one reader with 600
    lists would otherwise carry a variant's per-item rates. The cap is pooled over all
    variants, so both arms are treated alike and the comparison stays fair; a capped
    reader keeps their own rates (every count scaled by the same factor)."""
    pooled = np.concatenate([o.lists for o in outcomes.values()] or [np.zeros(0)])
    if len(pooled) == 0:
        return dict(outcomes), {"max_lists_per_reader": None, "readers_capped": {}}
    cap = float(max(VOLUME_CAP_MIN, np.ceil(np.quantile(pooled, VOLUME_QUANTILE))))
    capped, counts = {}, {}
    for name, o in outcomes.items():
        scale = np.where(o.lists > cap, cap / np.maximum(o.lists, 1.0), 1.0)
        counts[name] = int((o.lists > cap).sum())
        capped[name] = ReaderOutcomes(*(getattr(o, c) * scale for c in COUNTS),
                                      arrival=o.arrival)
    return capped, {"max_lists_per_reader": cap, "readers_capped": counts}


def summarize(o: ReaderOutcomes) -> dict:
    out = {"readers": o.readers}
    out.update({c: int(getattr(o, c).sum()) for c in COUNTS})
    for metric in METRICS:
        out[metric] = metric_value(o, metric)
    return out


def ab_report(outcomes: Mapping[str, ReaderOutcomes], control: str,
              weights: Mapping[str, float], alpha: float = ALPHA) -> dict:
    """Per variant: counts, rates, and (for each non-control variant) the difference to
    control on every metric with its interval and p-value; plus the SRM check."""
    names = list(weights)
    variants = []
    for name in names:
        o = outcomes.get(name) or ReaderOutcomes.empty()
        row = {"name": name, "weight": float(weights[name]), "is_control": name == control,
               **summarize(o), "vs_control": None}
        if name != control:
            row["vs_control"] = {m: compare(o, outcomes.get(control) or ReaderOutcomes.empty(),
                                            m, alpha).to_dict() for m in METRICS}
        variants.append(row)
    srm = srm_test([(outcomes.get(n) or ReaderOutcomes.empty()).readers for n in names],
                   [weights[n] for n in names])
    return {"alpha": alpha, "primary_metric": PRIMARY_METRIC, "variants": variants,
            "srm": asdict(srm)}
