"""A small record of refusals and outcomes (residency, unassigned data, failures).

Kept in the index so ``trialpacs status`` can show it; the audit trail issue
will forward these to the hash-chained log.
"""

from __future__ import annotations

from sqlalchemy import select

from trialpacs.index.db import Database
from trialpacs.trials.models import PipelineEvent


def record_event(
    db: Database,
    kind: str,
    *,
    trial_id: str = "",
    site_id: str = "",
    subject: str = "",
    detail: str = "",
) -> None:
    with db.write() as session:
        session.add(
            PipelineEvent(
                kind=kind,
                trial_id=trial_id,
                site_id=site_id,
                subject=subject[:255],
                detail=detail,
            )
        )


def recent_events(db: Database, kind: str | None = None, limit: int = 50) -> list[dict[str, str]]:
    stmt = select(PipelineEvent).order_by(PipelineEvent.pk.desc()).limit(limit)
    if kind is not None:
        stmt = stmt.where(PipelineEvent.kind == kind)
    with db.read() as session:
        return [
            {
                "at": e.at.isoformat(),
                "kind": e.kind,
                "trial": e.trial_id,
                "site": e.site_id,
                "subject": e.subject,
                "detail": e.detail,
            }
            for e in session.scalars(stmt)
        ]
