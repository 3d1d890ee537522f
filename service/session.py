"""The reader page's session: a signed cookie naming the reader, and its CSRF token.

Why a signed cookie and not a table: the session holds two short strings (the reader id and
a random CSRF token), so the cookie itself can carry them, signed with itsdangerous (the
signer Starlette's and Flask's sessions use) so a browser cannot name another reader by
editing it. It is HttpOnly (no script reads it), SameSite=Lax (other sites' form posts do
not carry it) and Secure on https. There are no passwords yet: signing in with a reader id
is the demo's identity, but nothing a browser does *without* this cookie writes as anyone.

CSRF: every state-changing page request carries the session's token (form field `csrf`
or header `X-CSRF-Token`), compared in constant time, and must come from this origin
(Origin header, when the browser sends one). The write API key is never involved: page
actions are stored by the server for the cookie's reader.
"""
from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, Response, status
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "paperrec_session"
MAX_AGE_S = 30 * 24 * 3600
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Session:
    csrf: str
    reader: str | None = None

    @classmethod
    def fresh(cls, reader: str | None = None) -> "Session":
        return cls(csrf=secrets.token_urlsafe(24), reader=reader)


class SessionCodec:
    def __init__(self, secret: str):
        self._serializer = URLSafeTimedSerializer(secret, salt="paperrec-page-session")

    def read(self, request: Request) -> Session | None:
        raw = request.cookies.get(COOKIE)
        if not raw or len(raw) > 4096:
            return None
        try:
            data = self._serializer.loads(raw, max_age=MAX_AGE_S)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        reader = data.get("r")
        return Session(csrf=data["c"], reader=reader if isinstance(reader, str) else None)

    def write(self, response: Response, session: Session, request: Request) -> None:
        value = self._serializer.dumps({"c": session.csrf, "r": session.reader})
        response.set_cookie(COOKIE, value, max_age=MAX_AGE_S, path="/", httponly=True,
                            samesite="lax", secure=request.url.scheme == "https")


def check_same_origin(request: Request) -> None:
    """403 for a request another site's page sent (a browser names it in Origin). Host
    and port are compared, not the scheme: behind a proxy that ends TLS the app sees http
    while the browser says https."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    if origin == "null" or urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-origin request refused")


def require_csrf(session: Session | None, token: str | None) -> Session:
    """The session a state-changing request acts for, or 403: no session cookie (or a
    forged one), or a missing or wrong CSRF token."""
    if session is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "no session: open the page first")
    if not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    return session
