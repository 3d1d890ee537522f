"""`make bench-train`: the nightly job at scale, against a bare implicit ALS fit.

Two parts, one table each:
1. CiteULike-a (real data, the size `make train` sees): the whole `paperrec train` job on a
   store holding its 16,980 papers and 204,986 events -- the warm split's train and test
   files together, i.e. every reader-paper pair (goal: under 60 s on 2 cores).
2. A generated set of 100,000 papers, 50,000 readers and 5,000,000 events (synthetic
   topical abstracts and readers; sizes settable for a quick run): every stage of the job
   timed with its peak resident memory, then a bare `implicit` ALS fit of the same
   confidence matrix with the same factors and sweeps, in the same process. The figure to
   read is the ratio whole-job / bare-ALS (goal <= 2x) and the peak memory (goal <= 4 GB).
   The baseline is what our ALS component would cost on its own: `implicit` ALS, same
   matrix, factors, regularisation, alpha and number of sweeps (15), same BLAS limit. Our
   fit runs those 15 sweeps on the validation slice, then 4 on all events continuing from
   there (`HybridConfig.refine_sweeps`): 19 sweeps, so ALS alone is ~1.25x the baseline.

Memory is the process's resident set, sampled every 20 ms by a thread: numpy's buffers are
in it, which tracemalloc would only partly see.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CITEULIKE = ROOT / "benchmarks" / "citeulike-a"
DAY = 86_400.0


class RssSampler:
    """Peak resident set size (bytes) over a window, sampled in the background."""

    def __init__(self, every_s: float = 0.02):
        self.every_s = every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.every_s)

    def start(self) -> "RssSampler":
        self.peak = self.rss()
        self._thread.start()
        return self

    def reset(self) -> None:
        self.peak = self.rss()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Stages:
    def __init__(self, sampler: RssSampler):
        self.sampler = sampler
        self.rows: list[tuple[str, float, int]] = []

    @contextmanager
    def stage(self, name: str):
        self.sampler.reset()
        t = time.perf_counter()
        yield
        self.rows.append((name, time.perf_counter() - t, max(self.sampler.peak, self.sampler.rss())))


def synthetic(n_papers: int, n_readers: int, n_events: int, seed: int = 0,
              n_topics: int = 60, vocab_per_topic: int = 150, words: int = 60):
    """Topical papers and readers: each paper has one topic, each reader two or three, and
    readers mostly pick popular papers of their topics. Texts are words drawn from the
    paper's topic vocabulary plus shared filler, so TF-IDF has real structure to find."""
    rng = np.random.default_rng(seed)
    topic_of = rng.integers(0, n_topics, n_papers)
    zipf = 1.0 / np.arange(1, vocab_per_topic + 1) ** 0.9
    zipf /= zipf.sum()
    shared = [f"w{j}" for j in range(2000)]
    titles, abstracts = [], []
    for i in range(n_papers):
        t = topic_of[i]
        own = rng.choice(vocab_per_topic, words, p=zipf)
        filler = rng.integers(0, len(shared), words // 2)
        text = " ".join([f"t{t}x{w}" for w in own] + [shared[f] for f in filler])
        titles.append(f"paper {i} on t{t}x{own[0]} t{t}x{own[1]}")
        abstracts.append(text)
    # readers: 2-3 topics; within a topic, popularity is Zipf over its papers
    by_topic = [np.flatnonzero(topic_of == t) for t in range(n_topics)]
    pop_weights = []
    for papers in by_topic:
        w = 1.0 / np.arange(1, len(papers) + 1) ** 1.1
        pop_weights.append(w / w.sum())
    reader_topics = rng.integers(0, n_topics, (n_readers, 3))
    per_reader = rng.multinomial(n_events, rng.dirichlet(np.full(n_readers, 2.0)))
    users = np.repeat(np.arange(n_readers, dtype=np.int32), per_reader)
    pick_topic = reader_topics[users, rng.integers(0, 3, n_events)]
    items = np.empty(n_events, dtype=np.int32)
    for t in range(n_topics):
        idx = np.flatnonzero(pick_topic == t)
        if len(idx) and len(by_topic[t]):
            items[idx] = by_topic[t][rng.choice(len(by_topic[t]), len(idx), p=pop_weights[t])]
    kinds = np.asarray(["click", "read", "upvote"], dtype=object)[rng.choice(3, n_events, p=[.6, .3, .1])]
    ts = 1_775_000_000.0 + rng.uniform(0, 180 * DAY, n_events)
    return titles, abstracts, users, items, kinds, ts


def bare_als_seconds(C, factors: int, iterations: int, regularization: float, alpha: float,
                     seed: int) -> float:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    from recommender.model.collaborative import CollaborativeParams

    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=factors, iterations=iterations, alpha=alpha,
                                        regularization=regularization, random_state=seed,
                                        calculate_training_loss=False)
        model.cg_steps = CollaborativeParams(factors=factors).solver_steps()  # the same solver steps as our fit
        t = time.perf_counter()
        model.fit(C, show_progress=False)
        return time.perf_counter() - t


