"""Accounts and role grants: create, disable, grant, revoke, and load a principal.

Every write records a security event in the same transaction. Disabling an
account revokes its sessions and keys at once, so it takes effect on the
next request and not at the next token expiry.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from trialpacs.access import events
from trialpacs.access.config_roles import config_grants
from trialpacs.access.models import ApiKey, AuthSession, RoleGrant, User
from trialpacs.access.passwords import check_policy, hash_password
from trialpacs.access.policy import ALL_SCOPES, Grant, Principal, parse_grant
from trialpacs.index.db import Database
from trialpacs.index.models import utcnow

_USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


class UnknownUser(LookupError):
    """No account with that name."""


def check_username(username: str) -> str:
    username = username.strip()
    if not 1 <= len(username) <= 128 or not set(username) <= _USERNAME_CHARS:
        raise ValueError("a username is 1-128 letters, digits, '.', '_', '-' or '@'")
    return username


def get_user(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).first()


def add_user(
    db: Database,
    username: str,
    *,
    password: str | None = None,
    kind: str = "user",
    source: str = "local",
    display_name: str = "",
    email: str = "",
    min_length: int = 12,
    actor: str = "cli",
    temporary: bool = False,
) -> int:
    """``temporary``: the password is one an administrator hands over; the user must replace it."""
    username = check_username(username)
    pw_hash = None
    if password is not None:
        check_policy(password, username, min_length)
        pw_hash = hash_password(password)
    with db.write() as session:
        if get_user(session, username) is not None:
            raise ValueError(f"user {username!r} exists already")
        user = User(
            username=username,
            kind=kind,
            source=source,
            password_hash=pw_hash,
            display_name=display_name,
            email=email,
            password_change_required=temporary and password is not None,
        )
        session.add(user)
        session.flush()
        events.record(session, "user.add", username, actor=actor, detail=f"{kind}/{source}")
        return user.pk


def set_password(
    db: Database, username: str, password: str, *, min_length: int = 12, actor: str = "cli"
) -> None:
    check_policy(password, username, min_length)
    with db.write() as session:
        user = _require(session, username)
        user.password_hash = hash_password(password)
        user.password_change_required = False
        user.failed_logins = 0
        user.locked_until = None
        events.record(session, "user.password", username, actor=actor)


def set_disabled(db: Database, username: str, disabled: bool = True, actor: str = "cli") -> None:
    with db.write() as session:
        user = _require(session, username)
        user.disabled_at = utcnow() if disabled else None
        if disabled:
            _revoke_everything(session, user.pk)
        events.record(session, "user.disable" if disabled else "user.enable", username, actor=actor)


def reset_mfa(db: Database, username: str, actor: str = "cli") -> None:
    with db.write() as session:
        user = _require(session, username)
        user.totp_secret = None
        user.totp_enabled = False
        user.totp_last_step = 0
        _revoke_everything(session, user.pk)
        events.record(session, "user.reset_mfa", username, actor=actor, severity="alert")


def grant(db: Database, username: str, grant_text: str, actor: str = "cli") -> Grant:
    g = parse_grant(grant_text)
    with db.write() as session:
        user = _require(session, username)
        exists = session.scalars(
            select(RoleGrant).where(
                RoleGrant.user_pk == user.pk,
                RoleGrant.role == g.role,
                RoleGrant.trial == (g.trial or ""),
                RoleGrant.site == (g.site or ""),
                RoleGrant.source == "local",
            )
        ).first()
        if exists is None:
            session.add(
                RoleGrant(user_pk=user.pk, role=g.role, trial=g.trial or "", site=g.site or "")
            )
            events.record(session, "role.grant", username, actor=actor, detail=str(g))
    return g


def revoke(db: Database, username: str, grant_text: str, actor: str = "cli") -> int:
    """Remove a local grant; the user's sessions end so the change is immediate."""
    g = parse_grant(grant_text)
    with db.write() as session:
        user = _require(session, username)
        result = session.execute(
            delete(RoleGrant).where(
                RoleGrant.user_pk == user.pk,
                RoleGrant.role == g.role,
                RoleGrant.trial == (g.trial or ""),
                RoleGrant.site == (g.site or ""),
                RoleGrant.source == "local",
            )
        )
        count = int(getattr(result, "rowcount", 0) or 0)
        if count:
            session.execute(
                update(AuthSession)
                .where(AuthSession.user_pk == user.pk, AuthSession.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            events.record(session, "role.revoke", username, actor=actor, detail=str(g))
    return count


def replace_external_grants(
    session: Session, user: User, source: str, grants: Iterable[Grant]
) -> None:
    """Grants from an identity provider mirror what it said at this sign-in, nothing older."""
    session.execute(
        delete(RoleGrant).where(RoleGrant.user_pk == user.pk, RoleGrant.source == source)
    )
    for g in set(grants):
        session.add(
            RoleGrant(
                user_pk=user.pk, role=g.role, trial=g.trial or "", site=g.site or "", source=source
            )
        )


def grants_of(session: Session, user_pk: int) -> tuple[Grant, ...]:
    rows = session.execute(
        select(RoleGrant.role, RoleGrant.trial, RoleGrant.site).where(RoleGrant.user_pk == user_pk)
    ).all()
    out = {Grant(role, trial or None, site or None) for role, trial, site in rows}  # type: ignore[arg-type]
    return tuple(sorted(out, key=str))


def principal_for(
    session: Session,
    user: User,
    *,
    scopes: frozenset[str] = ALL_SCOPES,
    session_id: str | None = None,
) -> Principal:
    grants = set(grants_of(session, user.pk)) | config_grants(session, user.username)
    return Principal(
        subject=user.username,
        kind="service" if user.kind == "service" else "user",
        grants=tuple(sorted(grants, key=str)),
        scopes=scopes,
        session_id=session_id,
        display_name=user.display_name,
    )


def list_users(db: Database) -> list[tuple[str, str, str, bool, list[str]]]:
    with db.read() as session:
        users = session.scalars(select(User).order_by(User.username)).all()
        return [
            (
                u.username,
                u.kind,
                u.source,
                u.disabled_at is not None,
                [str(g) for g in grants_of(session, u.pk)],
            )
            for u in users
        ]


def _require(session: Session, username: str) -> User:
    user = get_user(session, username)
    if user is None:
        raise UnknownUser(f"no user {username!r}")
    return user


def _revoke_everything(session: Session, user_pk: int) -> None:
    now = utcnow()
    session.execute(
        update(AuthSession)
        .where(AuthSession.user_pk == user_pk, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    session.execute(
        update(ApiKey)
        .where(ApiKey.user_pk == user_pk, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )
