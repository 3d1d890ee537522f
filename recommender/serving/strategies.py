"""The ranking contract and the registry of strategies.

A strategy is a named ranking function with one small interface:
- `score(view, reader)`: a finite score for every catalog row it can rank (`Scored`);
- `reasons(view, reader, rows, scored)`: a short reason for each ranked row;
- `rank(view, reader, k, excluded, candidates)`: the top k (core/ranking.top_k) without the
  excluded rows, each with its reason. A personal strategy hands a reader without history
  to `trending`: there is nothing to personalise on yet; for a reader with one, what they
  turned down (`reader.feedback`: papers like ones they dismissed, papers they were shown
  and passed over) moves down first (feedback.py).

Every strategy is registered once, by name, in REGISTRY; the API's `strategy=`, experiment
configs and the live recommender all look names up there, and tests/test_strategy_contract.py
runs the same contract against every registered strategy (`pytest -k contract`).

The model strategies (content, collaborative, hybrid) score with the trained HybridModel in
the model slot; without one, they are served by `fallback` (a content profile over the
catalog's vectors, answering as "content").
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from recommender.core import reasons
from recommender.core.kinds import INTEREST_KINDS, strongest_interest
from recommender.core.ranking import Ranked, top_k
from recommender.model.one_reader import OneHistory
from recommender.serving.catalog import CatalogSnapshot
from recommender.serving.feedback import Feedback
from recommender.serving.model_slot import ServedModel
from recommender.serving.reader_history import ReaderHistory, content_profile

EMPTY_ROWS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Reader:
    """Who a list is for: their history (catalog rows in time order, the undo rule applied),
    the moment it is ranked at (`as_of`: None means now) and what they turned down (None:
    nothing to apply)."""

    history: ReaderHistory
    now: float
    as_of: float | None = None
    feedback: Feedback | None = None


@dataclass(frozen=True)
class View:
    """What a strategy may read of the live state for one request: the catalog, the model
    in the slot (or None), trending scores as of a time, a paper's topic terms, and where a
    list everybody shares may be kept."""

    catalog: CatalogSnapshot
    served: ServedModel | None
    trending: Callable[[float | None, bool], np.ndarray]  # (as_of, popular) -> score per row
    topic_terms: Callable[[int], tuple[str, ...]]
    trend_key: Callable[[float | None, bool], tuple] = lambda as_of, popular: None  # noqa: E731
    shared_lists: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Scored:
    """One score per row the strategy ranks over, and what its reasons need."""

    scores: np.ndarray
    detail: object = None


class Strategy(ABC):
    name: ClassVar[str]
    # What answers name: the fallback serves a model strategy and answers as "content".
    label: ClassVar[str | None] = None
    # A personal strategy hands a reader without history to `trending`.
    personal: ClassVar[bool] = True
    # Needs a trained model in the slot (without one, `fallback` serves instead).
    needs_model: ClassVar[bool] = False
    # Offered to the API's `strategy=` and to experiments.
    public: ClassVar[bool] = True

    @property
    def answers_as(self) -> str:
        return self.label or self.name

    @abstractmethod
    def score(self, view: View, reader: Reader) -> Scored: ...

    @abstractmethod
    def reasons(self, view: View, reader: Reader, rows: np.ndarray, scored: Scored) -> list[str]: ...

    def rank(self, view: View, reader: Reader, k: int, excluded: np.ndarray = EMPTY_ROWS,
             candidates: np.ndarray | None = None) -> Ranked:
        if self.personal and reader.history.is_empty:
            return REGISTRY["trending"].rank(view, reader, k, excluded, candidates)
        scored = self.score(view, reader)
        n = len(scored.scores)
        excluded = np.asarray(excluded, np.int64)
        if candidates is not None:
            candidates = np.asarray(candidates, np.int64)
            candidates = candidates[candidates < n]
        excluded = excluded[excluded < n]
        feedback = reader.feedback if self.personal else None
        if feedback is not None and not feedback.empty:
            rows, scores = feedback.rank(scored.scores, k, excluded, candidates,
                                         view.catalog.vectors[:n])
        else:
            rows, scores = top_k(scored.scores, k, excluded, candidates), scored.scores
        return Ranked(rows, np.asarray(scores, np.float64)[rows],
                      self.reasons(view, reader, rows, scored))


# -- trending and popular ---------------------------------------------------------------------

class Trending(Strategy):
    """Time-decayed, kind-weighted interactions plus the catalog's prior upvotes."""

    name = "trending"
    personal = False
    popular = False
    word = "trending"

    def score(self, view: View, reader: Reader) -> Scored:
        return Scored(view.trending(reader.as_of, self.popular))

    def reasons(self, view: View, reader: Reader, rows: np.ndarray, scored: Scored) -> list[str]:
        return [reasons.trending(view.topic_terms(int(r)), self.word) for r in rows]

    def rank(self, view: View, reader: Reader, k: int, excluded: np.ndarray = EMPTY_ROWS,
             candidates: np.ndarray | None = None) -> Ranked:
        """With nothing to exclude (every reader without history) the list is the same for
        everyone until the trending scores change: it is kept per k for as long as they are."""
        key = None
        if len(excluded) == 0 and candidates is None:
            trend = view.trend_key(reader.as_of, self.popular)
            key = None if trend is None else (*trend, k)
            kept = view.shared_lists.get(key) if key is not None else None
            if kept is not None:
                return kept
        ranked = super().rank(view, reader, k, excluded, candidates)
        if key is not None:
            if len(view.shared_lists) > 256:
                view.shared_lists.clear()
            view.shared_lists[key] = ranked
        return ranked


