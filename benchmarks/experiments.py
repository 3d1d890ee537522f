"""Benchmark: do the experiment statistics hold up against readers whose tastes we know?

    python -m benchmarks.experiments            # the full run (a few minutes, 2 cores)
    python -m benchmarks.experiments --quick    # a smoke run with small numbers

Every experiment is a real one: a fresh SQLite store (a copy of the shipped catalog), the
live recommender, the experiment created and stored, every list served through
`serve_list` (hash assignment, team-draft interleaving, logging with request_id), every
event stored, and the numbers read back through the report's attribution queries and
statistics code. Only the readers are synthetic (training/simulator.py).

(a) A/A: both variants run the same strategy. The share of experiments flagged at p < 0.05
    on the primary metric (click rate, reader-level test) must lie in [2%, 8%]. For
    contrast, the share a naive per-impression test (chi-square on clicks vs items) flags.
(b) A/B: a taste-aware strategy (`content`) against `popular`, at a stated number of
    readers: detected (p < 0.05, in the right direction) in at least 80% of the runs.
(c) The same comparison by team-draft interleaving. Power is measured at growing reader
    counts by stopping each run's enrolment early (readers are independent, so the first m
    readers of a run are an experiment of m readers); the readers needed for 80% power are
    compared with the A/B test's.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # two worker processes on two cores
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import multiprocessing as mp  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from recommender.experiments import interleaving  # noqa: E402
from recommender.experiments import statistics as ab_stats  # noqa: E402
from recommender.experiments.report import interleave_credits, reader_outcomes  # noqa: E402
from recommender.experiments.config import Experiment, validate_config  # noqa: E402
from recommender.serving import strategies  # noqa: E402
from recommender.storage.sqlite import raw  # noqa: E402
from training.simulator import (DomainBackend, ReaderModel, Readers, TasteSpace,  # noqa: E402
                                   default_start, simulate)

TASTE_AWARE, BASELINE = "content", "popular"
TARGET_POWER = 0.8
ALPHA = 0.05


@dataclass(frozen=True)
class Plan:
    aa_runs: int = 200
    ab_runs: int = 100
    il_runs: int = 100
    aa_readers: int = 600
    ab_readers: int = 1500
    il_readers: int = 1000
    days: int = 5
    k: int = 10
    slots: int = 4
    seed: int = 20240408
    workers: int = 2


# -- worker side ------------------------------------------------------------------------------
_W: dict = {}


def _init_worker(template: str, workdir: str) -> None:
    from recommender.serving.live import LiveRecommender
    from recommender.storage import open_store

    store = open_store(template)
    rec = LiveRecommender(store)
    store.close()
    encoder = rec.encoder
    # The reason text of a trending/popular item depends only on the paper; computing it
    # (a sort over the vocabulary per item) dominates serving time, so the benchmark
    # memoises it per paper. Rankings are untouched.
    plain = encoder.top_terms
    memo: dict = {}

    def top_terms(vector, n=3):
        key = (vector.tobytes(), n)
        if key not in memo:
            memo[key] = plain(vector, n)
        return memo[key]

    encoder.top_terms = top_terms
    _W.update(template=Path(template), workdir=Path(workdir), encoder=encoder,
              space=TasteSpace.from_jsonl())


def _run_one(task: tuple) -> dict:
    """One experiment in a fresh store; returns per-reader outcomes in arrival order."""
    from recommender.serving.live import LiveRecommender
    from recommender.storage import open_store

    kind, idx, n_readers, plan = task
    path = _W["workdir"] / f"{kind}-{idx}-{os.getpid()}.db"
    shutil.copy(_W["template"], path)
    store = open_store(path)
    try:
        rec = LiveRecommender(store, encoder=_W["encoder"])
        if kind == "aa":
            cfg = {"name": f"aa-{idx}", "control": "a",
                   "variants": [{"name": "a", "strategy": TASTE_AWARE},
                                {"name": "b", "strategy": TASTE_AWARE}]}
        else:
            cfg = {"name": f"{kind}-{idx}", "kind": "interleave" if kind == "il" else "ab",
                   "control": BASELINE,
                   "variants": [{"name": BASELINE, "strategy": BASELINE},
                                {"name": TASTE_AWARE, "strategy": TASTE_AWARE}]}
        exp = validate_config(cfg, strategies.NAMES)
        store.save_experiment(exp.name, exp.kind, exp.to_config(), exp.control)
        rng = np.random.default_rng([plan.seed, {"aa": 1, "ab": 2, "il": 3}[kind], idx])
        readers = Readers.sample(n_readers, _W["space"], rng, prefix=f"{kind}{idx}")
        simulate(DomainBackend(store, rec), readers, _W["space"], plan.days, plan.k,
                 default_start(plan.days), rng, slots_per_day=plan.slots)
        store.stop_experiment(exp.name)
        lists = store.experiment_lists(exp.name)
        events = store.experiment_events(exp.name)
        out = {"kind": kind, "idx": idx}
        if kind == "il":
            _, ca, cb = interleave_credits(lists, events, Experiment.from_row(
                store.get_experiment(exp.name)))
            out["credits"] = (ca, cb)  # (baseline, taste-aware) per reader, arrival order
        else:
            out["outcomes"] = reader_outcomes(lists, events)
        return out
    finally:
        store.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


# -- statistics over runs ----------------------------------------------------------------------

def naive_impression_p(a: ab_stats.ReaderOutcomes, b: ab_stats.ReaderOutcomes) -> float:
    """What a per-impression test says: chi-square on (clicks, non-clicks) x variant."""
    table = np.array([[a.clicks.sum(), a.impressions.sum() - a.clicks.sum()],
                      [b.clicks.sum(), b.impressions.sum() - b.clicks.sum()]])
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def ab_detected(outcomes: dict, m: int | None = None) -> bool:
    c, t = outcomes.get(BASELINE), outcomes.get(TASTE_AWARE)
    if c is None or t is None:
        return False
    if m is not None:
        c, t = c.first(m), t.first(m)
    d = ab_stats.compare(t, c, ab_stats.PRIMARY_METRIC)
    return bool(d.significant and d.diff > 0)


def il_detected(credits: tuple, m: int | None = None, paired: bool = False) -> bool:
    ca, cb = credits
    if m is not None:
        ca, cb = ca[:m], cb[:m]
    res = interleaving.compare(ca, cb)
    if paired:
        return (res.paired_p_value is not None and res.paired_p_value < ALPHA
                and res.mean_diff > 0)
    return res.p_value is not None and res.p_value < ALPHA and res.wins_b > res.wins_a


def il_detected_paired(credits: tuple, m: int | None = None) -> bool:
    return il_detected(credits, m, paired=True)


def readers_for_power(runs: list, detect, n_max: int, steps: int = 40) -> tuple[int | None, list]:
    """Smallest reader count on a grid at which the share of runs detecting the effect
    reaches TARGET_POWER (stopping each run's enrolment early); and the curve."""
    grid = sorted({max(20, int(round(n_max * (i + 1) / steps))) for i in range(steps)})
    curve = [(m, float(np.mean([detect(r, m) for r in runs]))) for m in grid]
    needed = next((m for m, p in curve if p >= TARGET_POWER), None)
    return needed, curve


def binom_ci(x: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(x, n).proportion_ci(0.95, method="exact")
    return float(ci.low), float(ci.high)


def run(plan: Plan, out=sys.stdout) -> dict:
    t0 = time.time()
    from recommender.storage import open_store
    from training.seeding import seed

    shm = Path("/dev/shm")
    workdir = Path(tempfile.mkdtemp(prefix="bench-exp-", dir=shm if shm.is_dir() else None))
    try:
        template = workdir / "template.db"
        s = open_store(template)
        seed(s, demo=False)  # the shipped catalog; no readers yet
        s.close()
        raw.checkpoint(template)
        tasks = ([("ab", i, plan.ab_readers, plan) for i in range(plan.ab_runs)]
                 + [("il", i, plan.il_readers, plan) for i in range(plan.il_runs)]
                 + [("aa", i, plan.aa_readers, plan) for i in range(plan.aa_runs)])
        results: dict[str, list] = {"aa": [], "ab": [], "il": []}
        ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        with ctx.Pool(plan.workers, initializer=_init_worker,
                      initargs=(str(template), str(workdir))) as pool:
            done = 0
            for r in pool.imap_unordered(_run_one, tasks, chunksize=1):
                results[r["kind"]].append(r)
                done += 1
                if done % 25 == 0 or done == len(tasks):
                    print(f"  {done}/{len(tasks)} experiments simulated "
                          f"({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    # (a) A/A
    aa = results["aa"]
    aa_p = [ab_stats.compare(r["outcomes"]["b"], r["outcomes"]["a"],
                             ab_stats.PRIMARY_METRIC).p_value for r in aa]
    aa_flag = int(sum(p is not None and p < ALPHA for p in aa_p))
    aa_naive = int(sum(naive_impression_p(r["outcomes"]["a"], r["outcomes"]["b"]) < ALPHA
                       for r in aa))
    srm_flag = int(sum(ab_stats.srm_test([r["outcomes"]["a"].readers, r["outcomes"]["b"].readers],
                                         [1, 1]).mismatch for r in aa))
    # (b) A/B at the stated number of readers, and the power curve
    ab = [r["outcomes"] for r in results["ab"]]
    ab_power = float(np.mean([ab_detected(o) for o in ab])) if ab else float("nan")
    lifts = [ab_stats.compare(o[TASTE_AWARE], o[BASELINE], ab_stats.PRIMARY_METRIC).relative
             for o in ab]
    ab_needed, ab_curve = readers_for_power(ab, ab_detected, plan.ab_readers)
    # (c) interleaving
    il = [r["credits"] for r in results["il"]]
    il_power = float(np.mean([il_detected(c) for c in il])) if il else float("nan")
    il_needed, il_curve = readers_for_power(il, il_detected, plan.il_readers)
    ilp_power = float(np.mean([il_detected_paired(c) for c in il])) if il else float("nan")
    ilp_needed, ilp_curve = readers_for_power(il, il_detected_paired, plan.il_readers)
    elapsed = time.time() - t0

    ratio = il_needed / ab_needed if il_needed and ab_needed else None
    ratio_p = ilp_needed / ab_needed if ilp_needed and ab_needed else None

    def ratio_text(r, needed, n_max):
        if r:
            return f"{r:.2f}"
        if needed is None and ab_needed:
            return f"> {n_max / ab_needed:.2f}"
        return "n/a"

    lo, hi = binom_ci(aa_flag, len(aa)) if aa else (float("nan"),) * 2
    rows = [
        ("(a) A/A: share flagged at p<0.05 (reader level)",
         f"{aa_flag}/{len(aa)} = {aa_flag / max(len(aa), 1):.1%}  [95% CI {lo:.1%}-{hi:.1%}]",
         "in [2%, 8%]", "PASS" if 0.02 <= aa_flag / max(len(aa), 1) <= 0.08 else "FAIL"),
        ("    same A/A, naive per-impression chi-square",
         f"{aa_naive}/{len(aa)} = {aa_naive / max(len(aa), 1):.1%}", "(for contrast)", ""),
        ("    same A/A, sample-ratio mismatch flagged (p<0.001)",
         f"{srm_flag}/{len(aa)}", "(about 0)", ""),
        (f"(b) A/B {TASTE_AWARE} vs {BASELINE}, {plan.ab_readers:,} readers: detected",
         f"{ab_power:.0%} of {len(ab)} runs (median lift in click rate "
         f"{np.median(lifts):+.1%})", ">= 80%", "PASS" if ab_power >= TARGET_POWER else "FAIL"),
        ("    A/B readers needed for 80% power",
         f"{ab_needed:,}" if ab_needed else f"> {plan.ab_readers:,}", "", ""),
        (f"(c) interleaving, {plan.il_readers:,} readers: detected (sign test)",
         f"{il_power:.0%} of {len(il)} runs", "", ""),
        ("    interleaving readers for 80% power (sign test)",
         f"{il_needed:,}" if il_needed else f"> {plan.il_readers:,}", "", ""),
        ("    readers needed, interleaving (sign test) / A/B",
         ratio_text(ratio, il_needed, plan.il_readers), "", ""),
        ("    same runs, paired t-test on credited clicks: detected",
         f"{ilp_power:.0%} of {len(il)} runs", "", ""),
        ("    interleaving readers for 80% power (paired t)",
         f"{ilp_needed:,}" if ilp_needed else f"> {plan.il_readers:,}", "", ""),
        ("    readers needed, interleaving (paired t) / A/B",
         ratio_text(ratio_p, ilp_needed, plan.il_readers), "", ""),
    ]
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"\npaperrec experiment benchmark: {plan.days} simulated days, lists of {plan.k}, "
          f"{plan.workers} workers, seed {plan.seed}", file=out)
    print(f"{'figure'.ljust(width)}  {'measured'.ljust(vwidth)}  {'target':<12} result", file=out)
    print("-" * (width + vwidth + 24), file=out)
    for name, value, target, verdict in rows:
        print(f"{name.ljust(width)}  {value.ljust(vwidth)}  {target:<12} {verdict}", file=out)
    print(f"\n{len(aa) + len(ab) + len(il)} experiments in {elapsed:.0f}s", file=out)
    curve_line = lambda c: ", ".join(f"{m}:{p:.0%}" for m, p in c[:: max(1, len(c) // 10)])  # noqa: E731
    print(f"A/B power by readers:          {curve_line(ab_curve)}", file=out)
    print(f"interleaving power by readers (sign test): {curve_line(il_curve)}", file=out)
    print(f"interleaving power by readers (paired t):  {curve_line(ilp_curve)}", file=out)
    return {"aa_flag_share": aa_flag / max(len(aa), 1), "aa_naive_share": aa_naive / max(len(aa), 1),
            "ab_power": ab_power, "ab_needed": ab_needed, "il_power": il_power,
            "il_needed": il_needed, "ratio": ratio, "seconds": elapsed,
            "il_paired_power": ilp_power, "il_paired_needed": ilp_needed, "ratio_paired": ratio_p,
            "ab_curve": ab_curve, "il_curve": il_curve}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.experiments",
                                description=__doc__.split("\n\n")[0])
    d = Plan()
    p.add_argument("--aa-runs", type=int, default=d.aa_runs)
    p.add_argument("--ab-runs", type=int, default=d.ab_runs)
    p.add_argument("--il-runs", type=int, default=d.il_runs)
    p.add_argument("--aa-readers", type=int, default=d.aa_readers)
    p.add_argument("--ab-readers", type=int, default=d.ab_readers)
    p.add_argument("--il-readers", type=int, default=d.il_readers)
    p.add_argument("--days", type=int, default=d.days)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--workers", type=int, default=min(d.workers, os.cpu_count() or 1))
    p.add_argument("--quick", action="store_true", help="small smoke run (numbers not meaningful)")
    a = p.parse_args(argv)
    plan = Plan(a.aa_runs, a.ab_runs, a.il_runs, a.aa_readers, a.ab_readers, a.il_readers,
                a.days, seed=a.seed, workers=a.workers)
    if a.quick:
        plan = Plan(10, 6, 6, 200, 300, 200, 3, seed=a.seed, workers=a.workers)
    result = run(plan)
    ok = 0.02 <= result["aa_flag_share"] <= 0.08 and result["ab_power"] >= TARGET_POWER
    return 0 if ok or a.quick else 1


if __name__ == "__main__":
    sys.exit(main())
