"""Benchmark: do lists that learn from what readers skip and reject get more clicks?

    python -m benchmarks.feedback            # the measurement (make bench-feedback)
    python -m benchmarks.feedback --choose   # how the strengths in serving/feedback.py were chosen
    python -m benchmarks.feedback --quick    # a smoke run with small numbers

Every run is real serving: a fresh SQLite store (the shipped catalog, the demo readers and
a model trained on them), the live recommender and `serve_list` (every list logged, so what
a reader was shown is read back from the store), every event stored. Only the readers are
synthetic (training/simulator.py), with negative feedback switched on in their model:

- every reader looks at a slot with the position bias and tires of a paper they looked at
  and did not click (its click probability x FATIGUE per such look);
- DISMISSER_SHARE of them also dismiss papers they look at and do not like.

The same readers (same seed: same tastes, keenness, past and first draws) are played with
the negative-feedback step (serving/feedback.py) at its chosen strengths and with it off;
each reader's clicks over the simulated days give one paired difference, and the 95%
interval of the mean difference is a reader-level paired bootstrap
(recommender/offline/comparison.py). Runs use seeds from 0; `--choose` plays a grid of
strengths on seeds from CHOOSE_SEED, which the measurement never uses.

How much readers tire is an assumption no log here can check, and it decides how much
rotation pays: with FATIGUE 0.5 the more rotation the better, with no fatigue at all every
rotation only shows worse papers. So `--choose` plays the grid under each of
CHOOSE_FATIGUE and keeps the strengths with the most clicks per reader on average over
them, and the measurement reports the same strengths under no fatigue too (`--fatigue 1`).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # two worker processes on two cores
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import multiprocessing as mp  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from recommender.offline.comparison import paired_bootstrap  # noqa: E402
from recommender.serving.feedback import DEFAULT, OFF, FeedbackWeights  # noqa: E402
from training.simulator import (DomainBackend, ReaderModel, Readers, TasteSpace,  # noqa: E402
                                   default_start, simulate)

FATIGUE = 0.5
DISMISSER_SHARE = 0.5
CHOOSE_SEED = 10_000
CHOOSE_FATIGUE = (0.5, 0.75, 1.0)
GRID_DISMISS = (0.0, 2.0, 4.0, 8.0, 16.0, 32.0)
GRID_SKIP = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)


def reader_model(fatigue: float = FATIGUE) -> ReaderModel:
    return ReaderModel(fatigue=fatigue, dismisser_share=DISMISSER_SHARE)


@dataclass(frozen=True)
class Plan:
    readers: int = 400  # per run
    runs: int = 6  # seeds per arm
    days: int = 10
    k: int = 10
    slots: int = 4
    workers: int = 2


# -- worker side ------------------------------------------------------------------------------
_W: dict = {}


def _init_worker(template: str, workdir: str) -> None:
    from recommender.serving.live import LiveRecommender
    from recommender.storage import open_store

    store = open_store(template)
    encoder = LiveRecommender(store).encoder
    store.close()
    _W.update(template=Path(template), workdir=Path(workdir), encoder=encoder,
              space=TasteSpace.from_jsonl())


def _run_one(task: tuple) -> dict:
    """One simulation in a fresh store: clicks per reader, reader types, what was served."""
    from recommender.serving.live import LiveRecommender
    from recommender.storage import open_store

    label, weights, seed, plan, fatigue = task
    readers_model = reader_model(fatigue)
    path = _W["workdir"] / f"{label.replace('/', '_').replace(' ', '_')}-{seed}-{os.getpid()}.db"
    shutil.copy(_W["template"], path)
    store = open_store(path)
    try:
        rec = LiveRecommender(store, encoder=_W["encoder"], feedback=weights)
        assert rec.served is not None, "the benchmark serves the trained model"
        rng = np.random.default_rng([seed, 7])
        readers = Readers.sample(plan.readers, _W["space"], rng, readers_model, prefix=f"fb{seed}")
        log = simulate(DomainBackend(store, rec), readers, _W["space"], plan.days, plan.k,
                       default_start(plan.days), rng, readers_model, slots_per_day=plan.slots)
        return {"label": label, "seed": seed, "clicks": log.clicks_by_reader,
                "dismissers": readers.dismisses, "lists": log.lists,
                "dismisses": log.dismisses, "returned": _dismissed_shown_again(store, readers)}
    finally:
        store.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _dismissed_shown_again(store, readers: Readers) -> int:
    """Lists that showed a reader a paper they had dismissed before the list (must be 0)."""
    from recommender.core.times import to_unix

    again = 0
    for user in readers.ids:
        dismissed = {e["paper_id"]: to_unix(e["ts"]) for e in store.user_events(user)
                     if e["kind"] == "dismiss"}
        if not dismissed:
            continue
        for lst in store.served_to(user, limit=10_000):
            t = to_unix(lst["served_at"])
            again += any(p in dismissed and dismissed[p] < t for p in lst["paper_ids"])
    return again


# -- the driver -------------------------------------------------------------------------------

def _template(workdir: Path) -> Path:
    from recommender.storage import open_store
    from recommender.storage.sqlite import raw
    from training.seeding import seed
    from training.train_job import train

    template = workdir / "template.db"
    s = open_store(template)
    seed(s, demo=True)
    train(s, workdir / "models", progress=False)
    s.close()
    raw.checkpoint(template)
    return template


def play(tasks: list[tuple], plan: Plan) -> list[dict]:
    shm = Path("/dev/shm")
    workdir = Path(tempfile.mkdtemp(prefix="bench-fb-", dir=shm if shm.is_dir() else None))
    t0 = time.time()
    try:
        template = _template(workdir)
        ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        out = []
        with ctx.Pool(plan.workers, initializer=_init_worker,
                      initargs=(str(template), str(workdir))) as pool:
            for r in pool.imap_unordered(_run_one, tasks, chunksize=1):
                out.append(r)
                print(f"  {len(out)}/{len(tasks)} runs ({time.time() - t0:.0f}s)",
                      file=sys.stderr, flush=True)
        return out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _by_arm(results: list[dict], label: str) -> tuple[np.ndarray, np.ndarray]:
    """(clicks per reader, dismisser flags) of one arm, runs in seed order."""
    runs = sorted((r for r in results if r["label"] == label), key=lambda r: r["seed"])
    return (np.concatenate([r["clicks"] for r in runs]).astype(np.float64),
            np.concatenate([r["dismissers"] for r in runs]))


def _mean_ci(x: np.ndarray) -> str:
    c = paired_bootstrap(x, np.zeros_like(x))
    return f"{c.diff:6.3f} [{c.low:.3f}, {c.high:.3f}]"


def measure(plan: Plan, weights: FeedbackWeights = DEFAULT, fatigue: float = FATIGUE,
            out=sys.stdout) -> dict:
    t0 = time.time()
    arms = {"off": OFF, "dismiss only": replace(weights, skip=0.0),
            "skip only": replace(weights, dismiss=0.0), "both": weights}
    tasks = [(label, w, seed, plan, fatigue) for seed in range(plan.runs)
             for label, w in arms.items()]
    results = play(tasks, plan)
    base, dismissers = _by_arm(results, "off")
    print(f"\npaperrec negative-feedback benchmark: {plan.runs} runs x {plan.readers} simulated "
          f"readers, {plan.days} days, lists of {plan.k}, {plan.slots} visits a day at most; "
          f"readers tire of what they looked past (x{fatigue:g} a look), "
          f"{DISMISSER_SHARE:.0%} of them dismiss; strengths dismiss {weights.dismiss:g}, "
          f"skip {weights.skip:g}", file=out)
    print(f"{'arm':<14} {'readers':>7} {'clicks/reader [95% CI]':>26} "
          f"{'gain vs off, paired [95% CI]':>36} {'dismissed shown again':>22}", file=out)
    summary = {}
    for label in arms:
        clicks, _ = _by_arm(results, label)
        again = sum(r["returned"] for r in results if r["label"] == label)
        gain = "" if label == "off" else paired_bootstrap(clicks, base)
        gain_text = "" if label == "off" else f"{gain.diff:+.3f} [{gain.low:+.3f}, {gain.high:+.3f}]"
        print(f"{label:<14} {len(clicks):>7} {_mean_ci(clicks):>26} {gain_text:>36} {again:>22}",
              file=out)
        summary[label] = {"clicks_per_reader": float(clicks.mean()), "dismissed_shown_again": again,
                          **({"gain": gain.to_dict()} if label != "off" else {})}
    both, _ = _by_arm(results, "both")
    for name, who in (("readers who dismiss", dismissers), ("readers who only skip", ~dismissers)):
        g = paired_bootstrap(both[who], base[who])
        print(f"  {name:<22} {who.sum():>5} readers: {base[who].mean():.3f} -> {both[who].mean():.3f} "
              f"clicks/reader, gain {g.diff:+.3f} [{g.low:+.3f}, {g.high:+.3f}]", file=out)
        summary[name] = g.to_dict()
    print(f"({len(results)} simulations in {time.time() - t0:.0f}s)", file=out)
    return summary


def choose(plan: Plan, out=sys.stdout) -> FeedbackWeights:
    """Every (dismiss, skip) of the grid on the same CHOOSE_SEED readers under each fatigue
    of CHOOSE_FATIGUE; the most clicks per reader on average over them wins."""
    t0 = time.time()
    grid = list(itertools.product(GRID_DISMISS, GRID_SKIP))
    tasks = [(f"{d:g}/{s:g}/{f:g}", replace(DEFAULT, dismiss=d, skip=s), CHOOSE_SEED + i, plan, f)
             for f in CHOOSE_FATIGUE for d, s in grid for i in range(plan.runs)]
    results = play(tasks, plan)
    means = {(d, s, f): _by_arm(results, f"{d:g}/{s:g}/{f:g}")[0].mean()
             for f in CHOOSE_FATIGUE for d, s in grid}
    average = {(d, s): float(np.mean([means[(d, s, f)] for f in CHOOSE_FATIGUE])) for d, s in grid}
    print(f"\nclicks per reader by strength ({plan.runs} runs x {plan.readers} readers, "
          f"{plan.days} days, seeds from {CHOOSE_SEED}):", file=out)
    for f in (*CHOOSE_FATIGUE, None):
        print("readers tire x" + f"{f:g} a look" if f is not None else "average over them", file=out)
        print("  dismiss \\ skip " + "".join(f"{s:>8g}" for s in GRID_SKIP), file=out)
        for d in GRID_DISMISS:
            row = [means[(d, s, f)] if f is not None else average[(d, s)] for s in GRID_SKIP]
            print(f"  {d:<15g}" + "".join(f"{v:8.3f}" for v in row), file=out)
    best = max(average, key=average.get)
    print(f"chosen: dismiss {best[0]:g}, skip {best[1]:g} ({average[best]:.3f} clicks per reader "
          f"on average; off {average[(0.0, 0.0)]:.3f}) in {time.time() - t0:.0f}s", file=out)
    return replace(DEFAULT, dismiss=best[0], skip=best[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.feedback",
                                description=__doc__.split("\n\n")[0])
    d = Plan()
    p.add_argument("--readers", type=int, default=d.readers)
    p.add_argument("--runs", type=int, default=d.runs)
    p.add_argument("--days", type=int, default=d.days)
    p.add_argument("--workers", type=int, default=min(d.workers, os.cpu_count() or 1))
    p.add_argument("--fatigue", type=float, default=FATIGUE,
                   help="readers' click probability x this per earlier look without a click")
    p.add_argument("--choose", action="store_true", help="play the grid of strengths")
    p.add_argument("--quick", action="store_true", help="small smoke run (numbers not meaningful)")
    a = p.parse_args(argv)
    plan = Plan(a.readers, a.runs, a.days, workers=a.workers)
    if a.quick:
        plan = Plan(60, 1, 3, workers=a.workers)
    if a.choose:
        choose(plan)
        return 0
    summary = measure(plan, fatigue=a.fatigue)
    if a.fatigue >= 1.0:  # the cost when readers do not tire: reported, not a target
        return 0
    gain = summary["both"]["gain"]
    ok = gain["ci_low"] > 0 and all(v["dismissed_shown_again"] == 0
                                    for k, v in summary.items() if "dismissed_shown_again" in v)
    return 0 if ok or a.quick else 1


if __name__ == "__main__":
    sys.exit(main())
