"""Write instances' index rows, one transaction per batch.

Statements are built once at import time and executed with bound parameters
on the session's connection: building SQLAlchemy statements per instance
costs more than executing them. Upserts use INSERT .. ON CONFLICT DO NOTHING
so concurrent stores of the same new study or series (several DIMSE
associations, HTTP workers or servers on one PostgreSQL) never fail on a
unique key; counters are incremented in SQL, not read-modify-written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
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


@dataclass(frozen=True, slots=True)
class NewInstance:
    """One instance to index; the blob is already durable at ``blob_key``."""

    study_uid: str
    series_uid: str
    sop_uid: str
    record: IndexRecord
    transfer_syntax: str
    size: int
    sha256: str
    blob_key: str
    metadata: bytes
    # Where it belongs: the collection and trial/site of a new study, and the
    # named storage backend of the blob (None: the archive's published store).
    collection: str = "published"
    trial_id: str | None = None
    site_id: str | None = None
    store: str | None = None
    # A time point named at intake; overrides ClinicalTrialTimePointID of the data.
    timepoint_id: str | None = None


_FIND = (
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
)
_FIND_ONE = _FIND.where(Instance.sop_uid == bindparam("b_sop"))
_FIND_MANY = _FIND.where(Instance.sop_uid.in_(bindparam("b_sops", expanding=True)))
_PATIENT_PK = select(Patient.pk).where(
    Patient.patient_id == bindparam("b_pid"), Patient.issuer == bindparam("b_issuer")
)
_STUDY_PK = select(Study.pk).where(Study.study_uid == bindparam("b_uid"))
_SERIES_PK = select(Series.pk).where(Series.series_uid == bindparam("b_uid"))
_STUDY_MODALITIES = (
    select(Series.modality).distinct().where(Series.study_pk == bindparam("b_study"))
)
_BUMP_PATIENT = (
    update(Patient)
    .where(Patient.pk == bindparam("b_pk"))
    .values(num_studies=Patient.num_studies + 1)
)
_BUMP_SERIES = (
    update(Series)
    .where(Series.pk == bindparam("b_pk"))
    .values(num_instances=Series.num_instances + bindparam("b_n"), updated_at=bindparam("b_now"))
)
_BUMP_STUDY = (
    update(Study)
    .where(Study.pk == bindparam("b_pk"))
    .values(
        num_instances=Study.num_instances + bindparam("b_n"),
        num_series=Study.num_series + bindparam("b_new_series"),
        updated_at=bindparam("b_now"),
    )
)
_SET_MODALITIES = (
    update(Study).where(Study.pk == bindparam("b_pk")).values(modalities=bindparam("b_mods"))
)
_REPLACE = update(Instance).where(Instance.pk == bindparam("b_pk"))
# An explicit time point fills in a study that has none (never replaces one).
_ASSIGN_TIMEPOINT = (
    update(Study)
    .where(Study.pk == bindparam("b_pk"), Study.timepoint_id == "")
    .values(timepoint_id=bindparam("b_tp"))
)
_TIMEPOINTS = select(Study.study_uid, Study.timepoint_id).where(
    Study.study_uid.in_(bindparam("b_uids", expanding=True))
)


def _inserts(dialect: str) -> dict[str, Any]:
    # RETURNING pk tells whether ON CONFLICT DO NOTHING inserted: psycopg reports
    # rowcount -1 for these statements, which read as "inserted" and counted an
    # instance twice when two servers stored it at the same moment.
    module: Any = postgresql if dialect == "postgresql" else sqlite
    return {
        name: module.insert(model.__table__)
        .on_conflict_do_nothing()
        .returning(model.__table__.c.pk)
        for name, model in (
            ("patient", Patient),
            ("study", Study),
            ("series", Series),
            ("instance", Instance),
        )
    }


_INSERTS = {d: _inserts(d) for d in ("postgresql", "sqlite")}


def find_instance(session: Session, sop_uid: str) -> StoredInstance | None:
    row = session.connection().execute(_FIND_ONE, {"b_sop": sop_uid}).first()
    return StoredInstance(*row) if row else None


def find_instances(session: Session, sop_uids: Sequence[str]) -> dict[str, StoredInstance]:
    if not sop_uids:
        return {}
    rows = session.connection().execute(_FIND_MANY, {"b_sops": list(sop_uids)}).all()
    return {row[1]: StoredInstance(*row) for row in rows}


class _Batch:
    """Per-transaction caches of parent keys and counter increments."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.ins = _INSERTS[conn.dialect.name]
        self.now: datetime = utcnow()
        self.studies: dict[str, int] = {}
        self.series: dict[str, int] = {}
        self.series_counts: dict[int, int] = {}
        self.study_counts: dict[int, int] = {}
        self.new_series: dict[int, int] = {}

    def _scalar(self, stmt: Any, params: dict[str, Any]) -> int | None:
        value = self.conn.execute(stmt, params).scalar()
        return None if value is None else int(value)

    def study_pk(self, item: NewInstance) -> int:
        pk = self.studies.get(item.study_uid)
        if pk is not None:
            return pk
        pk = self._scalar(_STUDY_PK, {"b_uid": item.study_uid})
        if pk is None:
            study = item.record.study
            if item.timepoint_id:
                study = {**study, "timepoint_id": item.timepoint_id}
            pat = item.record.patient
            self.conn.execute(
                self.ins["patient"], {**pat, "num_studies": 0, "created_at": self.now}
            )
            patient_pk = self._scalar(
                _PATIENT_PK, {"b_pid": pat["patient_id"], "b_issuer": pat["issuer"]}
            )
            inserted = self.conn.execute(
                self.ins["study"],
                {
                    **study,
                    "study_uid": item.study_uid,
                    "patient_pk": patient_pk,
                    "num_series": 0,
                    "num_instances": 0,
                    "modalities": "",
                    "created_at": self.now,
                    "updated_at": self.now,
                    "collection": item.collection,
                    "trial_id": item.trial_id,
                    "site_id": item.site_id,
                },
            )
            if inserted.first() is not None:
                self.conn.execute(_BUMP_PATIENT, {"b_pk": patient_pk})
            pk = self._scalar(_STUDY_PK, {"b_uid": item.study_uid})
        elif item.timepoint_id:
            self.conn.execute(_ASSIGN_TIMEPOINT, {"b_pk": pk, "b_tp": item.timepoint_id})
        assert pk is not None
        self.studies[item.study_uid] = pk
        return pk

    def series_pk(self, item: NewInstance, study_pk: int) -> int:
        pk = self.series.get(item.series_uid)
        if pk is not None:
            return pk
        pk = self._scalar(_SERIES_PK, {"b_uid": item.series_uid})
        if pk is None:
            inserted = self.conn.execute(
                self.ins["series"],
                {
                    **item.record.series,
                    "series_uid": item.series_uid,
                    "study_pk": study_pk,
                    "num_instances": 0,
                    "created_at": self.now,
                    "updated_at": self.now,
                },
            )
            if inserted.first() is not None:
                self.new_series[study_pk] = self.new_series.get(study_pk, 0) + 1
            pk = self._scalar(_SERIES_PK, {"b_uid": item.series_uid})
        assert pk is not None
        self.series[item.series_uid] = pk
        return pk

    def add(self, item: NewInstance) -> bool:
        study_pk = self.study_pk(item)
        series_pk = self.series_pk(item, study_pk)
        inserted = self.conn.execute(
            self.ins["instance"],
            {
                **item.record.instance,
                "sop_uid": item.sop_uid,
                "series_pk": series_pk,
                "study_pk": study_pk,
                "transfer_syntax": item.transfer_syntax,
                "size": item.size,
                "sha256": item.sha256,
                "blob_key": item.blob_key,
                "metadata_json": item.metadata,
                "created_at": self.now,
                "store": item.store,
            },
        )
        if inserted.first() is None:
            return False
        self.series_counts[series_pk] = self.series_counts.get(series_pk, 0) + 1
        self.study_counts[study_pk] = self.study_counts.get(study_pk, 0) + 1
        return True

    def flush_counters(self) -> None:
        for pk, n in self.series_counts.items():
            self.conn.execute(_BUMP_SERIES, {"b_pk": pk, "b_n": n, "b_now": self.now})
        for pk, n in self.study_counts.items():
            new_series = self.new_series.get(pk, 0)
            self.conn.execute(
                _BUMP_STUDY, {"b_pk": pk, "b_n": n, "b_new_series": new_series, "b_now": self.now}
            )
        for pk in self.new_series:
            mods = self.conn.execute(_STUDY_MODALITIES, {"b_study": pk}).scalars()
            self.conn.execute(
                _SET_MODALITIES, {"b_pk": pk, "b_mods": modalities_key(m for m in mods if m)}
            )


