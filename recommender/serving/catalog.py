"""The in-memory catalog the service ranks over: ids, titles, content vectors, priors.

Why a snapshot object: a request takes one `CatalogSnapshot` and ranks with it; adding
papers builds a new snapshot and swaps the reference, so a request never sees a half-added
paper and readers never wait on writers. The snapshot holds the encoder its vectors were
made with: a query or a profile encoded with one encoder and scored against vectors of
another would mix two bases (and two widths, for small catalogs), so they swap together.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recommender.core.papers import prior_upvotes
from recommender.core.times import to_unix
from recommender.model.content import ContentEncoder, paper_text


@dataclass(frozen=True)
class CatalogSnapshot:
    paper_ids: tuple[str, ...]
    titles: tuple[str, ...]
    vectors: np.ndarray  # (n, dim) unit rows (zero rows for papers with no known term)
    upvotes: np.ndarray  # (n,) prior upvotes, 0 when unknown
    published_ts: np.ndarray  # (n,) unix seconds, NaN when unknown
    row_of: dict[str, int] = field(repr=False)
    encoder: ContentEncoder = field(repr=False, compare=False)

    @property
    def size(self) -> int:
        return len(self.paper_ids)

    def rows(self, paper_ids) -> np.ndarray:
        return np.array([self.row_of[p] for p in paper_ids if p in self.row_of], dtype=np.int64)


def build_snapshot(papers: list[dict], encoder: ContentEncoder,
                   vectors: np.ndarray | None = None) -> CatalogSnapshot:
    """The snapshot of `papers` (in catalog order); `vectors`, when given, are their
    encodings already made with `encoder` (by a refit elsewhere: catalog_refit.py)."""
    ids = tuple(p["paper_id"] for p in papers)
    if vectors is None:
        vectors = encoder.encode([paper_text(p["title"], p.get("abstract")) for p in papers])
    return CatalogSnapshot(
        paper_ids=ids,
        titles=tuple(p["title"] for p in papers),
        vectors=vectors,
        upvotes=prior_upvotes([p.get("upvotes") for p in papers]),
        published_ts=np.array([to_unix(p.get("published_at")) for p in papers]),
        row_of={pid: i for i, pid in enumerate(ids)},
        encoder=encoder,
    )


def extend_snapshot(snap: CatalogSnapshot, papers: list[dict]) -> CatalogSnapshot:
    """A new snapshot with `papers` added (or updated in place when the id exists), encoded
    with the snapshot's encoder."""
    if not papers:
        return snap
    new = build_snapshot(papers, snap.encoder)
    ids, titles = list(snap.paper_ids), list(snap.titles)
    vectors, upvotes, published = snap.vectors.copy(), snap.upvotes.copy(), snap.published_ts.copy()
    row_of = dict(snap.row_of)
    appended = []
    for j, pid in enumerate(new.paper_ids):
        i = row_of.get(pid)
        if i is None:
            row_of[pid] = len(ids)
            ids.append(pid)
            titles.append(new.titles[j])
            appended.append(j)
        else:
            titles[i] = new.titles[j]
            vectors[i], upvotes[i], published[i] = new.vectors[j], new.upvotes[j], new.published_ts[j]
    if appended:
        vectors = np.vstack([vectors, new.vectors[appended]])
        upvotes = np.concatenate([upvotes, new.upvotes[appended]])
        published = np.concatenate([published, new.published_ts[appended]])
    return CatalogSnapshot(tuple(ids), tuple(titles), vectors, upvotes, published, row_of,
                           snap.encoder)
