"""`paperrec train`: the nightly job (what `make train` runs)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from recommender.storage import open_store
from recommender.core.settings import Settings
from training.train_job import EmptyCatalog, train


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="refit from the store; promote if not worse than serving",
                       description="Fit the hybrid model on every paper and event in the store, "
                       "compare it with the serving model on the most recent slice of events, "
                       "and promote it only if it is not worse (or with --force). The running "
                       "service picks up a promoted model within a second, without a restart.")
    p.add_argument("--db", default=None, help="SQLite file or postgresql:// URL (default: $PAPERREC_DB)")
    p.add_argument("--model-dir", type=Path, default=None,
                   help="where versions are written (default: $PAPERREC_MODEL_DIR)")
    p.add_argument("--force", action="store_true",
                   help="promote even if worse, or judged on too few readers")
    p.add_argument("--min-readers", type=int, default=None,
                   help="fewest readers to judge the candidate on; with fewer the serving "
                   "model stays (default: $PAPERREC_PROMOTION_MIN_READERS, 30)")
    p.add_argument("--if-missing", action="store_true",
                   help="do nothing when a model is already serving (used by `make run`)")
    p.add_argument("--search", action="store_true",
                   help="search the model's settings again even while the serving model's may be "
                   "kept (they are kept until the events grow by a quarter or a week passes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    store = open_store(args.db or settings.db)
    try:
        if args.if_missing and store.active_model() is not None:
            print(f"model {store.active_model()['version']} is serving; nothing to do")
            return 0
        min_readers = settings.promotion_min_readers if args.min_readers is None else args.min_readers
        result = train(store, args.model_dir or settings.model_dir, force=args.force,
                       seed=args.seed, progress=not args.quiet, min_readers=min_readers,
                       search=args.search)
    except EmptyCatalog as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    verdict = "promoted" if result.promoted else "kept the serving model"
    print(f"trained {result.version}: {verdict} ({result.reason})")
    for name, value in result.metrics.items():
        theirs = (result.active_metrics or {}).get(name)
        versus = f"   serving: {theirs:.4f}" if isinstance(theirs, float) else ""
        print(f"  holdout {name:<11} {value:.4f}{versus}" if isinstance(value, float)
              else f"  holdout {name:<11} {value}")
    c = result.comparison
    if c is not None and c.readers:
        print(f"  ndcg@20 difference {c.diff:+.4f}, {c.confidence:.0%} interval "
              f"[{c.low:+.4f}, {c.high:+.4f}] over {c.readers} readers (paired bootstrap)")
    print(f"  settings: {result.settings}")
    print("  timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))
    print(f"  written to {result.path}")
    if args.json:
        args.json.write_text(json.dumps({
            "version": result.version, "promoted": result.promoted, "reason": result.reason,
            "metrics": result.metrics, "active_metrics": result.active_metrics,
            "comparison": result.comparison.to_dict() if result.comparison else None,
            "timings": result.timings, "settings": result.settings, "path": str(result.path)}, indent=2))
    return 0
