"""``POST /api/measurements``: the viewer's STOW-RS of a report, kept in the reader's workspace."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from trialpacs.access.policy import Principal
from trialpacs.archive import Archive
from trialpacs.errors import InvalidInput, NotFound
from trialpacs.portal.measurements import MAX_REPORT_BYTES, Refused, Saved, save_reports
from trialpacs.web import multipart
from trialpacs.web.deps import get_archive, require_identity
from trialpacs.web.dicomweb.body import read_limited

router = APIRouter(tags=["portal"])
MAX_PARTS = 20
PROCESSING_FAILURE = 0x0110


def _ui(value: str) -> dict[str, Any]:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


@router.post("/api/measurements")
async def save_measurements(
    request: Request,
    archive: Archive = Depends(get_archive),
    principal: Principal = Depends(require_identity),
) -> Response:
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/related"):
        raise InvalidInput("send the report as multipart/related; type=application/dicom")
    body = await read_limited(request, MAX_REPORT_BYTES * MAX_PARTS)
    parts = multipart.split(body, multipart.boundary_of(ctype), max_parts=MAX_PARTS)
    results = await run_in_threadpool(save_reports, archive, principal, [p.body for p in parts])
    saved = [r for r in results if isinstance(r, Saved)]
    refused = [r for r in results if isinstance(r, Refused)]
    if not saved and refused and all(r.missing for r in refused):
        raise NotFound("no such study")
    answer: dict[str, Any] = {}
    if saved:
        answer["00081199"] = {"vr": "SQ", "Value": [
            {"00081150": _ui(s.sop_class_uid), "00081155": _ui(s.sop_instance_uid)}
            for s in saved
        ]}  # fmt: skip
    if refused:
        answer["00081198"] = {"vr": "SQ", "Value": [
            {"00081150": _ui(r.sop_class_uid), "00081155": _ui(r.sop_instance_uid),
             "00081197": {"vr": "US", "Value": [PROCESSING_FAILURE]}}
            for r in refused
        ]}  # fmt: skip
    status = 200 if not refused else (202 if saved else 409)
    return JSONResponse(answer, status_code=status, media_type="application/dicom+json")
