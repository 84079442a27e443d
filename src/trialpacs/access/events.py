"""Security events: written by the server in the same transaction as the change.

Lockouts are ``alert`` events so a monitor sees them in the audit trail.
Each event is also appended to the hash-chained audit trail in the same
transaction, so a sign-in, lockout, token or permission change cannot commit
without its audit entry.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from trialpacs.access.models import SecurityEvent
from trialpacs.audit.chain import AuditEvent, append
from trialpacs.index.db import Database

log = logging.getLogger("trialpacs.security")


# Permission and account changes: (old value, new value) of the audit entry.
_CHANGES = {
    "role.grant": ("", "{detail}"),
    "role.revoke": ("{detail}", ""),
    "user.add": ("", "{detail}"),
    "user.disable": ("enabled", "disabled"),
    "user.enable": ("disabled", "enabled"),
    "user.reset_mfa": ("mfa enrolled", "mfa reset"),
    "user.password": ("password", "new password"),
}


def record(
    session: Session,
    kind: str,
    subject: str = "",
    *,
    actor: str = "",
    detail: str = "",
    severity: str = "info",
) -> None:
    session.add(
        SecurityEvent(
            kind=kind, subject=subject[:128], actor=actor[:128], detail=detail, severity=severity
        )
    )
    failed = "fail" in kind or "locked" in kind or "replay" in kind
    old, new = _CHANGES.get(kind, ("", ""))
    append(
        session,
        AuditEvent(
            action=f"auth.{kind}",
            outcome="failure" if failed else "success",
            actor=actor or subject,
            object=subject,
            old_value=detail if old == "{detail}" else old,
            new_value=detail if new == "{detail}" else new,
            reason=detail,
            detail={"severity": severity} if severity != "info" else {},
        ),
    )
    level = logging.WARNING if severity == "alert" else logging.INFO
    log.log(level, "%s subject=%s actor=%s %s", kind, subject, actor, detail)


def recent(db: Database, limit: int = 100) -> list[SecurityEvent]:
    with db.read() as session:
        rows = session.scalars(
            select(SecurityEvent).order_by(SecurityEvent.pk.desc()).limit(limit)
        ).all()
    return list(rows)
