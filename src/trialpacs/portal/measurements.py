"""Measurements a reader saves from the viewer: DICOM SR to the workspace or the trial.

OHIF saves a report with STOW-RS; readers may not store into the trial's
archive with STOW, so the viewer's STOW is sent here instead. Only structured
reports about a study the caller may read are kept. Where they go is the
trial's choice (``reader_reports`` in its configuration): ``workspace`` keeps
them in the caller's private workspace (kind ``annotation``, named by the
SR's SOP Instance UID); ``trial`` stores them through the archive's normal
store path into the published study, as a series of its own that the
trial's users see over DICOMweb, audited with the reader as actor.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian
from sqlalchemy import select

from trialpacs.access.policy import Principal
from trialpacs.access.visibility import study_condition
from trialpacs.access.workspace import Workspaces
from trialpacs.archive import Archive
from trialpacs.audit.chain import AuditEvent
from trialpacs.dicom.uids import require_uid
from trialpacs.errors import InvalidInput, NotFound, TrialpacsError
from trialpacs.index.models import Study
from trialpacs.ingest.store import Placement, StoreOutcome, store_many
from trialpacs.trials.catalog import get_trial
from trialpacs.trials.models import PUBLISHED

SR_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
MAX_REPORT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Report:
    data: bytes
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str


def read_report(data: bytes) -> Report:
    """A Part 10 file with its identifying UIDs, the preamble zeroed.

    Read with pydicom rather than the archive's strict ingest parser: OHIF
    writes implicit-VR reports with undefined-length sequences that the
    ingest parser refuses, and a report is never served from the archive.
    """
    if len(data) > MAX_REPORT_BYTES:
        raise InvalidInput(f"a report is at most {MAX_REPORT_BYTES} bytes")
    if len(data) < 132 or data[128:132] != b"DICM":
        raise InvalidInput("not a DICOM Part 10 file: no 'DICM' marker at byte 128")
    try:
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
        cls, sop, study = str(ds.SOPClassUID), str(ds.SOPInstanceUID), str(ds.StudyInstanceUID)
    except (InvalidDicomError, AttributeError, ValueError, EOFError, OSError) as exc:
        raise InvalidInput(f"the report cannot be read: {exc}") from None
    for value, what in ((cls, "SOP Class UID"), (sop, "SOP Instance UID"), (study, "Study UID")):
        require_uid(value, what)
    return Report(bytes(128) + data[128:], cls, sop, study)


@dataclass(frozen=True)
class Saved:
    sop_class_uid: str
    sop_instance_uid: str
    name: str
    where: str = "workspace"  # workspace | trial


@dataclass(frozen=True)
class Refused:
    sop_class_uid: str
    sop_instance_uid: str
    reason: str
    missing: bool  # the study is not one the caller may read (or does not exist)


@dataclass(frozen=True)
class _Target:
    trial: str
    site: str
    to_trial: bool


def _target(archive: Archive, principal: Principal, study_uid: str) -> _Target | None:
    """Where a report about the study goes; None when the caller may not read the study."""
    condition = study_condition(principal, "read")
    stmt = select(Study.trial_id, Study.site_id, Study.collection).where(
        Study.study_uid == study_uid
    )
    if condition is not None:
        stmt = stmt.where(condition)
    with archive.db.read() as session:
        found = session.execute(stmt).first()
    if found is None:
        return None
    trial, site, collection = found
    info = get_trial(archive.db, trial) if trial and collection == PUBLISHED else None
    return _Target(trial or "", site or "", info is not None and info.reader_reports == "trial")


def archive_encoding(data: bytes) -> bytes:
    """The report re-encoded explicit VR little endian with defined-length sequences.

    OHIF writes implicit-VR reports with undefined-length sequences, which the
    archive's strict ingest parser refuses; the content is unchanged.
    """
    ds = dcmread(io.BytesIO(data))

    def define(d: Dataset) -> None:
        for elem in d:
            if elem.VR == "SQ":
                elem.is_undefined_length = False
                for item in elem.value:
                    item.is_undefined_length_sequence_item = False
                    define(item)

    define(ds)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True, implicit_vr=False, little_endian=True)
    return out.getvalue()


def _to_trial(
    archive: Archive, principal: Principal, report: Report, target: _Target
) -> Saved | Refused:
    cls, sop = report.sop_class_uid, report.sop_instance_uid
    try:
        data = archive_encoding(report.data)
    except (InvalidDicomError, AttributeError, ValueError, TypeError, OSError) as exc:
        return Refused(cls, sop, f"the report cannot be re-encoded: {exc}", missing=False)
    placement = Placement(collection=PUBLISHED, trial_id=target.trial, site_id=target.site)
    audit = AuditEvent(
        action="reader_report.store",
        actor=principal.subject,
        roles=tuple(str(g) for g in principal.grants),
        trial=target.trial,
        site=target.site,
    )
    (result,) = store_many(
        archive, [data], expected_study=report.study_uid, placement=placement, audit=audit
    )
    if not isinstance(result, StoreOutcome):
        return Refused(cls, sop, str(result), missing=False)
    return Saved(cls, sop, f"{sop}.dcm", where="trial")


def save_reports(
    archive: Archive, principal: Principal, parts: list[bytes]
) -> list[Saved | Refused]:
    spaces = Workspaces(archive.db, archive.store, archive.settings.workspace_quota_bytes)
    out: list[Saved | Refused] = []
    for data in parts:
        try:
            parsed = read_report(data)
        except TrialpacsError as exc:
            out.append(Refused("", "", str(exc), missing=False))
            continue
        cls, sop = parsed.sop_class_uid, parsed.sop_instance_uid
        if not cls.startswith(SR_CLASS_PREFIX):
            reason = f"only structured reports are saved from the viewer, not SOP class {cls}"
            out.append(Refused(cls, sop, reason, missing=False))
            continue
        target = _target(archive, principal, parsed.study_uid)
        if target is None:
            out.append(Refused(cls, sop, "no such study", missing=True))
            continue
        if target.to_trial:
            out.append(_to_trial(archive, principal, parsed, target))
            continue
        name = f"{sop}.dcm"
        try:
            spaces.put(principal, principal.subject, "annotation", name, parsed.data,
                       "application/dicom")  # fmt: skip
        except (InvalidInput, NotFound) as exc:
            out.append(Refused(cls, sop, str(exc), missing=isinstance(exc, NotFound)))
            continue
        out.append(Saved(cls, sop, name))
    return out
