"""The model slot: a trained HybridModel lined up with the live catalog (ServedModel), and
the slot that follows the registry's active model and swaps it in (ModelSlot).

The model indexes papers by their position at training time, and the catalog only ever
appends, so the model's papers must be a prefix of the catalog. Papers added since
training are added to the model from their text (content vector, then mapped into the
collaborative space), which is how a paper published today is recommendable on day one.
A model whose papers are not a prefix of the catalog was trained on another catalog: it
is refused rather than served with shifted indices.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recommender.core.times import to_unix
from recommender.model.artifacts import ArtifactError, read_artifact, read_artifact_files
from recommender.model.hybrid import STRATEGIES, HybridModel

PAPER_IDS = "paper_ids"
TRIAL_K = 10


def trial_run(model: HybridModel, where) -> None:
    """Rank a few made-up readers with every strategy before the model serves, and raise
    ArtifactError if any of it fails or answers nonsense.

    Why: each array can match the manifest while the arrays do not match each other (blend
    weights for fewer features, popularity for fewer papers, factors with fewer columns, a
    NaN factor). Loading such a model worked and then every list was a 500. The components
    live in modules of their own, each knowing its own arrays; running the real scoring
    path checks all of them against each other at once, and cannot fall behind when a
    component gains an array."""
    n = model.n_items
    if n == 0:
        return
    now = float(model.now) if isinstance(model.now, (int, float)) else 1.8e9
    rows = [0, n // 2, n - 1]
    histories = [[], [(rows[0], "click", now - 3600.0)],
                 [(r, kind, now - 60.0 * i) for i, (r, kind) in
                  enumerate(zip(rows, ("read", "upvote", "click")))]]
    for strategy in STRATEGIES:
        for history in histories:
            try:
                recs = model.recommend(history, k=TRIAL_K, strategy=strategy,
                                       exclude_seen=True, now=now)
                indices = np.array([r.index for r in recs], dtype=np.int64)
                scores = np.array([r.score for r in recs], dtype=np.float64)
                reasons_ok = all(isinstance(r.reason, str) for r in recs)
            except Exception as exc:
                raise ArtifactError(f"{where}: arrays do not fit together ({strategy} "
                                    f"ranking failed: {exc!r})") from None
            if (len(recs) > TRIAL_K or not reasons_ok or not np.isfinite(scores).all()
                    or (len(indices) and (indices.min() < 0 or indices.max() >= n))
                    or len(set(indices.tolist())) != len(indices)):
                raise ArtifactError(f"{where}: arrays do not fit together ({strategy} "
                                    "ranking gave rows or scores out of range)")


class ModelMismatch(ArtifactError):
    """The artifact is intact but does not fit this catalog."""


@dataclass
class ServedModel:
    version: str
    model: HybridModel
    paper_ids: list[str]
    lists: bool = True  # readied to serve lists one reader at a time (`from_registry`)

    def __post_init__(self) -> None:
        # Scoring reads the model's arrays while add_paper replaces them; one lock keeps a
        # request from seeing half an addition.
        self.lock = threading.Lock()

    @classmethod
    def load(cls, version: str, path: Path, lists: bool = True) -> "ServedModel":
        arrays, manifest = read_artifact(path)
        return cls._checked(version, arrays, manifest, path, lists)

    @classmethod
    def from_registry(cls, row: dict, fetch_files, lists: bool = True) -> "ServedModel":
        """The registered version `row` (version, path): from the folder its path names
        when this machine has it (where it was trained), else from the files the registry
        keeps in the database (`fetch_files(version)`), which any replica reaches knowing
        only the database. Both are checked the same way (checksums, shapes, a trial run).
        `lists`: ready it to serve lists one reader at a time (`HybridModel.for_lists`);
        the training job, which ranks batches with it, and a check leave that out."""
        version, path = row["version"], Path(row["path"])
        if path.is_dir():
            return cls.load(version, path, lists)
        try:
            files = fetch_files(version)
        except ValueError as exc:  # a stored file that does not match its checksum
            raise ArtifactError(str(exc)) from None
        if not files:
            raise ArtifactError(f"model {version}: no folder {path} on this machine and no "
                                "files in the registry")
        where = f"registry:{version}"
        arrays, manifest = read_artifact_files(files, where)
        return cls._checked(version, arrays, manifest, where, lists)

    @classmethod
    def _checked(cls, version: str, arrays: dict, manifest: dict, path, lists: bool = True) -> "ServedModel":
        if PAPER_IDS not in arrays:
            raise ArtifactError(f"{path}: no {PAPER_IDS} array")
        model_arrays = {k: v for k, v in arrays.items() if k != PAPER_IDS}
        try:
            model = HybridModel.from_arrays(model_arrays, manifest)
        except Exception as exc:  # any array or field that does not fit: refused, not raised
            raise ArtifactError(f"{path}: arrays do not form a model ({exc!r})") from None
        ids = [str(p) for p in arrays[PAPER_IDS]]
        if len(ids) != model.n_items:
            raise ArtifactError(f"{path}: {len(ids)} paper ids for {model.n_items} papers")
        not_finite = sorted(name for name, a in model_arrays.items()
                            if a.dtype.kind == "f" and not np.isfinite(a).all())
        if not_finite:
            raise ArtifactError(f"{path}: NaN or infinite values in {', '.join(not_finite)}")
        trial_run(model, path)
        # Papers added after training go through add_paper (content -> collaborative map):
        # try one on a throwaway copy, so a map that does not fit the factors is refused now.
        try:
            spare = HybridModel.from_arrays({k: v.copy() for k, v in model_arrays.items()},
                                            manifest)
            spare.add_paper("trial paper", "a paper added after training, to try the model")
        except Exception as exc:
            raise ArtifactError(f"{path}: arrays do not fit together (adding a paper "
                                f"failed: {exc!r})") from None
        trial_run(spare, path)
        return cls(version, model.for_lists() if lists else model, ids, lists)

    @staticmethod
    def arrays_for(model: HybridModel, paper_ids: list[str]) -> dict[str, np.ndarray]:
        arrays = model.to_arrays()
        arrays[PAPER_IDS] = np.asarray(paper_ids, dtype=np.str_)
        return arrays

    def align(self, catalog_ids, fetch_paper) -> int:
        """Add the catalog's papers the model has not seen; returns how many were added.

        `fetch_paper(paper_id)` returns the stored paper (title, abstract, upvotes,
        published_at)."""
        n = len(self.paper_ids)
        if tuple(catalog_ids[:n]) != tuple(self.paper_ids):
            raise ModelMismatch(f"model {self.version} was trained on a different catalog")
        new = list(catalog_ids[n:])
        rows = []
        for pid in new:
            paper = fetch_paper(pid)
            rows.append((paper["title"], paper.get("abstract"), float(paper.get("upvotes") or 0),
                         to_unix(paper.get("published_at"))))
        if len(new) >= self.COPY_FROM:
            return self._align_on_copy(new, rows)
        if new:
            with self.lock:
                self.model.add_papers(rows)
                self.paper_ids.extend(new)
        return len(new)

    # From this many papers at once, they are added to a copy that replaces the model.
    COPY_FROM = 20

    def _align_on_copy(self, new: list[str], rows: list[tuple]) -> int:
        """Add a batch of papers to a copy of the model and swap it in when all are added.

        Added in place, a batch would hold the lock for a step that is linear in the catalog
        (and reset the model's per-catalog precomputations), so every read during a
        1,000-paper batch waited for, and then redid, that work. On a copy, reads keep the
        model they have, precomputations included, until one reference swap."""
        with self.lock:
            arrays = {k: np.array(v, copy=True) for k, v in self.model.to_arrays().items()}
            manifest = self.model.manifest()
        copy = HybridModel.from_arrays(arrays, manifest)
        if self.lists:
            copy.for_lists(like=self.model)
        copy.add_papers(rows)
        with self.lock:
            self.model = copy
            self.paper_ids = self.paper_ids + new
        return len(new)


class ModelSlot:
    """The model that serves, following the registry's active model.

    Loading happens off the request path (or inline when asked); a model that fails to load
    is remembered and not retried, and the one already serving (or, with none, the content
    fallback of the strategies) keeps serving. The swap is one reference assignment: a
    request sees the old model or the new one, never half of either."""

    # How often a request may look at the registry for a newly promoted model.
    CHECK_S = 1.0

    def __init__(self, active_model, fetch_paper, fetch_files=lambda version: {}):
        """`active_model()`: the registry's active row (version, path) or None;
        `fetch_paper(paper_id)`: a stored paper, for papers added since training;
        `fetch_files(version)`: the registry's copy of a version's files."""
        self._active_model = active_model
        self._fetch_paper = fetch_paper
        self._fetch_files = fetch_files
        self.served: ServedModel | None = None
        self._problem: str | None = None
        self._failed_version: str | None = None
        self._loading = False
        self._last_check = time.monotonic()

    @property
    def version(self) -> str | None:
        served = self.served
        return served.version if served is not None else None

    @property
    def loading(self) -> bool:
        return self._loading

    def problems(self) -> list[str]:
        return [self._problem] if self._problem else []

    def drop(self, reason: str) -> None:
        """Stop serving the model (adding a paper to it failed), saying why."""
        self.served, self._problem = None, reason

    def check_due(self) -> bool:
        return time.monotonic() - self._last_check > self.CHECK_S

    def check(self, catalog_ids, wait: bool = False) -> None:
        """Follow the registry's active model, lined up with `catalog_ids()` once loaded."""
        self._last_check = time.monotonic()
        active = self._active_model()
        if active is None:
            if self.served is None and self._failed_version is None:
                self._problem = None
            return
        version = active["version"]
        if version == self.version and not self._loading:
            # Back to the model already serving (a rollback after a failed promotion): the
            # failure is history, not a problem of what serves now.
            self._failed_version = self._problem = None
            return
        if version in (self.version, self._failed_version) or self._loading:
            return
        self._loading = True
        if wait:
            self._load(active, catalog_ids)
        else:
            threading.Thread(target=self._load, args=(active, catalog_ids),
                             name=f"load-model-{version}", daemon=True).start()

    def _load(self, active: dict, catalog_ids) -> None:
        version = active["version"]
        try:
            served = ServedModel.from_registry(active, self._fetch_files)
            served.align(catalog_ids(), self._fetch_paper)
        except Exception as exc:  # whatever is wrong with it, it is refused, not retried
            if not isinstance(exc, ArtifactError):
                exc = f"{type(exc).__name__}: {exc}"
            self._failed_version = version
            fallback = f"serving {self.version}" if self.served else "serving content + trending"
            self._problem = f"model {version} not loaded: {exc}; {fallback}"
        else:
            self.served = served  # one reference swap: a request sees the old or the new
            self._failed_version = None
            self._problem = None
        finally:
            self._loading = False
