"""`paperrec prune`: drop served lists no report or attribution can need any more.

Every public GET logs the list it served (~570 bytes): 50,000 lists a day is ~10 MB a day.
Run it nightly (after `paperrec train`, say); SQLite reuses the freed pages, so the file
stops growing instead of shrinking (VACUUM would rewrite the whole file under a lock)."""
from __future__ import annotations

import argparse

from recommender.storage import open_store
from recommender.core.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune", help="delete old served lists (the impressions log)",
                       description="Delete served lists older than --days that are outside "
                                   "experiments and not near a reader's experiment lists.")
    p.add_argument("--db", default=None, help="SQLite file or postgresql:// URL (default: $PAPERREC_DB)")
    p.add_argument("--days", type=float, default=None,
                   help="keep this many days (default: $PAPERREC_IMPRESSION_RETENTION_DAYS, "
                        "30; at least 30, the longest attribution window)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    days = args.days if args.days is not None else Settings().impression_retention_days
    store = open_store(args.db or Settings().db)
    try:
        removed = store.prune_impressions(days)
    except ValueError as exc:
        print(f"paperrec prune: {exc}")
        return 2
    finally:
        store.close()
    print(f"pruned {removed} served list(s) older than {days:g} days")
    return 0
