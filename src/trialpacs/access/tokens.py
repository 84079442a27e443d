"""Bootstrap API tokens: random secrets, stored only as SHA-256.

This is the small, replaceable piece the identity issue will swap for users,
roles and signed short-lived tokens; callers only see :class:`Identity`.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select, update

from trialpacs.index.db import Database
from trialpacs.index.models import ApiToken, utcnow

TOKEN_PREFIX = "tp_"
CACHE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    kind: str = "token"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(db: Database, name: str) -> str:
    """Create a token and return its secret; the secret is not kept anywhere."""
    name = name.strip()
    if not name or len(name) > 128:
        raise ValueError("token name must be 1 to 128 characters")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.write() as session:
        session.add(ApiToken(name=name, token_hash=_hash(secret)))
    return secret


def revoke_token(db: Database, name: str) -> int:
    with db.write() as session:
        result = session.execute(
            update(ApiToken)
            .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    return int(getattr(result, "rowcount", 0) or 0)


class TokenVerifier:
    """Checks bearer tokens with a short cache so each request is not a DB round trip."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, tuple[float, Identity | None]] = {}
        self._lock = threading.Lock()

    def verify(self, secret: str) -> Identity | None:
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            return None
        digest = _hash(secret)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
            if hit and hit[0] > now:
                return hit[1]
        with self.db.read() as session:
            row = session.execute(
                select(ApiToken.name).where(
                    ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None)
                )
            ).first()
        identity = Identity(name=row[0]) if row else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + CACHE_SECONDS, identity)
        return identity