_PLACEMENTS = select(Study.study_uid, Study.collection, Study.trial_id, Study.site_id).where(
    Study.study_uid.in_(bindparam("b_uids", expanding=True))
)


def study_placements(
    session: Session, study_uids: Sequence[str]
) -> dict[str, tuple[str, str | None, str | None]]:
    """Collection, trial and site of the studies that exist, by Study Instance UID."""
    if not study_uids:
        return {}
    rows = session.connection().execute(_PLACEMENTS, {"b_uids": list(study_uids)}).all()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def study_timepoints(session: Session, study_uids: Sequence[str]) -> dict[str, str]:
    """ClinicalTrialTimePointID of the studies that exist ('' = none assigned)."""
    if not study_uids:
        return {}
    rows = session.connection().execute(_TIMEPOINTS, {"b_uids": list(study_uids)}).all()
    return {row[0]: row[1] for row in rows}


def insert_instances(session: Session, items: Sequence[NewInstance]) -> list[bool]:
    """Index the items in the session's transaction; False where the SOP UID existed."""
    batch = _Batch(session.connection())
    results = [batch.add(item) for item in items]
    batch.flush_counters()
    return results


def modalities_key(modalities: Any) -> str:
    """Backslash-delimited and -padded so ``LIKE '%\\CT\\%'`` matches one value."""
    values = sorted(set(modalities))
    return "\\" + "\\".join(values) + "\\" if values else ""


def replace_instance(session: Session, pk: int, item: NewInstance) -> None:
    """Point an existing instance row at new bytes (the configured overwrite policy)."""
    session.connection().execute(
        _REPLACE,
        {
            **item.record.instance,
            "b_pk": pk,
            "transfer_syntax": item.transfer_syntax,
            "size": item.size,
            "sha256": item.sha256,
            "blob_key": item.blob_key,
            "metadata_json": item.metadata,
        },
    )
