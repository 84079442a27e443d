"""Local accounts: password (argon2id) plus TOTP, with lockout after repeated failures.

A failure never says which part was wrong, whether the account exists or is
locked: the answer to a wrong password and to a locked account is the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from trialpacs.access import events, mfa
from trialpacs.access.clock import aware, now
from trialpacs.access.passwords import hash_password, needs_rehash, verify_password
from trialpacs.access.users import get_user
from trialpacs.index.db import Database


class AuthFailed(Exception):
    """Sign-in refused; deliberately without a reason."""


class MfaRequired(AuthFailed):
    """The password was right and a TOTP code is needed to finish."""


class PasswordChangeRequired(AuthFailed):
    """Password (and code) right, but it is a temporary one: a new one is needed first."""

    def __init__(self, user_pk: int) -> None:
        super().__init__("the password must be changed")
        self.user_pk = user_pk


@dataclass(frozen=True)
class LockoutPolicy:
    threshold: int = 5
    minutes: int = 15


def authenticate(
    db: Database,
    username: str,
    password: str,
    otp: str | None = None,
    policy: LockoutPolicy | None = None,
) -> int:
    """The user's pk when password (and TOTP, if enrolled) are right; else AuthFailed."""
    policy = policy or LockoutPolicy()
    # The failure must be committed before refusing, so the raise comes after the block.
    outcome: int | Exception
    with db.write() as session:
        outcome = _attempt(session, username, password, otp, policy, db)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _attempt(
    session: Session,
    username: str,
    password: str,
    otp: str | None,
    policy: LockoutPolicy,
    db: Database | None = None,
) -> int | Exception:
    user = get_user(session, username)
    if user is None or user.kind != "user" or user.source != "local":
        verify_password(None, password)  # same time as a real check
        events.record(session, "login.fail", username[:128], detail="unknown account")
        return AuthFailed()
    moment = now()
    locked_until = aware(user.locked_until)
    if locked_until is not None and locked_until > moment:
        verify_password(None, password)
        events.record(session, "login.fail", username, detail="account locked")
        return AuthFailed()
    ok = user.disabled_at is None and verify_password(user.password_hash, password)
    if ok and user.totp_enabled:
        if not otp:
            return MfaRequired()
        ok = mfa.check(user, otp, db=db)
    if not ok:
        user.failed_logins = (user.failed_logins or 0) + 1
        events.record(session, "login.fail", username, detail=f"failure {user.failed_logins}")
        if user.failed_logins >= policy.threshold:
            user.locked_until = moment + timedelta(minutes=policy.minutes)
            user.failed_logins = 0
            events.record(
                session,
                "account.locked",
                username,
                detail=f"{policy.threshold} failed sign-ins; locked {policy.minutes} min",
                severity="alert",
            )
        return AuthFailed()
    user.failed_logins = 0
    user.locked_until = None
    if user.password_change_required:
        events.record(session, "login.fail", username, detail="temporary password")
        return PasswordChangeRequired(user.pk)
    user.last_login_at = moment
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    events.record(session, "login.ok", username, detail="local")
    return user.pk
