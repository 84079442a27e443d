"""Saved, versioned cohorts: a name, and immutable versions of a definition.

Saving a definition equal to the latest version (same digest) returns that
version: re-saving is idempotent, so a script may save before every export.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from trialpacs.audit.chain import AuditEvent, record
from trialpacs.errors import InvalidInput, NotFound
from trialpacs.exports.cohort import CohortDefinition, check_cohort_name
from trialpacs.exports.models import SavedCohort
from trialpacs.index.db import Database


@dataclass(frozen=True)
class CohortVersion:
    name: str
    version: int
    definition: CohortDefinition
    digest: str
    created_by: str
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_mapping(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "trial": self.definition.trial,
            "definition": self.definition.to_mapping(),
            "digest": self.digest,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


def _info(row: SavedCohort) -> CohortVersion:
    return CohortVersion(
        name=row.name,
        version=row.version,
        definition=CohortDefinition.from_mapping(json.loads(row.definition)),
        digest=row.digest,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` (latest version) or ``NAME@VERSION``."""
    m = re.fullmatch(r"\s*([^@\s]+)(?:@(\d{1,9}))?\s*", ref or "")
    if m is None:
        raise InvalidInput(f"cohort {ref!r}: use NAME or NAME@VERSION")
    return check_cohort_name(m.group(1)), int(m.group(2)) if m.group(2) else None


def save_cohort(db: Database, name: str, definition: CohortDefinition, actor: str) -> CohortVersion:
    name = check_cohort_name(name)
    for _ in range(3):  # two savers of one name race on the unique (name, version)
        with db.read() as session:
            latest = session.scalars(
                select(SavedCohort)
                .where(SavedCohort.name == name)
                .order_by(SavedCohort.version.desc())
                .limit(1)
            ).first()
        if latest is not None:
            if latest.trial_id != definition.trial:
                raise InvalidInput(
                    f"cohort {name!r} belongs to trial {latest.trial_id}; "
                    "a cohort never changes trial (save it under another name)"
                )
            if latest.digest == definition.digest:
                return _info(latest)
        row = SavedCohort(
            name=name,
            version=(latest.version + 1) if latest else 1,
            trial_id=definition.trial,
            definition=definition.canonical_json(),
            digest=definition.digest,
            created_by=actor,
        )
        try:
            with db.write() as session:
                session.add(row)
        except IntegrityError:
            continue
        saved = _info(row)
        record(
            db,
            AuditEvent(
                action="export.cohort.save",
                actor=actor,
                trial=definition.trial,
                object=f"cohort={saved.ref}",
                old_value=latest.definition if latest else "",
                new_value=row.definition,
            ),
        )
        return saved
    raise InvalidInput(f"cohort {name!r} is being saved concurrently; try again")


def get_cohort(db: Database, name: str, version: int | None = None) -> CohortVersion:
    with db.read() as session:
        stmt = select(SavedCohort).where(SavedCohort.name == name)
        if version is None:
            stmt = stmt.order_by(SavedCohort.version.desc()).limit(1)
        else:
            stmt = stmt.where(SavedCohort.version == version)
        row = session.scalars(stmt).first()
    if row is None:
        what = f"{name}@{version}" if version is not None else name
        raise NotFound(f"no cohort {what!r}")
    return _info(row)


def get_cohort_by_pk(db: Database, pk: int) -> CohortVersion:
    with db.read() as session:
        row = session.get(SavedCohort, pk)
    if row is None:
        raise NotFound(f"no cohort {pk}")
    return _info(row)


def cohort_pk(db: Database, name: str, version: int) -> int:
    with db.read() as session:
        pk = session.scalar(
            select(SavedCohort.pk).where(SavedCohort.name == name, SavedCohort.version == version)
        )
    if pk is None:
        raise NotFound(f"no cohort {name}@{version}")
    return int(pk)


def list_cohorts(db: Database, all_versions: bool = False) -> list[CohortVersion]:
    """Latest version of each cohort (or every version), by name then version."""
    with db.read() as session:
        stmt = select(SavedCohort)
        if not all_versions:
            latest = (
                select(SavedCohort.name, func.max(SavedCohort.version).label("v"))
                .group_by(SavedCohort.name)
                .subquery()
            )
            stmt = stmt.join(
                latest, (latest.c.name == SavedCohort.name) & (latest.c.v == SavedCohort.version)
            )
        rows = session.scalars(stmt.order_by(SavedCohort.name, SavedCohort.version)).all()
    return [_info(r) for r in rows]
