"""Assign a study to a reader, list a reader's reads, sign a read.

A data manager (or administrator) of a trial assigns one of the trial's
published studies to a user who may read that trial. The reader records
findings and signs: ``audit.signatures.sign`` re-authenticates them, binds
the signature to the hash of the read record (trial, study, reader,
findings) and writes the ``signature.sign`` audit entry. A read is shown
with its manifestation (printed name, UTC time, meaning) and whether its
signature still verifies against the record as stored: a signature copied
from another read, or findings edited after signing, show as invalid.

Refusals look like missing objects: a read that is not the caller's, a
study outside the caller's trial, all raise ``NotFound``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from trialpacs.access import users
from trialpacs.access.policy import Principal, Resource, decide
from trialpacs.access.reauth import reauthenticator
from trialpacs.archive import Archive
from trialpacs.audit.chain import AuditEvent, append, utc_iso
from trialpacs.audit.checkpoints import load_key, public_hex
from trialpacs.audit.signatures import Signature, sign, verify_signature
from trialpacs.errors import Conflict, InvalidInput, NotFound
from trialpacs.index.models import Study, utcnow
from trialpacs.reads.models import ReadAssignment

RECORD_KIND = "read"
MAX_FINDINGS = 20_000


@dataclass(frozen=True)
class Read:
    id: int
    trial: str
    study: str
    reader: str
    assigned_by: str
    assigned_at: str
    status: str
    findings: str
    signature: dict[str, Any] | None  # manifestation, printed_name, meaning, signed_at, valid

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def record_of(row: ReadAssignment) -> dict[str, Any]:
    """What a reader's signature is bound to."""
    return {
        "read": row.pk,
        "trial": row.trial_id,
        "study": row.study_uid,
        "reader": row.reader,
        "findings": row.findings,
    }


def _shown(row: ReadAssignment, trusted_key: str) -> Read:
    sig_view: dict[str, Any] | None = None
    if row.signature:
        sig = Signature(**json.loads(row.signature))
        m = sig.manifest
        sig_view = {
            "manifestation": sig.manifestation(),
            "printed_name": m["printed_name"],
            "meaning": m["meaning"],
            "signed_at": m["signed_at"],
            "audit_seq": sig.seq,
            "valid": verify_signature(
                sig,
                record_kind=RECORD_KIND,
                record_id=str(row.pk),
                record=record_of(row),
                trusted_public_key=trusted_key,
            ),
        }
    return Read(
        id=row.pk,
        trial=row.trial_id,
        study=row.study_uid,
        reader=row.reader,
        assigned_by=row.assigned_by,
        assigned_at=utc_iso(_aware(row.assigned_at)),
        status=row.status,
        findings=row.findings,
        signature=sig_view,
    )


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _key(archive: Archive) -> str:
    return public_hex(load_key(archive.settings.data_dir).public_key())


def _published_study(archive: Archive, trial: str, study: str) -> Study:
    with archive.db.read() as session:
        row = session.scalars(
            select(Study).where(
                Study.study_uid == study,
                Study.trial_id == trial,
                Study.collection == "published",
            )
        ).first()
    if row is None:
        raise NotFound("not found")
    return row


