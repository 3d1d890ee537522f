"""`paperrec import papers|events FILE`: load the generic format into the store."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recommender.storage import open_store
from recommender.core.settings import Settings
from training.importing import ImportRejected, import_events, import_papers


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("import", help="import papers (JSONL) or events (CSV)",
                            description="Import the generic data format into the store.")
    kinds = parser.add_subparsers(dest="what", required=True, metavar="WHAT")
    for what, fmt in (("papers", "papers.jsonl: one JSON object a line"),
                      ("events", "interactions.csv: header user_id,paper_id,kind,ts")):
        p = kinds.add_parser(what, help=f"import {what} ({fmt})", description=f"Import {fmt}. "
                             "All-or-nothing unless --skip-invalid; re-importing changes nothing.")
        p.add_argument("file", type=Path)
        p.add_argument("--skip-invalid", action="store_true",
                       help="import the good rows and report the bad ones")
        p.add_argument("--db", default=None, help="SQLite file or postgresql:// URL (default: $PAPERREC_DB)")
        p.set_defaults(func=run, what=what)


def run(args: argparse.Namespace) -> int:
    if not args.file.exists():
        print(f"error: {args.file} does not exist", file=sys.stderr)
        return 2
    store = open_store(args.db or Settings().db)
    importer = import_papers if args.what == "papers" else import_events
    try:
        report = importer(store, args.file, skip_invalid=args.skip_invalid)
    except ImportRejected as exc:
        for lineno, reason in exc.report.errors[:20]:
            print(f"{args.file}:{lineno}: {reason}", file=sys.stderr)
        more = len(exc.report.errors) - 20
        if more > 0:
            print(f"... and {more} more", file=sys.stderr)
        print(f"error: {len(exc.report.errors)} invalid row(s); nothing imported "
              "(use --skip-invalid to import the good rows)", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"{args.what}: {report.rows} rows read, {report.stored} stored, "
          f"{report.unchanged} already present, {report.skipped} skipped")
    for lineno, reason in report.errors[:20]:
        print(f"  skipped line {lineno}: {reason}")
    for reason, n in report.reasons().most_common():
        print(f"  skipped {n} for {reason}")
    return 0
