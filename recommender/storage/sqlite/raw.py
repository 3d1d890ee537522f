"""Raw access to an SQLite store file, for tests and benchmarks that must look under (or
behind) the store: count the rows of a file a server writes, check its integrity, hold its
write lock from another process, build a file at an old schema version. The service and
the CLI never use this; they go through the Store interface.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

Error = sqlite3.Error
IntegrityError = sqlite3.IntegrityError
OperationalError = sqlite3.OperationalError


def connect(path: str | Path, readonly: bool = False, timeout: float = 30.0,
            autocommit: bool = False) -> sqlite3.Connection:
    """A plain connection to the file (read-only: `mode=ro`, never creates or writes it);
    `autocommit`: no implicit transactions (BEGIN/COMMIT are the caller's)."""
    extra = {"isolation_level": None} if autocommit else {}
    if readonly:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout, **extra)
    return sqlite3.connect(path, timeout=timeout, **extra)


def query(path: str | Path, sql: str, params: Sequence = (), readonly: bool = True) -> list[tuple]:
    """All rows of one statement, on a connection opened and closed for it."""
    con = connect(path, readonly=readonly)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def execute(path: str | Path, sql: str, params: Sequence = ()) -> int:
    """Run one writing statement and commit; returns the rows it changed."""
    con = connect(path)
    try:
        with con:
            return con.execute(sql, params).rowcount
    finally:
        con.close()


def checkpoint(path: str | Path) -> None:
    """Fold the WAL into the main file (before copying the file as a template)."""
    con = connect(path)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def create_at_version(path: str | Path, version: int) -> None:
    """A new file with only the first `version` migrations applied (to test the later ones
    on it)."""
    from sqlite_utils import Database

    from recommender.storage.sqlite.schema import MIGRATIONS

    version = int(version)
    db = Database(path)
    for migration in MIGRATIONS[:version]:
        migration(db)
    db.execute(f"PRAGMA user_version = {version}")
    db.conn.commit()
    db.close()
