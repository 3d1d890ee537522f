"""The PostgreSQL backend of the store interface (recommender/storage/interface.py): the
shared store of several API replicas on one machine or many (PAPERREC_DB=postgresql://...).

It keeps the SQLite backend's promises (recommender/storage/sqlite/__init__.py):
- A 2xx means committed: synchronous_commit is on for every connection, and an event batch
  is acknowledged only once the commit that holds it has returned.
- A batch is all or nothing (one savepoint per request); idempotency keys go through the
  unique index on (user_id, idempotency_key) and ON CONFLICT DO NOTHING, and a reused key
  for other content is a conflict.
- Group commit (writer.py): one writer thread per process commits every write waiting at
  that moment in one transaction, on a connection of its own.
- Every statement is parameterised (table names come from a fixed list, as identifiers).
- Faults outside the program (server down or restarting, connection lost, disk full)
  raise StoreUnavailable (a 503 with Retry-After), are remembered for /health, and heal by
  themselves: a read on a broken pooled connection is retried once on another; while the
  server is unreachable calls fail at once and one every RETRY_S tries again; the pool
  replaces broken connections itself.

What replicas need (schema.py): events and paper changes are numbered in commit order, so
every replica follows them as a change feed (`events_since`, `papers_since`) without
missing a row another replica committed late.
"""
from __future__ import annotations

from recommender.storage.postgres.faults import DRIVER_ERRORS, fault_reason
from recommender.storage.postgres.store import PostgresStore

__all__ = ["DRIVER_ERRORS", "PostgresStore", "fault_reason"]
