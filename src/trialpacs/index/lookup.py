"""Find stored instances for retrieval (WADO-RS, WADO-URI, C-MOVE, C-GET)."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from trialpacs.dicom.dicomjson import BASE_PLACEHOLDER
from trialpacs.index.models import Instance, Series, Study


@dataclass(frozen=True, slots=True)
class InstanceRef:
    """Where an instance's bytes are and what they are."""

    pk: int
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax: str
    blob_key: str
    size: int
    number_of_frames: int | None


def instances(
    session: Session,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    *,
    study_uids: Sequence[str] | None = None,
    series_uids: Sequence[str] | None = None,
    sop_uids: Sequence[str] | None = None,
    collection: str | None = "published",
    visible: ColumnElement[bool] | None = None,
) -> list[InstanceRef]:
    """Instances under the given UIDs, ordered by series then instance number.

    Only the published collection unless asked: retrieval never reaches
    identified data by accident. ``collection=None`` (any collection) is for
    existence checks such as storage commitment, never for sending bytes.
    """
    stmt = (
        select(
            Instance.pk,
            Study.study_uid,
            Series.series_uid,
            Instance.sop_uid,
            Instance.sop_class_uid,
            Instance.transfer_syntax,
            Instance.blob_key,
            Instance.size,
            Instance.number_of_frames,
        )
        .join(Series, Series.pk == Instance.series_pk)
        .join(Study, Study.pk == Instance.study_pk)
    )
    if collection is not None:
        stmt = stmt.where(Study.collection == collection)
    if visible is not None:  # what the caller may see (trialpacs.access.visibility)
        stmt = stmt.where(visible)
    if study_uid is not None:
        stmt = stmt.where(Study.study_uid == study_uid)
    if series_uid is not None:
        stmt = stmt.where(Series.series_uid == series_uid)
    if sop_uid is not None:
        stmt = stmt.where(Instance.sop_uid == sop_uid)
    if study_uids is not None:
        stmt = stmt.where(Study.study_uid.in_(list(study_uids)))
    if series_uids is not None:
        stmt = stmt.where(Series.series_uid.in_(list(series_uids)))
    if sop_uids is not None:
        stmt = stmt.where(Instance.sop_uid.in_(list(sop_uids)))
    stmt = stmt.order_by(Series.series_number, Series.pk, Instance.instance_number, Instance.pk)
    return [InstanceRef(*row) for row in session.execute(stmt).all()]


def metadata_documents(
    session: Session,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    collection: str = "published",
    visible: ColumnElement[bool] | None = None,
) -> Iterator[bytes]:
    """Each matching instance's DICOM JSON object as bytes (placeholder base URL)."""
    stmt = (
        select(Instance.metadata_json)
        .join(Series, Series.pk == Instance.series_pk)
        .join(Study, Study.pk == Instance.study_pk)
        .where(Study.study_uid == study_uid, Study.collection == collection)
    )
    if visible is not None:
        stmt = stmt.where(visible)
    if series_uid is not None:
        stmt = stmt.where(Series.series_uid == series_uid)
    if sop_uid is not None:
        stmt = stmt.where(Instance.sop_uid == sop_uid)
    stmt = stmt.order_by(Series.series_number, Series.pk, Instance.instance_number, Instance.pk)
    for (blob,) in session.execute(stmt):
        yield zlib.decompress(blob)


def metadata_array(docs: Iterator[bytes], base_url: str) -> bytes:
    """Join documents into a JSON array and resolve bulk data URIs to ``base_url``."""
    body = b"[" + b",".join(docs) + b"]"
    return body.replace(BASE_PLACEHOLDER.encode(), base_url.encode())
