"""WADO-URI (PS3.18 9): one object by query parameters, as DICOM or a rendered image."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from trialpacs.archive import Archive
from trialpacs.dicom import frames as frames_mod
from trialpacs.dicom.render import RenderOptions, render
from trialpacs.dicom.transcode import EXPLICIT_LE, to_explicit_le
from trialpacs.dicom.uids import require_uid
from trialpacs.errors import InvalidInput, NotFound
from trialpacs.index import lookup
from trialpacs.web.deps import Visible, get_archive, visible_studies
from trialpacs.web.errors import NotAcceptable

router = APIRouter()


@router.get("/wado")
async def wado_uri(
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    q = request.query_params
    if q.get("requestType") != "WADO":
        raise InvalidInput("requestType must be WADO")
    study = require_uid(q.get("studyUID"), "studyUID")
    series = require_uid(q.get("seriesUID"), "seriesUID")
    sop = require_uid(q.get("objectUID"), "objectUID")
    content_types = [c.strip() for c in (q.get("contentType") or "image/jpeg").split(",")]
    content_type = next(
        (
            c
            for c in content_types
            if c in ("application/dicom", "image/jpeg", "image/png", "image/gif")
        ),
        None,
    )
    if content_type is None:
        raise NotAcceptable(f"contentType {content_types[0]!r} is not offered")
    frame = _int(q.get("frameNumber"), "frameNumber", 1)

    def run() -> bytes:
        with archive.db.read() as session:
            refs = lookup.instances(session, study, series, sop, visible=visible)
        if not refs:
            raise NotFound("no such instance")
        ref = refs[0]
        data = archive.store.get(ref.blob_key)
        if content_type == "application/dicom":
            wanted = q.get("transferSyntax")
            if wanted in (None, "", ref.transfer_syntax):
                return data
            if wanted == EXPLICIT_LE:
                return to_explicit_le(data, ref.transfer_syntax)
            raise NotAcceptable(f"transferSyntax {wanted} is not offered")
        window = None
        if q.get("windowCenter") and q.get("windowWidth"):
            window = (
                _float(q.get("windowCenter"), "windowCenter"),
                _float(q.get("windowWidth"), "windowWidth"),
                "linear",
            )
        rows = _int(q.get("rows"), "rows", 0)
        cols = _int(q.get("columns"), "columns", 0)
        viewport = (cols or rows, rows or cols) if rows or cols else None
        options = RenderOptions(
            media_type=content_type,
            window=window,
            viewport=viewport,
            quality=_int(q.get("imageQuality"), "imageQuality", 90),
        )
        return render(frames_mod.load(data), frame, options)

    body = await run_in_threadpool(run)
    return Response(body, media_type=content_type)


def _int(raw: str | None, name: str, default: int) -> int:
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number") from None


def _float(raw: str | None, name: str) -> float:
    try:
        return float(raw or "")
    except ValueError:
        raise InvalidInput(f"{name} must be a number") from None
