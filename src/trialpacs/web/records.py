"""Record routes: site upload into quarantine, published listing, original-format download.

``POST /api/trials/{trial}/sites/{site}/records`` (multipart: ``file`` plus
patient and visit fields) is the coordinator's upload: the same ``store``
permission on identified data as STOW-RS to the site. ``GET
/api/trials/{trial}/records`` lists the published records a caller may read
(an empty list when none, like QIDO);
``GET /api/records/{sop}/download`` gives one in its original format (PDF,
HL7, FHIR JSON, text, MP4), a single byte range of it when asked (a
``<video>`` seeking). A refused caller gets the answer of a missing object,
with or without ``Range``. The audit middleware records every request.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from trialpacs.access.policy import Resource, decide
from trialpacs.access.tokens import Identity
from trialpacs.archive import Archive
from trialpacs.dicom.uids import require_uid
from trialpacs.errors import InvalidInput
from trialpacs.records import catalog
from trialpacs.records.export import Original
from trialpacs.records.identity import PatientIdentity
from trialpacs.records.intake import Intake, take_in
from trialpacs.records.mp4cache import OpenVideo, cache_for, serve
from trialpacs.trials.backends import ResidencyViolation
from trialpacs.trials.routing import route_trial_site
from trialpacs.web.deps import get_archive, require_action, require_identity
from trialpacs.web.ranges import ranged_file_response, ranged_response

router = APIRouter(tags=["records"])
READ_CHUNK = 1 << 20


async def _read(upload: UploadFile, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while chunk := await upload.read(READ_CHUNK):
        size += len(chunk)
        if limit and size > limit:
            raise InvalidInput(f"the file is larger than the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


@router.post("/api/trials/{trial}/sites/{site}/records", status_code=201)
async def upload_record(
    trial: str,
    site: str,
    file: UploadFile = File(...),
    patient_id: str = Form(""),
    patient_name: str = Form(""),
    birth_date: str = Form(""),
    sex: str = Form(""),
    issuer: str = Form(""),
    study_uid: str = Form(""),
    time_point: str = Form(""),
    description: str = Form(""),
    modality: str = Form(""),
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> Response:
    require_action(identity, "store", Resource("image", trial, site, "identified"))
    await run_in_threadpool(route_trial_site, archive, trial, site)
    data = await _read(file, archive.settings.max_instance_bytes)
    patient = (
        PatientIdentity(patient_id, patient_name, birth_date, sex, issuer) if patient_id else None
    )
    intake = Intake(patient, study_uid, time_point, description, modality)
    try:
        result = await run_in_threadpool(
            take_in, archive, trial, site, data, file.filename or "", intake
        )
    except ResidencyViolation as exc:
        return JSONResponse({"detail": str(exc)}, status_code=403)
    return JSONResponse(
        {
            "format": result.format.value,
            "study_uid": result.study_uid,
            "series_uid": result.series_uid,
            "sop_uid": result.sop_uid,
        },
        status_code=201,
    )


@router.get("/api/trials/{trial}/records")
async def list_records(
    trial: str,
    subject: str = "",
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> Response:
    def run() -> list[dict[str, str]]:
        entries = catalog.list_published(archive, trial, subject)
        visible = [
            e
            for e in entries
            if decide(identity, "read", Resource("image", trial, e.site_id or None, "published"))
        ]
        return [
            {
                "sop_uid": e.sop_uid,
                "study_uid": e.study_uid,
                "series_uid": e.series_uid,
                "subject": e.subject,
                "site": e.site_id,
                "kind": e.kind,
                "sop_class_uid": e.sop_class_uid,
                "download": f"/api/records/{e.sop_uid}/download",
            }
            for e in visible
        ]

    return JSONResponse(await run_in_threadpool(run))


@router.get("/api/records/{sop}/download")
async def download_record(
    sop: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> Response:
    require_uid(sop, "SOP Instance UID in the URL")

    def run() -> Original | OpenVideo:
        trial, site, key, store = catalog.locate(archive, sop)
        require_action(identity, "read", Resource("image", trial, site, "published"))
        return serve(
            cache_for(archive.settings.data_dir),
            key,
            lambda: catalog.original(archive, key, store),
        )

    got = await run_in_threadpool(run)
    if isinstance(got, OpenVideo):
        v = got.video
        disposition = {"Content-Disposition": f'attachment; filename="{v.filename}"'}
        return ranged_file_response(request, got.fh, v.size, v.media_type, v.etag, disposition)
    return ranged_response(
        request,
        got.data,
        got.media_type,
        {"Content-Disposition": f'attachment; filename="{got.filename}"'},
    )
