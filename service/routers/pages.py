"""The reader page at `/`: the daily-papers feed, "For you" and "Trending", search and
similar papers, and the page's own same-origin actions (sign in and out, upvote and undo,
dismiss and undo, opening a paper).

Server-rendered (Jinja2, autoescaped) with one small script of our own; nothing is loaded
from another host. Every list a signed-in reader sees is a served list: "For you" through
the running experiments exactly like GET /recommendations (serve_list), Trending, search
and similar logged under their own request_id, which every action on a card carries.

Actions are stored by the server for the session cookie's reader (service/session.py):
no API key is involved, and a post without the cookie or its CSRF token is refused before
anything is read from it.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Header, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from recommender.core.events import normalize_ts
from recommender.core.kinds import KINDS
from recommender.serving.reader_history import reader_marks
from recommender.serving.search import MAX_QUERY_CHARS, query_problem, serve_search, serve_similar
from recommender.serving.serve_list import serve_list
from recommender.storage import EventRow
from service.deps import MetricsDep, RecommenderDep, StoreDep, off_loop_if_busy
from service.errors import invalid
from service.list_items import page_item_dicts
from service.schemas import Id
from service.session import (CSRF_FIELD, CSRF_HEADER, Session, check_same_origin,
                             require_csrf)

router = APIRouter(include_in_schema=False)

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "templates"),
    autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
PAGE_SIZE = 20
MAX_K = 100
# What a reader does on the page: every event kind but a bare impression (the served list
# itself is the impression).
PAGE_KINDS = tuple(k for k in KINDS if k != "impression")
DEMO_PREFIX = "demo-"
MAX_DEMO_READERS = 8
MAX_HIDDEN_SHOWN = 50
_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
_reader_id = TypeAdapter(Id)
_NUMBERED = re.compile(r"\d+$")


def _sessions(request: Request):
    return request.app.state.sessions


def _search(request: Request):
    return request.app.state.search


# -- the page ------------------------------------------------------------------------------

@router.get("/", response_class=HTMLResponse)
async def reader_page(
    request: Request, store: StoreDep, recommender: RecommenderDep, metrics: MetricsDep,
    tab: Annotated[str | None, Query(max_length=16)] = None,
    q: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS * 4)] = None,
    similar: Annotated[str | None, Query(max_length=256)] = None,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = PAGE_SIZE,
) -> Response:
    codec = _sessions(request)
    session = codec.read(request)
    fresh = session is None
    if fresh:
        session = Session.fresh()
    reader = session.reader
    view = {"reader": reader, "csrf": session.csrf, "k": k, "q": q or "", "error": None,
            "tab": tab if tab in ("for-you", "trending") else ("for-you" if reader else "trending"),
            "similar_to": None, "request_id": None, "strategy": None, "cards": [],
            "more_url": None, "hidden": [], "demo_readers": [], "page_size": PAGE_SIZE}
    code = status.HTTP_200_OK
    if q is not None:
        code = await run_in_threadpool(_search_view, view, store, recommender, _search(request))
    elif similar is not None:
        code = await run_in_threadpool(_similar_view, view, store, recommender,
                                       _search(request), similar)
    else:
        await off_loop_if_busy(recommender, _feed_view, view, store, recommender, metrics)
    await off_loop_if_busy(recommender, _reader_view, view, store, recommender)
    view["self_url"] = _local(str(request.url.path) + ("?" + request.url.query if request.url.query else ""))
    view["today"] = _day(datetime.now(timezone.utc), with_year=True)
    html = TEMPLATES.get_template("page.html").render(**view)
    response = HTMLResponse(html, status_code=code, headers={"Cache-Control": "no-store"})
    if fresh:
        codec.write(response, session, request)
    return response


def _feed_view(view: dict, store, recommender, metrics) -> None:
    reader, k = view["reader"], view["k"]
    if reader is not None:
        strategy = None if view["tab"] == "for-you" else "trending"
        served = serve_list(store, recommender, reader, k, strategy=strategy)
        metrics.recommendations.labels(served.strategy).inc()
        view.update(request_id=served.request_id, strategy=served.strategy)
    else:
        served = recommender.trending_list(k)  # rows, scores, reasons
        view["strategy"] = "trending"
    _fill_cards(view, store, recommender, served)
    if len(view["cards"]) >= k and k < MAX_K:
        view["more_url"] = "/?" + urlencode({"tab": view["tab"], "k": min(MAX_K, k + PAGE_SIZE)})


def _search_view(view: dict, store, recommender, search) -> int:
    problem = query_problem(view["q"])
    if problem is not None:
        view["error"] = f"Search words {problem}: type 1 to {MAX_QUERY_CHARS} characters."
        view["tab"] = "search"
        return 422
    text = view["q"].strip()
    served = serve_search(store, recommender, search, text, view["k"], view["reader"])
    view.update(tab="search", request_id=served.request_id, strategy="search")
    _fill_cards(view, store, recommender, served.ranked)
    if len(view["cards"]) >= view["k"] and view["k"] < MAX_K:
        view["more_url"] = "/?" + urlencode({"q": text, "k": min(MAX_K, view["k"] + PAGE_SIZE)})
    return status.HTTP_200_OK


def _similar_view(view: dict, store, recommender, search, paper_id: str) -> int:
    view["tab"] = "similar"
    served = serve_similar(store, recommender, search, paper_id, view["k"], view["reader"])
    if served is None:
        view["error"] = "There is no such paper in the catalog."
        return status.HTTP_404_NOT_FOUND
    catalog = recommender.catalog
    view.update(request_id=served.request_id, strategy="similar",
                similar_to=catalog.titles[catalog.row_of[paper_id]])
    _fill_cards(view, store, recommender, served.ranked)
    return status.HTTP_200_OK


def _fill_cards(view: dict, store, recommender, served) -> None:
    view["cards"] = page_item_dicts(store, recommender.catalog, served, _card)


def _card(item: dict) -> dict:
    """What the template shows of one item, formatted once per kept list."""
    authors, count = item["authors"], item["author_count"]
    return {**item, "date": _date(item["published_at"]),
            "authors_text": ", ".join(authors[:3]) + (f" +{len(authors) - 3}" if len(authors) > 3 else ""),
            "count_text": f"{count} author{'' if count == 1 else 's'}" if count else "",
            "similar_url": "/?" + urlencode({"similar": item["paper_id"]})}


def _reader_view(view: dict, store, recommender) -> None:
    """The reader's own marks on the cards, their hidden papers; or the demo readers.
    Cards become objects here (the template reads attributes; a dict would first fail a
    getattr per field), each with this reader's upvote on it."""
    reader = view["reader"]
    up_ids: set[str] = set()
    if reader is None:
        view["demo_readers"] = _demo_readers(store)
    else:
        catalog = recommender.catalog
        upvoted, dismissed = reader_marks(recommender.history(reader))
        up_ids = {catalog.paper_ids[r] for r in upvoted if r < catalog.size}
        view["hidden"] = [{"paper_id": catalog.paper_ids[r], "title": catalog.titles[r]}
                          for r in sorted(dismissed)[:MAX_HIDDEN_SHOWN] if r < catalog.size]
    cards = []
    for card in view["cards"]:
        mine = card["paper_id"] in up_ids
        cards.append(SimpleNamespace(**card, upvoted=mine,
                                     shown_upvotes=(card["upvotes"] or 0) + (1 if mine else 0)))
    view["cards"] = cards


