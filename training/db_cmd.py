"""`paperrec db migrate`: bring a store's schema up to date.

Every process also migrates when it opens the store (the service at start-up, each CLI
command), so this is for doing it first, on purpose: before starting replicas of a new
release, or to create the tables of a new PostgreSQL database."""
from __future__ import annotations

import argparse

from recommender.core.settings import Settings
from recommender.storage import open_store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="the store's schema: migrate",
                       description="Manage the store's schema (same versions on SQLite and "
                                   "PostgreSQL).")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    migrate = actions.add_parser("migrate", help="apply pending migrations",
                                 description="Apply every pending migration, each in its own "
                                             "transaction, and print the schema version.")
    migrate.add_argument("--db", default=None,
                         help="SQLite file or postgresql:// URL (default: $PAPERREC_DB)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store = open_store(args.db or Settings().db)  # opening applies what is pending
    try:
        print(f"{store.location}: schema version {store.schema_version}")
    finally:
        store.close()
    return 0
