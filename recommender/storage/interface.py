"""What the rest of the system may ask of storage: one interface, any backend.

The domain, the service and the CLI speak to a `Store` only through these methods; both
backends (sqlite/, postgres/) implement this class and pass the same suite
(tests/test_storage_contract.py). Nothing outside `recommender/storage/` imports a
database driver.

The promises every backend keeps:
- an event batch is stored atomically, and `add_events` returns only once it is durable
  (a 2xx means committed); a retry with the same `(user_id, idempotency_key)` is stored
  once, a key reused for another event raises `IdempotencyConflict` and stores nothing;
- served lists (`log_served_list`) are not acknowledged to anyone and may be written
  after the call returns, but every read of served lists in the same process sees them,
  and a list never commits after an event written later;
- a paper insert or real update takes the next change number (`papers_since`), and events
  take ids, in commit order: a follower of `events_since` / `papers_since` (the live
  recommender of every replica) never skips a row committed after one it has seen;
- faults outside the program (read-only file or database, full disk, I/O errors) raise
  `StoreUnavailable`, are remembered for `health_reasons`, and heal by themselves.
"""
from __future__ import annotations

import hashlib
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from recommender.core.kinds import INTEREST_KINDS

# What a client is told to wait before retrying a write refused for an outside fault.
RETRY_AFTER_S = 2
# Kinds an experiment's report credits to a served list: those that show interest (core/kinds.py).
ATTRIBUTED_KINDS = INTEREST_KINDS
# The longest attribution window a report may ask for (the API's window_hours bound).
MAX_ATTRIBUTION_DAYS = 30.0
# What `Store.count` counts.
TABLES = ("papers", "events", "impressions", "experiments", "models")
# What a paper is made of besides its id (the change number and added_at are bookkeeping).
PAPER_FIELDS = frozenset({"title", "abstract", "published_at", "authors", "upvotes", "extra"})


@dataclass(frozen=True)
class EventRow:
    user_id: str
    paper_id: str
    kind: str
    ts: str
    request_id: str | None = None
    idempotency_key: str | None = None


class StoreUnavailable(Exception):
    """The database cannot serve this now for a reason outside the program (see
    `Store.fault_reason`); the service answers 503 with Retry-After, nothing of the write
    is kept."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = RETRY_AFTER_S


class IdempotencyConflict(ValueError):
    """A batch reuses a reader's idempotency key for an event with other content (paper,
    kind or request_id): a client bug whose event would otherwise be silently lost. The
    whole batch is refused; `index` is the event's position in it."""

    def __init__(self, key: str, index: int):
        super().__init__(f"idempotency_key {key!r} is already used by this reader for "
                         "another event (different paper_id, kind or request_id)")
        self.key, self.index = key, index


def complete_paper(paper: dict, stored: dict | None) -> dict:
    """`paper` with every field (PAPER_FIELDS): an update keeps the stored fields it does
    not carry; a new paper needs a title (ValueError). The one rule of both backends'
    upsert_papers."""
    if PAPER_FIELDS <= paper.keys():
        return paper
    if stored is None and not paper.get("title"):
        raise ValueError(f"paper {paper['paper_id']!r} is new and has no title")
    return {**{f: stored[f] for f in PAPER_FIELDS if stored is not None}, **paper}


def reader_summary(user_id: str, counts: dict[str, int], first: str | None, last: str | None,
                   distinct_papers: int | None) -> dict:
    """The shape of Store.user_summary on every backend."""
    return {"user_id": user_id, "events": sum(counts.values()), "by_kind": counts,
            "distinct_papers": int(distinct_papers or 0), "first_event_at": first,
            "last_event_at": last}


def decoded_impression(row: dict) -> dict:
    """A served-list row with its JSON columns decoded (Store.get_impression)."""
    row["paper_ids"] = json.loads(row["paper_ids"])
    row["sources"] = json.loads(row["sources"]) if row["sources"] else None
    return row


