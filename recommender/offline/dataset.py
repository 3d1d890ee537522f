"""Reading the generic offline format into index arrays.

`papers.jsonl`: one JSON object a line with `paper_id`, `title`, `abstract` and optionally
`published_at`, `upvotes`. `interactions.csv`: header `user_id,paper_id,kind,ts` (kind
read|click|upvote|..., ts ISO-8601 or empty). Paper ids are mapped to row indices in file
order; user ids to indices in order of first appearance. Interactions with unknown papers are
dropped (counted in `Interactions.dropped`), and so are undos with nothing to take back (the
undo rule of core/events.py, as for the store's events).
"""
from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recommender.core.events import undo_mask
from recommender.core.times import to_unix


def _open_text(path) -> io.TextIOBase:
    path = Path(path)
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


@dataclass
class Papers:
    ids: list[str]
    titles: list[str]
    abstracts: list[str]
    published_ts: np.ndarray  # float64 unix seconds, NaN when unknown
    upvotes: np.ndarray  # float32 prior upvotes (0 when unknown)
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        if not self.index:
            self.index = {pid: i for i, pid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)


def load_papers(path) -> Papers:
    ids, titles, abstracts, pub, up = [], [], [], [], []
    seen: set[str] = set()
    with _open_text(path) as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            obj = json.loads(line)
            pid = str(obj["paper_id"])
            if pid in seen:
                continue
            seen.add(pid)
            ids.append(pid)
            titles.append(obj.get("title") or "")
            abstracts.append(obj.get("abstract") or "")
            pub.append(to_unix(obj.get("published_at")))
            try:
                up.append(float(obj.get("upvotes") or 0.0))
            except (TypeError, ValueError):
                up.append(0.0)
    return Papers(ids, titles, abstracts, np.asarray(pub, dtype=np.float64),
                  np.asarray(up, dtype=np.float32))


@dataclass
class Interactions:
    user_ids: list[str]  # index -> external id
    users: np.ndarray  # int32 user index per event
    items: np.ndarray  # int32 paper index per event
    kinds: np.ndarray  # str per event
    ts: np.ndarray  # float64 unix seconds (NaN when unknown)
    dropped: int = 0

    def __len__(self) -> int:
        return int(self.users.shape[0])

    @property
    def n_users(self) -> int:
        return len(self.user_ids)


def load_interactions(path, papers: Papers, user_index: dict[str, int] | None = None) -> Interactions:
    """Read events; `user_index` (extended in place) lets train and test share user indices."""
    user_index = {} if user_index is None else user_index
    users, items, kinds, ts = [], [], [], []
    dropped = 0
    with _open_text(path) as fh:
        for row in csv.DictReader(fh):
            pid = row.get("paper_id")
            item = papers.index.get(str(pid)) if pid is not None else None
            if item is None:
                dropped += 1
                continue
            uid = str(row["user_id"])
            u = user_index.setdefault(uid, len(user_index))
            users.append(u)
            items.append(item)
            kinds.append((row.get("kind") or "read").strip().lower())
            ts.append(to_unix(row.get("ts")))
    user_ids = [None] * len(user_index)
    for uid, u in user_index.items():
        user_ids[u] = uid
    users, items = np.asarray(users, dtype=np.int32), np.asarray(items, dtype=np.int32)
    kinds, ts = np.asarray(kinds, dtype=object), np.asarray(ts, dtype=np.float64)
    # the undo rule (core/events.undo_mask) in time order; rows keep the file's order
    order = np.argsort(np.where(np.isnan(ts), np.inf, ts), kind="stable")
    keep = np.ones(len(users), dtype=bool)
    keep[order] = undo_mask(users[order], items[order], kinds[order])
    return Interactions(user_ids, users[keep], items[keep], kinds[keep], ts[keep], dropped)


def load_candidates(path, papers: Papers) -> np.ndarray:
    out = []
    with _open_text(path) as fh:
        for line in fh:
            pid = line.strip()
            if pid and pid in papers.index:
                out.append(papers.index[pid])
    return np.unique(np.asarray(out, dtype=np.int64))
