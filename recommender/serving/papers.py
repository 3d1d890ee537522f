"""Adding and updating papers through the service: stored, then taken into the live catalog
and model before the answer, so they can be recommended in the very next list.

An update carries only the fields it changes: the rest of the stored paper stays as it is
(storage's upsert_papers). A `url` is one key of the paper's `extra`, merged into what is
stored there.
"""
from __future__ import annotations

from collections.abc import Sequence

from recommender.serving.live import LiveRecommender
from recommender.storage import Store


def new_without_title(store: Store, papers: Sequence[dict]) -> list[int]:
    """Positions of the papers that are not stored yet and carry no title (a new paper
    needs one)."""
    lacking = [i for i, p in enumerate(papers) if not p.get("title")]
    if not lacking:
        return []
    known = store.existing_paper_ids(papers[i]["paper_id"] for i in lacking)
    return [i for i in lacking if papers[i]["paper_id"] not in known]


def store_papers(store: Store, live: LiveRecommender, papers: Sequence[dict]) -> int:
    """Store papers (dicts of the fields they carry, `url` included) and wait until the
    live recommender has them; returns how many rows changed. Concurrent reads do not wait."""
    with_url = [p["paper_id"] for p in papers if "url" in p]
    stored = store.get_papers(with_url) if with_url else {}
    rows = []
    for p in papers:
        row = {k: v for k, v in p.items() if k != "url"}
        if "url" in p:
            old = stored.get(p["paper_id"])
            row["extra"] = {**((old or {}).get("extra") or {}), **row.get("extra", {}), "url": p["url"]}
        rows.append(row)
    changed = store.upsert_papers(rows)
    live.refresh(wait=True)
    return changed
