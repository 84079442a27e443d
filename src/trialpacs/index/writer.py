"""Write an instance's index rows in one transaction.

Upserts use INSERT .. ON CONFLICT DO NOTHING so concurrent stores of the same
new study or series (several DIMSE associations, several HTTP workers, several
servers on one PostgreSQL) never fail on a unique key; counters are
incremented in SQL, not read-modify-written in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from trialpacs.index.models import Instance, Patient, Series, Study, utcnow
from trialpacs.index.records import IndexRecord


@dataclass(frozen=True, slots=True)
class StoredInstance:
    """What the index knows of an instance; enough to fetch and describe it."""

    pk: int
    sop_uid: str
    series_uid: str
    study_uid: str
    sha256: str
    blob_key: str
    transfer_syntax: str
    size: int


def _insert_ignore(session: Session, table: Table, values: dict[str, Any]) -> bool:
    """Insert unless the unique key exists; True if this call inserted the row."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - other engines are not supported
        raise RuntimeError(f"unsupported database {dialect}")
    return bool(getattr(session.execute(stmt), "rowcount", 0))


def find_instance(session: Session, sop_uid: str) -> StoredInstance | None:
    row = session.execute(
        select(
            Instance.pk,
            Instance.sop_uid,
            Series.series_uid,
            Study.study_uid,
            Instance.sha256,
            Instance.blob_key,
            Instance.transfer_syntax,
            Instance.size,
        )
        .join(Series, Series.pk == Instance.series_pk)
        .join(Study, Study.pk == Instance.study_pk)
        .where(Instance.sop_uid == sop_uid)
    ).first()
    return StoredInstance(*row) if row else None


def insert_instance(
    session: Session,
    *,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    record: IndexRecord,
    transfer_syntax: str,
    size: int,
    sha256: str,
    blob_key: str,
    metadata: bytes,
) -> bool:
    """Insert the instance and its parents; False if the SOP UID raced in first."""
    now = utcnow()
    pat = record.patient
    _insert_ignore(
        session,
        Patient.__table__,  # type: ignore[arg-type]
        {**pat, "num_studies": 0, "created_at": now},
    )
    patient_pk = session.execute(
        select(Patient.pk).where(
            Patient.patient_id == pat["patient_id"], Patient.issuer == pat["issuer"]
        )
    ).scalar_one()

    study_pk = session.execute(select(Study.pk).where(Study.study_uid == study_uid)).scalar()
    if study_pk is None:
        new_study = _insert_ignore(
            session,
            Study.__table__,  # type: ignore[arg-type]
            {
                **record.study,
                "study_uid": study_uid,
                "patient_pk": patient_pk,
                "num_series": 0,
                "num_instances": 0,
                "modalities": "",
                "created_at": now,
                "updated_at": now,
            },
        )
        study_pk = session.execute(
            select(Study.pk).where(Study.study_uid == study_uid)
        ).scalar_one()
        if new_study:
            session.execute(
                update(Patient)
                .where(Patient.pk == patient_pk)
                .values(num_studies=Patient.num_studies + 1)
            )

    series_pk = session.execute(select(Series.pk).where(Series.series_uid == series_uid)).scalar()
    new_series = False
    if series_pk is None:
        new_series = _insert_ignore(
            session,
            Series.__table__,  # type: ignore[arg-type]
            {
                **record.series,
                "series_uid": series_uid,
                "study_pk": study_pk,
                "num_instances": 0,
                "created_at": now,
                "updated_at": now,
            },
        )
        series_pk = session.execute(
            select(Series.pk).where(Series.series_uid == series_uid)
        ).scalar_one()

    inserted = session.execute(
        _insert_stmt(session)
        .values(
            **record.instance,
            sop_uid=sop_uid,
            series_pk=series_pk,
            study_pk=study_pk,
            transfer_syntax=transfer_syntax,
            size=size,
            sha256=sha256,
            blob_key=blob_key,
            metadata_json=metadata,
            created_at=now,
        )
        .on_conflict_do_nothing()
    )
    if getattr(inserted, "rowcount", 0) == 0:
        return False
    session.execute(
        update(Series)
        .where(Series.pk == series_pk)
        .values(num_instances=Series.num_instances + 1, updated_at=now)
    )
    study_values: dict[str, Any] = {"num_instances": Study.num_instances + 1, "updated_at": now}
    if new_series:
        modalities = session.execute(
            select(Series.modality).distinct().where(Series.study_pk == study_pk)
        ).scalars()
        study_values["num_series"] = Study.num_series + 1
        study_values["modalities"] = modalities_key(m for m in modalities if m)
    session.execute(update(Study).where(Study.pk == study_pk).values(**study_values))
    return True


def _insert_stmt(session: Session) -> Any:
    table: Any = Instance.__table__
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def modalities_key(modalities: Any) -> str:
    """Backslash-delimited and -padded so ``LIKE '%\\CT\\%'`` matches one value."""
    values = sorted(set(modalities))
    return "\\" + "\\".join(values) + "\\" if values else ""


def replace_instance(
    session: Session,
    pk: int,
    *,
    record: IndexRecord,
    transfer_syntax: str,
    size: int,
    sha256: str,
    blob_key: str,
    metadata: bytes,
) -> None:
    """Point an existing instance row at new bytes (the configured overwrite policy)."""
    session.execute(
        update(Instance)
        .where(Instance.pk == pk)
        .values(
            **record.instance,
            transfer_syntax=transfer_syntax,
            size=size,
            sha256=sha256,
            blob_key=blob_key,
            metadata_json=metadata,
        )
    )
