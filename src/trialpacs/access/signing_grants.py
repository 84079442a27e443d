"""One-time signing grants: proof that an SSO signer just authenticated again at the IdP.

An OIDC/SAML account has no password here, so an e-signature (21 CFR
11.200) needs a fresh sign-in at the identity provider with forced
authentication. ``start`` records a pending grant bound to the signer and
to the record about to be signed (``purpose``, e.g. ``read:7``) and returns
the token the client later presents instead of a password; the IdP round
trip (``oidc`` / ``saml`` callbacks) marks it ``ready`` only when the
returned identity is the same account and authenticated after the request;
``consume`` accepts a ready grant once, for that signer and record, within
``GRANT_SECONDS`` of the request. Only the SHA-256 of the token is stored.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Index, String, Text, delete, update
from sqlalchemy.orm import Mapped, mapped_column

from trialpacs.audit import AuditEvent, record
from trialpacs.index.db import Database
from trialpacs.index.models import Base

GRANT_SECONDS = 300.0
# Expired grants are deleted when a new one starts, after this grace period.
# They prove nothing once expired; what happened is in the audit trail
# (``signature.reauth``, ``signature.sign``), so nothing is lost.
PURGE_AFTER_SECONDS = 86400.0


class SigningGrant(Base):
    __tablename__ = "signing_grants"
    __table_args__ = (Index("ix_signing_grants_handle", "handle", unique=True),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    handle: Mapped[str] = mapped_column(String(128))  # OIDC state / SAML request id
    username: Mapped[str] = mapped_column(String(128))
    purpose: Mapped[str] = mapped_column(String(256))
    method: Mapped[str] = mapped_column(String(8))  # oidc | saml
    secret: Mapped[str] = mapped_column(Text, default="{}")  # OIDC nonce and PKCE verifier
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|ready|refused
    requested_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    authenticated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


@dataclass(frozen=True)
class Pending:
    handle: str
    username: str
    purpose: str
    method: str
    secret: dict[str, Any]
    requested_at: float


class GrantRefused(Exception):
    """The re-authentication does not prove what the signature needs (the message says why)."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(
    db: Database,
    *,
    username: str,
    purpose: str,
    method: str,
    handle: str,
    secret: dict[str, Any] | None = None,
    requested_at: float | None = None,
) -> str:
    """A new pending grant; returns the token (shown once, stored hashed)."""
    token = "tpg_" + secrets.token_urlsafe(32)
    now = time.time() if requested_at is None else requested_at
    with db.write() as session:
        session.execute(
            delete(SigningGrant).where(SigningGrant.expires_at < time.time() - PURGE_AFTER_SECONDS)
        )
        session.add(
            SigningGrant(
                token_hash=_digest(token),
                handle=handle,
                username=username,
                purpose=purpose,
                method=method,
                secret=json.dumps(secret or {}),
                status="pending",
                requested_at=now,
                expires_at=now + GRANT_SECONDS,
            )
        )
    return token


def pending(db: Database, handle: str, method: str) -> Pending | None:
    """The pending, unexpired grant an IdP answer with this state/request id belongs to."""
    with db.read() as session:
        row = (
            session.query(SigningGrant)
            .filter_by(handle=handle, method=method, status="pending")
            .one_or_none()
        )
        if row is None or row.expires_at <= time.time():
            return None
        return Pending(
            row.handle,
            row.username,
            row.purpose,
            row.method,
            json.loads(row.secret),
            row.requested_at,
        )


def complete(
    db: Database, grant: Pending, *, external_id: str, expected_external_id: str, authn_at: float
) -> None:
    """Mark the grant ready, or refused (audited either way) and raise :class:`GrantRefused`.

    ``authn_at`` is when the IdP says the user authenticated (``auth_time`` /
    ``AuthnInstant``, whole seconds), so it must not be before the second the
    request was made.
    """
    problem = ""
    if not expected_external_id or not secrets.compare_digest(external_id, expected_external_id):
        problem = "the identity provider signed in a different account"
    elif authn_at < int(grant.requested_at):
        problem = "the identity provider did not authenticate again (older than the request)"
    with db.write() as session:
        changed = session.execute(
            update(SigningGrant)
            .where(SigningGrant.handle == grant.handle, SigningGrant.status == "pending")
            .values(status="refused" if problem else "ready", authenticated_at=authn_at)
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            problem = problem or "the re-authentication was answered already"
    record(
        db,
        AuditEvent(
            action="signature.reauth",
            outcome="failure" if problem else "success",
            actor=grant.username,
            object=grant.purpose,
            reason=problem,
            detail={"method": grant.method, "authenticated_at": authn_at},
        ),
    )
    if problem:
        raise GrantRefused(problem)


def consume(db: Database, token: str, *, username: str, purpose: str) -> None:
    """Use a ready grant once; raises :class:`GrantRefused` for anything else."""
    now = time.time()
    with db.write() as session:
        done = session.execute(
            update(SigningGrant)
            .where(
                SigningGrant.token_hash == _digest(token),
                SigningGrant.username == username,
                SigningGrant.purpose == purpose,
                SigningGrant.status == "ready",
                SigningGrant.used_at.is_(None),
                SigningGrant.expires_at > now,
            )
            .values(used_at=now)
        )
        if done.rowcount == 1:  # type: ignore[attr-defined]
            return
    raise GrantRefused("the signing grant is unknown, not for this signature, used or expired")
