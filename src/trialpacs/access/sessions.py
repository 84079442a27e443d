"""Sign-in sessions: refresh tokens (rotated, reuse detected) and browser cookies.

A session has an idle timeout (unused for too long) and an absolute one
(too long since sign-in). Revoking it ends the refresh token, the cookie,
and every access token that names it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from trialpacs.access import events
from trialpacs.access.clock import aware, now
from trialpacs.access.models import AuthSession, User
from trialpacs.index.db import Database

REFRESH_PREFIX = "tpr_"
COOKIE_PREFIX = "tpc_"
# Do not write last_seen_at on every request; idle timeouts are in minutes.
TOUCH_SECONDS = 30


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Timeouts:
    idle_minutes: int = 30
    absolute_hours: int = 12


@dataclass(frozen=True)
class Started:
    session_id: str
    secret: str  # refresh token (api) or cookie value (browser)


@dataclass(frozen=True)
class Live:
    session_id: str
    user_pk: int


def start(db: Database, user_pk: int, *, kind: str, provider: str, timeouts: Timeouts) -> Started:
    sid = secrets.token_urlsafe(32)
    prefix = COOKIE_PREFIX if kind == "browser" else REFRESH_PREFIX
    secret = prefix + secrets.token_urlsafe(32)
    moment = now()
    with db.write() as session:
        session.add(
            AuthSession(
                id=sid,
                user_pk=user_pk,
                kind=kind,
                provider=provider,
                refresh_hash=digest(secret) if kind != "browser" else None,
                cookie_hash=digest(secret) if kind == "browser" else None,
                created_at=moment,
                last_seen_at=moment,
                expires_at=moment + timedelta(hours=timeouts.absolute_hours),
            )
        )
    return Started(sid, secret)


def _usable(row: AuthSession, user: User, timeouts: Timeouts) -> bool:
    moment = now()
    last_seen = aware(row.last_seen_at)
    expires = aware(row.expires_at)
    return (
        row.revoked_at is None
        and user.disabled_at is None
        and expires is not None
        and expires > moment
        and last_seen is not None
        and last_seen + timedelta(minutes=timeouts.idle_minutes) > moment
    )


def rotate(db: Database, refresh_token: str, timeouts: Timeouts) -> tuple[Live, str] | None:
    """Exchange a refresh token for a new one; a reused old token ends the session."""
    if not refresh_token.startswith(REFRESH_PREFIX) or len(refresh_token) > 200:
        return None
    h = digest(refresh_token)
    with db.write() as session:
        row = session.scalars(select(AuthSession).where(AuthSession.refresh_hash == h)).first()
        if row is None:
            reused = session.scalars(
                select(AuthSession).where(AuthSession.previous_refresh_hash == h)
            ).first()
            if reused is not None and reused.revoked_at is None:
                reused.revoked_at = now()
                events.record(
                    session,
                    "session.refresh_reuse",
                    str(reused.user_pk),
                    detail="an old refresh token was replayed; session revoked",
                    severity="alert",
                )
            return None
        user = session.get(User, row.user_pk)
        if user is None or not _usable(row, user, timeouts):
            return None
        new = REFRESH_PREFIX + secrets.token_urlsafe(32)
        row.previous_refresh_hash = h
        row.refresh_hash = digest(new)
        row.last_seen_at = now()
        return Live(row.id, row.user_pk), new


def from_cookie(db: Database, cookie: str, timeouts: Timeouts) -> Live | None:
    if not cookie.startswith(COOKIE_PREFIX) or len(cookie) > 200:
        return None
    h = digest(cookie)
    with db.read() as session:
        row = session.scalars(select(AuthSession).where(AuthSession.cookie_hash == h)).first()
        user = session.get(User, row.user_pk) if row is not None else None
        if row is None or user is None or not _usable(row, user, timeouts):
            return None
        live = Live(row.id, row.user_pk)
        stale = aware(row.last_seen_at)
    if stale is None or (now() - stale).total_seconds() > TOUCH_SECONDS:
        touch(db, live.session_id)
    return live


def touch(db: Database, session_id: str) -> None:
    with db.write() as session:
        session.execute(
            update(AuthSession).where(AuthSession.id == session_id).values(last_seen_at=now())
        )


def is_active(db: Database, session_id: str, timeouts: Timeouts) -> bool:
    with db.read() as session:
        row = session.get(AuthSession, session_id)
        user = session.get(User, row.user_pk) if row is not None else None
        return row is not None and user is not None and _usable(row, user, timeouts)


def revoke(db: Database, session_id: str, actor: str = "") -> bool:
    with db.write() as session:
        row = session.get(AuthSession, session_id)
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = now()
        events.record(session, "session.revoke", str(row.user_pk), actor=actor)
        return True


def revoke_refresh(db: Database, refresh_token: str) -> bool:
    with db.read() as session:
        sid = session.scalars(
            select(AuthSession.id).where(AuthSession.refresh_hash == digest(refresh_token))
        ).first()
    return revoke(db, sid) if sid else False


def revoke_user(db: Database, user_pk: int) -> None:
    with db.write() as session:
        session.execute(
            update(AuthSession)
            .where(AuthSession.user_pk == user_pk, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now())
        )
