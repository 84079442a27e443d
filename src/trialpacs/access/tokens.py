"""Bearer tokens for machines: the archive foundation's API, now service-account keys.

Kept so existing callers (``trialpacs token create``, the demo, tests) work
unchanged: a token is an API key of a service account whose default grant is
global administrator with the ``dicomweb`` scope.
"""

from __future__ import annotations

from trialpacs.access.apikeys import KEY_PREFIX, create_key, principal_for_key, revoke_keys
from trialpacs.access.policy import Principal
from trialpacs.index.db import Database

TOKEN_PREFIX = KEY_PREFIX
Identity = Principal


def create_token(db: Database, name: str) -> str:
    """Create a key and return its secret; the secret is not kept anywhere."""
    name = name.strip()
    if not name or len(name) > 128:
        raise ValueError("token name must be 1 to 128 characters")
    return create_key(db, name)


def revoke_token(db: Database, name: str) -> int:
    return revoke_keys(db, name)


class TokenVerifier:
    """Checks API keys (no cache: the web layer's Authenticator caches)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def verify(self, secret: str) -> Identity | None:
        return principal_for_key(self.db, secret)
