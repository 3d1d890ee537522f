"""The live recommender: keeps catalog and event log in step with the store and ranks.

Why it polls the store instead of being told: the store is the source of truth, and papers
or events may arrive through another process (the importer, a second worker). Each request
first pulls what is new (one indexed query when nothing is), so the next list already
reflects the last acknowledged event.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path
from dataclasses import dataclass

import numpy as np

from recommender.serving.catalog import CatalogSnapshot, build_snapshot, extend_snapshot, iso_to_unix
from recommender.model.content import ContentEncoder, paper_text
from recommender.serving.event_log import EventLog
from recommender.core.events import SEEN_KINDS, without_cancelled
from recommender.model.artifacts import ArtifactError
from recommender.serving.model_slot import ServedModel
from recommender.serving.reader_history import ReaderHistory, content_profile
from recommender.storage import Store
from recommender.serving.trending import TRENDING_WEIGHTS, trending_scores


@dataclass(frozen=True, eq=False)
class Ranked:
    """One ranked list: catalog rows, scores and a reason per row. Compared and hashed by
    identity: a kept list is the same object on every request that reuses it."""

    rows: np.ndarray
    scores: np.ndarray
    reasons: list[str]


def top_k(scores: np.ndarray, k: int, excluded: np.ndarray) -> np.ndarray:
    """Rows of the k best scores, best first, skipping excluded rows; ties by row order."""
    scores = scores.astype(np.float64, copy=True)
    scores[excluded] = -np.inf
    allowed = int(np.isfinite(scores).sum())
    k = min(k, allowed)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.lexsort((part, -scores[part]))]


class LiveRecommender:
    STRATEGIES = ("trending", "popular", "content", "collaborative", "hybrid")
    MODEL_STRATEGIES = ("content", "collaborative", "hybrid")
    # How often a request may look at the registry for a newly promoted model.
    MODEL_CHECK_S = 1.0

    def __init__(self, store: Store, encoder: ContentEncoder | None = None,
                 trending_half_life_days: float = 7.0, list_ttl_s: float = 0.0,
                 max_kept_items: int = 200_000):
        self.store = store
        self.list_ttl_s = list_ttl_s
        # Kept lists, oldest first (see _kept_model_list), and how many items they hold.
        self._lists: OrderedDict[tuple, tuple] = OrderedDict()
        self._kept_items = 0
        self.max_kept_items = max_kept_items
        self.half_life = trending_half_life_days
        self._lock = threading.Lock()
        # Taking in new papers, and adding them to the model: slow, so only a writer waits.
        self._papers_lock = threading.Lock()
        self._align_lock = threading.Lock()
        self._fixed_encoder = encoder is not None
        self._rebuild_catalog(encoder)
        self.events = EventLog()
        self._event_id = 0
        # Who has events, and the refresh generation of each reader's last one: a reader
        # not in here has no history (no query needed), and a cached history older than
        # the reader's last event is never stored (see history()).
        self._generation = 0
        self._reader_generation: dict[str, int] = {}
        self._histories: dict[str, tuple[ReaderHistory, np.ndarray]] = {}
        self._trend_cache: dict[tuple, np.ndarray] = {}
        self._ranked_cache: dict[tuple, Ranked] = {}
        self._topic_cache: tuple[ContentEncoder | None, dict[int, tuple[str, ...]]] = (None, {})
        self.served: ServedModel | None = None
        self._model_problem: str | None = None
        self._failed_version: str | None = None
        self._loading = False
        self._last_model_check = time.monotonic()
        self.refresh()
        self.check_model(wait=True)

    # -- the trained model ---------------------------------------------------------------
    @property
    def model_version(self) -> str | None:
        served = self.served
        return served.version if served is not None else None

    def degraded_reasons(self) -> list[str]:
        return [self._model_problem] if self._model_problem else []

    def check_model(self, wait: bool = False) -> None:
        """Follow the registry's active model. Loading happens off the request path (or
        inline when `wait`); a model that fails to load is remembered and not retried, and
        the one already serving (or the content fallback) keeps serving."""
        self._last_model_check = time.monotonic()
        active = self.store.active_model()
        if active is None:
            if self.served is None and self._failed_version is None:
                self._model_problem = None
            return
        version = active["version"]
        if version == self.model_version and not self._loading:
            # Back to the model already serving (a rollback after a failed promotion): the
            # failure is history, not a problem of what serves now.
            self._failed_version = self._model_problem = None
            return
        if version in (self.model_version, self._failed_version) or self._loading:
            return
        self._loading = True
        if wait:
            self._load_model(version, active["path"])
        else:
            threading.Thread(target=self._load_model, args=(version, active["path"]),
                             name=f"load-model-{version}", daemon=True).start()

    def _load_model(self, version: str, path: str) -> None:
        try:
            served = ServedModel.load(version, Path(path))
            served.align(self.catalog.paper_ids, self.store.get_paper)
        except Exception as exc:  # whatever is wrong with it, it is refused, not retried
            if not isinstance(exc, ArtifactError):
                exc = f"{type(exc).__name__}: {exc}"
            self._failed_version = version
            fallback = f"serving {self.model_version}" if self.served else "serving content + trending"
            self._model_problem = f"model {version} not loaded: {exc}; {fallback}"
        else:
            self.served = served  # one reference swap: a request sees the old or the new
            self._failed_version = None
            self._model_problem = None
        finally:
            self._loading = False

    def _rebuild_catalog(self, encoder: ContentEncoder | None = None) -> None:
        rows = self.store.papers_since(0)
        papers = [p for _, p in rows]
        texts = [paper_text(p["title"], p.get("abstract")) for p in papers]
        placeholder = "an empty catalog has no vocabulary yet"
        if encoder is None:
            try:
                encoder = ContentEncoder.fit(texts or [placeholder])
            except ValueError:
                # Not one usable word in the catalog (e.g. a first paper titled "t"): fit on
                # the placeholder too rather than fail every request until a real paper comes.
                encoder = ContentEncoder.fit(texts + [placeholder])
        self.encoder = encoder
        self._encoder_fit_size = len(papers)
        self.catalog = build_snapshot(papers, self.encoder)
        self._paper_change = max((c for c, _ in rows), default=0)

    def is_busy(self) -> bool:
        """Whether a request could wait here now: a refresh or a paper addition holds a
        lock (adding papers encodes them, seconds for a large import). The service then
        runs the request on a worker thread instead of the event loop."""
        served = self.served
        return (self._lock.locked() or self._loading or self._align_lock.locked()
                or (served is not None and served.lock.locked()))

    # -- keeping up with the store -------------------------------------------------------
    def refresh(self, wait: bool = False) -> None:
        """Take in what the store has that this process has not seen: papers, then events,
        then the model's share of the new papers.

        Adding papers (encoding them, and the model's add_paper one by one) takes seconds
        for a batch of hundreds; a read must not wait for it (it waited 4.3 s behind a
        300-paper POST). So a read skips the papers or the model's alignment another
        thread is doing and ranks with what is in place; `wait` (the writer of a batch,
        add_papers) waits, so the papers are recommendable when its POST answers."""
        if self._papers_lock.acquire(blocking=wait):
            try:
                self._take_new_papers()
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
                self.events.append(
                    [rows[e["paper_id"]] for e in new_events],
                    [e["kind"] for e in new_events],
                    [iso_to_unix(e["ts"]) for e in new_events],
                )
                self._event_id = new_events[-1]["id"]
                self._trend_cache.clear()
                self._ranked_cache.clear()
                self._generation += 1
                for e in new_events:
                    self._reader_generation[e["user_id"]] = self._generation
                    self._histories.pop(e["user_id"], None)
        served = self.served
        if (served is not None and len(served.paper_ids) < self.catalog.size
                and self._align_lock.acquire(blocking=wait)):
            try:  # one aligner at a time: two would both add the same papers to the model
                served.align(self.catalog.paper_ids, self.store.get_paper)
            except Exception as exc:  # adding a paper failed: stop serving it, say why
                self.served, self._model_problem = None, f"model dropped: {exc!r}"
            finally:
                self._align_lock.release()
        if time.monotonic() - self._last_model_check > self.MODEL_CHECK_S:
            self.check_model()

    def _take_new_papers(self) -> None:
        """Encode papers stored since the last look into a new catalog snapshot, then swap
        it in (under _papers_lock; readers keep ranking with the old snapshot meanwhile)."""
        new_papers = self.store.papers_since(self._paper_change)
        if not new_papers:
            return
        added = sum(p["paper_id"] not in self.catalog.row_of for _, p in new_papers)
        grown = self.catalog.size + added > 2 * self._encoder_fit_size
        if grown and not self._fixed_encoder:
            # Without a trained model the vocabulary comes from the catalog itself;
            # once the catalog has doubled, refit so new words count.
            self._rebuild_catalog()
        else:
            # new papers are appended, updated ones (upvotes, a corrected title) replaced
            catalog = extend_snapshot(self.catalog, [p for _, p in new_papers], self.encoder)
            with self._lock:
                self.catalog = catalog
                self._paper_change = max(c for c, _ in new_papers)
                self._trend_cache.clear()
                self._ranked_cache.clear()

    def is_adding_papers(self) -> bool:
        return self._papers_lock.locked() or self._align_lock.locked()

    def add_papers(self, papers: list[dict] | None = None) -> None:
        """Papers just stored: encode them now (and add them to the model) so they are
        recommendable when this returns."""
        self.refresh(wait=True)

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
        with self._lock:  # the catalog and the events of one moment (refresh grows both)
            catalog, ev = self.catalog, self.events.snapshot()
        big = 1e9  # 'popular' is trending that never forgets
        scores = trending_scores(
            catalog.size, ev.items, ev.weights(TRENDING_WEIGHTS), ev.ts,
            catalog.upvotes, catalog.published_ts, as_of=now,
            half_life_days=big if popular else self.half_life,
            prior_half_life_days=big if popular else 30.0,
        )
        if len(self._trend_cache) > 64:
            self._trend_cache.clear()
        self._trend_cache[key] = scores
        return scores

    MAX_CACHED_HISTORIES = 100_000

    def history(self, user_id: str, as_of_iso: str | None = None) -> ReaderHistory:
        return self._history_and_seen(user_id, as_of_iso)[0]

    def _history_and_seen(self, user_id: str,
                          as_of_iso: str | None = None) -> tuple[ReaderHistory, np.ndarray]:
        """A reader's history and seen rows. The current ones (no as_of) are kept in memory
        until the reader's next event, which refresh() sees before any list is ranked; a
        reader with no event at all needs no query. Histories as of a past time are read
        from the store each time (replays and debugging, not the hot path)."""
        current = as_of_iso is None
        if current:
            if user_id not in self._reader_generation:
                return EMPTY_HISTORY, EMPTY_ROWS
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
            ts=np.array([iso_to_unix(r["ts"]) for r in known], dtype=np.float64),
        )
        entry = (history, self.seen_rows(history))
        if current and len(known) == len(rows):
            with self._lock:
                # An event of this reader refreshed in the meantime may be missing from
                # what was read: then it is not cached (the next request reads again).
                if self._reader_generation.get(user_id, 0) <= generation:
                    if len(self._histories) >= self.MAX_CACHED_HISTORIES:
                        self._histories.clear()
                    self._histories[user_id] = entry
        return entry

    def seen_rows(self, history: ReaderHistory) -> np.ndarray:
        return np.array(
            sorted({int(r) for r, k in zip(history.rows, history.kinds) if k in SEEN_KINDS}),
            dtype=np.int64,
        )

    # -- strategies ----------------------------------------------------------------------
    def rank_trending(self, k: int, excluded: np.ndarray, as_of: float | None,
                      popular: bool = False) -> Ranked:
        """Trending minus `excluded`. With nothing to exclude (every reader without
        history) the list is the same for everyone until the trending scores change, so
        it is kept per k for as long as they are."""
        key = None
        if len(excluded) == 0:
            key = (*self._trend_key(as_of, popular), k)
            cached = self._ranked_cache.get(key)
            if cached is not None:
                return cached
        scores = self.trending(as_of, popular=popular)
        rows = top_k(scores, k, excluded)
        word = "popular" if popular else "trending"
        reasons = []
        for r in rows:
            terms = self._topic_terms(int(r))
            reasons.append(f"{word} in {', '.join(terms)}" if terms else f"{word} now")
        ranked = Ranked(rows, scores[rows], reasons)
        if key is not None:
            if len(self._ranked_cache) > 256:
                self._ranked_cache.clear()
            self._ranked_cache[key] = ranked
        return ranked

    def _topic_terms(self, row: int) -> tuple[str, ...]:
        """A paper's top terms, computed once per (encoder, row): top_terms projects onto
        every vocabulary term (tens of thousands), which cost ~5 ms a row on the hot path.
        Rows are stable (the catalog only appends) and the cache is dropped with the encoder."""
        encoder = self.encoder
        cache = self._topic_cache
        if cache[0] is not encoder:
            cache = self._topic_cache = (encoder, {})
        terms = cache[1].get(row)
        if terms is None:
            terms = cache[1][row] = tuple(encoder.top_terms(self.catalog.vectors[row], 3))
        return terms

    def rank_content(self, history: ReaderHistory, k: int, excluded: np.ndarray,
                     as_of: float | None) -> Ranked:
        now = time.time() if as_of is None else as_of
        trend = self.trending(as_of)
        # Papers may be added while this request runs: rank over the ones both the
        # trending scores and the catalog read here know.
        n = min(len(trend), self.catalog.size)
        vectors = self.catalog.vectors[:n]
        if len(history) and history.rows.max() >= n:
            keep = history.rows < n
            history = ReaderHistory(history.rows[keep], [k_ for k_, ok in zip(history.kinds, keep) if ok],
                                    history.ts[keep])
        profile = content_profile(history, vectors, now)
        # A little trending breaks ties between equally similar papers toward fresh ones.
        scores = vectors @ profile + 0.1 * trend[:n]
        rows = top_k(scores, k, excluded[excluded < n])
        return Ranked(rows, scores[rows], self._similar_reasons(history, rows))

    def _similar_reasons(self, history: ReaderHistory, rows: np.ndarray) -> list[str]:
        positive = [(int(r), kind) for r, kind in zip(history.rows, history.kinds)
                    if kind in ("upvote", "read", "click")]
        if not positive:
            return ["matches your reading profile"] * len(rows)
        hist_rows = np.array([r for r, _ in positive])
        sims = self.catalog.vectors[rows] @ self.catalog.vectors[hist_rows].T
        verb = {"upvote": "upvoted", "read": "read", "click": "opened"}
        reasons = []
        for i in range(len(rows)):
            j = int(np.argmax(sims[i]))
            r, kind = positive[j]
            reasons.append(f"similar to \u201c{self.catalog.titles[r]}\u201d you {verb[kind]}")
        return reasons

    # -- the entry point -----------------------------------------------------------------
    def default_strategy(self) -> str:
        return "hybrid" if self.served is not None else "content"

    def recommend(self, user_id: str, k: int, exclude_seen: bool = True,
                  as_of: float | None = None, strategy: str | None = None) -> tuple[str, Ranked]:
        """Rank for one reader; returns the strategy actually used and the list.

        A reader with no history gets trending, whatever the default: there is nothing to
        personalise on yet. Without a trained model, collaborative and hybrid fall back to
        the content profile, and the answer says so."""
        self.refresh()
        as_of_iso = None if as_of is None else _unix_to_iso(as_of)
        generation = self._reader_generation.get(user_id, 0)  # before the history is read
        history, seen = self._history_and_seen(user_id, as_of_iso)
        excluded = seen if exclude_seen else EMPTY_ROWS
        if strategy is None:
            strategy = "trending" if history.is_empty else self.default_strategy()
        if strategy not in self.STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}")
        if strategy in ("trending", "popular"):
            return strategy, self.rank_trending(k, excluded, as_of, popular=strategy == "popular")
        served = self.served
        if served is not None and strategy in self.MODEL_STRATEGIES:
            if as_of is not None or self.list_ttl_s <= 0:
                return strategy, self.rank_model(served, history, k, strategy, exclude_seen, as_of)
            return strategy, self._kept_model_list(served, user_id, generation, history, k,
                                                   strategy, exclude_seen)
        return "content", self.rank_content(history, k, excluded, as_of)

    def _kept_model_list(self, served: ServedModel, user_id: str, generation: int,
                         history: ReaderHistory, k: int, strategy: str,
                         exclude_seen: bool) -> Ranked:
        """A reader's model-ranked list, kept for `list_ttl_s` seconds unless what it was
        ranked from changes first: an event of the reader (refresh() moves their
        generation), another model, or a paper added to it. Within the TTL only the
        confidence decay of the reader's own events moves (half-life 180 days: a relative
        change of ~3e-6 a minute), which does not reorder a list in practice; trending,
        which moves faster, is kept separately and per minute (rank_trending)."""
        # A reader without history is ranked from nothing but the model: one list for all
        # of them (an experiment sends every new reader through here).
        key = (user_id if len(history) else None, k, exclude_seen, strategy)
        n_papers = len(served.paper_ids)
        kept = self._lists.get(key)
        now = time.monotonic()
        if (kept is not None and kept[1] is served and kept[0] == generation
                and kept[2] == n_papers and kept[3] > now):
            return kept[4]
        ranked = self.rank_model(served, history, k, strategy, exclude_seen, None)
        self._keep_list(key, (generation, served, n_papers, now + self.list_ttl_s, ranked), now)
        return ranked

    def _keep_list(self, key: tuple, entry: tuple, now: float) -> None:
        """Keep a list, dropping the ones past their TTL and then the oldest until all fit
        in `max_kept_items` items. The TTL is the same for every list, so the oldest kept
        is the first to expire: both walks start at the front and stop at the first list
        that stays."""
        with self._lock:
            lists = self._lists
            old = lists.pop(key, None)
            if old is not None:
                self._kept_items -= len(old[4].rows)
            lists[key] = entry
            self._kept_items += len(entry[4].rows)
            while lists:
                first_key, first = next(iter(lists.items()))
                if first_key == key or (first[3] > now and self._kept_items <= self.max_kept_items):
                    break
                del lists[first_key]
                self._kept_items -= len(first[4].rows)

    def rank_model(self, served: ServedModel, history: ReaderHistory, k: int, strategy: str,
                   exclude_seen: bool, as_of: float | None) -> Ranked:
        now = time.time() if as_of is None else as_of
        triples = [(int(r), kind, float(t)) for r, kind, t in
                   zip(history.rows, history.kinds, history.ts) if r < len(served.paper_ids)]
        recs = served.recommend(triples, k, strategy, exclude_seen, now)
        return Ranked(np.array([r.index for r in recs], dtype=np.int64),
                      np.array([r.score for r in recs], dtype=np.float64),
                      [r.reason for r in recs])


EMPTY_ROWS = np.zeros(0, dtype=np.int64)
EMPTY_HISTORY = ReaderHistory(rows=EMPTY_ROWS, kinds=[], ts=np.zeros(0, dtype=np.float64))


def _unix_to_iso(ts: float) -> str:
    from datetime import datetime, timezone
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="microseconds")
