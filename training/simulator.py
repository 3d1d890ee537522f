"""Synthetic readers with hidden tastes, to prove the experiment statistics.

Why a simulator: an A/A test should flag about 5% of the time and a truly better strategy
should be found, and only readers whose preferences we know can show that. The tastes are
built from the real abstracts in the catalog, but with a model of their own (NMF topics
over TF-IDF of title + abstract) rather than the recommender's SVD vectors, so no strategy
is graded with its own ruler.

A reader:
- has a hidden taste: a sparse Dirichlet mix of topics (most readers care about one to
  three), and a hidden keenness (some click a lot, some hardly ever: this is what makes one
  reader's impressions correlated, and why the statistics are computed per reader);
- sees a list and clicks each slot with probability
  ``position_bias(pos) * sigmoid(keenness + taste_slope * match + quality_slope * quality)``,
  where ``match`` is the cosine of the reader's taste and the paper's topics and
  ``quality`` the paper's standardised log prior upvotes (popular papers are a bit more
  appealing to everyone);
- after a click reads with a probability and upvotes with a probability that grow with the
  match;
- comes back on later days with a personal return probability;
- optionally (`fatigue` < 1) tires of what they have looked at: the position bias is the
  chance a slot is looked at, and each earlier look at a paper that did not end in a click
  multiplies its click probability by `fatigue` (a reader who ignores what they are shown
  keeps ignoring it);
- optionally (`dismisser_share` > 0) is one of the readers who dismiss: a paper they look
  at and do not click is dismissed with probability
  ``sigmoid(dismiss_logit - dismiss_slope * match)``, so mostly papers off their taste.
With the defaults (no fatigue, no dismissers) the draws are those of the plain model.

Responses are drawn for a whole batch of lists at once (numpy); the lists come from a
`Backend`: the domain objects in process (`DomainBackend`, fast, used by the benchmark), or
the HTTP API of a live server or of the app in process (`training.simulate_cmd.HttpBackend`),
logging through `POST /events`.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from recommender.core.times import DAY_S, to_iso

SEEDS_PAPERS = Path(__file__).resolve().parent.parent / "seeds" / "papers.jsonl"


@dataclass(frozen=True)
class ReaderModel:
    """The knobs of the reader model (defaults are what the benchmark states)."""

    n_topics: int = 20
    taste_concentration: float = 0.15  # Dirichlet alpha: small = few topics per reader
    base_logit: float = -3.6
    keenness_sd: float = 0.9  # between-reader spread of the click propensity
    taste_slope: float = 4.0
    quality_slope: float = 0.4
    position_decay: float = 0.5  # bias = 1 / (1 + pos) ** decay
    read_logit: float = -0.5
    read_slope: float = 2.5
    upvote_logit: float = -2.6
    upvote_slope: float = 3.0
    return_a: float = 4.0  # Beta(a, b) return probability per day
    return_b: float = 2.0
    # Readers arrive with a past: Poisson(prior_reads) papers read in the month before the
    # simulation, drawn from their taste (a share of them are new, with no past at all).
    prior_reads: float = 1.5
    new_reader_share: float = 0.2
    # Negative feedback (off by default): see the module docstring.
    fatigue: float = 1.0
    dismisser_share: float = 0.0
    dismiss_logit: float = 0.0
    dismiss_slope: float = 6.0


@dataclass
class TasteSpace:
    """Papers in topic space: unit nonnegative vectors over NMF topics of their text."""

    paper_ids: list[str]
    topics: np.ndarray  # (n_papers, n_topics), unit rows
    quality: np.ndarray  # (n_papers,), standardised log1p(upvotes)
    labels: list[str]  # a few words per topic
    row_of: dict[str, int] = field(repr=False, default_factory=dict)

    def __post_init__(self):
        if not self.row_of:
            self.row_of = {p: i for i, p in enumerate(self.paper_ids)}

    @classmethod
    def from_papers(cls, papers: Sequence[dict], n_topics: int = 20,
                    seed: int = 0) -> "TasteSpace":
        from sklearn.decomposition import NMF
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = [f"{p.get('title') or ''} {p.get('abstract') or ''}" for p in papers]
        vec = TfidfVectorizer(stop_words="english", min_df=2, max_df=0.4, sublinear_tf=True,
                              max_features=20_000, token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
        X = vec.fit_transform(texts)
        nmf = NMF(n_components=n_topics, init="nndsvda", random_state=seed, max_iter=500)
        W = nmf.fit_transform(X)
        norms = np.linalg.norm(W, axis=1, keepdims=True)
        topics = np.divide(W, norms, out=np.zeros_like(W), where=norms > 0)
        terms = vec.get_feature_names_out()
        labels = [" ".join(terms[np.argsort(-c)[:3]]) for c in nmf.components_]
        up = np.log1p(np.array([float(p.get("upvotes") or 0) for p in papers]))
        quality = (up - up.mean()) / (up.std() or 1.0)
        return cls([p["paper_id"] for p in papers], topics, quality, labels)

    @classmethod
    def from_jsonl(cls, path: Path = SEEDS_PAPERS, **kw) -> "TasteSpace":
        with open(path, encoding="utf-8") as fh:
            papers = [json.loads(line) for line in fh if line.strip()]
        return cls.from_papers(papers, **kw)

    def rows(self, paper_ids: Iterable[str]) -> np.ndarray:
        """Rows of known papers; -1 for a paper the simulator has no text for."""
        return np.array([self.row_of.get(p, -1) for p in paper_ids], dtype=np.int64)


@dataclass
class Readers:
    ids: list[str]
    taste: np.ndarray  # (n, n_topics) unit rows
    keenness: np.ndarray  # (n,) logit offset
    return_p: np.ndarray  # (n,)
    dismisses: np.ndarray | None = None  # (n,) bool: the readers who dismiss

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def sample(cls, n: int, space: TasteSpace, rng: np.random.Generator,
               model: ReaderModel = ReaderModel(), prefix: str = "sim") -> "Readers":
        t = space.topics.shape[1]
        # Topics are weighted by how much of the catalog they cover, so tastes follow
        # what is actually written about.
        prevalence = space.topics.sum(axis=0) + 1e-9
        alpha = model.taste_concentration * t * prevalence / prevalence.sum()
        taste = rng.dirichlet(alpha, size=n)
        taste /= np.linalg.norm(taste, axis=1, keepdims=True)
        keenness = model.base_logit + model.keenness_sd * rng.standard_normal(n)
        return_p = rng.beta(model.return_a, model.return_b, size=n)
        dismisses = (rng.random(n) < model.dismisser_share if model.dismisser_share > 0
                     else np.zeros(n, bool))
        return cls(ids=[f"{prefix}-{i:06d}" for i in range(n)], taste=taste,
                   keenness=keenness, return_p=return_p, dismisses=dismisses)


def past_reads(readers: Readers, space: TasteSpace, rng: np.random.Generator,
               start_ts: float, model: ReaderModel = ReaderModel()) -> list[dict]:
    """Read events from before the simulation: each returning reader read a few papers,
    drawn with probability proportional to exp(taste_slope * match + quality_slope * quality)
    (what they would have clicked), at times spread over the preceding 30 days."""
    n = len(readers)
    counts = rng.poisson(model.prior_reads, size=n)
    counts[rng.random(n) < model.new_reader_share] = 0
    logits = (model.taste_slope * readers.taste @ space.topics.T
              + model.quality_slope * space.quality[None, :])
    events = []
    for i in np.flatnonzero(counts):
        w = np.exp(logits[i] - logits[i].max())
        rows = rng.choice(len(w), size=min(int(counts[i]), len(w)), replace=False, p=w / w.sum())
        for j, row in enumerate(rows):
            ts = start_ts - rng.uniform(1.0, 30.0) * DAY_S
            events.append({"user_id": readers.ids[i], "paper_id": space.paper_ids[row],
                           "kind": "read", "ts": to_iso(ts),
                           "idempotency_key": f"past:{readers.ids[i]}:{j}"})
    return events


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Responses:
    clicks: np.ndarray  # (n_lists, k) bool
    reads: np.ndarray
    upvotes: np.ndarray
    click_p: np.ndarray  # (n_lists, k) the probabilities used
    looked_past: np.ndarray | None = None  # looked at, not clicked (with negative feedback)
    dismisses: np.ndarray | None = None


def negative_feedback(model: ReaderModel, readers: Readers) -> bool:
    return model.fatigue < 1.0 or (readers.dismisses is not None and bool(readers.dismisses.any()))


def respond(readers: Readers, who: np.ndarray, lists: np.ndarray, space: TasteSpace,
            rng: np.random.Generator, model: ReaderModel = ReaderModel(),
            looks: np.ndarray | None = None) -> Responses:
    """Draw clicks, reads and upvotes (and, with negative feedback on, looks and
    dismissals) for a batch of lists at once.

    who: (n_lists,) reader indices; lists: (n_lists, k) taste-space rows, -1 = empty slot
    or a paper the simulator does not know (never clicked); looks: (n_lists, k) earlier
    looks at each slot's paper by its reader that ended without a click."""
    n, k = lists.shape
    valid = lists >= 0
    safe = np.where(valid, lists, 0)
    match = np.einsum("nt,nkt->nk", readers.taste[who], space.topics[safe])
    logit = (readers.keenness[who][:, None] + model.taste_slope * match
             + model.quality_slope * space.quality[safe])
    bias = 1.0 / (1.0 + np.arange(k)) ** model.position_decay
    appeal = _sigmoid(logit)
    if looks is not None and model.fatigue < 1.0:
        appeal = appeal * model.fatigue ** looks
    p = np.where(valid, bias[None, :] * appeal, 0.0)
    clicks = rng.random((n, k)) < p
    reads = clicks & (rng.random((n, k)) < _sigmoid(model.read_logit + model.read_slope * match))
    upvotes = clicks & (rng.random((n, k)) < _sigmoid(model.upvote_logit
                                                     + model.upvote_slope * match))
    looked_past = dismisses = None
    if negative_feedback(model, readers):
        # looked at but not clicked: P(look and no click | no click)
        no_click = np.where(valid, bias[None, :] * (1 - appeal) / np.maximum(1 - p, 1e-12), 0.0)
        looked_past = ~clicks & valid & (rng.random((n, k)) < no_click)
        dismisser = (readers.dismisses[who] if readers.dismisses is not None
                     else np.zeros(n, bool))[:, None]
        dismisses = looked_past & dismisser & (
            rng.random((n, k)) < _sigmoid(model.dismiss_logit - model.dismiss_slope * match))
    return Responses(clicks, reads, upvotes, p, looked_past, dismisses)


