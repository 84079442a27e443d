"""A small OpenID Connect provider run in-process on a loopback port for the tests.

Authorization code flow with PKCE (S256) and client_secret_basic; ID tokens
are RS256-signed with a key generated at start (joserfc, authlib's JOSE
library). Knobs let tests make it misbehave: expired ID tokens, tampered
payloads, a foreign signing key, a wrong audience. Like a real provider it
keeps a sign-in session: ``auth_time`` is when the user last authenticated,
renewed only when the request forces it (``prompt=login`` or ``max_age=0``)
unless ``ignore_force`` makes it behave like a provider that does not
honour those; ``requests`` records every authorization request's parameters.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from support.services import free_port

CLIENT_ID = "trialpacs-test"
CLIENT_SECRET = "oidc-client-secret-for-tests"


@dataclass
class Provider:
    issuer: str
    redirect_uri: str
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"}))
    user: dict[str, Any] = field(default_factory=dict)
    id_token_seconds: int = 300
    tamper: bool = False
    foreign_key: bool = False
    audience: str = CLIENT_ID
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    session_auth_time: int | None = None
    ignore_force: bool = False

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
            ]
        )

    async def discovery(self, _: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token",
                "jwks_uri": self.issuer + "/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            }
        )

    async def jwks(self, _: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != CLIENT_ID or q.get("redirect_uri") != self.redirect_uri:
            return JSONResponse({"error": "invalid_client"}, 400)
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256":
            return JSONResponse({"error": "invalid_request"}, 400)
        self.requests.append(dict(q))
        forced = q.get("prompt") == "login" or q.get("max_age") == "0"
        if self.session_auth_time is None or (forced and not self.ignore_force):
            self.session_auth_time = int(time.time())  # the user types the password here
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "auth_time": self.session_auth_time,
            "nonce": q.get("nonce"),
            "challenge": q.get("code_challenge"),
            "user": dict(self.user),
        }
        target = self.redirect_uri + "?" + urlencode({"code": code, "state": q.get("state")})
        return RedirectResponse(target, status_code=302)

    async def token(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if auth != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, 401)
        form = await request.form()
        grant = self.codes.pop(str(form.get("code")), None)
        if grant is None or form.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "invalid_grant"}, 400)
        verifier = str(form.get("code_verifier", ""))
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["challenge"]:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, 400)
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + self.id_token_seconds,
            "nonce": grant["nonce"],
            "auth_time": grant["auth_time"],
            **grant["user"],
        }
        key = RSAKey.generate_key(2048, parameters={"kid": "k1"}) if self.foreign_key else self.key
        id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)
        if self.tamper:
            head, body, sig = id_token.split(".")
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            payload = payload.replace(b'"reader-group"', b'"admin-group"')
            body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
            id_token = f"{head}.{body}.{sig}"
        return JSONResponse(
            {
                "access_token": "opaque",
                "token_type": "Bearer",
                "expires_in": 60,
                "id_token": id_token,
            }
        )


@contextlib.contextmanager
def oidc_provider(redirect_uri: str) -> Iterator[Provider]:
    port = free_port()
    provider = Provider(issuer=f"http://127.0.0.1:{port}", redirect_uri=redirect_uri)
    server = uvicorn.Server(
        uvicorn.Config(provider.app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield provider
    finally:
        server.should_exit = True
        thread.join(10)
