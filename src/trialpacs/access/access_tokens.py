"""Short-lived signed access tokens (JWT, HS256): user, roles and scopes in the token.

Checking one is a signature check and a clock comparison, no database round
trip; revocation is enforced through the session id (``sid``) the token
carries, which the authenticator checks against a short cache.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from sqlalchemy import select

from trialpacs.access.models import SigningKey
from trialpacs.access.policy import Principal, parse_grant
from trialpacs.index.db import Database

ISSUER = "trialpacs"
AUDIENCE = "trialpacs"
ALGORITHM = "HS256"
LEEWAY_SECONDS = 5


@dataclass(frozen=True)
class Issued:
    token: str
    expires_in: int


class Signer:
    """Signs with the configured secret, or the newest key kept in the index."""

    def __init__(self, db: Database, secret: str | None = None) -> None:
        if secret is not None and len(secret) < 32:
            raise ValueError("auth_secret must be at least 32 characters")
        self.db = db
        self._configured = secret
        self._keys: dict[str, str] = {}
        self._current: str | None = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        if self._configured is not None:
            self._keys, self._current = {"cfg": self._configured}, "cfg"
            return
        with self.db.read() as session:
            rows = session.execute(
                select(SigningKey.kid, SigningKey.secret).order_by(SigningKey.created_at)
            ).all()
        if not rows:
            kid = uuid.uuid4().hex
            with self.db.write() as session:
                # Two processes starting at once may both add a key; both verify.
                session.add(SigningKey(kid=kid, secret=secrets.token_urlsafe(48)))
            with self.db.read() as session:
                rows = session.execute(
                    select(SigningKey.kid, SigningKey.secret).order_by(SigningKey.created_at)
                ).all()
        self._keys = {kid: secret for kid, secret in rows}
        self._current = rows[-1][0]

    def key(self, kid: str | None = None) -> tuple[str, str] | None:
        with self._lock:
            if self._current is None or (kid is not None and kid not in self._keys):
                self._load()
            use = kid or self._current
            assert use is not None
            secret = self._keys.get(use)
        return (use, secret) if secret is not None else None

    def issue(self, principal: Principal, minutes: int) -> Issued:
        found = self.key()
        assert found is not None
        kid, secret = found
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": principal.subject,
            "kind": principal.kind,
            "roles": [str(g) for g in principal.grants],
            "scope": " ".join(sorted(principal.scopes)),
            "sid": principal.session_id,
            "name": principal.display_name,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + minutes * 60,
            "typ": "access",
        }
        token = jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"kid": kid})
        return Issued(token, minutes * 60)

    def verify(self, token: str) -> Principal | None:
        """The principal in a valid, unexpired token of ours; None for anything else."""
        try:
            header = jwt.get_unverified_header(token)
            found = self.key(str(header.get("kid", "")) or None)
            if found is None or header.get("alg") != ALGORITHM:
                return None
            claims = jwt.decode(
                token,
                found[1],
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
            if claims.get("typ") != "access":
                return None
            return Principal(
                subject=str(claims["sub"]),
                kind=claims.get("kind", "user"),
                grants=tuple(parse_grant(g) for g in claims.get("roles", [])),
                scopes=frozenset(str(claims.get("scope", "")).split()),
                session_id=claims.get("sid"),
                display_name=str(claims.get("name") or ""),
            )
        except (jwt.PyJWTError, ValueError, KeyError, TypeError):
            return None


def seal(signer: Signer, typ: str, payload: dict[str, Any], seconds: int) -> str:
    """A small signed, expiring value (sign-in state kept in a cookie between redirects)."""
    found = signer.key()
    assert found is not None
    kid, secret = found
    now = int(time.time())
    claims = {**payload, "typ": typ, "iat": now, "exp": now + seconds, "aud": AUDIENCE}
    return jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"kid": kid})


def unseal(signer: Signer, typ: str, token: str) -> dict[str, Any] | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        found = signer.key(str(kid) if kid else None)
        if found is None:
            return None
        claims: dict[str, Any] = jwt.decode(
            token, found[1], algorithms=[ALGORITHM], audience=AUDIENCE
        )
    except (jwt.PyJWTError, ValueError):
        return None
    return claims if claims.get("typ") == typ else None
