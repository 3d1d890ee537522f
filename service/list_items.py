"""The items of every list the API serves (/recommendations, /trending, /search, /similar):
one mapping, so a front end gets the same fields wherever a list comes from and needs no
second call per paper to show it."""
from __future__ import annotations

import weakref

import numpy as np

from recommender.core.papers import paper_card
from recommender.core.ranking import Ranked
from recommender.storage import StoreUnavailable


def item_dicts(store, catalog, rows, scores, reasons, abstracts: bool = False) -> list[dict]:
    """The fields of `RecommendedItem` for each ranked row: id, title, score, reason, and
    the paper's card (url, authors, author_count, organization, published_at, upvotes),
    read from the store in one query for the whole list. `abstracts` adds the abstract
    (the reader page shows it; the JSON lists leave it to GET /papers/{id}). While the
    store cannot answer (a database outage), the list is still served, with the cards the
    in-memory catalog can give."""
    rows = np.asarray(rows).tolist()
    ids = [catalog.paper_ids[r] for r in rows]
    try:
        papers = store.get_papers(ids) if ids else {}
    except StoreUnavailable:
        papers = {}
    items = []
    for pid, r, s, reason in zip(ids, rows, scores, reasons):
        paper = papers.get(pid)
        card = paper_card(paper) if paper is not None else _card_from_catalog(catalog, r)
        item = {"paper_id": pid, "title": catalog.titles[r],
                "score": round(float(s), 6), "reason": reason, **card}
        if abstracts:
            item["abstract"] = (paper or {}).get("abstract") or ""
        items.append(item)
    return items


def _card_from_catalog(catalog, row: int) -> dict:
    """A paper the served catalog has but the store no longer answers for (not expected:
    papers are never deleted); the catalog's own fields, nothing invented."""
    up = catalog.upvotes[row]
    return {"url": None, "authors": [], "author_count": None, "organization": None,
            "published_at": None, "upvotes": int(up) if up else None}


# The cards of a kept list, built once per list object and catalog (as the JSON routes keep
# their encoded items, service/routers/recommendations.py): a reader's kept list is the same
# Ranked on every request that reuses it. Weak keys: an entry goes with the list; a weak
# reference to the catalog, so an entry never keeps an older catalog alive. A paper updated
# in the store makes a new catalog, so no card outlives its paper's change.
_PAGE_ITEMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def page_item_dicts(store, catalog, served, shape=lambda item: item) -> list:
    """`shape(item)` of each of item_dicts with abstracts for a served list, reused while
    its Ranked is (so what `shape` returns must not be changed by the caller)."""
    ranked = served if isinstance(served, Ranked) else served.ranked
    if ranked is not None:
        kept = _PAGE_ITEMS.get(ranked)
        if kept is not None and kept[0]() is catalog:
            return kept[1]
    items = [shape(item) for item in item_dicts(store, catalog, served.rows, served.scores,
                                                 served.reasons, abstracts=True)]
    if ranked is not None:
        _PAGE_ITEMS[ranked] = (weakref.ref(catalog), items)
    return items
