"""Raw reads of a store's database on either backend, for tests and benchmarks that look
behind the service (count what a server wrote, find the active model). The service and the
CLI never use this; they go through the Store interface. Backend-specific raw access (an
SQLite file's integrity check, creating PostgreSQL databases) is in sqlite/raw.py and
postgres/raw.py."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from recommender.storage import backend_of
from recommender.storage.postgres import raw as postgres_raw
from recommender.storage.sqlite import raw as sqlite_raw

# What a raw read may raise (either driver's base error).
Error = (sqlite_raw.Error, postgres_raw.Error)


def query(location: str | Path, sql: str, params: Sequence = ()) -> list[tuple]:
    """The rows of one read, written with `?` placeholders, on a connection of its own."""
    if backend_of(location) == "postgresql":
        if not params:
            return postgres_raw.query(str(location), sql, None)
        return postgres_raw.query(str(location), sql.replace("%", "%%").replace("?", "%s"), params)
    return sqlite_raw.query(location, sql, params, readonly=False)
