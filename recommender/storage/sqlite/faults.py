"""Which SQLite errors are faults outside the program (they pass when their cause does)."""
from __future__ import annotations

import sqlite3

from recommender.storage.interface import StoreUnavailable

# SQLite primary result codes of faults outside the program: they pass when the cause does.
_FAULTS = {3: "permission denied", 5: "database busy", 6: "database locked",
           8: "database is read-only", 10: "disk I/O error", 13: "disk full",
           14: "database file cannot be opened"}


def fault_reason(exc: BaseException) -> str | None:
    """What outside fault `exc` is (read-only file, full disk, I/O error...), or None when it
    is a bug or bad data, which retrying would not cure."""
    if isinstance(exc, StoreUnavailable):
        return exc.reason
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and (code & 0xFF) in _FAULTS:
        return _FAULTS[code & 0xFF]
    text = str(exc).lower()
    for words, reason in (("readonly", "database is read-only"), ("disk is full", "disk full"),
                          ("disk i/o", "disk I/O error"), ("unable to open", _FAULTS[14])):
        if words in text:
            return reason
    return None


# What a store call may raise for the database's sake (the service maps these to 503 or 500).
DRIVER_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error,)
