"""The nightly job: refit from the store, check against the serving model, promote if not worse.

Why evaluate on the most recent slice: it is what the next day looks like. The candidate
is fitted on everything before the slice; the serving model is scored on the same slice,
so the comparison is like for like. The model that is written and promoted is then brought
up to date on all events, so no reader's latest behaviour is left out of what serves
tomorrow.

Why that last step is a refit of the candidate (`HybridModel.refit`) and not a second fit
from scratch: a full fit is content + a validation slice to learn the blend + components,
and on CiteULike-a size the job ran two of them (~3 min). What the comparison judged is the
candidate's recipe -- its encoder, its learned blend, its component settings -- and the
refit keeps exactly those: the papers are the same, so the encoder is the same; the blend
was learned on a slice held out from the candidate's own training events, which is what a
blend should be learned on; only the components (ALS, item graph, cold-start map,
popularity) are refit on all events, ALS continuing from the candidate's factors for a few
sweeps. The recent slice stays held out from everything the comparison scored.

Why only the part of the slice newer than the serving model's data: the serving model was
fitted on everything up to its own training run, and judging it on events it has seen
would let it win by memory.

How sure the comparison is (recommender/offline/comparison.py): both models rank for the
same readers, so each reader gives one NDCG@20 difference; the gate reports the readers,
the mean difference and its 95% interval by a reader-level paired bootstrap. With fewer
readers than `min_readers` (PAPERREC_PROMOTION_MIN_READERS, default 30: below that a
mean over readers and its bootstrap interval say little) it says so and keeps the serving
model (one decided on 3 readers was kept on a 0.06 difference that could have been
chance). Otherwise the candidate -- the newest data -- is promoted unless it is surely
worse: its whole interval below -TOLERANCE. `--force`, or no usable model serving,
promotes whatever the figures. That rule is training/promotion.py (`decide`).

Why the candidate usually keeps the serving model's settings (decay, ALS alpha and
regularisation, popularity counting, the words' weight, the item graph) instead of searching
them again: a day of events does not change what suits the data, and the search is 10-13 s
of CiteULike-a's job. They are searched again once the events grew by a quarter or a week
passed (training/settings_reuse.py).

Why, while they are kept, the candidate is the serving model refit on the past events
(`settings_reuse.continues_serving`) and not a new fit with them: a fit is mostly learning
the blend on a validation slice (CiteULike-a: ~50 of its ~65 s), and a day of events does
not change the blend either. The refit keeps the serving model's recipe -- its words'
encoder, its blend, its settings -- and refits every component on the past events, ALS
continuing from its paper factors (the readers' are solved from them first: a loaded model
keeps none). It stays a fair comparison: what the two models are judged on is newer than
anything the serving model was fitted on, so starting from its factors carries no memory
of the judged events. Papers added since the serving model's fit are in it already
(`ServedModel.align`), encoded with its vocabulary; the week's bound limits that drift.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from recommender.core.kinds import INTEREST_KINDS
from recommender.model.artifacts import ArtifactError, artifact_files, write_artifact
from recommender.offline.comparison import Comparison, paired_bootstrap
from recommender.offline.dataset import Interactions, Papers
from recommender.offline.evaluation import fit_model, per_reader_metrics
from recommender.offline.metrics import summarize
from recommender.model.hybrid import HybridConfig
from recommender.serving.model_slot import ServedModel
from recommender.storage import Store
from training.promotion import MIN_READERS, decide
from training.settings_reuse import continues_serving, plan as plan_settings
from training.store_data import interactions_from_store, papers_from_store

HOLDOUT_FRACTION = 0.1
K = 20


@dataclass
class TrainResult:
    version: str
    path: Path
    promoted: bool
    reason: str
    metrics: dict
    active_metrics: dict | None
    timings: dict = field(default_factory=dict)
    comparison: Comparison | None = None
    settings: str = ""  # searched, or kept from which version, and whether the candidate continues it


def recent_slice(interactions: Interactions, fraction: float = HOLDOUT_FRACTION
                 ) -> tuple[Interactions, Interactions]:
    """Split events (already in time order) into the past and the most recent slice.

    Only readers who also have past events are evaluated: a model cannot be judged on
    readers it has never seen, and trending already serves those."""
    n = len(interactions)
    cut = int(round(n * (1 - fraction)))
    past = _subset(interactions, np.arange(cut))
    recent_idx = np.arange(cut, n)
    known_users = np.zeros(interactions.n_users, dtype=bool)
    known_users[past.users] = True
    recent_idx = recent_idx[known_users[interactions.users[recent_idx]]]
    positive = np.isin(interactions.kinds[recent_idx], INTEREST_KINDS)
    return past, _subset(interactions, recent_idx[positive])


def unseen_by(recent: Interactions, trained_until: float | None) -> Interactions:
    """The part of the recent slice the serving model was not trained on.

    Judging the serving model on events it was fitted on would let it win by memory (a
    second run with no new events scored it ~0.9 NDCG@20), so both models are compared
    only on events newer than the serving model's data."""
    if trained_until is None or not len(recent):
        return recent
    return _subset(recent, np.nonzero(recent.ts > trained_until)[0])


