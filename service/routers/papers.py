"""Papers: add to the catalog (recommendable at once, from their text) and look up."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Path, status

from recommender.core.papers import paper_card
from recommender.serving.papers import new_without_title, store_papers
from service.deps import ApiKey, RecommenderDep, StoreDep
from service.errors import invalid, invalid_fields
from service.schemas import PaperBatch, PaperIn, PaperOut, PapersStored, Id

router = APIRouter(tags=["papers"])


@router.post("/papers", response_model=PapersStored, status_code=status.HTTP_201_CREATED)
def post_papers(
    payload: Annotated[PaperIn | PaperBatch, Body(description="one paper or a list of up to 1,000")],
    store: StoreDep,
    recommender: RecommenderDep,
    _key: ApiKey,
) -> PapersStored:
    """Add or update papers. New ones need a title; they are encoded from their text and
    can be recommended in the very next list, before anyone has read them. An update (a
    paper_id already stored) changes only the fields it carries: `{"paper_id", "upvotes"}`
    sets the upvote count and keeps title, abstract, date, authors and url."""
    batch = payload if isinstance(payload, list) else [payload]
    where = (lambda i: ["body", i]) if isinstance(payload, list) else (lambda i: ["body"])  # noqa: E731
    ids = [p.paper_id for p in batch]
    if len(set(ids)) != len(ids):
        dup = next(i for i, p in enumerate(ids) if ids.index(p) != i)
        raise invalid([*where(dup), "paper_id"], f"duplicate paper_id {ids[dup]!r} in batch", ids[dup])
    rows = [p.model_dump(exclude_unset=True) for p in batch]
    for row in rows:
        if row.get("title") is None:
            row.pop("title", None)  # a title of null is no title: the stored one stays
    missing = new_without_title(store, rows)
    if missing:
        raise invalid_fields(([*where(i), "title"], "required for a new paper", None) for i in missing)
    changed = store_papers(store, recommender, rows)
    return PapersStored(accepted=len(batch), changed=changed)


@router.get("/papers/{paper_id:path}", response_model=PaperOut)
def get_paper(paper_id: Annotated[Id, Path()], store: StoreDep) -> PaperOut:
    paper = store.get_paper(paper_id)
    if paper is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no paper {paper_id!r}")
    return PaperOut(**{k: paper[k] for k in PaperOut.model_fields if k != "url"},
                    url=paper_card(paper)["url"])