def _demo_readers(store) -> list[str]:
    """A few demo readers to sign in as: the one-topic readers first, then the numbered
    crowd (demo-crowd-01, ...)."""
    ids = store.readers_with_prefix(DEMO_PREFIX, limit=200)
    return sorted(ids, key=lambda u: (bool(_NUMBERED.search(u)), u))[:MAX_DEMO_READERS]


def _date(iso: str | None) -> str | None:
    if not iso:
        return None
    try:
        return _day(datetime.fromisoformat(iso.replace("Z", "+00:00")), with_year=True)
    except ValueError:
        return None


def _day(dt: datetime, with_year: bool = False) -> str:
    return dt.strftime("%b %-d, %Y" if with_year else "%b %-d")


def _local(target: str | None) -> str:
    """A redirect target on this site: a path, never another host (`//x`, `/\\x`)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) \
            or any(c in target for c in "\r\n\\"):
        return "/"
    return target[:2000]


# -- actions -------------------------------------------------------------------------------

def _acting_session(request: Request, token: str | None) -> Session:
    check_same_origin(request)
    return require_csrf(_sessions(request).read(request), token)


def _field_error(field: str, msg: str, value) -> RequestValidationError:
    return invalid(["body", field], msg, value)


@router.post("/page/signin")
async def sign_in(request: Request,
                  reader_id: Annotated[str, Form(max_length=1024)] = "",
                  csrf: Annotated[str | None, Form(alias=CSRF_FIELD)] = None,
                  next: Annotated[str | None, Form(max_length=2000)] = None) -> Response:
    """Sign in with a reader id (the demo's identity; no passwords yet). The session gets a
    new CSRF token, so one seen before signing in is worth nothing after."""
    _acting_session(request, csrf)
    try:
        reader = _reader_id.validate_python(reader_id.strip())
    except ValidationError:
        raise _field_error("reader_id", "a reader id: 1-256 characters, no control "
                           "characters", reader_id[:300]) from None
    response = RedirectResponse(_local(next) if next else "/?tab=for-you",
                                status_code=status.HTTP_303_SEE_OTHER)
    _sessions(request).write(response, Session.fresh(reader), request)
    return response


@router.post("/page/signout")
async def sign_out(request: Request,
                   csrf: Annotated[str | None, Form(alias=CSRF_FIELD)] = None) -> Response:
    _acting_session(request, csrf)
    response = RedirectResponse("/", status_code=status.HTTP_303_SEE_OTHER)
    _sessions(request).write(response, Session.fresh(), request)
    return response


@router.post("/page/events")
async def page_event(
    request: Request, store: StoreDep, recommender: RecommenderDep,
    paper_id: Annotated[str, Form(max_length=1024)] = "",
    kind: Annotated[str, Form(max_length=32)] = "",
    request_id: Annotated[str | None, Form(max_length=256)] = None,
    key: Annotated[str | None, Form(max_length=64)] = None,
    next: Annotated[str | None, Form(max_length=2000)] = None,
    csrf: Annotated[str | None, Form(alias=CSRF_FIELD)] = None,
    csrf_header: Annotated[str | None, Header(alias=CSRF_HEADER)] = None,
    accept: Annotated[str, Header()] = "",
) -> Response:
    """One action of the signed-in reader on a card: stored durably (like POST /events)
    for the session's reader, attributed to the list (`request_id`) that showed the card.
    A fetch (Accept: application/json) gets JSON; a plain form post is sent back to the page."""
    session = _acting_session(request, csrf_header or csrf)
    reader = session.reader
    if reader is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "sign in first")
    if kind not in PAGE_KINDS:
        raise _field_error("kind", f"one of {', '.join(PAGE_KINDS)}", kind)
    if paper_id not in recommender.catalog.row_of and not store.existing_paper_ids([paper_id]):
        raise _field_error("paper_id", f"unknown paper_id {paper_id!r}", paper_id[:300])
    if key is not None and not _KEY.fullmatch(key):
        raise _field_error("key", "1-64 letters, digits, '-' or '_'", key)
    if request_id:
        served = await run_in_threadpool(store.get_impression, request_id)
        if served is None or served["user_id"] != reader:
            raise _field_error("request_id", "not a list served to this reader", request_id[:300])
    stored, _ = await store.add_events_async([EventRow(
        reader, paper_id, kind, normalize_ts(None), request_id or None,
        f"page:{reader}:{key}" if key else None)])
    if "application/json" in accept:
        return JSONResponse({"stored": stored, "paper_id": paper_id, "kind": kind})
    return RedirectResponse(_local(next), status_code=status.HTTP_303_SEE_OTHER)