# -- backends: where lists come from and events go ----------------------------------------

@dataclass
class Served:
    request_id: str
    paper_ids: list[str]
    experiment: str | None
    variant: str | None
    strategy: str


class Backend(Protocol):
    def recommend(self, user_id: str, k: int, as_of: float) -> Served: ...
    def log_events(self, events: list[dict]) -> None: ...


class DomainBackend:
    """The domain objects in this process: the same serve_list the API uses, and the
    store's add_events (the events are well-formed by construction)."""

    def __init__(self, store, recommender):
        self.store = store
        self.recommender = recommender
        self._running = None

    def refresh_experiments(self) -> None:
        from recommender.experiments.config import Experiment
        self._running = [Experiment.from_row(r)
                         for r in self.store.list_experiments(status="running")]

    def recommend(self, user_id: str, k: int, as_of: float) -> Served:
        from recommender.serving.serve_list import serve_list
        if self._running is None:
            self.refresh_experiments()
        s = serve_list(self.store, self.recommender, user_id, k, True, as_of,
                       running=self._running)
        return Served(s.request_id, s.paper_ids, s.experiment, s.variant, s.strategy)

    def log_events(self, events: list[dict]) -> None:
        from recommender.storage import EventRow
        if events:
            self.store.add_events([EventRow(e["user_id"], e["paper_id"], e["kind"], e["ts"],
                                            e.get("request_id"), e.get("idempotency_key"))
                                   for e in events])
        # the lists served so far are read back by the next lists (what was passed over)
        self.store.flush()


