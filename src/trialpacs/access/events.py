"""Security events: written by the server in the same transaction as the change.

Lockouts are ``alert`` events so a monitor sees them in the audit trail.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from trialpacs.access.models import SecurityEvent
from trialpacs.index.db import Database

log = logging.getLogger("trialpacs.security")


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
    level = logging.WARNING if severity == "alert" else logging.INFO
    log.log(level, "%s subject=%s actor=%s %s", kind, subject, actor, detail)


def recent(db: Database, limit: int = 100) -> list[SecurityEvent]:
    with db.read() as session:
        rows = session.scalars(
            select(SecurityEvent).order_by(SecurityEvent.pk.desc()).limit(limit)
        ).all()
    return list(rows)
