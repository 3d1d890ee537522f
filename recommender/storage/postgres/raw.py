"""Raw access to a PostgreSQL store, for tests and benchmarks that must look under (or
behind) the store: count the rows a server wrote, create and drop databases. The service and
the CLI never use this; they go through the Store interface.
"""
from __future__ import annotations

from collections.abc import Sequence

import psycopg

Error = psycopg.Error


def query(url: str, sql: str, params: Sequence | None = None) -> list[tuple]:
    """All rows of one statement, on a connection opened and closed for it."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(sql, params).fetchall()


def execute(url: str, sql: str, params: Sequence | None = None, autocommit: bool = False) -> int:
    """Run one writing statement (committed); returns the rows it changed. `autocommit`
    for statements that cannot run in a transaction (CREATE DATABASE)."""
    with psycopg.connect(url, autocommit=autocommit, connect_timeout=5) as conn:
        cur = conn.execute(sql, params)
        return cur.rowcount
