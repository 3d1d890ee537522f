"""Storage: the `Store` interface (interface.py) and its backends (sqlite/, postgres/).

Everything outside this package opens a store with `open_store` and catches `STORE_ERRORS`;
no other module imports a database driver."""
from __future__ import annotations

from pathlib import Path

from recommender.storage.interface import (ATTRIBUTED_KINDS, MAX_ATTRIBUTION_DAYS, EventRow,
                                           IdempotencyConflict, Store, StoreUnavailable)
from recommender.storage.postgres import DRIVER_ERRORS as _POSTGRES_ERRORS
from recommender.storage.postgres import PostgresStore
from recommender.storage.sqlite import DRIVER_ERRORS as _SQLITE_ERRORS
from recommender.storage.sqlite import SQLiteStore

# What a store call may raise for the database's sake: the service maps these to 503 (an
# outside fault, `Store.fault_reason`) or 500. A backend adds its driver's base error.
STORE_ERRORS: tuple[type[BaseException], ...] = (StoreUnavailable, *_SQLITE_ERRORS,
                                                 *_POSTGRES_ERRORS)

# The backends by name; a location picks one (backend_of, open_store).
BACKENDS = ("sqlite", "postgresql")

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_SQLITE_SCHEME = "sqlite:///"


def backend_of(location: str | Path) -> str:
    """'postgresql' for a postgresql:// (or postgres://) URL, else 'sqlite' (a file path
    or a sqlite:///path URL)."""
    text = str(location)
    return "postgresql" if text.startswith(_POSTGRES_SCHEMES) else "sqlite"


def open_store(location: str | Path) -> Store:
    """The store at `location` (created if need be, migrated): a postgresql:// URL is the
    PostgreSQL database, `sqlite:///path` or a plain path an SQLite file."""
    text = str(location)
    if backend_of(text) == "postgresql":
        return PostgresStore(text)
    if text.startswith(_SQLITE_SCHEME):
        return SQLiteStore(text[len(_SQLITE_SCHEME):])  # sqlite:////abs/path, sqlite:///relative
    return SQLiteStore(location)


__all__ = ["ATTRIBUTED_KINDS", "BACKENDS", "MAX_ATTRIBUTION_DAYS", "STORE_ERRORS", "EventRow",
           "IdempotencyConflict", "Store", "StoreUnavailable", "backend_of", "open_store"]
