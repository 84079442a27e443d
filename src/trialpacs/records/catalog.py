"""Published records: list a trial's, fetch one for download (plain values in and out)."""

from __future__ import annotations

import io
from dataclasses import dataclass

from pydicom import dcmread
from sqlalchemy import select

from trialpacs.archive import Archive
from trialpacs.errors import NotFound
from trialpacs.index.models import Instance, Series, Study
from trialpacs.records import dicomwrap as wrap
from trialpacs.records.export import Original, original_format
from trialpacs.trials import backends
from trialpacs.trials.models import PUBLISHED

VIDEO_SYNTAXES = ("1.2.840.10008.1.2.4.10",)  # prefix of the MPEG-2/4 AVC/HEVC syntaxes


@dataclass(frozen=True)
class RecordEntry:
    sop_uid: str
    study_uid: str
    series_uid: str
    subject: str
    site_id: str
    kind: str  # the series description: "Records: PDF", "Records: HL7 v2", ...
    sop_class_uid: str


def _is_record_row(sop_class: str, ts: str) -> bool:
    return sop_class in wrap.RECORD_CLASSES or ts.startswith(VIDEO_SYNTAXES)


def list_published(
    archive: Archive, trial_id: str, subject: str = "", study_uid: str = ""
) -> list[RecordEntry]:
    """Every published record of a trial (optionally of one subject or study), newest first."""
    stmt = (
        select(
            Instance.sop_uid,
            Instance.sop_class_uid,
            Instance.transfer_syntax,
            Study.study_uid,
            Series.series_uid,
            Series.series_description,
            Study.patient_id,
            Study.site_id,
        )
        .join(Series, Series.pk == Instance.series_pk)
        .join(Study, Study.pk == Instance.study_pk)
        .where(Study.collection == PUBLISHED, Study.trial_id == trial_id)
        .order_by(Study.study_date.desc(), Instance.pk)
    )
    if subject:
        stmt = stmt.where(Study.patient_id == subject)
    if study_uid:
        stmt = stmt.where(Study.study_uid == study_uid)
    with archive.db.read() as session:
        rows = session.execute(stmt).all()
    return [
        RecordEntry(
            r.sop_uid,
            r.study_uid,
            r.series_uid,
            r.patient_id,
            r.site_id or "",
            r.series_description,
            r.sop_class_uid,
        )
        for r in rows
        if _is_record_row(r.sop_class_uid, r.transfer_syntax)
    ]


def locate(archive: Archive, sop_uid: str) -> tuple[str | None, str | None, str, str | None]:
    """(trial, site, blob key, store) of a published record; NotFound otherwise."""
    with archive.db.read() as session:
        row = session.execute(
            select(
                Instance.blob_key,
                Instance.store,
                Instance.sop_class_uid,
                Instance.transfer_syntax,
                Study.trial_id,
                Study.site_id,
            )
            .join(Study, Study.pk == Instance.study_pk)
            .where(Instance.sop_uid == sop_uid, Study.collection == PUBLISHED)
        ).first()
    if row is None or not _is_record_row(row.sop_class_uid, row.transfer_syntax):
        raise NotFound("not found")  # same words as a refusal
    return row.trial_id, row.site_id, row.blob_key, row.store


def original(archive: Archive, blob_key: str, store: str | None) -> Original:
    data = backends.registry(archive).store(store).get(blob_key)
    ds = dcmread(io.BytesIO(data))
    return original_format(ds)
