"""Hospital sign-in over OIDC (authorization code + PKCE), end to end over HTTP.

A tiny OpenID provider started here on loopback STANDS IN FOR THE HOSPITAL'S IdP (no real
IdP can be reached from tests): it serves discovery, JWKS, an authorization endpoint that
approves at once, and a token endpoint that returns an RS256-signed ID token. The radpipe
app talks to it with authlib exactly as it would to Keycloak, Entra ID or ADFS.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Form, HTTPException
from fastapi.responses import RedirectResponse
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey

from radpipe.config import Settings
from radpipe.web.app import create_app
from tests.fixtures.network import free_port, http_ok, wait_until

pytestmark = pytest.mark.integration


@dataclass
class FakeIdP:
    """State of the stand-in identity provider."""

    url: str
    key: RSAKey
    claims: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, dict[str, str]] = field(default_factory=dict)


def _idp_app(idp: FakeIdP) -> FastAPI:
    app = FastAPI()

    @app.get("/.well-known/openid-configuration")
    def discovery() -> dict[str, Any]:
        return {
            "issuer": idp.url,
            "authorization_endpoint": idp.url + "/authorize",
            "token_endpoint": idp.url + "/token",
            "jwks_uri": idp.url + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }

    @app.get("/jwks")
    def jwks() -> dict[str, Any]:
        return {"keys": [idp.key.as_dict(private=False)]}

    @app.get("/authorize")
    def authorize(
        client_id: str,
        redirect_uri: str,
        state: str,
        nonce: str,
        code_challenge: str,
        code_challenge_method: str,
    ) -> RedirectResponse:
        assert code_challenge_method == "S256"
        code = secrets.token_urlsafe(16)
        idp.codes[code] = {"nonce": nonce, "challenge": code_challenge, "client": client_id}
        return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}")

    @app.post("/token")
    def token(
        code: str = Form(...),
        code_verifier: str = Form(...),
        client_id: str = Form(""),
    ) -> dict[str, Any]:
        grant = idp.codes.pop(code, None)
        if grant is None:
            raise HTTPException(400, "invalid_grant")
        digest = hashlib.sha256(code_verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["challenge"]:
            raise HTTPException(400, "PKCE verifier does not match")
        now = int(time.time())
        claims = {
            "iss": idp.url,
            "aud": grant["client"],
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            **idp.claims,
        }
        id_token = jwt.encode({"alg": "RS256", "kid": idp.key.kid}, claims, idp.key)
        return {"access_token": "at", "token_type": "Bearer", "id_token": id_token}

    return app


@pytest.fixture(scope="module")
def idp() -> Iterator[FakeIdP]:
    """The stand-in hospital IdP on a loopback port."""
    port = free_port()
    state = FakeIdP(url=f"http://127.0.0.1:{port}", key=RSAKey.generate_key(2048, auto_kid=True))
    server = uvicorn.Server(
        uvicorn.Config(_idp_app(state), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: http_ok(state.url + "/jwks"), 20, "stand-in IdP")
    yield state
    server.should_exit = True
    thread.join(timeout=10)


def _sign_in_via_idp(client: TestClient, idp: FakeIdP) -> Any:
    """Browser steps: our app → IdP authorize → back to our callback."""
    to_idp = client.get("/login/oidc?next=/jobs", follow_redirects=False)
    assert to_idp.status_code == 302
    location = to_idp.headers["location"]
    assert location.startswith(idp.url + "/authorize")
    assert parse_qs(urlparse(location).query)["code_challenge_method"] == ["S256"]
    back = httpx.get(location, follow_redirects=False)
    callback = back.headers["location"].replace("http://testserver", "")
    return client.get(callback, follow_redirects=False)


def test_oidc_sign_in_maps_idp_groups_to_roles(settings: Settings, idp: FakeIdP) -> None:
    settings.web.oidc_issuer = idp.url
    settings.web.oidc_client_id = "radpipe-web"
    settings.web.oidc_roles_claim = "groups"
    settings.web.oidc_role_map = {"radiology-consultants": "radiologist"}
    idp.claims = {
        "sub": "u-123",
        "preferred_username": "dr.house",
        "name": "Dr G. House",
        "groups": ["radiology-consultants", "staff"],
    }
    with TestClient(create_app(settings, start_workers=False)) as client:
        login_page = client.get("/login")
        assert "Sign in with your hospital account" in login_page.text
        done = _sign_in_via_idp(client, idp)
        assert done.status_code == 303 and done.headers["location"] == "/jobs"
        me = client.get("/api/v1/me").json()
        assert me == {
            "name": "dr.house",
            "display": "Dr G. House",
            "roles": ["radiologist"],
            "via": "oidc",
        }
        assert "Dr G. House" in client.get("/jobs").text

    # Someone the IdP knows but who has no radpipe role is refused with a clear message.
    idp.claims = {"sub": "u-9", "preferred_username": "visitor", "groups": ["staff"]}
    with TestClient(create_app(settings, start_workers=False)) as client:
        refused = _sign_in_via_idp(client, idp)
        assert refused.status_code == 403
        assert "no radpipe role" in refused.text
        assert client.get("/api/v1/me").status_code == 401
    audit = (settings.data_dir / "audit.log").read_text()
    assert '"via": "oidc"' in audit and '"outcome": "no-role"' in audit