def scale_run(n_papers: int, n_readers: int, n_events: int, seed: int = 0) -> dict:
    from recommender.model.artifacts import write_artifact
    from recommender.model.confidence import confidence_matrix
    from recommender.offline.dataset import Interactions, Papers
    from recommender.offline.evaluation import fit_model
    from recommender.serving.model_slot import ServedModel

    sampler = RssSampler().start()
    stages = Stages(sampler)
    with stages.stage("generate data (not part of the job)"):
        titles, abstracts, users, items, kinds, ts = synthetic(n_papers, n_readers, n_events, seed)
        ids = [f"p{i}" for i in range(n_papers)]
        papers = Papers(ids, titles, abstracts, np.full(n_papers, np.nan), np.zeros(n_papers, np.float32))
        events = Interactions([f"u{u}" for u in range(n_readers)], users, items, kinds, ts)

    job_rows_from = len(stages.rows)
    progress_marks: list[tuple[str, float, int]] = []

    def progress(msg: str) -> None:
        progress_marks.append((msg, time.perf_counter(), sampler.peak))
        sampler.reset()

    t_fit = time.perf_counter()
    with stages.stage("fit hybrid (all components)"):
        model = fit_model(papers, events, progress=progress)
    fit_peak = stages.rows[-1][2]
    # split the fit into its own stages from the model's progress marks
    marks = progress_marks + [("end", time.perf_counter(), sampler.peak)]
    fit_parts = []
    for (name, start, _), (_, end, peak_next) in zip(marks, marks[1:]):
        fit_parts.append((f"  - {name}", end - start, peak_next))
    # each mark restarts the sampler's peak: the fit's peak is the largest of its parts'
    fit_peak = max([fit_peak] + [p[2] for p in fit_parts])
    stages.rows[-1] = (stages.rows[-1][0], stages.rows[-1][1], fit_peak)
    with stages.stage("write artifact"):
        tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
        write_artifact(tmp, "v-bench", ServedModel.arrays_for(model, ids), model.manifest())
        size_mb = sum(f.stat().st_size for f in (tmp / "v-bench").iterdir()) / 1e6
        shutil.rmtree(tmp)
    job_s = sum(r[1] for r in stages.rows[job_rows_from:])
    job_peak = max(r[2] for r in stages.rows[job_rows_from:])
    cf = model.comps.cf.params if model.comps.cf is not None else None

    with stages.stage("bare implicit ALS, same matrix"):
        C, _ = confidence_matrix(users, items, kinds, ts, (n_readers, n_papers), now=model.now,
                                 config=model.conf_config)
        als_s = bare_als_seconds(C, cf.factors, cf.iterations, cf.regularization, cf.alpha, seed)
    sampler.stop()
    rows = stages.rows[:job_rows_from + 1] + fit_parts + stages.rows[job_rows_from + 1:]
    return {"papers": n_papers, "readers": n_readers, "events": n_events,
            "factors": cf.factors, "iterations": cf.iterations, "refine_sweeps": model.config.refine_sweeps,
            "stages": rows, "validation": model.stats.get("validation", {}),
            "job_s": job_s, "job_peak": max(job_peak, fit_peak), "als_s": als_s,
            "ratio": job_s / als_s, "artifact_mb": size_mb,
            "fit_timings": model.stats.get("timings", {})}


