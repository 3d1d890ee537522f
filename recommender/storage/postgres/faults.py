"""Which PostgreSQL errors are faults outside the program (they pass when their cause does).

A server that is down, restarting, out of disk or out of connections, and a connection
that broke under a query, are outside faults: the service answers 503 with Retry-After
and heals by itself. A constraint violation or bad SQL is a bug or bad data: not one."""
from __future__ import annotations

import psycopg
import psycopg_pool

from recommender.storage.interface import StoreUnavailable

# SQLSTATE classes of outside faults: connection exception, insufficient resources
# (disk full, too many connections), operator intervention (shutdown, cannot connect now),
# system error (I/O), and transaction rollback (serialization failure, deadlock: retry).
_FAULT_CLASSES = {"08": "database connection failed", "53": "database out of resources",
                  "57": "database server shutting down or restarting",
                  "58": "database system error", "40": "database busy (transaction rolled back)"}
_FAULT_STATES = {"53100": "disk full", "53300": "too many database connections",
                 "25006": "database is read-only"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def fault_reason(exc: BaseException) -> str | None:
    """What outside fault `exc` is, or None when it is a bug or bad data."""
    if isinstance(exc, StoreUnavailable):
        return exc.reason
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return "no database connection available (pool timed out)"
    if isinstance(exc, psycopg_pool.TooManyRequests):
        return "too many requests waiting for a database connection"
    if not isinstance(exc, psycopg.Error):
        return None
    state = getattr(exc, "sqlstate", None)
    if state in _FAULT_STATES:
        return _FAULT_STATES[state]
    if state and state[:2] in _FAULT_CLASSES:
        return f"{_FAULT_CLASSES[state[:2]]}: {_first_line(exc)}"
    if state is None and isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        # raised by the client: refused, reset or closed connection, server gone
        return f"database connection lost: {_first_line(exc)}"
    return None


def connection_lost(exc: BaseException) -> bool:
    """The connection itself broke or could not be made (the server is gone, restarting,
    or a pooled connection outlived it); not the pool being busy."""
    return (isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
            and getattr(exc, "sqlstate", None) in (None, "57P01", "57P02", "57P03")
            and not isinstance(exc, (psycopg_pool.PoolTimeout, psycopg_pool.TooManyRequests)))


def pool_busy(exc: BaseException) -> bool:
    """No pooled connection came in time: the pool is busy, or cannot connect at all."""
    return isinstance(exc, (psycopg_pool.PoolTimeout, psycopg_pool.TooManyRequests))


# What a store call may raise for the database's sake (the service maps these to 503 or 500).
DRIVER_ERRORS: tuple[type[BaseException], ...] = (psycopg.Error,)
