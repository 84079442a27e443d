"""STOW-RS (PS3.18 10.5): store instances, answer per instance."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from trialpacs.access.policy import Resource
from trialpacs.access.tokens import Identity
from trialpacs.archive import Archive
from trialpacs.audit.chain import AuditEvent
from trialpacs.dicom.dicomjson import dumps, instance_path
from trialpacs.dicom.uids import require_uid
from trialpacs.errors import Conflict, InvalidInput
from trialpacs.ingest.store import PUBLISHED, Placement, StoreOutcome, store_many
from trialpacs.web.audit import request_template
from trialpacs.web.deps import base_url, get_archive, require_action, require_identity
from trialpacs.web.dicomweb.body import read_limited
from trialpacs.web.errors import UnsupportedMediaType
from trialpacs.web.mediatypes import parse_media_type
from trialpacs.web.multipart import Part, boundary_of, split

router = APIRouter()

# Failure reasons (PS3.18 Table 10.5.3-2 / PS3.4 Annex C status codes).
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP = 0x0111
CANNOT_UNDERSTAND = 0xC000
OUT_OF_RESOURCES = 0xA700
STUDY_MISMATCH = 0xA900
DICOM_JSON = "application/dicom+json"
# A plain STOW-RS stores into the published archive, outside any trial.
PUBLISHED_ARCHIVE = Resource(kind="image", collection="published")


@router.post("/studies")
async def stow_studies(
    request: Request,
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> Response:
    require_action(identity, "store", PUBLISHED_ARCHIVE)
    return await _stow(request, archive, None)


@router.post("/studies/{study}")
async def stow_study(
    study: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> Response:
    require_uid(study, "Study Instance UID in the URL")
    require_action(identity, "store", PUBLISHED_ARCHIVE)
    return await _stow(request, archive, study)


async def _stow(
    request: Request, archive: Archive, study: str | None, placement: Placement = PUBLISHED
) -> Response:
    ctype = request.headers.get("content-type", "")
    media = parse_media_type(ctype)
    if media.type != "multipart/related":
        raise UnsupportedMediaType(
            f'STOW-RS takes multipart/related; type="application/dicom", not {ctype or "nothing"}'
        )
    if media.part_type not in (None, "application/dicom"):
        raise UnsupportedMediaType(
            f"STOW-RS here accepts application/dicom parts; got type={media.part_type}"
        )
    boundary = boundary_of(ctype)
    body = await read_limited(request, archive.settings.max_request_bytes)
    parts = split(body, boundary, archive.settings.max_multipart_parts)
    if not parts:
        raise InvalidInput("the multipart body holds no parts")
    audit = request_template(request, "store.stow-rs")
    result = await run_in_threadpool(store_parts, archive, parts, study, placement, audit)
    base = base_url(request)
    payload = response_dataset(result, base, study)
    if not result.failed:
        status = 200
    elif result.stored:
        status = 202
    else:
        status = 409
    return Response(
        dumps(payload), status_code=status, media_type=DICOM_JSON, headers=warning_headers(result)
    )


class StowResult:
    def __init__(self) -> None:
        self.stored: list[StoreOutcome] = []
        self.failed: list[tuple[str, str, int, str]] = []  # class, instance, reason, text


def store_parts(
    archive: Archive,
    parts: list[Part],
    study: str | None,
    placement: Placement = PUBLISHED,
    audit: AuditEvent | None = None,
) -> StowResult:
    """Store each part on its own: one bad part never affects the others."""
    result = StowResult()
    datas: list[bytes] = []
    for index, part in enumerate(parts, start=1):
        ctype = part.content_type
        ptype = parse_media_type(ctype).type if ctype else "application/dicom"
        if ptype != "application/dicom":
            result.failed.append(
                ("", "", CANNOT_UNDERSTAND, f"part {index} is {ptype}, not application/dicom")
            )
            continue
        datas.append(part.body)
    try:
        outcomes = store_many(
            archive, datas, expected_study=study, placement=placement, audit=audit
        )
    except OSError as exc:
        for data in datas:
            sop_class, sop = _peek_uids(data)
            result.failed.append((sop_class, sop, OUT_OF_RESOURCES, f"storage error: {exc}"))
        return result
    for index, (data, outcome) in enumerate(zip(datas, outcomes, strict=True), start=1):
        if isinstance(outcome, StoreOutcome):
            result.stored.append(outcome)
            continue
        sop_class, sop = _peek_uids(data)
        if isinstance(outcome, Conflict):
            reason = DUPLICATE_SOP
        elif isinstance(outcome, InvalidInput):
            mismatch = "does not match the study" in str(outcome)
            reason = STUDY_MISMATCH if mismatch else CANNOT_UNDERSTAND
        else:
            reason = PROCESSING_FAILURE
        result.failed.append((sop_class, sop, reason, f"instance {index}: {outcome}"))
    return result


def _peek_uids(data: bytes) -> tuple[str, str]:
    """Best-effort SOP UIDs of a refused part, for the FailedSOPSequence."""
    import io

    from pydicom import dcmread

    try:
        ds = dcmread(
            io.BytesIO(data),
            force=True,
            stop_before_pixels=True,
            specific_tags=[0x00080016, 0x00080018],
        )
        return str(ds.get("SOPClassUID", ""))[:64], str(ds.get("SOPInstanceUID", ""))[:64]
    except Exception:
        return "", ""


def response_dataset(result: StowResult, base: str, study: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if study or result.stored:
        study_uid = study or result.stored[0].study_uid
        out["00081190"] = {"vr": "UR", "Value": [f"{base}/studies/{study_uid}"]}
    if result.failed:
        out["00081198"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081150": _ui(sop_class),
                    "00081155": _ui(sop),
                    "00081197": {"vr": "US", "Value": [reason]},
                    # ErrorComment-like free text: which part failed and why.
                    "00000902": {"vr": "LO", "Value": [text[:64]]},
                }
                for sop_class, sop, reason, text in result.failed
            ],
        }
    if result.stored:
        out["00081199"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081150": _ui(o.sop_class_uid),
                    "00081155": _ui(o.sop_uid),
                    "00081190": {
                        "vr": "UR",
                        "Value": [base + instance_path(o.study_uid, o.series_uid, o.sop_uid)],
                    },
                }
                for o in result.stored
            ],
        }
    return out


def warning_headers(result: StowResult) -> dict[str, str]:
    """Full failure reasons, which do not fit the 64-character ErrorComment."""
    if not result.failed:
        return {}
    texts = "; ".join(t for *_, t in result.failed).replace('"', "'")
    clean = texts.encode("latin-1", "replace").decode("latin-1")[:4000]
    return {"Warning": f'299 trialpacs "{clean}"'}


def _ui(value: str) -> dict[str, Any]:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}
