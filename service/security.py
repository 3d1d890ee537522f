"""HTTP-level protections that hold for every route: security headers on every answer, and
paths with control characters refused before routing.

Why before routing: Starlette matches a route with a Python regex ending in `$`, which also
matches just before a final newline, so `/papers/2402.17764%0A` reached the route as
`2402.17764` and answered with that paper. No id, name or route contains a control
character (service/schemas.Id), so such a path names nothing: 400, naming the path.

Why headers here and not per route: an HTML page added later is covered without anyone
remembering to. HTML gets a Content-Security-Policy (the report page needs nothing from
outside: inline styles and SVG, no script), frame protection both old (X-Frame-Options) and
new (frame-ancestors); every answer gets `nosniff`, so a JSON body that echoes a client's
text is never sniffed into HTML. FastAPI's /docs page loads Swagger UI from its CDN and runs
an inline script: it gets a policy that allows exactly that.
"""
from __future__ import annotations

import json
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

PAGE_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
DOCS_CDN = "https://cdn.jsdelivr.net"
DOCS_POLICY = (f"default-src 'none'; script-src 'unsafe-inline' {DOCS_CDN}; "
               f"style-src 'unsafe-inline' {DOCS_CDN}; img-src 'self' data: "
               "https://fastapi.tiangolo.com; connect-src 'self'; base-uri 'none'; "
               "frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/redoc")


def policy_for(path: str) -> str:
    return DOCS_POLICY if path.startswith(DOCS_PATHS) else PAGE_POLICY


class SecurityMiddleware:
    """Pure ASGI (see service/metrics.py for why not BaseHTTPMiddleware)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if _CONTROL.search(path):
            return await self._refuse(send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if ctype.startswith(b"text/html"):
                    headers += [(b"content-security-policy", policy_for(path).encode()),
                                (b"x-frame-options", b"DENY"),
                                (b"referrer-policy", b"no-referrer")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    async def _refuse(send):
        body = json.dumps({"detail": [{
            "type": "value_error", "loc": ["path"],
            "msg": "the path contains a control character (such as a newline)"}]}).encode()
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"x-content-type-options", b"nosniff")]})
        await send({"type": "http.response.body", "body": body})
