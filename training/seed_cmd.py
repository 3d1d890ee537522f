"""`paperrec seed`: build the embedded default from `seeds/` (catalog + demo readers).

Running it again changes nothing: papers are upserted and demo events carry content-based
idempotency keys."""
from __future__ import annotations

import argparse
from pathlib import Path

from recommender.storage import Store, open_store
from training.importing import import_events, import_papers
from training.settings import db_path

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("seed", help="load the shipped catalog and the synthetic demo readers",
                       description="Load seeds/papers.jsonl and (unless --no-demo) the clearly "
                                   "labelled synthetic demo event log seeds/demo_events.csv.")
    p.add_argument("--db", type=Path, default=None, help="SQLite file (default: $PAPERREC_DB)")
    p.add_argument("--no-demo", action="store_true", help="catalog only, no demo events")
    p.set_defaults(func=run)


def seed(store: Store, demo: bool = True) -> dict:
    papers = import_papers(store, SEEDS / "papers.jsonl")
    out = {"papers": papers.rows, "papers_stored": papers.stored}
    if demo:
        events = import_events(store, SEEDS / "demo_events.csv")
        out.update(events=events.rows, events_stored=events.stored)
    return out


def run(args: argparse.Namespace) -> int:
    store = open_store(args.db or db_path())
    try:
        result = seed(store, demo=not args.no_demo)
    finally:
        store.close()
    line = f"seeded {store.path}: {result['papers']} papers ({result['papers_stored']} new or changed)"
    if "events" in result:
        line += f", {result['events']} synthetic demo events ({result['events_stored']} new)"
    print(line)
    return 0