def history_before(events: Interactions, past: Interactions, trained_until: float | None) -> Interactions:
    """What both models rank from when judged: every event the serving model was trained
    on (all up to `trained_until`), or the past slice when nothing serves.

    Why not the past slice alone: with a serving model, the judged events are only those
    newer than its data, and the events between the slice's cut and its training run are a
    reader's reading too. Left out of the history they were neither a reader's profile nor
    excluded as seen, and the serving model, which learnt them, spent list places on papers
    the reader had already read (CiteULike-a with 4% new events: serving 0.2306 against the
    candidate's 0.2448)."""
    if trained_until is None or events.ts is None:
        return past
    return _subset(events, np.nonzero(events.ts <= trained_until)[0])


def _subset(inter: Interactions, idx: np.ndarray) -> Interactions:
    return Interactions(inter.user_ids, inter.users[idx], inter.items[idx], inter.kinds[idx],
                        inter.ts[idx])


def new_version(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return now.strftime("v%Y%m%d-%H%M%S-%f")


def _load_active(store: Store, papers: Papers) -> tuple[dict | None, ServedModel | None, str | None]:
    """The serving model, lined up with today's catalog so it can rank the same papers."""
    active = store.active_model()
    if active is None:
        return None, None, None
    try:
        served = ServedModel.from_registry(active, store.model_files, lists=False)
        served.align(papers.ids, store.get_paper)
        return active, served, None
    except ArtifactError as exc:
        return active, None, f"active model {active['version']} unusable: {exc}"


class EmptyCatalog(ValueError):
    """The store holds no papers, so no model can be fit (the content model needs texts)."""


def train(store: Store, model_dir: Path, force: bool = False, seed: int = 0,
          progress: bool = True, min_readers: int = MIN_READERS, search: bool = False) -> TrainResult:
    """The nightly job (module docstring). `search`: search the settings again even while
    the serving model's could be kept (training/settings_reuse.py)."""
    timings: dict[str, float] = {}
    steps = tqdm(total=5, desc="train", unit="step", disable=not progress)

    def step(name: str, started: float) -> None:
        timings[name] = round(time.perf_counter() - started, 3)
        steps.set_postfix_str(name)
        steps.update()

    t = time.perf_counter()
    papers: Papers = papers_from_store(store)
    if not len(papers.ids):
        steps.close()
        raise EmptyCatalog("the store has no papers: nothing to train on; add a catalog first "
                           "(`paperrec seed` for the demo, `paperrec import papers FILE` for your own)")
    events = interactions_from_store(store, papers)
    step("load", t)

    t = time.perf_counter()
    version = new_version()
    past, recent = recent_slice(events)
    active_row, active, active_problem = _load_active(store, papers)
    settings = plan_settings(active.model if active else None, active_row and active_row["version"],
                             len(past), time.time(), version, search)
    why = settings.why
    neighbors = None
    if continues_serving(settings, active.model if active else None):
        # the serving model's recipe on tonight's past events (module docstring), sharing one
        # content-neighbour search with the refit on all events below
        neighbors = active.model.refit_neighbors(past, events)
        candidate = active.model.refit(past.users, past.items, past.kinds, past.ts, n_users=past.n_users,
                                       prior_upvotes=papers.upvotes, neighbors=neighbors,
                                       published=papers.published_ts)
        candidate.stats["continued_from"] = active_row["version"]
        why += f"; the candidate is {active_row['version']} refit (its blend and words kept)"
    else:
        config = HybridConfig(seed=seed)
        candidate = fit_model(papers, past, config=replace(config, **settings.fixed) if settings.fixed else config)
    candidate.stats["settings_origin"] = settings.origin
    step("fit_candidate", t)

    t = time.perf_counter()
    judged = unseen_by(recent, active.model.now) if active else recent
    history = history_before(events, past, active.model.now) if active else past
    users, ours = _holdout(candidate, history, judged)
    metrics = summarize(ours, K) if len(users) else {}
    active_metrics = comparison = None
    if active is not None:
        active_users, theirs = _holdout(active.model, history, judged)
        assert np.array_equal(users, active_users), "both models are judged on the same readers"
        active_metrics = summarize(theirs, K) if len(users) else {}
        comparison = paired_bootstrap(ours["ndcg"], theirs["ndcg"], seed=seed)
    step("evaluate", t)

    t = time.perf_counter()
    final = candidate.refit(events.users, events.items, events.kinds, events.ts, n_users=events.n_users,
                            prior_upvotes=papers.upvotes, neighbors=neighbors, published=papers.published_ts)
    manifest = {
        **final.manifest(),
        "trained_at": datetime.now(timezone.utc).isoformat(),
        "data": {"papers": len(papers), "events": len(events), "readers": events.n_users,
                 "holdout_events": len(recent), "holdout_fraction": HOLDOUT_FRACTION},
        "metrics": {"holdout": metrics, "active_on_same_holdout": active_metrics,
                    "comparison": comparison.to_dict() if comparison else None},
    }
    path = write_artifact(model_dir, version, ServedModel.arrays_for(final, papers.ids), manifest)
    step("refit_and_write", t)

    t = time.perf_counter()
    promoted, reason = decide(comparison, active_row, active_problem, force, min_readers)
    # The files go into the registry before the version is registered: a replica that sees
    # the version (on any machine) finds its files.
    store.save_model_files(version, artifact_files(path))
    store.register_model(version, str(path), final.manifest().get("params", {}),
                         {**metrics, "comparison": comparison.to_dict() if comparison else None,
                          "decision": reason, "timings": timings},
                         status="candidate")
    if promoted:
        store.set_model_status(version, "active")
    else:
        store.set_model_status(version, "rejected")
    forget_old_files(store)
    step("register", t)
    steps.close()
    return TrainResult(version, path, promoted, reason, metrics, active_metrics, timings, comparison, why)


# Model files the registry keeps in the database: the active version's and those of the
# newest others (a rollback's target among them); older versions keep their registry row.
KEEP_FILES_OF = 4


def forget_old_files(store: Store) -> int:
    """Drop the stored files of versions that are neither active nor among the
    KEEP_FILES_OF newest, so the database does not grow by a model every night."""
    models = store.list_models()
    keep = {m["version"] for m in models[-KEEP_FILES_OF:]}
    keep |= {m["version"] for m in models if m["status"] == "active"}
    return store.drop_model_files(m["version"] for m in models if m["version"] not in keep)


def _holdout(model, past: Interactions, recent: Interactions) -> tuple[np.ndarray, dict]:
    """Readers of the recent slice and each one's metrics under `model`."""
    return per_reader_metrics(model, "hybrid", past, recent, k=K)