class Popular(Trending):
    """Trending that never forgets: every interaction and prior upvote, undecayed."""

    name = "popular"
    popular = True
    word = "popular"


# -- the model's strategies -------------------------------------------------------------------

class ModelStrategy(Strategy):
    """A scoring of the trained HybridModel, for one reader (model/one_reader.py)."""

    needs_model = True

    def score(self, view: View, reader: Reader) -> Scored:
        served = view.served
        model = served.model
        h = reader.history
        n = len(served.paper_ids)
        history = [(int(r), kind, float(t)) for r, kind, t in zip(h.rows, h.kinds, h.ts) if r < n]
        row, _ = model.history_row(history, reader.now)
        S, z = model.one_reader().scores(OneHistory.from_row(row, EMPTY_ROWS), self.name, reader.now)
        return Scored(S, (model, row, history, z, reader.now))

    def reasons(self, view: View, reader: Reader, rows: np.ndarray, scored: Scored) -> list[str]:
        model, row, history, z, now = scored.detail
        return model.reasons(row, rows, self.name, strongest_interest(history), z, now)

    def rank(self, view: View, reader: Reader, k: int, excluded: np.ndarray = EMPTY_ROWS,
             candidates: np.ndarray | None = None) -> Ranked:
        # add_paper replaces the model's arrays: a list is scored and explained by one state
        with view.served.lock:
            return super().rank(view, reader, k, excluded, candidates)


class Content(ModelStrategy):
    """Cosine of the reader's TF-IDF profile with every paper."""
    name = "content"


class Collaborative(ModelStrategy):
    """ALS with the reader folded in from their history."""
    name = "collaborative"


class Hybrid(ModelStrategy):
    """The learned blend of every component."""
    name = "hybrid"


# -- without a model --------------------------------------------------------------------------

class Fallback(Strategy):
    """A model strategy while no model serves: the reader's content profile over the
    catalog's dense vectors (serving/reader_history.py), a little trending breaking ties
    toward fresh papers."""

    name = "fallback"
    label = "content"
    public = False
    TREND_WEIGHT = 0.1

    def score(self, view: View, reader: Reader) -> Scored:
        trend = view.trending(reader.as_of, False)
        # Papers may be added while this request runs: rank over the ones both the trending
        # scores and the catalog read here know.
        n = min(len(trend), view.catalog.size)
        vectors = view.catalog.vectors[:n]
        h = reader.history
        if len(h) and h.rows.max() >= n:
            keep = h.rows < n
            h = ReaderHistory(h.rows[keep], [k for k, ok in zip(h.kinds, keep) if ok], h.ts[keep])
        profile = content_profile(h, vectors, reader.now)
        return Scored(vectors @ profile + self.TREND_WEIGHT * trend[:n], h)

    def reasons(self, view: View, reader: Reader, rows: np.ndarray, scored: Scored) -> list[str]:
        h: ReaderHistory = scored.detail
        interest = strongest_interest(
            [(r, kind) for r, kind in zip(h.rows.tolist(), h.kinds) if kind in INTEREST_KINDS])
        if not interest:
            return [reasons.PROFILE] * len(rows)
        papers = np.array(list(interest), dtype=np.int64)
        vectors = view.catalog.vectors
        sims = vectors[rows] @ vectors[papers].T
        best = papers[np.argmax(sims, axis=1)] if len(rows) else papers[:0]
        return [reasons.similar_to(view.catalog.titles[b], interest[int(b)]) for b in best]


# -- the registry -----------------------------------------------------------------------------

REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    if strategy.name in REGISTRY:
        raise ValueError(f"strategy {strategy.name!r} is registered already")
    REGISTRY[strategy.name] = strategy
    return strategy


for _strategy in (Trending(), Popular(), Content(), Collaborative(), Hybrid(), Fallback()):
    register(_strategy)

# The names the API and experiments accept, in the order they are listed.
NAMES: tuple[str, ...] = tuple(name for name, s in REGISTRY.items() if s.public)


def get(name: str) -> Strategy:
    """The strategy registered under a public name; ValueError for any other name."""
    strategy = REGISTRY.get(name)
    if strategy is None or not strategy.public:
        raise ValueError(f"unknown strategy {name!r}; one of {', '.join(NAMES)}")
    return strategy


def resolve(name: str, has_model: bool) -> Strategy:
    """The strategy that serves `name` now: a model strategy without a model is the fallback."""
    strategy = get(name)
    return REGISTRY["fallback"] if strategy.needs_model and not has_model else strategy
