"""Security headers on every HTML answer: Content-Security-Policy, nosniff, no framing.

A pure ASGI middleware (not BaseHTTPMiddleware, which costs a task per request on the JSON
hot path): it only looks at the response's start message. Every answer gets
`X-Content-Type-Options: nosniff`; HTML answers also get a CSP and `X-Frame-Options: DENY`.

The default policy allows nothing from anywhere but this origin and no inline script or
style at all, so even markup that slipped past escaping could not run. A route that needs
a looser policy (the API docs, the experiment report's inline styles) sends its own
Content-Security-Policy header, which is then kept as it is.
"""
from __future__ import annotations

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
# The experiment report page (service/report_page.py) styles with inline <style> and
# style attributes and runs no script.
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
              "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
REPORT_PREFIX = "/experiments/"


class SecurityHeaders:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers.append((b"x-content-type-options", b"nosniff"))
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if ctype.startswith(b"text/html"):
                    if b"content-security-policy" not in names:
                        csp = REPORT_CSP if path.startswith(REPORT_PREFIX) else PAGE_CSP
                        headers.append((b"content-security-policy", csp.encode()))
                    headers.append((b"x-frame-options", b"DENY"))
                    headers.append((b"referrer-policy", b"same-origin"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