def assign(archive: Archive, principal: Principal, *, trial: str, study: str, reader: str) -> Read:
    """A data manager or administrator of ``trial`` gives ``study`` to ``reader``."""
    if not decide(principal, "qc", Resource(kind="image", trial=trial, collection="published")):
        raise NotFound("not found")
    placed = _published_study(archive, trial, study)
    with archive.db.read() as session:
        user = users.get_user(session, reader)
        target = users.principal_for(session, user) if user and user.kind == "user" else None
    resource = Resource(kind="image", trial=trial, site=placed.site_id, collection="published")
    if target is None or user is None or user.disabled_at is not None:
        raise InvalidInput(f"no active user {reader!r}")
    if not decide(target, "read", resource):
        raise InvalidInput(f"{reader} may not read trial {trial}: grant reader@{trial} first")
    with archive.db.write() as session:
        existing = session.scalars(
            select(ReadAssignment).where(
                ReadAssignment.trial_id == trial,
                ReadAssignment.study_uid == study,
                ReadAssignment.reader == reader,
            )
        ).first()
        if existing is not None:
            raise Conflict(f"study {study} is already assigned to {reader} (read {existing.pk})")
        row = ReadAssignment(
            trial_id=trial,
            study_uid=study,
            reader=reader,
            assigned_by=principal.subject,
            assigned_at=utcnow(),
            status="assigned",
            findings="",
            signature="",
        )
        session.add(row)
        session.flush()
        append(
            session,
            AuditEvent(
                action="read.assign",
                actor=principal.subject,
                roles=[str(g) for g in principal.grants],
                trial=trial,
                site=placed.site_id or "",
                study=study,
                object=f"read:{row.pk}",
                new_value=reader,
            ),
        )
        return _shown(row, "")


def for_reader(archive: Archive, principal: Principal) -> list[Read]:
    key = _key(archive)
    with archive.db.read() as session:
        rows = session.scalars(
            select(ReadAssignment)
            .where(ReadAssignment.reader == principal.subject)
            .order_by(ReadAssignment.pk)
        ).all()
        return [_shown(r, key) for r in rows]


def for_trial(archive: Archive, principal: Principal, trial: str) -> list[Read]:
    """Every read of a trial, for its data managers and administrators."""
    if not decide(principal, "qc", Resource(kind="image", trial=trial, collection="published")):
        raise NotFound("not found")
    key = _key(archive)
    with archive.db.read() as session:
        rows = session.scalars(
            select(ReadAssignment)
            .where(ReadAssignment.trial_id == trial)
            .order_by(ReadAssignment.pk)
        ).all()
        return [_shown(r, key) for r in rows]


def get(archive: Archive, principal: Principal, read_id: int) -> Read:
    """One read, for its reader or the trial's data managers."""
    with archive.db.read() as session:
        row = session.get(ReadAssignment, read_id)
        if row is None:
            raise NotFound("not found")
        manager = decide(
            principal, "qc", Resource(kind="image", trial=row.trial_id, collection="published")
        )
        if row.reader != principal.subject and not manager:
            raise NotFound("not found")
        return _shown(row, _key(archive))


def sign_read(
    archive: Archive,
    principal: Principal,
    read_id: int,
    *,
    password: str,
    meaning: str,
    findings: str | None = None,
    otp: str | None = None,
) -> Read:
    """Record findings (optional) and sign the read; the signer must be its reader."""
    if findings is not None and len(findings) > MAX_FINDINGS:
        raise InvalidInput(f"findings are limited to {MAX_FINDINGS} characters")
    with archive.db.read() as session:
        row = session.get(ReadAssignment, read_id)
        if row is None or row.reader != principal.subject:
            raise NotFound("not found")
        if row.status == "signed":
            raise Conflict(f"read {read_id} is already signed")
        session.expunge(row)
    if findings is not None:
        row.findings = findings
    sig = sign(
        archive.db,
        archive.settings.data_dir,
        username=principal.subject,
        password=password,
        meaning=meaning,
        record_kind=RECORD_KIND,
        record_id=str(row.pk),
        record=record_of(row),
        reauthenticate=reauthenticator(
            archive.db, archive.settings, otp, purpose=f"{RECORD_KIND}:{read_id}"
        ),
        trial=row.trial_id,
        study=row.study_uid,
    )
    with archive.db.write() as session:
        current = session.get(ReadAssignment, read_id)
        if current is None or current.status == "signed":
            raise Conflict(f"read {read_id} was signed meanwhile")
        current.findings = row.findings
        current.signature = json.dumps(dataclasses.asdict(sig), sort_keys=True)
        current.status = "signed"
        current.signed_at = utcnow()
        session.flush()
        return _shown(current, sig.public_key)
