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
text is never sniffed into HTML. A route that needs another policy (the offline API docs)
sends its own Content-Security-Policy header, which is then kept as it is.
"""
from __future__ import annotations

import json
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# The reader page: nothing from anywhere but this origin, no inline script or style at all,
# so even markup that slipped past escaping could not run.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
# The experiment report page (service/report_page.py) styles with inline <style> and style
# attributes and runs no script.
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
              "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
REPORT_PREFIX = "/experiments/"


def policy_for(path: str) -> str:
    """The policy of an HTML answer whose route did not send its own (the offline API docs
    send theirs, allowing their one inline script by hash: service/docs.py)."""
    return REPORT_CSP if path.startswith(REPORT_PREFIX) else PAGE_CSP


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
                names = {k.lower() for k, _ in headers}
                headers.append((b"x-content-type-options", b"nosniff"))
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if ctype.startswith(b"text/html"):
                    if b"content-security-policy" not in names:
                        headers.append((b"content-security-policy", policy_for(path).encode()))
                    headers += [(b"x-frame-options", b"DENY"), (b"referrer-policy", b"same-origin")]
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
