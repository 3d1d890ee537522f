"""The live recommender: keeps catalog, event log and readers' histories in step with the
store, and ranks a reader's list with a registered strategy (strategies.py).

Why it polls the store instead of being told: the store is the source of truth, and papers
or events may arrive through another process (the importer, a second worker). Each request
first pulls what is new (one indexed query when nothing is), so the next list already
reflects the last acknowledged event.
"""
from __future__ import annotations

import logging
import threading
import time

import numpy as np

from recommender.core.events import undo_pairs, without_cancelled
from recommender.core.kinds import TRENDING_WEIGHTS, UNDO_KINDS
from recommender.core.ranking import Ranked
from recommender.core.times import DAY_S, to_iso, to_unix
from recommender.model.content import ContentEncoder, paper_text
from recommender.serving import strategies
from recommender.serving.catalog import CatalogSnapshot, build_snapshot, extend_snapshot
from recommender.serving.catalog_refit import IN_PROCESS_BELOW, fit_catalog, fit_elsewhere
from recommender.serving.event_log import EventLog
from recommender.serving.feedback import DEFAULT as DEFAULT_FEEDBACK
from recommender.serving.feedback import Feedback, FeedbackWeights, reader_feedback
from recommender.serving.kept_lists import KeptLists
from recommender.serving.model_slot import ModelSlot, ServedModel
from recommender.serving.reader_history import EMPTY_HISTORY, ReaderHistory
from recommender.serving.strategies import Reader, View
from recommender.serving.trending import trending_scores
from recommender.storage import STORE_ERRORS, Store, StoreUnavailable

log = logging.getLogger(__name__)