class Store(ABC):
    """Papers, events, served lists, experiments and the model registry.

    Rows come back as plain dicts; times are ISO-8601 UTC strings."""

    # Moved by every experiment created or stopped through this Store: lets a cache of the
    # running experiments (experiments.assignment.running_experiments) see it at once.
    experiments_changed: int = 0
    # Moved by every commit through this Store: a write of this process is seen by the next
    # refresh of the live recommender whatever `feed_poll_s` says.
    writes_committed: int = 0
    # How long the live recommender may serve without asking the store for what other
    # processes wrote (LiveRecommender.refresh): 0 asks on every request (SQLite, a local
    # file: cheap); a server database is asked at most this often per replica, so a write
    # on one replica reaches the lists of every other within it.
    feed_poll_s: float = 0.0

    # -- the store itself ----------------------------------------------------------------
    @property
    @abstractmethod
    def location(self) -> str:
        """Where the data lives (a file path, a URL without its password)."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    @abstractmethod
    def schema_version(self) -> int:
        """How many migrations the store has (the same numbers on every backend)."""

    @abstractmethod
    def flush(self) -> None:
        """Wait for writes submitted without waiting (served lists), so a read that
        follows sees them."""

    # -- faults outside the program ------------------------------------------------------
    @abstractmethod
    def fault_reason(self, exc: BaseException) -> str | None:
        """What outside fault `exc` is (read-only, full disk, I/O error...), or None when
        it is a bug or bad data, which retrying would not cure."""

    @abstractmethod
    def note_fault(self, exc: BaseException) -> StoreUnavailable:
        """Remember an outside fault (for health_reasons) and return the StoreUnavailable
        to raise in its place."""

    @property
    @abstractmethod
    def fault(self) -> str | None:
        """The outside fault remembered now, if any."""

    @abstractmethod
    def note_success(self) -> None:
        """A write went through: any remembered fault is over."""

    _writes_lock = threading.Lock()

    def note_written(self) -> None:
        """A write committed: move `writes_committed` (under a lock: `+=` from two threads
        can lose one) and end any fault."""
        with Store._writes_lock:
            self.writes_committed += 1
        self.note_success()

    @abstractmethod
    def health_reasons(self) -> list[str]:
        """[] when the store takes writes; else why not (probing whether the fault passed)."""

    # -- papers ----------------------------------------------------------------------------
    @abstractmethod
    def upsert_papers(self, papers: Sequence[dict]) -> int:
        """Insert papers, or update them by id; returns how many rows changed. A paper
        dict carries `paper_id` and any of title, abstract, published_at, authors,
        upvotes, extra: an existing paper keeps every field the dict does not carry
        (`extra` is merged key by key); a new one needs a title. Writing identical
        values changes nothing (not even the change number)."""

    @abstractmethod
    def get_paper(self, paper_id: str) -> dict | None: ...

    @abstractmethod
    def get_papers(self, paper_ids: Sequence[str]) -> dict[str, dict]:
        """Several papers by id: id -> paper, unknown ids absent."""

    @abstractmethod
    def iter_papers(self) -> Iterator[dict]:
        """Every paper in the order it was first added."""

    @abstractmethod
    def papers_since(self, changed: int) -> list[tuple[int, dict]]:
        """(change number, paper) of every paper added or updated after change number
        `changed`, in the order the papers were first added."""

    @abstractmethod
    def existing_paper_ids(self, paper_ids: Iterable[str]) -> set[str]: ...

    @abstractmethod
    def count(self, table: str) -> int:
        """Rows of one of TABLES."""

    # -- events ----------------------------------------------------------------------------
    @abstractmethod
    def add_events(self, events: Sequence[EventRow]) -> tuple[int, int]:
        """Store a batch atomically and durably; returns (stored, duplicates)."""

    @abstractmethod
    async def add_events_async(self, events: Sequence[EventRow]) -> tuple[int, int]:
        """add_events() for the event loop: awaits the commit without holding a thread."""

    @abstractmethod
    def user_events(self, user_id: str, until: str | None = None,
                    paper_id: str | None = None) -> list[dict]:
        """A reader's events (id, paper_id, kind, ts, request_id) in (ts, arrival) order, up
        to `until`, optionally of one paper only."""

    @abstractmethod
    def user_summary(self, user_id: str) -> dict:
        """Event counts by kind, distinct papers, first and last event time."""

    @abstractmethod
    def co_readers(self, paper_id: str, kinds: Sequence[str], max_readers: int = 500,
                   limit: int = 200) -> tuple[int, dict[str, int]]:
        """(readers who acted on the paper with one of `kinds`, and per other paper how
        many of them acted on it too), over the paper's `max_readers` latest readers."""

    @abstractmethod
    def readers_with_prefix(self, prefix: str, limit: int = 50) -> list[str]: ...

    @abstractmethod
    def iter_events(self, until: str | None = None) -> Iterator[dict]:
        """All events (id, user_id, paper_id, kind, ts) in arrival order."""

    @abstractmethod
    def event_columns(self, until: str | None = None, batch: int = 100_000
                      ) -> Iterator[tuple[tuple, tuple, tuple, tuple]]:
        """(user_ids, paper_ids, kinds, ts) column chunks in (ts, arrival) order."""

    @abstractmethod
    def events_since(self, event_id: int) -> list[dict]:
        """Events (id, user_id, paper_id, kind, ts) after event id `event_id`, in arrival
        order: lets the live recommender keep up with one indexed query."""

    # -- served lists ----------------------------------------------------------------------
    @abstractmethod
    def log_served_list(self, request_id: str, user_id: str, strategy: str,
                        paper_ids: Sequence[str], model_version: str | None = None,
                        experiment: str | None = None, variant: str | None = None,
                        sources: Sequence[str] | None = None,
                        served_at_unix: float | None = None) -> None:
        """Log a served list without waiting for it (see the module docstring). A list
        ranked 'as of' a time is logged at that time, so a replay keeps one clock."""

    @abstractmethod
    def get_impression(self, request_id: str) -> dict | None:
        """A served list by request_id (paper_ids and sources decoded), or None."""

    @abstractmethod
    def served_to(self, user_id: str, since: str | None = None, until: str | None = None,
                  limit: int = 100) -> list[dict]:
        """The lists served to a reader in (since, until] (ISO times; None: no bound),
        newest first, at most `limit`: each {"served_at", "paper_ids"} (decoded). What a
        reader was shown and passed over moves down in their next lists
        (serving/feedback.py). Read on the path of a request, so unlike the other reads of
        served lists it does not wait for lists still being written: one served a moment
        ago may be missing."""

    @abstractmethod
    def prune_impressions(self, older_than_days: float) -> int:
        """Delete served lists older than `older_than_days` that no report can need
        (ValueError below MAX_ATTRIBUTION_DAYS); returns how many."""

    # -- experiments -----------------------------------------------------------------------
    @abstractmethod
    def save_experiment(self, name: str, kind: str, config: dict, control: str | None) -> None: ...

    @abstractmethod
    def stop_experiment(self, name: str) -> bool:
        """Whether the experiment was running (stopping a stopped one is a no-op)."""

    @abstractmethod
    def list_experiments(self, status: str | None = None) -> list[dict]:
        """Oldest first, config decoded."""

    @abstractmethod
    def get_experiment(self, name: str) -> dict | None: ...

    @abstractmethod
    def experiment_lists(self, name: str) -> list[dict]:
        """Every list served under an experiment: request_id, user_id, variant, served_at,
        items."""

    @abstractmethod
    def experiment_events(self, name: str, window_hours: float = 24.0) -> list[dict]:
        """Events attributed to the experiment's lists (see the SQLite backend's docstring
        for the rule), with the list's variant, the slot's position and sources."""

    # -- the model registry ----------------------------------------------------------------
    @abstractmethod
    def register_model(self, version: str, path: str, params: dict, metrics: dict,
                       status: str = "candidate") -> None: ...

    @abstractmethod
    def set_model_status(self, version: str, status: str) -> None:
        """Promoting ('active') retires the previous active model in the same
        transaction: never zero or two active models."""

    @abstractmethod
    def list_models(self) -> list[dict]:
        """Oldest first, params and metrics decoded."""

    @abstractmethod
    def save_model_files(self, version: str, files: dict[str, bytes]) -> None:
        """Keep a version's files (name -> bytes, e.g. arrays.npz and manifest.json) in the
        registry, each with its SHA-256: any process that reaches the database can load
        the model, on any machine."""

    @abstractmethod
    def model_files(self, version: str) -> dict[str, bytes]:
        """The files kept for `version` ({} when none), each checked against its SHA-256
        (ValueError naming the file when one does not match)."""

    @abstractmethod
    def drop_model_files(self, versions: Iterable[str]) -> int:
        """Forget the files of these versions (the registry rows stay); returns how many."""

    @staticmethod
    def _verified_files(version: str, rows: Iterable) -> dict[str, bytes]:
        files = {}
        for name, data, digest in ((r["name"], r["data"], r["sha256"]) if isinstance(r, dict)
                                   else r for r in rows):
            data = bytes(data)
            if hashlib.sha256(data).hexdigest() != digest:
                raise ValueError(f"model {version}: stored file {name} does not match its "
                                 "checksum")
            files[name] = data
        return files

    def active_model(self) -> dict | None:
        rows = [m for m in self.list_models() if m["status"] == "active"]
        return rows[-1] if rows else None
