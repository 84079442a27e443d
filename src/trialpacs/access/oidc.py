"""OpenID Connect sign-in (authorization code flow with PKCE, nonce and state).

authlib's OAuth 2 client builds the authorization request and exchanges the
code; the ID token is verified with the provider's published keys (joserfc,
authlib's JOSE library): signature, issuer, audience, expiry and nonce.
Only asymmetric algorithms are accepted, so a token signed with the client
secret or with ``none`` is refused.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

with warnings.catch_warnings():
    # authlib warns on import that it prefers "httpx2"; httpx is what we ship.
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from trialpacs.access.external import map_grants, sign_in_external
from trialpacs.access.local import AuthFailed
from trialpacs.index.db import Database
from trialpacs.settings import Settings

log = logging.getLogger(__name__)
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
CACHE_SECONDS = 300
LEEWAY = 30


@dataclass(frozen=True)
class Pending:
    """What the browser carries (in a signed cookie) between redirect and callback."""

    state: str
    nonce: str
    code_verifier: str
    next_url: str = "/"


@dataclass
class OidcProvider:
    issuer: str
    client_id: str
    client_secret: str
    redirect_url: str
    scopes: str = "openid profile email"
    username_claim: str = "preferred_username"
    roles_claim: str = "groups"
    claim_roles: Mapping[str, list[str]] = field(default_factory=dict)
    timeout: float = 10.0
    _meta: tuple[float, dict[str, Any]] | None = None
    _keys: tuple[float, KeySet] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_settings(cls, s: Settings) -> OidcProvider:
        if not (s.oidc_issuer and s.oidc_redirect_url and s.oidc_client_id):
            raise ValueError("oidc_issuer, oidc_client_id and oidc_redirect_url must be set")
        return cls(
            issuer=s.oidc_issuer.rstrip("/"),
            client_id=s.oidc_client_id,
            client_secret=s.oidc_client_secret,
            redirect_url=s.oidc_redirect_url,
            scopes=s.oidc_scopes,
            username_claim=s.oidc_username_claim,
            roles_claim=s.oidc_roles_claim,
            claim_roles=s.oidc_claim_roles,
        )

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._meta and self._meta[0] > time.monotonic():
                return self._meta[1]
        url = self.issuer + "/.well-known/openid-configuration"
        meta = httpx.get(url, timeout=self.timeout).raise_for_status().json()
        if str(meta.get("issuer", "")).rstrip("/") != self.issuer:
            raise AuthFailed()
        with self._lock:
            self._meta = (time.monotonic() + CACHE_SECONDS, meta)
        return dict(meta)

    def _key_set(self, refresh: bool = False) -> KeySet:
        with self._lock:
            if not refresh and self._keys and self._keys[0] > time.monotonic():
                return self._keys[1]
        jwks = httpx.get(self.metadata()["jwks_uri"], timeout=self.timeout).raise_for_status()
        keys = KeySet.import_key_set(jwks.json())
        with self._lock:
            self._keys = (time.monotonic() + CACHE_SECONDS, keys)
        return keys

    def _client(self) -> OAuth2Client:
        return OAuth2Client(
            client_id=self.client_id,
            client_secret=self.client_secret,
            scope=self.scopes,
            redirect_uri=self.redirect_url,
            code_challenge_method="S256",
            timeout=self.timeout,
        )

    def begin(self, next_url: str = "/", *, force: bool = False) -> tuple[str, Pending]:
        """The provider URL to send the browser to, and what to remember until it returns.

        ``force`` (an e-signature) asks the provider to authenticate the user
        again, whatever session it has: ``prompt=login`` and ``max_age=0``.
        """
        pending = Pending(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            code_verifier=secrets.token_urlsafe(48),
            next_url=next_url,
        )
        extra = {"prompt": "login", "max_age": "0"} if force else {}
        with self._client() as client:
            url, _ = client.create_authorization_url(
                self.metadata()["authorization_endpoint"],
                state=pending.state,
                nonce=pending.nonce,
                code_verifier=pending.code_verifier,
                **extra,
            )
        return url, pending

    def finish(self, pending: Pending, code: str, state: str) -> dict[str, Any]:
        """Verified ID token claims for the code the browser brought back."""
        if not secrets.compare_digest(state, pending.state):
            raise AuthFailed()
        try:
            with self._client() as client:
                token = client.fetch_token(
                    self.metadata()["token_endpoint"],
                    code=code,
                    code_verifier=pending.code_verifier,
                )
        except Exception as exc:  # authlib raises several types; all mean "no sign-in"
            log.info("OIDC code exchange failed: %s", exc)
            raise AuthFailed() from None
        id_token = token.get("id_token")
        if not id_token:
            raise AuthFailed()
        return self.verify_id_token(str(id_token), pending.nonce)

    def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        registry = jose_jwt.JWTClaimsRegistry(
            leeway=LEEWAY,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.client_id},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        for refresh in (False, True):  # a key rotation at the provider: fetch keys once more
            try:
                decoded = jose_jwt.decode(id_token, self._key_set(refresh), algorithms=ALGORITHMS)
                registry.validate(decoded.claims)
                return dict(decoded.claims)
            except JoseError as exc:
                log.info("OIDC ID token refused: %s", exc)
                if "key" not in type(exc).__name__.lower() or refresh:
                    raise AuthFailed() from None
            except (ValueError, KeyError) as exc:
                log.info("OIDC ID token refused: %s", exc)
                raise AuthFailed() from None
        raise AuthFailed()

    @staticmethod
    def external_id(claims: Mapping[str, Any]) -> str:
        """The account key: issuer and subject, as ``sign_in`` stores it."""
        return f"{claims['iss']}|{claims['sub']}"

    def sign_in(self, db: Database, claims: Mapping[str, Any]) -> int:
        username = str(claims.get(self.username_claim) or claims["sub"])
        values = claims.get(self.roles_claim) or []
        if isinstance(values, str):
            values = values.split()
        return sign_in_external(
            db,
            "oidc",
            username=username,
            external_id=self.external_id(claims),
            grants=map_grants([str(v) for v in values], self.claim_roles),
            display_name=str(claims.get("name") or ""),
            email=str(claims.get("email") or ""),
        )
