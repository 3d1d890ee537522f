"""/docs (Swagger UI) and /redoc that work without internet.

FastAPI's own pages load their JavaScript and CSS from a CDN: without a network, a blank
page. fastapi-offline ships the same Swagger UI and ReDoc bundles inside its wheel; the app
serves them from there (no vendored copy to keep up to date) through FastAPI's own page
builders. Each page gets a Content-Security-Policy of its own: its one inline script is
allowed by hash, not by 'unsafe-inline'; both UIs style with inline styles, and ReDoc
runs its search in a worker made from a blob: URL.
"""
from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import (get_redoc_html, get_swagger_ui_html,
                                  get_swagger_ui_oauth2_redirect_html)
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/static/docs"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _csp_for(html: str) -> str:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _INLINE_SCRIPT.findall(html))
    return (f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
            "worker-src 'self' blob:; base-uri 'none'; frame-ancestors 'none'")


def _page(html: HTMLResponse):
    """A page builder's answer as a function returning a fresh response with its CSP."""
    body = bytes(html.body)
    headers = {"Content-Security-Policy": _csp_for(body.decode())}
    return lambda: HTMLResponse(body, headers=headers)


# ReDoc's sidebar shows its maker's logo from their CDN (the bundle's only address it
# loads); served from here instead.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
LOCAL_LOGO = "/static/page/favicon.svg"


@lru_cache(maxsize=1)
def _redoc_bundle() -> bytes:
    return (ASSETS / "redoc.standalone.js").read_bytes().replace(REDOC_LOGO.encode(),
                                                                LOCAL_LOGO.encode())


def install_offline_docs(app: FastAPI) -> None:
    """Serve the docs assets and the two pages (the app is created with docs_url and
    redoc_url set to None, so FastAPI's CDN pages are not registered)."""

    @app.get(f"{ASSETS_URL}/redoc.standalone.js", include_in_schema=False)
    async def redoc_bundle() -> Response:
        return Response(_redoc_bundle(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})

    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    oauth2 = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    swagger = _page(get_swagger_ui_html(
        openapi_url=app.openapi_url, title=f"{app.title} - Swagger UI",
        oauth2_redirect_url=oauth2, swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        # no validator badge: it would send the schema's address to validator.swagger.io
        swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None}))
    redoc = _page(get_redoc_html(
        openapi_url=app.openapi_url, title=f"{app.title} - ReDoc",
        redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_URL}/favicon.png", with_google_fonts=False))
    redirect = _page(get_swagger_ui_oauth2_redirect_html())

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return swagger()

    @app.get(oauth2, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return redirect()

    @app.get("/redoc", include_in_schema=False)
    async def redoc_page() -> HTMLResponse:
        return redoc()
