"""Store one instance: validate, write the blob durably, then commit the index.

The order is what makes an acknowledgement safe: bytes are fsynced (or the S3
PUT completed) before the index row commits, and the caller acknowledges only
after this function returns. A crash between the two leaves an orphan blob
under a content-addressed key, never an index row without bytes.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from dataclasses import dataclass
from enum import StrEnum

from trialpacs.archive import Archive
from trialpacs.dicom import dicomjson
from trialpacs.dicom.parse import ParsedInstance, parse_part10
from trialpacs.errors import Conflict, InvalidInput
from trialpacs.index import writer
from trialpacs.index.records import extract
from trialpacs.storage import instance_key

log = logging.getLogger(__name__)


class StoreStatus(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # same UID, same bytes: idempotent success
    REPLACED = "replaced"  # same UID, other bytes, overwrite allowed


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    status: StoreStatus
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax: str
    size: int


def store_bytes(
    archive: Archive, data: bytes, *, expected_study: str | None = None
) -> StoreOutcome:
    """Parse and store Part 10 bytes; raises InvalidInput or Conflict with a reason."""
    parsed = parse_part10(data, max_bytes=archive.settings.max_instance_bytes)
    if expected_study is not None and parsed.study_uid != expected_study:
        raise InvalidInput(
            f"StudyInstanceUID {parsed.study_uid} does not match the study {expected_study} "
            "named in the request"
        )
    return store_parsed(archive, parsed)


def store_parsed(archive: Archive, parsed: ParsedInstance) -> StoreOutcome:
    sha = hashlib.sha256(parsed.data).hexdigest()
    outcome = _outcome(parsed)
    with archive.db.read() as session:
        existing = writer.find_instance(session, parsed.sop_instance_uid)
    if existing is not None:
        return _resolve_existing(archive, parsed, existing, sha, outcome)

    key = _blob_key(parsed, sha)
    record = extract(parsed.dataset)
    metadata = _metadata(parsed)
    archive.store.put(key, parsed.data)
    try:
        with archive.db.write() as session:
            inserted = writer.insert_instance(
                session,
                study_uid=parsed.study_uid,
                series_uid=parsed.series_uid,
                sop_uid=parsed.sop_instance_uid,
                record=record,
                transfer_syntax=parsed.transfer_syntax,
                size=parsed.size,
                sha256=sha,
                blob_key=key,
                metadata=metadata,
            )
    except BaseException:
        archive.store.delete(key)
        raise
    if not inserted:
        # Another writer stored the same SOP Instance UID between our check
        # and our insert: decide against what it stored.
        with archive.db.read() as session:
            existing = writer.find_instance(session, parsed.sop_instance_uid)
        assert existing is not None
        if existing.blob_key != key:
            archive.store.delete(key)
        return _resolve_existing(archive, parsed, existing, sha, outcome)
    return outcome


def _resolve_existing(
    archive: Archive,
    parsed: ParsedInstance,
    existing: writer.StoredInstance,
    sha: str,
    outcome: StoreOutcome,
) -> StoreOutcome:
    if existing.sha256 == sha:
        return _with_status(outcome, StoreStatus.DUPLICATE)
    if existing.study_uid != parsed.study_uid or existing.series_uid != parsed.series_uid:
        raise Conflict(
            f"SOP Instance UID {parsed.sop_instance_uid} is already stored in another "
            f"study/series ({existing.study_uid} / {existing.series_uid})"
        )
    if not archive.settings.overwrite:
        raise Conflict(
            f"SOP Instance UID {parsed.sop_instance_uid} is already stored with different "
            "content; refusing to overwrite (set overwrite to allow it)"
        )
    key = _blob_key(parsed, sha)
    archive.store.put(key, parsed.data)
    try:
        with archive.db.write() as session:
            writer.replace_instance(
                session,
                existing.pk,
                record=extract(parsed.dataset),
                transfer_syntax=parsed.transfer_syntax,
                size=parsed.size,
                sha256=sha,
                blob_key=key,
                metadata=_metadata(parsed),
            )
    except BaseException:
        archive.store.delete(key)
        raise
    archive.store.delete(existing.blob_key)
    return _with_status(outcome, StoreStatus.REPLACED)


def _blob_key(parsed: ParsedInstance, sha: str) -> str:
    base = instance_key(parsed.study_uid, parsed.series_uid, parsed.sop_instance_uid)
    return f"{base[: -len('.dcm')]}.{sha[:16]}.dcm"


def _metadata(parsed: ParsedInstance) -> bytes:
    attrs = dicomjson.dataset_to_json(
        parsed.dataset, parsed.study_uid, parsed.series_uid, parsed.sop_instance_uid
    )
    return zlib.compress(dicomjson.dumps(attrs), 1)


def _outcome(parsed: ParsedInstance) -> StoreOutcome:
    return StoreOutcome(
        status=StoreStatus.STORED,
        study_uid=parsed.study_uid,
        series_uid=parsed.series_uid,
        sop_uid=parsed.sop_instance_uid,
        sop_class_uid=parsed.sop_class_uid,
        transfer_syntax=parsed.transfer_syntax,
        size=parsed.size,
    )


def _with_status(outcome: StoreOutcome, status: StoreStatus) -> StoreOutcome:
    return StoreOutcome(
        status=status,
        study_uid=outcome.study_uid,
        series_uid=outcome.series_uid,
        sop_uid=outcome.sop_uid,
        sop_class_uid=outcome.sop_class_uid,
        transfer_syntax=outcome.transfer_syntax,
        size=outcome.size,
    )
