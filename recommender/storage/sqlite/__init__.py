"""The SQLite backend of the store interface (recommender/storage/interface.py).

Why one package: every durability promise the service makes (a 2xx means committed, retries
are stored once, a rejected batch leaves nothing behind) lives in how transactions are
opened here, so it is kept in one place. Every statement is parameterised.

One file, WAL mode, `synchronous=FULL`: an acknowledged write survives a crash of the
process (and of the machine). Each thread gets its own connection, so FastAPI's worker
threads never share a cursor; the busy timeout lets writers queue instead of failing with
"database is locked".

Writers of one process queue on a Python lock, not on SQLite's busy handler (which polls
with sleeps of up to 100 ms: under load that, not the work, set the tail latency). The
hot-path writes (event batches, served lists) go through a group commit: one writer thread
commits every write waiting at that moment in one transaction, each in its own savepoint
(one bad batch still leaves nothing behind and does not fail its neighbours), with one
fsync for all. A caller returns only after the commit that holds its write is on disk.
Served lists are not acknowledged to anyone (a GET answers with the list, not with "logged"),
so the request does not wait for theirs: the writer commits it in front of its next batch,
or on its own within IDLE_COMMIT_S, with `synchronous=NORMAL` when no event shares the
commit; it is fsynced with the next event commit or checkpoint. A crash of the process can
lose the lists of its last IDLE_COMMIT_S, a power cut the last few committed ones. Reads of
served lists in this process first wait for them (flush), and a list always commits no
later than any write submitted after it, so an event that names a list never precedes it.
Events are always `FULL` and acknowledged only once on disk.
"""
from __future__ import annotations

from recommender.storage.sqlite.faults import DRIVER_ERRORS, fault_reason
from recommender.storage.sqlite.store import SQLiteStore

__all__ = ["DRIVER_ERRORS", "SQLiteStore", "fault_reason"]
