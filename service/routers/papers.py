"""Papers: add to the catalog (recommendable at once, from their text) and look up."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Path, status

from recommender.core.papers import paper_card
from service.deps import ApiKey, RecommenderDep, StoreDep
from service.schemas import PaperBatch, PaperIn, PaperOut, PapersStored, Id

router = APIRouter(tags=["papers"])


@router.post("/papers", response_model=PapersStored, status_code=status.HTTP_201_CREATED)
def post_papers(
    payload: Annotated[PaperIn | PaperBatch, Body(description="one paper or a list of up to 1,000")],
    store: StoreDep,
    recommender: RecommenderDep,
    _key: ApiKey,
) -> PapersStored:
    """Add or update papers. They are encoded from their text and can be recommended in
    the very next list, before anyone has read them."""
    batch = payload if isinstance(payload, list) else [payload]
    ids = [p.paper_id for p in batch]
    if len(set(ids)) != len(ids):
        dup = next(i for i, p in enumerate(ids) if ids.index(p) != i)
        raise HTTPException(422, [{
            "type": "value_error", "loc": ["body", dup, "paper_id"],
            "msg": f"duplicate paper_id {ids[dup]!r} in batch", "input": ids[dup]}])
    changed = store.upsert_papers([_stored(p) for p in batch])
    recommender.add_papers()  # waits for its papers; concurrent reads do not
    return PapersStored(accepted=len(batch), changed=changed)


@router.get("/papers/{paper_id:path}", response_model=PaperOut)
def get_paper(paper_id: Annotated[Id, Path()], store: StoreDep) -> PaperOut:
    paper = store.get_paper(paper_id)
    if paper is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no paper {paper_id!r}")
    return PaperOut(**{k: paper[k] for k in PaperOut.model_fields if k != "url"},
                    url=paper_card(paper)["url"])


def _stored(paper: PaperIn) -> dict:
    """A paper as the store keeps it: a url beside the known fields goes into `extra`,
    where the importer puts it too."""
    row = paper.model_dump(exclude={"url"})
    if paper.url:
        row["extra"] = {"url": paper.url}
    return row
