"""Browser-facing protections: security headers on every response, a same-origin check
on every state-changing request, and CSRF tokens bound to the session."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import JSONResponse, Response

#: Only our own scripts, styles, images and frames (the inline PDF); no plugins; nobody
#: else may frame us. Forms post to ourselves only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; frame-src 'self'; frame-ancestors 'self'; base-uri 'none'; "
    "form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    # URLs carry accession numbers (launch links): never send them to another site.
    # (Not no-referrer: with it, browsers send "Origin: null" on our own form posts.)
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


def check_csrf(request: Request, supplied: str | None) -> None:
    """Refuse (403) a state-changing request whose token does not match the session's."""
    expected = request.session.get("csrf")
    if not expected or not supplied or not hmac.compare_digest(str(expected), supplied):
        raise HTTPException(
            status_code=403,
            detail="the form has expired or did not come from this site; reload and try again",
        )


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"


def cross_site(request: Request) -> bool:
    """Whether a browser says the request came from another site.

    Browsers send ``Origin`` on POSTs and ``Sec-Fetch-Site`` on everything; clients that
    send neither (curl, scripts) are not browsers and cannot be forged into a request.
    """
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        return origin != _own_origin(request)
    return request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")


class SecurityMiddleware(BaseHTTPMiddleware):
    """Adds the security headers and refuses cross-site state-changing requests."""

    def __init__(self, app: object, *, https: bool = False) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.https = https

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.method not in _SAFE_METHODS and cross_site(request):
            response: Response = JSONResponse(
                {"detail": "cross-site request refused: use the radpipe page itself"},
                status_code=403,
            )
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if self.https:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if not request.url.path.startswith("/static/"):
            # Pages and reports carry patient data: never keep them in shared caches.
            response.headers.setdefault("Cache-Control", "no-store")
        return response