# -- the loop -------------------------------------------------------------------------------

@dataclass
class SimulationLog:
    lists: int = 0
    clicks: int = 0
    reads: int = 0
    upvotes: int = 0
    dismisses: int = 0
    past_reads: int = 0
    sessions_per_day: list[int] = field(default_factory=list)
    clicks_by_reader: np.ndarray | None = None  # (n_readers,) over the simulated days


def simulate(backend: Backend, readers: Readers, space: TasteSpace, days: int, k: int,
             start_ts: float, rng: np.random.Generator, model: ReaderModel = ReaderModel(),
             slots_per_day: int = 4, progress=None, warm_start: bool = True) -> SimulationLog:
    """Play `days` days. With warm_start, readers first bring their past reads (logged like
    any event). Every reader comes on day 0; on later days each comes back with their
    return probability. A day is split into slots (readers are spread over them); events of
    a slot are logged before the next slot is served, so every list reflects everything
    that happened before it."""
    log = SimulationLog()
    n = len(readers)
    log.clicks_by_reader = np.zeros(n, np.int64)
    feedback = negative_feedback(model, readers)
    looked: dict[tuple[int, int], int] = {}  # (reader, paper row) -> looks without a click
    if warm_start:
        past = past_reads(readers, space, rng, start_ts, model)
        backend.log_events(past)
        log.past_reads = len(past)
    for day in range(days):
        active = np.arange(n) if day == 0 else np.flatnonzero(rng.random(n) < readers.return_p)
        log.sessions_per_day.append(int(len(active)))
        slot_of = rng.integers(0, slots_per_day, size=len(active))
        for slot in range(slots_per_day):
            who = active[slot_of == slot]
            if len(who) == 0:
                continue
            as_of = start_ts + day * DAY_S + (slot + 0.5) * DAY_S / slots_per_day
            served = [backend.recommend(readers.ids[i], k, as_of) for i in who]
            rows = np.full((len(who), k), -1, dtype=np.int64)
            for j, s in enumerate(served):
                r = space.rows(s.paper_ids[:k])
                rows[j, :len(r)] = r
            looks = None
            if feedback:
                looks = np.array([[looked.get((int(i), int(r)), 0) for r in row]
                                  for i, row in zip(who, rows)], dtype=np.int64).reshape(rows.shape)
            resp = respond(readers, who, rows, space, rng, model, looks)
            events = []
            if feedback:
                for j, pos in zip(*np.nonzero(resp.looked_past)):
                    key = (int(who[j]), int(rows[j, pos]))
                    looked[key] = looked.get(key, 0) + 1
                for j, pos in zip(*np.nonzero(resp.dismisses)):
                    s = served[j]
                    events.append({
                        "user_id": readers.ids[who[j]], "paper_id": s.paper_ids[pos],
                        "kind": "dismiss", "ts": to_iso(as_of + 20.0 + 3.0 * pos),
                        "request_id": s.request_id, "idempotency_key": f"{s.request_id}:{pos}:dismiss",
                    })
                log.dismisses += int(resp.dismisses.sum())
            np.add.at(log.clicks_by_reader, who, resp.clicks.sum(axis=1))
            for j, pos in zip(*np.nonzero(resp.clicks)):
                s = served[j]
                base = as_of + 30.0 + 7.0 * pos
                for kind, mask, dt in (("click", resp.clicks, 0.0), ("read", resp.reads, 60.0),
                                       ("upvote", resp.upvotes, 240.0)):
                    if mask[j, pos]:
                        events.append({
                            "user_id": readers.ids[who[j]], "paper_id": s.paper_ids[pos],
                            "kind": kind, "ts": to_iso(base + dt), "request_id": s.request_id,
                            "idempotency_key": f"{s.request_id}:{pos}:{kind}",
                        })
            backend.log_events(events)
            log.lists += len(served)
            log.clicks += int(resp.clicks.sum())
            log.reads += int(resp.reads.sum())
            log.upvotes += int(resp.upvotes.sum())
        if progress:
            progress(day, log)
    return log


def default_start(days: int, now: float | None = None) -> float:
    """Midnight UTC `days + 1` days ago: every simulated event lies in the past, so the
    API's 'not in the future' check accepts it."""
    now = time.time() if now is None else now
    return (np.floor(now / DAY_S) - days - 1) * DAY_S


def new_prefix() -> str:
    return "sim-" + uuid.uuid4().hex[:8]
