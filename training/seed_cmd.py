"""`paperrec seed`: build the embedded default from `seeds/` (training/seeding.py)."""
from __future__ import annotations

import argparse

from recommender.storage import open_store
from recommender.core.settings import Settings
from training.seeding import seed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("seed", help="load the shipped catalog and the synthetic demo readers",
                       description="Load seeds/papers.jsonl and (unless --no-demo) the clearly "
                                   "labelled synthetic demo event log seeds/demo_events.csv.")
    p.add_argument("--db", default=None, help="SQLite file or postgresql:// URL (default: $PAPERREC_DB)")
    p.add_argument("--no-demo", action="store_true", help="catalog only, no demo events")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store = open_store(args.db or Settings().db)
    try:
        result = seed(store, demo=not args.no_demo)
    finally:
        store.close()
    line = f"seeded {store.location}: {result['papers']} papers ({result['papers_stored']} new or changed)"
    if "events" in result:
        line += f", {result['events']} synthetic demo events ({result['events_stored']} new)"
    print(line)
    return 0
