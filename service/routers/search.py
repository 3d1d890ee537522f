"""GET /search and GET /papers/{id}/similar: lists a front end shows beside the feed."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, status

from recommender.serving.search import (MAX_QUERY_CHARS, PaperSearch, query_problem, serve_search,
                                        serve_similar)
from service.deps import RecommenderDep, StoreDep
from service.errors import invalid
from service.list_items import item_dicts
from service.schemas import Id, RecommendedItem, SearchResults, SimilarPapers

router = APIRouter(tags=["search"])

K = Annotated[int, Query(ge=1, le=100, description="list length")]
Reader = Annotated[Id | None, Query(description="personalise for (and log the list as "
                                                "served to) this reader")]


def paper_search(request: Request) -> PaperSearch:
    return request.app.state.search


def check_query(q: str | None) -> str:
    """The query stripped, or a 422 naming `q` (search.query_problem says why)."""
    problem = query_problem(q)
    if problem is not None:
        raise invalid(["query", "q"], problem, (q or "")[:MAX_QUERY_CHARS + 1])
    return q.strip()


def _items(store, recommender, ranked) -> list[RecommendedItem]:
    return [RecommendedItem(**i) for i in
            item_dicts(store, recommender.catalog, ranked.rows, ranked.scores, ranked.reasons)]


# A plain `def` (a worker thread, not the event loop): the first query after a start or a
# catalog change builds the index, seconds for a large catalog.
@router.get("/search", response_model=SearchResults)
def search(request: Request, store: StoreDep, recommender: RecommenderDep,
                 q: Annotated[str, Query(description=f"words of a title or abstract; 1-"
                                         f"{MAX_QUERY_CHARS} characters")] = "",
                 k: K = 20, user_id: Reader = None) -> SearchResults:
    """Ranked search over title and abstract (TF-IDF matches plus the content model's
    vectors); with `user_id`, ties among good matches go to what that reader reads, and
    the list is logged under its request_id like any served list."""
    text = check_query(q)
    served = serve_search(store, recommender, paper_search(request), text, k, user_id)
    return SearchResults(request_id=served.request_id, query=text, user_id=user_id,
                         items=_items(store, recommender, served.ranked))


# Registered before GET /papers/{paper_id:path}, which would otherwise take the whole path.
@router.get("/papers/{paper_id:path}/similar", response_model=SimilarPapers)
def similar(request: Request, paper_id: Annotated[Id, Path()], store: StoreDep,
                  recommender: RecommenderDep, k: K = 10,
                  user_id: Reader = None) -> SimilarPapers:
    """Papers near this one in text (content vectors) and in readership (its readers
    also read them), each with the reason."""
    served = serve_similar(store, recommender, paper_search(request), paper_id, k, user_id)
    if served is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no paper {paper_id!r}")
    catalog = recommender.catalog
    return SimilarPapers(request_id=served.request_id, paper_id=paper_id,
                         title=catalog.titles[catalog.row_of[paper_id]],
                         items=_items(store, recommender, served.ranked))
