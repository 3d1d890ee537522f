"""The SQLite schema, as append-only migrations.

A released migration is never edited; a schema change is a new function. PRAGMA
user_version records how many have run (SQLiteStore.migrate)."""
from __future__ import annotations

from sqlite_utils import Database


def _m001_initial(db: Database) -> None:
    db["papers"].create(
        {"paper_id": str, "title": str, "abstract": str, "published_at": str, "authors": str,
         "upvotes": int, "extra": str, "added_at": str},
        pk="paper_id", not_null={"title", "added_at"},
    )
    db["events"].create(
        {"id": int, "user_id": str, "paper_id": str, "kind": str, "ts": str,
         "request_id": str, "idempotency_key": str, "received_at": str},
        pk="id", not_null={"user_id", "paper_id", "kind", "ts", "received_at"},
        foreign_keys=[("paper_id", "papers", "paper_id")],
    )
    db["events"].create_index(["idempotency_key"], unique=True)
    db["events"].create_index(["user_id", "ts"])
    db["events"].create_index(["paper_id"])
    db["events"].create_index(["ts"])
    db["events"].create_index(["request_id"])
    db["impressions"].create(
        {"request_id": str, "user_id": str, "experiment": str, "variant": str,
         "strategy": str, "model_version": str, "paper_ids": str, "sources": str,
         "served_at": str},
        pk="request_id", not_null={"user_id", "strategy", "paper_ids", "served_at"},
    )
    db["impressions"].create_index(["user_id", "served_at"])
    db["impressions"].create_index(["experiment", "variant"])
    db["experiments"].create(
        {"name": str, "kind": str, "config": str, "control": str, "status": str,
         "created_at": str, "stopped_at": str},
        pk="name", not_null={"kind", "config", "status", "created_at"},
    )
    db["models"].create(
        {"version": str, "status": str, "created_at": str, "path": str, "params": str,
         "metrics": str, "promoted_at": str, "retired_at": str},
        pk="version", not_null={"status", "created_at", "path"},
    )


def _m002_paper_changes(db: Database) -> None:
    """A paper updated in place (new upvote count, corrected title) keeps its rowid, and
    the live catalog polled by rowid, so it never saw the update. `changed` is a counter
    every insert and every real update moves past all others: the catalog polls that."""
    db.execute("ALTER TABLE papers ADD COLUMN changed INTEGER")
    db.execute("UPDATE papers SET changed = rowid")
    db["papers"].create_index(["changed"])


def _m003_reader_scoped_keys(db: Database) -> None:
    """An idempotency key names a retry of one reader's event: two readers' clients may
    pick the same key ("1", a counter), and the second reader's event was silently dropped.
    Unique per (user_id, key) instead of globally; globally unique keys are unique per
    reader too, so existing rows need no change."""
    db.execute("DROP INDEX IF EXISTS idx_events_idempotency_key")
    db.execute("CREATE UNIQUE INDEX idx_events_user_id_idempotency_key "
               "ON events (user_id, idempotency_key)")


def _m004_store_probe(db: Database) -> None:
    """One row a fresh connection rewrites to learn whether the file takes writes again
    after a fault (read-only file, full disk): see Store.health_reasons."""
    db.execute("CREATE TABLE store_probe (id INTEGER PRIMARY KEY, at TEXT NOT NULL)")


def _m005_model_files(db: Database) -> None:
    """The model registry keeps each version's files (arrays.npz, manifest.json), so a
    process on another machine can load a model knowing only the database: see
    Store.save_model_files."""
    db.execute("CREATE TABLE model_files (version TEXT NOT NULL, name TEXT NOT NULL, "
               "data BLOB NOT NULL, sha256 TEXT NOT NULL, PRIMARY KEY (version, name))")


MIGRATIONS = [_m001_initial, _m002_paper_changes, _m003_reader_scoped_keys, _m004_store_probe,
              _m005_model_files]
