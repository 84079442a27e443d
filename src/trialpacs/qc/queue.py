"""The QC queue: series the anatomy QC held, and a data manager's signed decision.

Who may see and decide is asked of ``trialpacs.access.policy`` (action ``qc``
on the de-identified series of the trial and site); a series the caller may
not decide is reported missing, like one that does not exist. A decision is
an electronic signature (re-authentication, meaning Approved or Rejected),
then the pipeline's own series job runs again: it publishes an approved
series and marks a rejected one, which is never published.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select

from trialpacs.access.policy import Principal, Resource, decide
from trialpacs.archive import Archive
from trialpacs.audit import AuditEvent, record
from trialpacs.audit.signatures import SignatureRefused, sign
from trialpacs.errors import Conflict, InvalidInput, NotFound, TrialpacsError
from trialpacs.index.models import Series, utcnow
from trialpacs.qc.models import QcSeries
from trialpacs.trials.models import PipelineSeries

Decision = Literal["approve", "reject"]
MEANING = {"approve": "Approved", "reject": "Rejected"}
THUMBNAIL_URL = "/api/qc/series/{uid}/thumbnail"


class ReauthenticationFailed(TrialpacsError):
    """The password given with a signature was not accepted."""


@dataclass(frozen=True)
class QueueItem:
    series_uid: str  # de-identified
    study_uid: str
    trial: str
    site: str
    subject: str
    timepoint: str
    modality: str
    reasons: list[str]
    state: str
    received: str
    score: float
    metadata: str
    image_score: float | None
    thumbnail_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DecisionOutcome:
    state: str
    signature: dict[str, str] = field(default_factory=dict)
    published: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "signature": self.signature}


def _resource(row: QcSeries) -> Resource:
    return Resource(kind="image", trial=row.trial_id, site=row.site_id, collection="published")


def _iso(value: object) -> str:
    # SQLite hands a coalesced timestamp back as text, PostgreSQL as a datetime.
    return value.isoformat() if isinstance(value, datetime) else str(value or "")


def list_queue(archive: Archive, principal: Principal, trial: str | None = None) -> list[QueueItem]:
    """Held, undecided series of the trials the caller may QC, oldest first."""
    # Received = when the series arrived (its first instance stored), not when QC saw it.
    received = func.coalesce(Series.created_at, QcSeries.created_at)
    stmt = (
        select(QcSeries, PipelineSeries.state, received)
        .join(PipelineSeries, PipelineSeries.series_uid == QcSeries.series_uid)
        .outerjoin(Series, Series.series_uid == QcSeries.series_uid)
        .where(QcSeries.verdict == "hold", QcSeries.decision == "")
        .where(PipelineSeries.state == "held_qc")
        .order_by(received, QcSeries.pk)
    )
    if trial is not None:
        stmt = stmt.where(QcSeries.trial_id == trial)
    with archive.db.read() as session:
        rows = session.execute(stmt).all()
    items = []
    for row, state, arrived in rows:
        if not decide(principal, "qc", _resource(row)):
            continue
        items.append(
            QueueItem(
                series_uid=row.deid_series_uid,
                study_uid=row.deid_study_uid,
                trial=row.trial_id,
                site=row.site_id,
                subject=row.subject,
                timepoint=row.timepoint,
                modality=row.modality,
                reasons=json.loads(row.reasons or "[]"),
                state=state,
                received=_iso(arrived),
                score=row.fused_score,
                metadata=row.metadata_status,
                image_score=row.image_score,
                thumbnail_url=THUMBNAIL_URL.format(uid=row.deid_series_uid)
                if row.thumbnail
                else None,
            )
        )
    return items


def _visible(archive: Archive, principal: Principal, series_uid: str) -> QcSeries:
    with archive.db.read() as session:
        row = session.scalars(
            select(QcSeries)
            .where(QcSeries.deid_series_uid == series_uid)
            .order_by(QcSeries.pk.desc())
        ).first()
    if row is None or not decide(principal, "qc", _resource(row)):
        raise NotFound("no such held series")
    return row


def thumbnail(archive: Archive, principal: Principal, series_uid: str) -> bytes:
    row = _visible(archive, principal, series_uid)
    if not row.thumbnail:
        raise NotFound("no such held series")
    return row.thumbnail


def local_reauthenticate(archive: Archive) -> Callable[[str, str], str]:
    """Password check through the local accounts (failures count towards lockout)."""
    from trialpacs.access import users
    from trialpacs.access.local import authenticate

    def check(username: str, password: str) -> str:
        authenticate(archive.db, username, password)
        with archive.db.read() as session:
            user = users.get_user(session, username)
            return (user.display_name if user is not None else "") or username

    return check


def decide_series(
    archive: Archive,
    principal: Principal,
    series_uid: str,
    *,
    decision: str,
    password: str,
    meaning: str | None = None,
    reason: str = "",
    reauthenticate: Callable[[str, str], str] | None = None,
) -> DecisionOutcome:
    """Sign and apply ``decision`` on a held series; publishes it when approved."""
    if decision not in MEANING:
        raise InvalidInput("decision must be 'approve' or 'reject'")
    meaning = meaning or MEANING[decision]
    if meaning != MEANING[decision]:
        raise InvalidInput(f"to {decision} is signed with the meaning {MEANING[decision]}")
    reason = reason.strip()
    if decision == "reject" and not reason:
        raise InvalidInput("a rejection needs a reason")
    row = _visible(archive, principal, series_uid)
    if row.decision:
        raise Conflict(f"series {series_uid} was already {row.decision} by {row.decided_by}")
    if row.verdict != "hold":
        raise Conflict(f"series {series_uid} is not held by QC")
    signed_record = {
        "series": row.deid_series_uid,
        "study": row.deid_study_uid,
        "trial": row.trial_id,
        "site": row.site_id,
        "decision": decision,
        "reason": reason,
        "qc_reasons": json.loads(row.reasons or "[]"),
    }
    try:
        sig = sign(
            archive.db,
            archive.settings.data_dir,
            username=principal.subject,
            password=password,
            meaning=meaning,
            record_kind="qc_decision",
            record_id=row.deid_series_uid,
            record=signed_record,
            reauthenticate=reauthenticate or local_reauthenticate(archive),
            trial=row.trial_id,
            site=row.site_id,
            study=row.deid_study_uid,
        )
    except SignatureRefused as exc:
        raise ReauthenticationFailed(str(exc)) from exc
    decided = "approved" if decision == "approve" else "rejected"
    with archive.db.write() as session:
        current = session.get(QcSeries, row.pk)
        if current is None or current.decision:
            raise Conflict(f"series {series_uid} was decided meanwhile")
        current.decision, current.decided_by = decided, principal.subject
        current.decided_at, current.decision_reason = utcnow(), reason
        current.signature = json.dumps(
            {
                "manifest": sig.manifest,
                "signature": sig.signature,
                "public_key": sig.public_key,
                "seq": sig.seq,
            }
        )
        current.updated_at = utcnow()
    state, published = _run_pipeline(archive, row.series_uid)
    record(
        archive.db,
        AuditEvent(
            action=f"qc.{decision}",
            actor=principal.subject,
            trial=row.trial_id,
            site=row.site_id,
            study=row.deid_study_uid,
            series=row.deid_series_uid,
            old_value="held_qc",
            new_value=state,
            reason=reason,
            detail={"signature_seq": sig.seq, "meaning": meaning, "published": published},
        ),
    )
    m = sig.manifest
    return DecisionOutcome(
        state,
        {"printed_name": m["printed_name"], "signed_at": m["signed_at"], "meaning": m["meaning"]},
        published,
    )


def _run_pipeline(archive: Archive, key: str) -> tuple[str, int]:
    """The series job again: it honours the decision (publish, or mark rejected)."""
    from trialpacs.pipeline.process import PermanentFailure, mark_attention, process_series
    from trialpacs.pipeline.runner import hook_for

    try:
        outcome = process_series(archive, key, hook_for(archive))
    except PermanentFailure as exc:
        mark_attention(archive, key, str(exc))
        return "needs_attention", 0
    return outcome.state, outcome.published
