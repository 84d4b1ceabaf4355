"""Sign-in: sessions, the local user file, HTTP Basic for scripts, and OIDC for hospitals.

A signed-in user is kept in a signed session cookie (Starlette's SessionMiddleware,
itsdangerous). Pages send people without a session to the sign-in page; the JSON API
answers 401. Roles: requester < radiologist < admin (see :mod:`radpipe.web.users`).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request

from radpipe.config import Settings
from radpipe.web.users import ROLES, User, UserFile

OIDC_CLIENT = "hospital"


class LoginRequired(Exception):
    """A page needs a signed-in user; the handler sends the browser to sign in."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def session_secret(settings: Settings) -> str:
    """The cookie signing key: configured, else one kept in DATA_DIR/web/ (made once)."""
    if settings.web.session_secret is not None:
        return settings.web.session_secret.get_secret_value()
    path = settings.data_dir / "web" / "session.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name("session.key.partial")
        partial.write_text(secrets.token_urlsafe(48))
        partial.chmod(0o600)
        partial.replace(path)
    return path.read_text().strip()


def users_file_path(settings: Settings) -> Path:
    """The local user file in force."""
    return settings.web.users_file or settings.data_dir / "web-users.yaml"


def sign_in(request: Request, user: User) -> None:
    """Start a fresh session for ``user`` (a new CSRF token, nothing kept from before)."""
    request.session.clear()
    request.session["user"] = user.session_form()
    request.session["csrf"] = secrets.token_urlsafe(32)


def session_user(request: Request) -> User | None:
    """The user of the session cookie, if any."""
    data = request.session.get("user")
    return User.from_session(data) if isinstance(data, dict) else None


def basic_user(request: Request) -> User | None:
    """The user named by an HTTP Basic header, checked against the local user file."""
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        name, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    users: UserFile = request.app.state.users
    return users.authenticate(name, password)


def safe_next(url: str | None) -> str:
    """A local path to go to after sign-in (never another site)."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/"
    return url


def page_user(request: Request) -> User:
    """Dependency of pages: the signed-in user, else a redirect to the sign-in page."""
    user = session_user(request)
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return user


def api_user(request: Request) -> User:
    """Dependency of the JSON API: HTTP Basic when sent (explicit credentials win over the
    ambient cookie), else the session (whose writes need the CSRF header)."""
    if request.headers.get("authorization"):
        user = basic_user(request)
        if user is None:
            raise HTTPException(status_code=401, detail="wrong user name or password")
        request.state.via_session = False
        return user
    user = session_user(request)
    if user is None:
        raise HTTPException(status_code=401, detail="sign in first (session or HTTP Basic)")
    request.state.via_session = True
    return user


def require_role(user: User, role: str) -> None:
    """403 unless the user holds ``role`` (or a higher one)."""
    if not user.has(role):
        raise HTTPException(status_code=403, detail=f"this needs the {role} role")


def login_redirect(next_url: str) -> str:
    """The sign-in page URL that comes back to ``next_url``."""
    return "/login?next=" + quote(safe_next(next_url), safe="")


# -- OIDC ----------------------------------------------------------------------------------


def oidc_client(settings: Settings) -> Any | None:
    """An authlib OAuth registry with the hospital IdP, or None when OIDC is not set up."""
    web = settings.web
    if not (web.oidc_issuer and web.oidc_client_id):
        return None
    from authlib.integrations.starlette_client import OAuth

    oauth = OAuth()
    oauth.register(
        OIDC_CLIENT,
        client_id=web.oidc_client_id,
        client_secret=web.oidc_client_secret.get_secret_value() if web.oidc_client_secret else None,
        server_metadata_url=web.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": web.oidc_scopes, "code_challenge_method": "S256"},
    )
    return oauth


def roles_from_claims(settings: Settings, claims: dict[str, Any]) -> tuple[str, ...]:
    """radpipe roles from the IdP's claim, through ``oidc_role_map``; may be empty."""
    raw = claims.get(settings.web.oidc_roles_claim) or []
    names = [raw] if isinstance(raw, str) else [str(r) for r in raw]
    mapping = settings.web.oidc_role_map
    roles = {mapping.get(name, name) for name in names}
    found = tuple(r for r in ROLES if r in roles)
    if not found and settings.web.oidc_default_role:
        return (settings.web.oidc_default_role,)
    return found


def oidc_user(settings: Settings, claims: dict[str, Any]) -> User | None:
    """The user an ID token describes, or None when they hold no radpipe role.

    The token's ``department`` claim, when the IdP sends one, is the user's department.
    """
    roles = roles_from_claims(settings, claims)
    if not roles:
        return None
    name = str(claims.get("preferred_username") or claims.get("email") or claims["sub"])
    department = claims.get("department")
    return User(
        name=name,
        display=str(claims.get("name", "")),
        roles=roles,
        via="oidc",
        department=department if isinstance(department, str) else "",
    )
