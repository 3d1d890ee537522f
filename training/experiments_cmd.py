"""`paperrec experiments create|list|stop|report`: experiments from config files.

A config file holds one experiment or a list of them, in the same shape as
`POST /experiments`:

    {"name": "content-vs-popular", "kind": "ab", "control": "popular",
     "variants": [{"name": "popular", "strategy": "popular", "weight": 1},
                  {"name": "content", "strategy": "content", "weight": 1}]}

`create` is idempotent per name: an experiment that already exists with the same config is
left as it is, so a deploy step may run it on every release; one that exists with a
different config is an error (names are never reused)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from recommender.experiments.report import DEFAULT_WINDOW_HOURS, build_report
from recommender.experiments.config import (ExperimentExists, InvalidConfig, create_experiment,
                                     validate_config)
from recommender.serving import strategies as registry
from recommender.storage import Store, open_store
from recommender.core.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("experiments", help="create, list, stop experiments; print reports",
                            description=__doc__.split("\n\n")[0])
    cmds = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = cmds.add_parser("create", help="create experiments from a JSON config file")
    p.add_argument("file", type=Path)
    p = cmds.add_parser("list", help="list experiments")
    p.add_argument("--status", choices=("running", "stopped"))
    p = cmds.add_parser("stop", help="stop an experiment (a no-op if it is stopped)")
    p.add_argument("name")
    p = cmds.add_parser("report", help="print an experiment's report as JSON")
    p.add_argument("name")
    p.add_argument("--window-hours", type=float, default=DEFAULT_WINDOW_HOURS)
    for p in cmds.choices.values():
        p.add_argument("--db", default=None, help="SQLite file or postgresql:// URL (default: $PAPERREC_DB)")
        p.set_defaults(func=run)


def _create(store: Store, path: Path) -> int:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    configs = data if isinstance(data, list) else [data]
    strategies = registry.NAMES
    for i, raw in enumerate(configs):
        where = f"{path}" + (f"[{i}]" if isinstance(data, list) else "")
        try:
            row = create_experiment(store, raw, strategies)
            print(f"created {row['name']} ({row['kind']}, control {row['control']})")
        except InvalidConfig as exc:
            print(f"error: {where}: {'.'.join(map(str, exc.loc)) or '(config)'}: {exc.msg}",
                  file=sys.stderr)
            return 2
        except ExperimentExists as exc:
            existing = store.get_experiment(str(exc))
            stored = {k: v for k, v in existing["config"].items() if k != "salt"}
            if stored == json.loads(json.dumps(
                    validate_config(raw, strategies).to_config(), sort_keys=True)):
                print(f"unchanged {existing['name']} ({existing['status']})")
                continue
            print(f"error: {where}: experiment {exc} exists with a different config",
                  file=sys.stderr)
            return 2
    return 0


def run(args: argparse.Namespace) -> int:
    store = open_store(args.db or Settings().db)
    try:
        if args.action == "create":
            return _create(store, args.file)
        if args.action == "list":
            for r in store.list_experiments(status=args.status):
                variants = ", ".join(f"{v['name']}={v['strategy']}:{v['weight']:g}"
                                     for v in r["config"]["variants"])
                print(f"{r['name']}\t{r['kind']}\t{r['status']}\tcontrol={r['control']}\t{variants}")
            return 0
        row = store.get_experiment(args.name)
        if row is None:
            print(f"error: unknown experiment {args.name!r}", file=sys.stderr)
            return 1
        if args.action == "stop":
            changed = store.stop_experiment(args.name)
            print(f"stopped {args.name}" if changed else f"{args.name} was already stopped")
            return 0
        print(json.dumps(build_report(store, row, args.window_hours), indent=2))
        return 0
    finally:
        store.close()
