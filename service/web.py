"""Everything a browser uses, wired in one place: the reader page and its actions, the
search and similar-papers lists, static files, offline API docs (security headers: service/security.py)."""
from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from recommender.serving.search import PaperSearch, texts_from_store
from service.docs import install_offline_docs
from service.routers import pages, search
from service.session import SessionCodec

STATIC = Path(__file__).resolve().parent / "static"


def install_web(app: FastAPI, settings) -> None:
    """Call before the other routers are included: GET /papers/{id}/similar must be
    matched before GET /papers/{paper_id:path} takes the whole path."""
    app.state.sessions = SessionCodec(settings.session_secret or secrets.token_urlsafe(32))
    app.mount("/static/page", StaticFiles(directory=STATIC), name="page-assets")
    install_offline_docs(app)
    app.include_router(pages.router)
    app.include_router(search.router)


def start_search(app: FastAPI, store) -> None:
    """The search index for the app's store (built on the first query, not at start)."""
    app.state.search = PaperSearch(texts_from_store(store))
