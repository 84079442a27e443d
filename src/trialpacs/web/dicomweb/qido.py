"""QIDO-RS routes (PS3.18 10.6): thin adapters over trialpacs.index.qido."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from trialpacs.archive import Archive
from trialpacs.dicom.dicomjson import dumps
from trialpacs.dicom.uids import require_uid
from trialpacs.index.qido import Level, Query, search
from trialpacs.web.deps import Visible, get_archive, visible_studies
from trialpacs.web.errors import NotAcceptable
from trialpacs.web.mediatypes import matches, parse_accept

router = APIRouter()
DICOM_JSON = "application/dicom+json"


def _check_accept(request: Request) -> None:
    for media in parse_accept(request.headers.get("accept")):
        if any(matches(media.type, t) for t in (DICOM_JSON, "application/json")):
            return
    raise NotAcceptable("QIDO-RS answers in application/dicom+json only")


async def _run(
    request: Request,
    archive: Archive,
    visible: Visible,
    level: Level,
    study: str | None = None,
    series: str | None = None,
) -> Response:
    _check_accept(request)
    if study is not None:
        require_uid(study, "Study Instance UID in the URL")
    if series is not None:
        require_uid(series, "Series Instance UID in the URL")
    query = Query.from_params(
        level,
        request.query_params.multi_items(),
        study_uid=study,
        series_uid=series,
        max_limit=archive.settings.qido_max_results,
    )
    query = dataclasses.replace(query, visible=visible)

    def run() -> tuple[bytes, bool]:
        with archive.db.read() as session:
            result = search(session, query)
        return dumps(result.items), result.more

    body, more = await run_in_threadpool(run)
    headers = {}
    if more:
        headers["Warning"] = '299 trialpacs "There are additional results that can be requested"'
    return Response(body, media_type=DICOM_JSON, headers=headers)


@router.get("/studies")
async def studies(
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    return await _run(request, archive, visible, "study")


@router.get("/series")
async def all_series(
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    return await _run(request, archive, visible, "series")


@router.get("/instances")
async def all_instances(
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    return await _run(request, archive, visible, "instance")


@router.get("/studies/{study}/series")
async def study_series(
    study: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    return await _run(request, archive, visible, "series", study=study)


@router.get("/studies/{study}/instances")
async def study_instances(
    study: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    return await _run(request, archive, visible, "instance", study=study)


@router.get("/studies/{study}/series/{series}/instances")
async def series_instances(
    study: str,
    series: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    visible: Visible = Depends(visible_studies),
) -> Response:
    return await _run(request, archive, visible, "instance", study=study, series=series)