# The share of CiteULike-a's events held back and imported between the two runs: the
# nightly run has a day's new reading to judge both models on, as a real night does.
TONIGHT_SHARE = 0.04


def citeulike_train_job(store_dir: Path | None = None) -> dict:
    """The real `paperrec train` on a store loaded with CiteULike-a: a first run on 96% of
    its events, then `TONIGHT_SHARE` more imported (stamped later, as the store stamps
    events without a time) and the nightly run, which compares the two models on them.

    `store_dir`: keep the store as the first run left it (its database, its model's folder
    and tonight's events) there, and when it already holds one run the nightly job alone on
    a copy: two code versions' nightly runs timed on the same store and serving model, one
    after the other, instead of each after its own 4-minute first run."""
    from recommender.storage import open_store
    from training.importing import import_events, import_papers
    from training.train_job import train

    tmp = Path(tempfile.mkdtemp(prefix="bench-train-cul-"))
    try:
        kept = store_dir is not None and (store_dir / "db.sqlite").is_file()
        tonight_path = (store_dir if kept else tmp) / "tonight.csv"
        import_s, n_events, n_tonight = None, None, None
        if kept:
            shutil.copy(store_dir / "db.sqlite", tmp / "db.sqlite")
            store = open_store(tmp / "db.sqlite")
            nights = [1]
            n_tonight = sum(1 for _ in open(tonight_path)) - 1
        else:
            papers_path, events_path = tmp / "papers.jsonl", tmp / "interactions.csv"
            with gzip.open(CITEULIKE / "papers.jsonl.gz", "rt") as fh, open(papers_path, "w") as out:
                for line in fh:  # the store refuses dates before 1970 (10 papers): drop those dates
                    paper = json.loads(line)
                    if str(paper.get("published_at") or "9999") < "1970":
                        paper.pop("published_at")
                    out.write(json.dumps(paper) + "\n")
            rows = []  # train rows, then the held-out rows: every pair once
            for part in ("train", "test"):
                with gzip.open(CITEULIKE / "warm" / f"{part}.csv.gz", "rt") as fh:
                    header = fh.readline()
                    rows += fh.readlines()
            tonight = np.random.default_rng(0).random(len(rows)) < TONIGHT_SHARE
            for path, keep in ((events_path, ~tonight), (tonight_path, tonight)):
                with open(path, "w") as out:
                    out.write(header)
                    out.writelines(r for r, k in zip(rows, keep) if k)
            store = open_store(tmp / "db.sqlite")
            t = time.perf_counter()
            import_papers(store, papers_path)
            import_events(store, events_path)
            import_s = time.perf_counter() - t
            nights = [0, 1]
            n_events, n_tonight = len(rows), int(tonight.sum())
        runs = []
        for night in nights:  # the first run has no serving model; the second (nightly) does
            if night == 1:  # stamped at this import: newer than anything the first run saw
                import_events(store, tonight_path)
            sampler = RssSampler().start()
            t = time.perf_counter()
            # a kept store's serving model stays in its folder, where the registry names it
            models = store_dir / "models" if (store_dir is not None and night == 0) else tmp / "models"
            result = train(store, models, progress=False)
            runs.append({"night": night, "job_s": time.perf_counter() - t, "peak": sampler.peak,
                         "timings": result.timings, "metrics": result.metrics,
                         "active_metrics": result.active_metrics, "promoted": result.promoted,
                         "reason": result.reason, "settings": result.settings,
                         "chosen": chosen_settings(result.path)})
            sampler.stop()
            if night == 0 and store_dir is not None:  # keep the store as the first run left it
                store.close()
                shutil.copy(tmp / "db.sqlite", store_dir / "db.sqlite")
                shutil.copy(tonight_path, store_dir / "tonight.csv")
                store = open_store(tmp / "db.sqlite")
        store.close()
        return {"import_s": import_s, "runs": runs, "tonight": n_tonight, "events": n_events,
                "kept_store": str(store_dir) if kept else None}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def chosen_settings(model_path: Path) -> str:
    """What the model's settings are (searched or kept): ALS, the words, the graph, EASE, decay."""
    manifest = json.loads((Path(model_path) / "manifest.json").read_text())
    c = manifest.get("config", {})
    decay = (manifest.get("confidence") or {}).get("half_life_days") or 0
    ease = (f"EASE λ {c.get('ease_lambda'):g} / words {c.get('ease_words') or 0:g}" if c.get("ease")
            else "no EASE")
    return (f"ALS alpha {c.get('als_alpha')} / reg {c.get('als_regularization')}, words "
            f"{c.get('text_weight')}, graph {c.get('graph_alpha')} / {c.get('graph_beta')}, {ease}, "
            f"decay {f'{decay:g} days' if decay else 'none'}")


