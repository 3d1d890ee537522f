"""Storage: the `Store` interface (interface.py) and its backends (sqlite/).

Everything outside this package opens a store with `open_store` and catches `STORE_ERRORS`;
no other module imports a database driver."""
from __future__ import annotations

from pathlib import Path

from recommender.storage.interface import (ATTRIBUTED_KINDS, MAX_ATTRIBUTION_DAYS, EventRow,
                                           IdempotencyConflict, Store, StoreUnavailable)
from recommender.storage.sqlite import DRIVER_ERRORS as _SQLITE_ERRORS
from recommender.storage.sqlite import SQLiteStore

# What a store call may raise for the database's sake: the service maps these to 503 (an
# outside fault, `Store.fault_reason`) or 500. A backend adds its driver's base error.
STORE_ERRORS: tuple[type[BaseException], ...] = (StoreUnavailable, *_SQLITE_ERRORS)

# The backends by name; a location picks one (open_store).
BACKENDS = ("sqlite",)


def open_store(location: str | Path) -> Store:
    """The store at `location`: a path is an SQLite file (created, migrated)."""
    return SQLiteStore(location)


__all__ = ["ATTRIBUTED_KINDS", "BACKENDS", "MAX_ATTRIBUTION_DAYS", "STORE_ERRORS", "EventRow",
           "IdempotencyConflict", "Store", "StoreUnavailable", "open_store"]
