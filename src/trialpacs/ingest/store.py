"""Store instances: validate, write the blobs durably, then commit the index.

The order is what makes an acknowledgement safe: bytes are fsynced (or the S3
PUT completed) before the index transaction commits, and callers acknowledge
only after this module returns. A crash between the two leaves an orphan
blob under a content-addressed key, never an index row without bytes.

A batch (one STOW-RS request, a chunk of an import) is indexed in one
transaction: one commit, one fsync of the database journal, for all of it.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from enum import StrEnum

from trialpacs.archive import Archive
from trialpacs.audit.chain import AuditEvent
from trialpacs.audit.stores import Stored, append_stored
from trialpacs.dicom import dicomjson
from trialpacs.dicom.parse import ParsedInstance, parse_part10
from trialpacs.errors import Conflict, InvalidInput, TrialpacsError
from trialpacs.index import writer
from trialpacs.index.records import extract
from trialpacs.storage import BlobStore, instance_key

log = logging.getLogger(__name__)

# Blob writes overlap the index transaction (see store_parsed_many).
_BLOB_WRITERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="blob-write")


class StoreStatus(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # same UID, same bytes: idempotent success
    REPLACED = "replaced"  # same UID, other bytes, overwrite allowed


@dataclass(frozen=True, slots=True)
class Placement:
    """Where instances go: the index collection, the trial/site, the blob store.

    The default is the published archive (``archive.store``), which is what a
    plain STOW-RS, a plain import and the DIMSE default AE store into.
    Identified data is placed in the ``quarantine`` (or ``unassigned``)
    collection and in a named backend of its site's region.
    """

    collection: str = "published"
    trial_id: str | None = None
    site_id: str | None = None
    store_name: str | None = None  # None: archive.store
    blob_store: BlobStore | None = None
    # The trial visit (ClinicalTrialTimePointID) named at intake, if any.
    timepoint_id: str | None = None


PUBLISHED = Placement()


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
    archive: Archive,
    data: bytes,
    *,
    expected_study: str | None = None,
    placement: Placement = PUBLISHED,
    audit: AuditEvent | None = None,
) -> StoreOutcome:
    """Parse and store one Part 10 file; raises InvalidInput or Conflict with a reason."""
    result = store_many(
        archive, [data], expected_study=expected_study, placement=placement, audit=audit
    )[0]
    if isinstance(result, Exception):
        raise result
    return result


def parse_checked(archive: Archive, data: bytes, expected_study: str | None) -> ParsedInstance:
    parsed = parse_part10(
        data,
        max_bytes=archive.settings.max_instance_bytes,
        max_frames=archive.settings.max_frames,
    )
    if expected_study is not None and parsed.study_uid != expected_study:
        raise InvalidInput(
            f"StudyInstanceUID {parsed.study_uid} does not match the study {expected_study} "
            "named in the request"
        )
    return parsed


def store_many(
    archive: Archive,
    datas: Sequence[bytes],
    *,
    expected_study: str | None = None,
    placement: Placement = PUBLISHED,
    audit: AuditEvent | None = None,
) -> list[StoreOutcome | TrialpacsError]:
    """Store each item; a bad item yields its error and never affects the others.

    ``audit`` is the caller's entry template (actor, address, action); the
    entries are written with the instances (trialpacs.audit.stores).
    """
    results: list[StoreOutcome | TrialpacsError | None] = [None] * len(datas)
    parsed: dict[int, ParsedInstance] = {}
    for i, data in enumerate(datas):
        try:
            parsed[i] = parse_checked(archive, data, expected_study)
        except TrialpacsError as exc:
            results[i] = exc
    if len(parsed) == 1:
        # A lone instance (STOW-RS of one, a single import) may share a commit
        # with concurrent requests through the group committer.
        from trialpacs.ingest.commit import committer_for

        ((i, p),) = parsed.items()
        try:
            results[i] = committer_for(archive).store(p, placement, audit=audit)
        except TrialpacsError as exc:
            results[i] = exc
    else:
        audits = dict.fromkeys(parsed, audit) if audit is not None else None
        for i, outcome in store_parsed_many(
            archive, parsed, placement=placement, audit=audits
        ).items():
            results[i] = outcome
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def store_parsed(
    archive: Archive,
    parsed: ParsedInstance,
    *,
    placement: Placement = PUBLISHED,
    audit: AuditEvent | None = None,
) -> StoreOutcome:
    result = store_parsed_many(
        archive, {0: parsed}, placement=placement, audit={0: audit} if audit else None
    )[0]
    if isinstance(result, Exception):
        raise result
    return result


def store_parsed_many(
    archive: Archive,
    parsed: dict[int, ParsedInstance],
    *,
    placement: Placement = PUBLISHED,
    audit: Mapping[int, AuditEvent | None] | None = None,
) -> dict[int, StoreOutcome | TrialpacsError]:
    results: dict[int, StoreOutcome | TrialpacsError] = {}
    if not parsed:
        return results
    store = placement.blob_store or archive.store
    with archive.db.read() as session:
        existing = writer.find_instances(session, [p.sop_instance_uid for p in parsed.values()])
        placed = writer.study_placements(session, list({p.study_uid for p in parsed.values()}))
        visits = (
            writer.study_timepoints(session, list({p.study_uid for p in parsed.values()}))
            if placement.timepoint_id
            else {}
        )

    new: dict[int, writer.NewInstance] = {}
    seen: dict[str, int] = {}
    for i, p in parsed.items():
        where = placed.get(p.study_uid)
        here = (placement.collection, placement.trial_id, placement.site_id)
        if where is not None and where != here:
            # Identified and published studies never mix, nor do two trials' studies.
            results[i] = Conflict(
                f"study {p.study_uid} is already stored elsewhere "
                f"({_describe_place(*where)}); refusing to add to it from {_describe_place(*here)}"
            )
            continue
        if visits.get(p.study_uid, "") not in ("", placement.timepoint_id):
            # A study is one visit: naming another one for it is a mistake to report.
            results[i] = Conflict(
                f"study {p.study_uid} is assigned to time point {visits[p.study_uid]!r}; "
                f"refusing to add to it as {placement.timepoint_id!r}"
            )
            continue
        item = _new_instance(p, placement)
        if p.sop_instance_uid in existing:
            results[i] = _resolve_existing(
                archive, store, p, existing[p.sop_instance_uid], item, (audit or {}).get(i)
            )
        elif p.sop_instance_uid in seen:
            # Twice in one batch: decide against the first copy once it is stored.
            first = new[seen[p.sop_instance_uid]]
            results[i] = _same_batch_duplicate(first, item, p)
        else:
            seen[p.sop_instance_uid] = i
            new[i] = item
    if not new:
        return results

    keys = [item.blob_key for item in new.values()]
    # The blob fsyncs run while the index rows and audit entries are written
    # in the open transaction; the commit waits for them, so the index still
    # never names bytes that are not durable (the order above is unchanged).
    blobs = _BLOB_WRITERS.submit(
        store.put_many, [(item.blob_key, parsed[i].data) for i, item in new.items()]
    )
    try:
        with archive.db.write() as session:
            inserted = writer.insert_instances(session, list(new.values()))
            if archive.settings.audit_enabled:
                append_stored(
                    session,
                    (
                        ((audit or {}).get(i), _stored(item, "stored"))
                        for (i, item), ok in zip(new.items(), inserted, strict=True)
                        if ok
                    ),
                )
            blobs.result()  # bytes durable before the commit
    except BaseException:
        wait([blobs])  # never delete under a write still in progress
        for key in keys:
            store.delete(key)
        raise
    raced = []
    for i, ok in zip(new, inserted, strict=True):
        if ok:
            results[i] = _outcome(parsed[i], StoreStatus.STORED)
        else:
            raced.append(i)
    if raced:
        # Another writer stored these SOP Instance UIDs between our check and
        # our insert: decide against what it stored.
        with archive.db.read() as session:
            now = writer.find_instances(session, [parsed[i].sop_instance_uid for i in raced])
        for i in raced:
            other = now[parsed[i].sop_instance_uid]
            if other.blob_key != new[i].blob_key:
                store.delete(new[i].blob_key)
            results[i] = _resolve_existing(
                archive, store, parsed[i], other, new[i], (audit or {}).get(i)
            )
    for i, p in parsed.items():
        if i not in results:  # pragma: no cover - every branch above sets a result
            results[i] = TrialpacsError(f"{p.sop_instance_uid}: not stored")
    return results


def _same_batch_duplicate(
    first: writer.NewInstance, item: writer.NewInstance, p: ParsedInstance
) -> StoreOutcome | TrialpacsError:
    if first.sha256 == item.sha256:
        return _outcome(p, StoreStatus.DUPLICATE)
    return Conflict(
        f"SOP Instance UID {p.sop_instance_uid} appears twice in one request with different content"
    )


def _describe_place(collection: str, trial: str | None, site: str | None) -> str:
    if trial:
        return f"{collection} of trial {trial} site {site}"
    return f"{collection} archive"


def _resolve_existing(
    archive: Archive,
    store: BlobStore,
    parsed: ParsedInstance,
    existing: writer.StoredInstance,
    item: writer.NewInstance,
    audit: AuditEvent | None = None,
) -> StoreOutcome | TrialpacsError:
    if existing.sha256 == item.sha256:
        return _outcome(parsed, StoreStatus.DUPLICATE)
    if existing.study_uid != parsed.study_uid or existing.series_uid != parsed.series_uid:
        return Conflict(
            f"SOP Instance UID {parsed.sop_instance_uid} is already stored in another "
            f"study/series ({existing.study_uid} / {existing.series_uid})"
        )
    if not archive.settings.overwrite:
        return Conflict(
            f"SOP Instance UID {parsed.sop_instance_uid} is already stored with different "
            "content; refusing to overwrite (set overwrite to allow it)"
        )
    store.put(item.blob_key, parsed.data)
    try:
        with archive.db.write() as session:
            writer.replace_instance(session, existing.pk, item)
            if archive.settings.audit_enabled:
                append_stored(session, [(audit, _stored(item, "replaced"))])
    except BaseException:
        store.delete(item.blob_key)
        raise
    store.delete(existing.blob_key)
    return _outcome(parsed, StoreStatus.REPLACED)


def _stored(item: writer.NewInstance, status: str) -> Stored:
    return Stored(
        study=item.study_uid,
        series=item.series_uid,
        sop=item.sop_uid,
        trial=item.trial_id or "",
        site=item.site_id or "",
        collection=item.collection,
        status=status,
    )


def _new_instance(p: ParsedInstance, placement: Placement = PUBLISHED) -> writer.NewInstance:
    sha = p.content_digest()
    base = instance_key(p.study_uid, p.series_uid, p.sop_instance_uid)
    attrs = dicomjson.dataset_to_json(p.dataset, p.study_uid, p.series_uid, p.sop_instance_uid)
    return writer.NewInstance(
        study_uid=p.study_uid,
        series_uid=p.series_uid,
        sop_uid=p.sop_instance_uid,
        record=extract(p.dataset),
        transfer_syntax=p.transfer_syntax,
        size=p.size,
        sha256=sha,
        blob_key=f"{base[: -len('.dcm')]}.{sha[:16]}.dcm",
        metadata=zlib.compress(dicomjson.dumps(attrs), 1),
        collection=placement.collection,
        trial_id=placement.trial_id,
        site_id=placement.site_id,
        store=placement.store_name,
        timepoint_id=placement.timepoint_id,
    )


def _outcome(p: ParsedInstance, status: StoreStatus) -> StoreOutcome:
    return StoreOutcome(
        status=status,
        study_uid=p.study_uid,
        series_uid=p.series_uid,
        sop_uid=p.sop_instance_uid,
        sop_class_uid=p.sop_class_uid,
        transfer_syntax=p.transfer_syntax,
        size=p.size,
    )


__all__ = [
    "PUBLISHED",
    "Placement",
    "StoreOutcome",
    "StoreStatus",
    "parse_checked",
    "store_bytes",
    "store_many",
    "store_parsed",
    "store_parsed_many",
]
