"""`paperrec models list|promote|rollback`: the model registry by hand.

The service follows the registry's active model on its own, so promoting or rolling back
here changes what is served within a second, without a restart."""
from __future__ import annotations

import argparse
import re
import sys

from recommender.model.artifacts import ArtifactError
from recommender.serving.model_slot import ServedModel
from recommender.storage import Store, open_store
from recommender.core.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list, promote or roll back trained models",
                       description="The model registry: which versions exist and which one serves.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=None, help="SQLite file or postgresql:// URL (default: $PAPERREC_DB)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", parents=[common], help="all versions, newest last, with status and metrics",
                       description="List model versions with status and offline metrics.")
    promote = actions.add_parser("promote", parents=[common], help="make a version the active one",
                                 description="Make VERSION active (checks its files first).")
    promote.add_argument("version")
    actions.add_parser("rollback", parents=[common], help="re-activate the previously active version",
                       description="Re-activate the most recently retired version.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store = open_store(args.db or Settings().db)
    try:
        if args.action == "list":
            return list_models(store)
        if args.action == "promote":
            return promote(store, args.version)
        return rollback(store)
    finally:
        store.close()


def list_models(store: Store) -> int:
    """One line a version: its status, the readers it was judged on, its NDCG@20 and the
    serving model's on the same readers, the difference with its 95% interval, and what the
    nightly job decided (versions registered before these figures show what they have)."""
    models = store.list_models()
    if not models:
        print("no models yet: run `paperrec train`")
        return 0
    print(f"{'version':<26} {'status':<11} {'created':<19} {'readers':>7} {'ndcg@20':>7} "
          f"{'serving':>7} {'difference [95% interval]':<27} decision")
    for m in models:
        metrics = m["metrics"] or {}
        c = metrics.get("comparison") or {}
        readers = c.get("readers", metrics.get("users"))
        ndcg = metrics.get("ndcg@20")
        diff = (f"{c['diff']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]"
                if c.get("readers") else "-")
        print(f"{m['version']:<26} {m['status']:<11} {m['created_at'][:19]:<19} "
              f"{_figure(readers, 'd'):>7} {_figure(ndcg, '.4f'):>7} "
              f"{_figure(c.get('serving') if c.get('readers') else None, '.4f'):>7} {diff:<27} "
              f"{_short(metrics.get('decision', '-'))}")
    return 0


def _short(decision: str) -> str:
    """The job's reason without the figures the columns already show."""
    return re.sub(r": ndcg@20 .*? over \d+ readers", "", decision)


def _figure(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def promote(store: Store, version: str) -> int:
    model = next((m for m in store.list_models() if m["version"] == version), None)
    if model is None:
        print(f"error: no model version {version!r}", file=sys.stderr)
        return 1
    try:
        ServedModel.from_registry(model, store.model_files, lists=False)
    except ArtifactError as exc:
        print(f"error: {version} cannot be served: {exc}", file=sys.stderr)
        return 1
    store.set_model_status(version, "active")
    print(f"promoted {version}")
    return 0


def rollback(store: Store) -> int:
    retired = [m for m in store.list_models() if m["status"] == "retired" and m.get("retired_at")]
    if not retired:
        print("error: no previously active model to roll back to", file=sys.stderr)
        return 1
    previous = max(retired, key=lambda m: m["retired_at"])
    current = store.active_model()
    code = promote(store, previous["version"])
    if code == 0 and current is not None:
        store.set_model_status(current["version"], "rolled_back")
    return code
