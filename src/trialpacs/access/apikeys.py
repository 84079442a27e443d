"""Service accounts and their scoped API keys (``tp_`` secrets, stored as SHA-256).

A key carries scopes (what it may be used for); the account carries grants
(what it may reach). ``trialpacs token create --name X`` makes an account
with a global administrator grant, which is what the bootstrap tokens of the
archive foundation could do.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable

from sqlalchemy import select, update

from trialpacs.access import events
from trialpacs.access.clock import aware, now
from trialpacs.access.models import ApiKey, User
from trialpacs.access.policy import SCOPES, Principal
from trialpacs.access.users import check_username, get_user, grant, principal_for
from trialpacs.index.db import Database

KEY_PREFIX = "tp_"
DEFAULT_SCOPES = ("dicomweb",)
DEFAULT_GRANTS = ("administrator",)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    db: Database,
    name: str,
    *,
    grants: Iterable[str] | None = None,
    scopes: Iterable[str] = DEFAULT_SCOPES,
    actor: str = "cli",
) -> str:
    """A new key for service account ``name`` (created if needed); returns the secret once.

    ``grants`` are added to a new account (default: global administrator); an
    existing account keeps its grants plus the ones given.
    """
    name = check_username(name)
    scope_set = sorted(set(scopes))
    unknown = [s for s in scope_set if s not in SCOPES and s != "*"]
    if unknown:
        raise ValueError(f"unknown scope(s) {unknown}; scopes: {', '.join(sorted(SCOPES))}")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    with db.write() as session:
        user = get_user(session, name)
        created = user is None
        if user is None:
            user = User(username=name, kind="service", source="local")
            session.add(user)
            session.flush()
            events.record(session, "user.add", name, actor=actor, detail="service")
        elif user.kind != "service":
            raise ValueError(f"{name!r} is a person's account; API keys are for service accounts")
        session.add(
            ApiKey(user_pk=user.pk, name=name, key_hash=_hash(secret), scopes=" ".join(scope_set))
        )
        events.record(session, "apikey.create", name, actor=actor, detail=" ".join(scope_set))
    wanted = list(grants) if grants is not None else (list(DEFAULT_GRANTS) if created else [])
    for g in wanted:
        grant(db, name, g, actor=actor)
    return secret


def revoke_keys(db: Database, name: str, actor: str = "cli") -> int:
    with db.write() as session:
        result = session.execute(
            update(ApiKey)
            .where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now())
        )
        count = int(getattr(result, "rowcount", 0) or 0)
        if count:
            events.record(session, "apikey.revoke", name, actor=actor, detail=str(count))
    return count


def principal_for_key(db: Database, secret: str) -> Principal | None:
    if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        return None
    with db.read() as session:
        row = session.execute(
            select(ApiKey, User)
            .join(User, User.pk == ApiKey.user_pk)
            .where(ApiKey.key_hash == _hash(secret), ApiKey.revoked_at.is_(None))
        ).first()
        if row is None:
            return None
        key, user = row
        expires = aware(key.expires_at)
        if user.disabled_at is not None or (expires is not None and expires <= now()):
            return None
        return principal_for(session, user, scopes=frozenset(key.scopes.split()))
