"""Measurements a reader saves from the viewer: DICOM SR into the reader's workspace.

OHIF saves a report with STOW-RS; readers may not store into the trial's
archive, so the viewer's STOW is sent here instead. Only structured reports
about a study the caller may read are kept, under the caller's private
workspace (kind ``annotation``, named by the SR's SOP Instance UID), where
the workspace page lists them and only their owner can fetch them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from sqlalchemy import select

from trialpacs.access.policy import Principal
from trialpacs.access.visibility import study_condition
from trialpacs.access.workspace import Workspaces
from trialpacs.archive import Archive
from trialpacs.dicom.uids import require_uid
from trialpacs.errors import InvalidInput, NotFound, TrialpacsError
from trialpacs.index.models import Study

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


@dataclass(frozen=True)
class Refused:
    sop_class_uid: str
    sop_instance_uid: str
    reason: str
    missing: bool  # the study is not one the caller may read (or does not exist)


def _readable(archive: Archive, principal: Principal, study_uid: str) -> bool:
    condition = study_condition(principal, "read")
    stmt = select(Study.pk).where(Study.study_uid == study_uid)
    if condition is not None:
        stmt = stmt.where(condition)
    with archive.db.read() as session:
        return session.execute(stmt).first() is not None


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
        if not _readable(archive, principal, parsed.study_uid):
            out.append(Refused(cls, sop, "no such study", missing=True))
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