class LiveRecommender:
    def __init__(self, store: Store, encoder: ContentEncoder | None = None,
                 trending_half_life_days: float = 7.0, list_ttl_s: float = 0.0,
                 max_kept_items: int = 200_000, feedback: FeedbackWeights = DEFAULT_FEEDBACK):
        self.store = store
        # How strongly what a reader turned down moves down their lists (feedback.py).
        self.feedback_weights = feedback
        # Readers' model-ranked lists, kept for list_ttl_s (kept_lists.py).
        self.kept = KeptLists(list_ttl_s, max_kept_items)
        self.half_life = trending_half_life_days
        self._lock = threading.Lock()
        # Taking in new papers, and adding them to the model: slow, so only a writer waits.
        self._papers_lock = threading.Lock()
        self._align_lock = threading.Lock()
        self._fixed_encoder = encoder is not None
        self._background: dict[str, threading.Thread] = {}
        self._background_guard = threading.Lock()
        self._trend_cache: dict[tuple, np.ndarray] = {}
        self._trend_compute = threading.Lock()
        # Lists everybody shares (trending for readers without history), per trend key.
        self._shared_lists: dict[tuple, Ranked] = {}
        self._rebuild_catalog(encoder)
        self.events = EventLog()
        self._event_id = 0
        self._writes_seen, self._pulled_at = -1, 0.0
        # Who has events, and the refresh generation of each reader's last one: a reader
        # not in here has no history (no query needed), and a cached history older than
        # the reader's last event is never stored (see history()).
        self._generation = 0
        self._reader_generation: dict[str, int] = {}
        self._histories: dict[str, ReaderHistory] = {}
        self._topic_cache: tuple[ContentEncoder | None, dict[int, tuple[str, ...]]] = (None, {})
        self.slot = ModelSlot(store.active_model, store.get_paper, store.model_files)
        self.refresh()
        self.slot.check(self._catalog_ids, wait=True)

    # -- the trained model ---------------------------------------------------------------
    @property
    def served(self) -> ServedModel | None:
        return self.slot.served

    @property
    def model_version(self) -> str | None:
        return self.slot.version

    def degraded_reasons(self) -> list[str]:
        return self.slot.problems()

    def _catalog_ids(self) -> tuple[str, ...]:
        return self.catalog.paper_ids

    @property
    def encoder(self) -> ContentEncoder:
        """The encoder of the catalog's vectors (they swap together: catalog.py)."""
        return self.catalog.encoder

    def _rebuild_catalog(self, encoder: ContentEncoder | None = None) -> None:
        """The catalog from every stored paper: with `encoder` (a model's, fixed), else
        with one fit on the papers themselves, in this thread (at start-up, and for a small
        catalog; a large one is refit in the background: _refit_catalog)."""
        rows = self.store.papers_since(0)
        papers = [p for _, p in rows]
        vectors = None
        if encoder is None:
            encoder, vectors = fit_catalog([paper_text(p["title"], p.get("abstract"))
                                            for p in papers])
        self._swap_catalog(build_snapshot(papers, encoder, vectors), len(papers),
                           max((c for c, _ in rows), default=0))

    def _swap_catalog(self, catalog: CatalogSnapshot, fit_size: int, change: int) -> None:
        with self._lock:
            self.catalog = catalog
            self._paper_change = change
            self._encoder_fit_size = fit_size
            self._trend_cache.clear()
            self._shared_lists.clear()

    def _in_background(self, name: str, work) -> None:
        """Run `work` on a thread named `name`, unless one by that name still runs: at
        most one thread per kind of background work (catalog-refit, catalog-catch-up)."""
        with self._background_guard:
            running = self._background.get(name)
            if running is not None and running.is_alive():
                return
            thread = self._background[name] = threading.Thread(target=work, daemon=True,
                                                               name=name)
            thread.start()

    def _refit_catalog(self) -> None:
        """A new vocabulary fit on the catalog as stored now (in a child process for a large
        one: catalog_refit.py), then the papers stored since the fit began, swapped in as one
        snapshot. Until then reads and writes go on with the old vocabulary."""
        try:
            rows = self.store.papers_since(0)
            papers = [p for _, p in rows]
            since = max((c for c, _ in rows), default=0)
            encoder, vectors = fit_elsewhere([paper_text(p["title"], p.get("abstract"))
                                              for p in papers])
            base = build_snapshot(papers, encoder, vectors)
            with self._papers_lock:  # no other thread takes papers in meanwhile
                later = self.store.papers_since(since)
                self._swap_catalog(extend_snapshot(base, [p for _, p in later]), len(papers),
                                   max([since, *(c for c, _ in later)]))
        except Exception:  # the store went away (a fault, a shutdown): the next batch retries
            log.warning("catalog refit failed; the catalog keeps its vocabulary", exc_info=True)

    def wait_for_refit(self, timeout: float | None = None) -> None:
        """Wait for background work on the catalog, if any runs (tests, benchmarks): a
        catch-up a read started, then a vocabulary refit."""
        for name in ("catalog-catch-up", "catalog-refit"):  # a catch-up may start a refit
            thread = self._background.get(name)
            if thread is not None:
                thread.join(timeout)

    def is_busy(self) -> bool:
        """Whether a request could wait here now: a refresh or a paper addition holds a
        lock (adding papers encodes them, seconds for a large import). The service then
        runs the request on a worker thread instead of the event loop."""
        served = self.served
        return (self._lock.locked() or self.slot.loading or self._align_lock.locked()
                or (served is not None and served.lock.locked()))

    # -- keeping up with the store -------------------------------------------------------
    def refresh(self, wait: bool = False) -> None:
        """Take in what the store has that this process has not seen (`_pull`).

        The store is asked when this process wrote to it since the last look (so the
        writer's next list has its event), when the last look is older than the store's
        `feed_poll_s` (what other replicas wrote: the change feed; 0 for SQLite, which is
        asked on every request), or when `wait`. A store that cannot answer now (the
        database server is down) does not fail the request: lists are served from what is
        in memory, and a later refresh asks again."""
        store = self.store
        writes, now = store.writes_committed, time.monotonic()
        if not wait and writes == self._writes_seen and now - self._pulled_at < store.feed_poll_s:
            return
        self._writes_seen, self._pulled_at = writes, now
        try:
            self._pull(wait)
        except STORE_ERRORS as exc:
            if wait or not store.fault_reason(exc):
                raise
            if not isinstance(exc, StoreUnavailable):
                store.note_fault(exc)

    def _pull(self, wait: bool) -> None:
        """Take in what the store has that this process has not seen: papers, then events,
        then the model's share of the new papers.

        Adding papers (encoding them, and the model's add_paper one by one) takes seconds
        for a batch of hundreds; a read must not wait for it (it waited 4.3 s behind a
        300-paper POST). So a read skips the papers or the model's alignment another
        thread is doing and ranks with what is in place; `wait` (the writer of a batch,
        serving/papers.py) waits, so the papers are recommendable when its POST answers."""
        behind = False
        if self._papers_lock.acquire(blocking=wait):
            try:
                behind = not self._take_new_papers(None if wait else self.READ_TAKES_PAPERS)
            finally:
                self._papers_lock.release()
        with self._lock:
            new_events = self.store.events_since(self._event_id)
            rows = self.catalog.row_of
            # An event on a paper still being added (by another thread) waits for it.
            known = next((i for i, e in enumerate(new_events) if e["paper_id"] not in rows),
                         len(new_events))
            new_events = new_events[:known]
            if new_events:
                void = self._taken_back(new_events)
                self.events.append(
                    [rows[e["paper_id"]] for e in new_events],
                    [e["kind"] for e in new_events],
                    [to_unix(e["ts"]) for e in new_events],
                    [e["id"] not in void for e in new_events],
                    [e["id"] for e in new_events],
                    [e["user_id"] for e in new_events],
                )
                self.events.void(void)
                self._event_id = new_events[-1]["id"]
                self._trend_cache.clear()
                self._shared_lists.clear()
                self._generation += 1
                for e in new_events:
                    self._reader_generation[e["user_id"]] = self._generation
                    self._histories.pop(e["user_id"], None)
        served = self.served
        lag = 0 if served is None else self.catalog.size - len(served.paper_ids)
        if not wait and (behind or lag > self.READ_TAKES_PAPERS):
            self._in_background("catalog-catch-up", self._catch_up)
        elif lag > 0 and self._align_lock.acquire(blocking=wait):
            try:  # one aligner at a time: two would both add the same papers to the model
                served.align(self.catalog.paper_ids, self.store.get_paper)
            except Exception as exc:  # adding a paper failed: stop serving it, say why
                self.slot.drop(f"model dropped: {exc!r}")
            finally:
                self._align_lock.release()
        if self.slot.check_due():
            self.slot.check(self._catalog_ids)

    def _taken_back(self, events: list[dict]) -> set[int]:
        """Ids of the events trending must not count after `events` (core/events.undo_pairs):
        an undo (remove_upvote) with nothing to take back moves no score, and one that takes
        back its reader's own event (an upvote) cancels it exactly, as if neither had been
        (decayed separately, the pair left a residue that outweighed weeks-old papers).
        Only readers with an undo in `events` are looked up (one query each)."""
        void: set[int] = set()
        undoing = {e["user_id"] for e in events if e["kind"] in UNDO_KINDS}
        new = {e["id"] for e in events}
        for user in undoing:
            theirs = self.store.user_events(user)
            _, taken = undo_pairs([r["paper_id"] for r in theirs], [r["kind"] for r in theirs])
            for i, r in enumerate(theirs):
                if r["id"] in new and r["kind"] in UNDO_KINDS:
                    void.add(r["id"])  # an undo never counts for trending itself ...
                    if i in taken:  # ... and takes the event it undoes with it
                        void.add(theirs[taken[i]]["id"])
        return void

    def _take_new_papers(self, limit: int | None = None) -> bool:
        """Encode papers stored since the last look into a new catalog snapshot, then swap
        it in (under _papers_lock; readers keep ranking with the old snapshot meanwhile).
        More than `limit` new papers are left alone (returns False: a read leaves them to
        the background catch-up)."""
        new_papers = self.store.papers_since(self._paper_change)
        if not new_papers:
            return True
        if limit is not None and len(new_papers) > limit:
            return False
        added = sum(p["paper_id"] not in self.catalog.row_of for _, p in new_papers)
        # new papers are appended, updated ones (upvotes, a corrected title) replaced
        catalog = extend_snapshot(self.catalog, [p for _, p in new_papers])
        self._swap_catalog(catalog, self._encoder_fit_size, max(c for c, _ in new_papers))
        if added and catalog.size > 2 * self._encoder_fit_size and not self._fixed_encoder:
            # Without a trained model the vocabulary comes from the catalog itself; once
            # the catalog has doubled, refit so new words count (in process when small).
            if catalog.size < IN_PROCESS_BELOW:
                self._rebuild_catalog()
            else:
                self._in_background("catalog-refit", self._refit_catalog)
        return True

    # A read takes in at most this many new papers itself (a few ms; papers another
    # process added one by one), and adds at most this many to the model; more is left to
    # a background thread. A read that did it all took the 0.4 s of a 1,000-paper batch it
    # happened to see first, ahead of the batch's own writer: the soak's read p99 of
    # 170-210 ms during batches.
    READ_TAKES_PAPERS = 20

    def _catch_up(self) -> None:
        """Take in new papers and add them to the model, as a writer would (on a thread of
        its own: _in_background); reads go on with what is in place meanwhile."""
        try:
            self.refresh(wait=True)
        except Exception as exc:  # the store went away: the next read starts another catch-up
            log.warning("catching up with the store's papers failed: %r", exc)

    def is_adding_papers(self) -> bool:
        return self._papers_lock.locked() or self._align_lock.locked()

    # -- scores --------------------------------------------------------------------------
    def _trend_key(self, as_of: float | None, popular: bool) -> tuple:
        now = time.time() if as_of is None else as_of
        # Trending moves on the scale of hours; a one-minute bucket keeps it fresh and cheap.
        return (popular, round(now / 60.0), len(self.events), self.catalog.size)

    def trending(self, as_of: float | None = None, popular: bool = False) -> np.ndarray:
        now = time.time() if as_of is None else as_of
        key = self._trend_key(as_of, popular)
        cached = self._trend_cache.get(key)
        if cached is not None:
            return cached
        # One thread computes (15 ms over 100,000 events); the others that missed the same
        # moment wait for its answer rather than each computing it alongside under the
        # GIL (every new event starts a new moment: the soak's readers all missed at once).
        with self._trend_compute:
            cached = self._trend_cache.get(key)
            if cached is not None:
                return cached
            with self._lock:  # the catalog and the events of one moment (refresh grows both)
                catalog, ev = self.catalog, self.events.snapshot()
            big = 1e9  # 'popular' is trending that never forgets
            scores = trending_scores(
                catalog.size, ev.items, ev.weights(TRENDING_WEIGHTS), ev.ts,
                catalog.upvotes, catalog.published_ts, as_of=now,
                half_life_days=big if popular else self.half_life,
                prior_half_life_days=big if popular else 30.0, event_readers=ev.readers,
            )
            if len(self._trend_cache) > 64:
                self._trend_cache.clear()
            self._trend_cache[key] = scores
        return scores

    MAX_CACHED_HISTORIES = 100_000

    def history(self, user_id: str, as_of_iso: str | None = None) -> ReaderHistory:
        """A reader's history (catalog rows in time order, the undo rule applied). The
        current one (no as_of) is kept in memory until the reader's next event, which
        refresh() sees before any list is ranked; a reader with no event at all needs no
        query. Histories as of a past time are read from the store each time (replays and
        debugging, not the hot path)."""
        current = as_of_iso is None
        if current:
            if user_id not in self._reader_generation:
                return EMPTY_HISTORY
            cached = self._histories.get(user_id)
            if cached is not None:
                return cached
            generation = self._generation
        rows = without_cancelled(self.store.user_events(user_id, until=as_of_iso))
        catalog = self.catalog
        known = [r for r in rows if r["paper_id"] in catalog.row_of]
        history = ReaderHistory(
            rows=np.array([catalog.row_of[r["paper_id"]] for r in known], dtype=np.int64),
            kinds=[r["kind"] for r in known],
            ts=np.array([to_unix(r["ts"]) for r in known], dtype=np.float64),
        )
        if current and len(known) == len(rows):
            with self._lock:
                # An event of this reader refreshed in the meantime may be missing from
                # what was read: then it is not cached (the next request reads again).
                if self._reader_generation.get(user_id, 0) <= generation:
                    if len(self._histories) >= self.MAX_CACHED_HISTORIES:
                        self._histories.clear()
                    self._histories[user_id] = history
        return history

    def _topic_terms(self, row: int) -> tuple[str, ...]:
        """A paper's top terms, computed once per (encoder, row): top_terms projects onto
        every vocabulary term (tens of thousands), which cost ~5 ms a row on the hot path.
        Rows are stable (the catalog only appends) and the cache is dropped with the encoder."""
        catalog = self.catalog
        encoder = catalog.encoder
        cache = self._topic_cache
        if cache[0] is not encoder:
            cache = self._topic_cache = (encoder, {})
        terms = cache[1].get(row)
        if terms is None:
            terms = cache[1][row] = tuple(encoder.top_terms(catalog.vectors[row], 3))
        return terms

    def view(self, served: ServedModel | None = None) -> View:
        """What a strategy reads of this moment (strategies.View); `served`: the model a
        request already chose its strategy by (a swap in between must not change it)."""
        return View(self.catalog, served if served is not None else self.served, self.trending,
                    self._topic_terms, self._trend_key, self._shared_lists)

    # -- the entry point -----------------------------------------------------------------
    def default_strategy(self) -> str:
        return "hybrid" if self.served is not None else "content"

    def recommend(self, user_id: str, k: int, exclude_seen: bool = True,
                  as_of: float | None = None, strategy: str | None = None) -> tuple[str, Ranked]:
        """Rank for one reader; returns the strategy the answer names and the list.

        The papers the reader has seen (core/kinds.py) are left out unless `exclude_seen`
        is False; the ones they dismissed always are, and papers like those, or shown to
        them and passed over, move down (feedback.py). A reader with no history gets
        trending, whatever the default: there is nothing to personalise on yet. Without a
        trained model, content, collaborative and hybrid are served by the fallback, and
        the answer says "content"."""
        self.refresh()
        generation = self._reader_generation.get(user_id, 0)  # before the history is read
        history = self.history(user_id, None if as_of is None else to_iso(as_of))
        name = strategy or ("trending" if history.is_empty else self.default_strategy())
        served = self.served
        chosen = strategies.resolve(name, has_model=served is not None)
        keep = chosen.needs_model and not history.is_empty and as_of is None and self.kept.enabled
        if keep:
            key = (user_id, k, exclude_seen, chosen.name)
            valid = (generation, served, len(served.paper_ids))
            ranked = self.kept.get(key, valid)
            if ranked is not None:
                return chosen.answers_as, ranked
        now = time.time() if as_of is None else as_of
        feedback = (self.feedback(user_id, history, now, as_of)
                    if chosen.personal and not history.is_empty else None)
        reader = Reader(history, now, as_of, feedback)
        ranked = chosen.rank(self.view(served), reader, k, history.excluded(exclude_seen))
        if keep:
            self.kept.keep(key, valid, ranked)
        return chosen.answers_as, ranked

    def feedback(self, user_id: str, history: ReaderHistory, now: float,
                 as_of: float | None = None) -> Feedback | None:
        """What the reader turned down (feedback.py): their dismissals, and the lists served
        to them within the window (one indexed query; as of `as_of` for a replay)."""
        w = self.feedback_weights
        if w.off:
            return None
        lists: list[dict] = []
        if w.skip:
            try:
                lists = self.store.served_to(user_id, since=to_iso(now - w.window_days * DAY_S),
                                             until=None if as_of is None else to_iso(as_of),
                                             limit=w.max_lists)
            except STORE_ERRORS:
                # The database is gone for now (a 503 on writes, /health says why): the list
                # is still served from memory, without this visit's rotation; dismissals
                # come from the history in memory and still apply.
                lists = []
        return reader_feedback(history, lists, self.catalog.row_of, now, w)

    def trending_list(self, k: int, as_of: float | None = None) -> Ranked:
        """The trending list nobody's history changes (GET /trending)."""
        self.refresh()
        reader = Reader(EMPTY_HISTORY, time.time() if as_of is None else as_of, as_of)
        return strategies.get("trending").rank(self.view(), reader, k)
