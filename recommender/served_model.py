"""A trained HybridModel lined up with the live catalog.

The model indexes papers by their position at training time, and the catalog only ever
appends, so the model's papers must be a prefix of the catalog. Papers added since
training are added to the model from their text (content vector, then mapped into the
collaborative space), which is how a paper published today is recommendable on day one.
A model whose papers are not a prefix of the catalog was trained on another catalog: it
is refused rather than served with shifted indices.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recommender.artifacts import ArtifactError, read_artifact
from recommender.hybrid import HybridModel

PAPER_IDS = "paper_ids"


class ModelMismatch(ArtifactError):
    """The artifact is intact but does not fit this catalog."""


@dataclass
class ServedModel:
    version: str
    model: HybridModel
    paper_ids: list[str]

    def __post_init__(self) -> None:
        # Scoring reads the model's arrays while add_paper replaces them; one lock keeps a
        # request from seeing half an addition.
        self.lock = threading.Lock()

    @classmethod
    def load(cls, version: str, path: Path) -> "ServedModel":
        arrays, manifest = read_artifact(path)
        if PAPER_IDS not in arrays:
            raise ArtifactError(f"{path}: no {PAPER_IDS} array")
        model_arrays = {k: v for k, v in arrays.items() if k != PAPER_IDS}
        try:
            model = HybridModel.from_arrays(model_arrays, manifest)
        except (KeyError, ValueError, TypeError) as exc:
            raise ArtifactError(f"{path}: arrays do not form a model ({exc})") from None
        ids = [str(p) for p in arrays[PAPER_IDS]]
        if len(ids) != model.n_items:
            raise ArtifactError(f"{path}: {len(ids)} paper ids for {model.n_items} papers")
        return cls(version, model, ids)

    @staticmethod
    def arrays_for(model: HybridModel, paper_ids: list[str]) -> dict[str, np.ndarray]:
        arrays = model.to_arrays()
        arrays[PAPER_IDS] = np.asarray(paper_ids, dtype=np.str_)
        return arrays

    def align(self, catalog_ids, fetch_paper) -> int:
        """Add the catalog's papers the model has not seen; returns how many were added.

        `fetch_paper(paper_id)` returns the stored paper (title, abstract, upvotes)."""
        n = len(self.paper_ids)
        if tuple(catalog_ids[:n]) != tuple(self.paper_ids):
            raise ModelMismatch(f"model {self.version} was trained on a different catalog")
        added = 0
        for pid in catalog_ids[n:]:
            paper = fetch_paper(pid)
            with self.lock:
                self.model.add_paper(paper["title"], paper.get("abstract"),
                                     float(paper.get("upvotes") or 0))
                self.paper_ids.append(pid)
            added += 1
        return added

    def recommend(self, history: list[tuple[int, str, float]], k: int, strategy: str,
                  exclude_seen: bool, now: float):
        with self.lock:
            return self.model.recommend(history, k=k, strategy=strategy,
                                        exclude_seen=exclude_seen, now=now)
