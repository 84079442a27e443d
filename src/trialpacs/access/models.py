"""Tables of the access layer: accounts, grants, sessions, keys, workspaces.

Secrets (passwords, refresh tokens, cookies, API keys) are kept only as
hashes; a copy of the database gives nobody a way in.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from trialpacs.index.models import Base, utcnow


class User(Base):
    """A person or a machine; ``source`` says who vouches for it."""

    __tablename__ = "users"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="user")  # user | service
    source: Mapped[str] = mapped_column(String(16), default="local")  # local|ldap|oidc|saml
    external_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    display_name: Mapped[str] = mapped_column(String(256), default="")
    email: Mapped[str] = mapped_column(String(256), default="")
    password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # A temporary password set by an administrator: no session until the user chose their own.
    password_change_required: Mapped[bool] = mapped_column(Boolean, default=False)


class RoleGrant(Base):
    """A role in a trial/site (empty string: every trial/site).

    ``source`` is ``local`` for grants made with the CLI/admin routes, or the
    provider name for grants derived from LDAP groups / OIDC claims / SAML
    attributes, which are replaced at each sign-in.
    """

    __tablename__ = "role_grants"
    __table_args__ = (
        UniqueConstraint("user_pk", "role", "trial", "site", "source", name="uq_role_grant"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    trial: Mapped[str] = mapped_column(String(64), default="")
    site: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(String(16), default="local")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuthSession(Base):
    """One sign-in: the refresh token family and, for browsers, the cookie."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(43), primary_key=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="api")  # api | browser
    provider: Mapped[str] = mapped_column(String(16), default="local")
    refresh_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    previous_refresh_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cookie_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiKey(Base):
    """A service account's key; only the SHA-256 of the secret is kept."""

    __tablename__ = "api_keys"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(256), default="dicomweb")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SigningKey(Base):
    """HMAC keys for access tokens, so every process of one deployment agrees.

    Used when no ``auth_secret`` is configured; the newest key signs, all
    unexpired ones verify (rotation without logging everyone out).
    """

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SecurityEvent(Base):
    """Sign-ins, failures, lockouts, grants and revocations (append-only).

    The hash-chained audit trail (trialpacs.audit) takes these over when it
    lands; until then this is the record, written by the server only.
    """

    __tablename__ = "security_events"
    __table_args__ = (Index("ix_security_events_at", "at"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16), default="info")  # info | alert
    subject: Mapped[str] = mapped_column(String(128), default="")
    actor: Mapped[str] = mapped_column(String(128), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


class WorkspaceFile(Base):
    """A file in a user's private workspace; bytes live in the blob store."""

    __tablename__ = "workspace_files"
    __table_args__ = (UniqueConstraint("user_pk", "kind", "name", name="uq_workspace_name"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="file")  # file|settings|annotation
    name: Mapped[str] = mapped_column(String(255))
    blob_key: Mapped[str] = mapped_column(String(300))
    content_type: Mapped[str] = mapped_column(String(128), default="application/octet-stream")
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
