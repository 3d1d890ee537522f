"""Reading the store into the arrays the model trains on.

The offline format (papers.jsonl + interactions.csv) and the store hold the same things;
this turns the store into the same `Papers` / `Interactions` the offline loader produces,
so training nightly and evaluating offline run one code path.
"""
from __future__ import annotations

import numpy as np

from recommender.core.events import undo_mask
from recommender.core.kinds import KINDS
from recommender.core.times import to_unix
from recommender.offline.dataset import Interactions, Papers
from recommender.storage import Store


def papers_from_store(store: Store) -> Papers:
    ids, titles, abstracts, published, upvotes = [], [], [], [], []
    for p in store.iter_papers():
        ids.append(p["paper_id"])
        titles.append(p["title"])
        abstracts.append(p["abstract"] or "")
        published.append(to_unix(p["published_at"]))
        upvotes.append(float(p["upvotes"] or 0))
    return Papers(ids, titles, abstracts, np.asarray(published, dtype=np.float64),
                  np.asarray(upvotes, dtype=np.float32))


def interactions_from_store(store: Store, papers: Papers, until: str | None = None) -> Interactions:
    """Every event that counts under the undo rule (core/events.undo_mask: an undo with
    nothing to take back is dropped, a dismissal undone goes with its undo), in (ts, id)
    order: the order the 'most recent slice' is cut from."""
    user_index: dict[str, int] = {}
    users, items, kinds, ts = [], [], [], []
    kind_code = {k: i for i, k in enumerate(KINDS)}
    for user_ids, paper_ids, kind_names, stamps in store.event_columns(until=until):
        users.append(np.fromiter((user_index.setdefault(u, len(user_index)) for u in user_ids),
                                 dtype=np.int32, count=len(user_ids)))
        items.append(np.fromiter((papers.index[p] for p in paper_ids), dtype=np.int32,
                                 count=len(paper_ids)))
        kinds.append(np.fromiter((kind_code[k] for k in kind_names), dtype=np.int8,
                                 count=len(kind_names)))
        ts.append(np.fromiter((to_unix(t) for t in stamps), dtype=np.float64,
                              count=len(stamps)))
    user_ids = [""] * len(user_index)
    for uid, u in user_index.items():
        user_ids[u] = uid
    concat = lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)  # noqa: E731
    users, items = concat(users, np.int32), concat(items, np.int32)
    kinds, ts = np.asarray(KINDS, dtype=object)[concat(kinds, np.int8)], concat(ts, np.float64)
    keep = undo_mask(users, items, kinds)
    return Interactions(user_ids, users[keep], items[keep], kinds[keep], ts[keep])