def print_citeulike(cul: dict) -> None:
    if cul.get("kept_store"):
        print(f"CiteULike-a, `paperrec train`: the nightly run alone, on a copy of the store kept in "
              f"{cul['kept_store']} ({cul['tonight']:,} events since its first run):")
    else:
        print(f"CiteULike-a, `paperrec train` on a store (16,980 papers, {cul['events'] - cul['tonight']:,} "
              f"events, then {cul['tonight']:,} more before the nightly run; import {cul['import_s']:.1f} s, "
              "not part of the job):")
    print(f"| {'run':<36} | {'job s':>6} | {'peak RSS MB':>11} | stages (s) |")
    print(f"|{'-' * 38}|{'-' * 8}|{'-' * 13}|{'-' * 12}|")
    names = ("first (nothing serving)", "nightly (compares with serving)")
    for run in cul["runs"]:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in run["timings"].items())
        print(f"| {names[run['night']]:<36} | {run['job_s']:6.1f} | {run['peak'] / 1e6:11.0f} | {stages} |")
    first, last = cul["runs"][0], cul["runs"][-1]
    print(f"chosen: {first['chosen']}")
    print(f"goal: < 60 s on 2 cores. Settings: "
          + (f"first run {first['settings']}; " if first["night"] == 0 else "")
          + f"nightly {last['settings']}. Nightly run: {last['reason']}")
    for name, figures in (("candidate", last["metrics"]), ("serving", last["active_metrics"] or {})):
        print(f"  holdout {name}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                for k, v in figures.items()))


def print_scale(res: dict) -> None:
    print(f"\nGenerated set: {res['papers']:,} papers, {res['readers']:,} readers, "
          f"{res['events']:,} events; ALS {res['factors']} factors, {res['iterations']} sweeps "
          f"(bare fit: {res['iterations']} from random; ours: {res['iterations']} on the validation "
          f"slice + {res['refine_sweeps']} on all events from there)")
    print(f"| {'stage':<40} | {'wall s':>8} | {'peak RSS MB':>11} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 13}|")
    for name, secs, peak in res["stages"]:
        print(f"| {name:<40} | {secs:8.1f} | {peak / 1e6:11.0f} |")
    print(f"\nwhole job {res['job_s']:.1f} s, bare implicit ALS {res['als_s']:.1f} s: "
          f"ratio {res['ratio']:.2f}x (goal <= 2x); peak {res['job_peak'] / 1e9:.2f} GB "
          f"(goal <= 4 GB); artifact {res['artifact_mb']:.0f} MB")


def citeulike_serving(n_readers: int = 1000, k: int = 20, seed: int = 0, model_dir: Path | None = None) -> dict:
    """Scoring one reader in-process, as the service does (issue 3: p99 <= 5 ms): the hybrid
    fit on the CiteULike-a warm train split, then `recommend` for `n_readers` random
    readers with their train histories, one BLAS thread and the GIL switch interval as in
    the service (`Settings.gil_switch_ms`). The ratio to a bare argpartition over the same
    16,980 scores says what is left above the minimum.

    `model_dir`: load the model from there if it holds one, else fit it and write it there,
    so two code versions can be timed on the same model, one run after the other (a fit
    takes minutes; the machine's speed moves between minutes)."""
    from threadpoolctl import threadpool_limits

    from recommender.core.settings import Settings
    from recommender.model.artifacts import read_artifact, write_artifact
    from recommender.model.hybrid import HybridModel
    from recommender.offline.dataset import load_interactions, load_papers
    from recommender.offline.evaluation import fit_model

    papers = load_papers(CITEULIKE / "papers.jsonl.gz")
    train = load_interactions(CITEULIKE / "warm" / "train.csv.gz", papers)
    saved = model_dir / "citeulike-warm" if model_dir is not None else None
    if saved is not None and saved.is_dir():
        model = HybridModel.from_arrays(*read_artifact(saved))
    else:
        model = fit_model(papers, train)
        if saved is not None:
            write_artifact(model_dir, saved.name, model.to_arrays(), model.manifest())
    model.for_lists()  # as the service's model slot readies a model it loads
    order = np.argsort(train.users, kind="stable")
    bounds = np.searchsorted(train.users[order], np.arange(train.n_users + 1))
    rng = np.random.default_rng(seed)
    histories = []
    for u in rng.integers(0, train.n_users, n_readers):
        idx = order[bounds[u]:bounds[u + 1]]
        histories.append([(int(train.items[i]), str(train.kinds[i]), float(train.ts[i])) for i in idx])
    scores = rng.standard_normal(model.n_items).astype(np.float32)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(Settings().gil_switch_ms / 1000.0)  # as service/app.py sets it
    try:
        with threadpool_limits(1, "blas"):
            for h in histories[:20]:  # warm-up: caches of the model state
                model.recommend(h, k=k)
            lat, bare = [], []
            for h in histories:
                t = time.perf_counter()
                model.recommend(h, k=k)
                lat.append(time.perf_counter() - t)
                t = time.perf_counter()
                np.argpartition(-scores, k - 1)[:k]
                bare.append(time.perf_counter() - t)
    finally:
        sys.setswitchinterval(switch)
    lat_ms, bare_ms = np.array(lat) * 1e3, np.array(bare) * 1e3
    return {"readers": n_readers, "papers": model.n_items,
            "history_median": float(np.median([len(h) for h in histories])),
            "p50_ms": float(np.median(lat_ms)), "p99_ms": float(np.percentile(lat_ms, 99)),
            "argpartition_p50_ms": float(np.median(bare_ms)),
            "ratio_p50": float(np.median(lat_ms) / np.median(bare_ms))}


def print_serving(res: dict) -> None:
    print(f"\nCiteULike-a, one reader in-process ({res['readers']} random readers, median "
          f"history {res['history_median']:.0f}, {res['papers']:,} papers, hybrid, k=20): "
          f"p50 {res['p50_ms']:.2f} ms, p99 {res['p99_ms']:.2f} ms (goal <= 5 ms); bare "
          f"argpartition p50 {res['argpartition_p50_ms']:.3f} ms, ratio {res['ratio_p50']:.0f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--readers", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--skip-citeulike", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--serving-only", action="store_true",
                        help="only the single-reader scoring latency on CiteULike-a")
    parser.add_argument("--store-dir", type=Path, default=None,
                        help="keep the CiteULike-a store as the first run leaves it in this folder; when it "
                             "holds one, run the nightly job alone on a copy (to time two code versions)")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="the single-reader timing's model: loaded from this folder if it holds one, "
                             "else fit and written there (to time two code versions on one model)")
    args = parser.parse_args(argv)
    out: dict = {}
    if args.serving_only or not args.skip_citeulike:
        out["serving"] = citeulike_serving(model_dir=args.model_dir)
        print_serving(out["serving"])
    if args.serving_only:
        return 0
    if not args.skip_citeulike:
        if args.store_dir is not None:
            args.store_dir.mkdir(parents=True, exist_ok=True)
        cul = citeulike_train_job(args.store_dir)
        out["citeulike"] = cul
        print_citeulike(cul)
    if not args.skip_scale:
        res = scale_run(args.papers, args.readers, args.events)
        out["scale"] = {k: v for k, v in res.items() if k != "stages"}
        print_scale(res)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
