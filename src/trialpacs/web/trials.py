"""Trial routes: quarantine STOW-RS, identified QIDO/WADO for PHI roles, pipeline status.

``/dicomweb/trials/{trial}/sites/{site}/studies`` takes identified data into
the site's quarantine; the published archive under ``/dicomweb/studies`` never
shows it. Searching and reading identified data below that prefix (QIDO of
studies, series, instances; WADO-RS instance and metadata) needs a role with
PHI access at the site; anyone else gets the same 404 as for a trial that
does not exist, and QIDO under a study answers like the published QIDO
(an empty list for a study that is not there).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import ColumnElement, and_, select
from starlette.concurrency import run_in_threadpool

from trialpacs.access.policy import Resource, decide, visible_scopes
from trialpacs.access.tokens import Identity
from trialpacs.archive import Archive
from trialpacs.dicom.dicomjson import dumps
from trialpacs.dicom.transcode import EXPLICIT_LE, to_explicit_le
from trialpacs.dicom.uids import require_uid
from trialpacs.errors import NotFound
from trialpacs.index import lookup
from trialpacs.index.models import Instance, Series, Study
from trialpacs.index.qido import Level, Query, search
from trialpacs.pipeline.status import pipeline_status
from trialpacs.trials import backends
from trialpacs.trials.backends import ResidencyViolation
from trialpacs.trials.intake import site_placement
from trialpacs.trials.models import QUARANTINE
from trialpacs.trials.routing import route_trial_site
from trialpacs.web import multipart
from trialpacs.web.deps import base_url, get_archive, require_action, require_identity
from trialpacs.web.dicomweb import stow, wado
from trialpacs.web.errors import NotAcceptable

STUDY_UID = "0020000D"
SERIES_UID = "0020000E"
DICOM_JSON = "application/dicom+json"

router = APIRouter()


@router.post("/dicomweb/trials/{trial}/sites/{site}/studies", tags=["trials"])
async def stow_site(
    trial: str,
    site: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> Response:
    require_action(identity, "store", _identified(trial, site))
    # ?timepoint=V1 names the visit of every study in the request.
    timepoint = request.query_params.get("timepoint")
    try:
        placement = await run_in_threadpool(site_placement, archive, trial, site, timepoint)
    except ResidencyViolation as exc:
        return JSONResponse({"detail": str(exc)}, status_code=403)
    return await stow._stow(request, archive, None, placement)


@router.get("/dicomweb/trials/{trial}/sites/{site}/studies", tags=["trials"])
async def search_identified(
    trial: str,
    site: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> Response:
    def run() -> bytes:
        route_trial_site(archive, trial, site)
        if not decide(identity, "read", _identified(trial, site)):
            raise NotFound(f"no site {site!r} enrolled in a trial {trial!r}")
        base = Query.from_params(
            "study",
            request.query_params.multi_items(),
            max_limit=archive.settings.qido_max_results,
        )
        query = Query(
            level="study",
            matches=base.matches,
            fuzzy=base.fuzzy,
            limit=base.limit,
            offset=base.offset,
            include=base.include,
            include_all=base.include_all,
            collection=QUARANTINE,
            trial_id=trial,
            site_id=site,
        )
        with archive.db.read() as session:
            return dumps(search(session, query).items)

    body = await run_in_threadpool(run)
    return Response(body, media_type="application/dicom+json")


_PREFIX = "/dicomweb/trials/{trial}/sites/{site}/studies"


def _require_phi(archive: Archive, identity: Identity, trial: str, site: str) -> None:
    """Unknown trial/site and refused caller answer alike (404)."""
    route_trial_site(archive, trial, site)
    if not decide(identity, "read", _identified(trial, site)):
        raise NotFound(f"no site {site!r} enrolled in a trial {trial!r}")


def _identified_search(
    archive: Archive,
    identity: Identity,
    request: Request,
    trial: str,
    site: str,
    level: Level,
    uids: dict[str, str],
) -> bytes:
    _require_phi(archive, identity, trial, site)
    for uid in uids.values():
        require_uid(uid, "UID in the URL")
    base = Query.from_params(
        level, request.query_params.multi_items(), max_limit=archive.settings.qido_max_results
    )
    query = Query(
        level=level,
        matches={**base.matches, **uids},
        fuzzy=base.fuzzy,
        limit=base.limit,
        offset=base.offset,
        include=base.include,
        include_all=base.include_all,
        collection=QUARANTINE,
        trial_id=trial,
        site_id=site,
    )
    with archive.db.read() as session:
        return dumps(search(session, query).items)


@router.get(_PREFIX + "/{study}/series", tags=["trials"])
async def search_identified_series(
    trial: str,
    site: str,
    study: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> Response:
    body = await run_in_threadpool(
        _identified_search, archive, identity, request, trial, site, "series", {STUDY_UID: study}
    )
    return Response(body, media_type=DICOM_JSON)


@router.get(_PREFIX + "/{study}/series/{series}/instances", tags=["trials"])
async def search_identified_instances(
    trial: str,
    site: str,
    study: str,
    series: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> Response:
    uids = {STUDY_UID: study, SERIES_UID: series}
    body = await run_in_threadpool(
        _identified_search, archive, identity, request, trial, site, "instance", uids
    )
    return Response(body, media_type=DICOM_JSON)


def _site_condition(trial: str, site: str) -> ColumnElement[bool]:
    return and_(Study.trial_id == trial, Study.site_id == site)


async def _identified_metadata(
    request: Request,
    archive: Archive,
    identity: Identity,
    trial: str,
    site: str,
    study: str,
    series: str | None = None,
    sop: str | None = None,
) -> Response:
    """Bulk data URIs point under this prefix, where ``web.identified_wado``
    serves them to the same callers."""
    wado._uids(study, series, sop)
    wado._check_json_accept(request)
    base = f"{base_url(request)}/trials/{trial}/sites/{site}"

    def run() -> bytes:
        _require_phi(archive, identity, trial, site)
        with archive.db.read() as session:
            docs = list(
                lookup.metadata_documents(
                    session,
                    study,
                    series,
                    sop,
                    collection=QUARANTINE,
                    visible=_site_condition(trial, site),
                )
            )
        if not docs:
            raise NotFound("no such " + ("instance" if sop else "series" if series else "study"))
        return lookup.metadata_array(iter(docs), base)

    body = await run_in_threadpool(run)
    return Response(body, media_type=DICOM_JSON)


@router.get(_PREFIX + "/{study}/metadata", tags=["trials"])
async def identified_study_metadata(
    trial: str,
    site: str,
    study: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> Response:
    return await _identified_metadata(request, archive, identity, trial, site, study)


@router.get(_PREFIX + "/{study}/series/{series}/metadata", tags=["trials"])
async def identified_series_metadata(
    trial: str,
    site: str,
    study: str,
    series: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> Response:
    return await _identified_metadata(request, archive, identity, trial, site, study, series)


@router.get(_PREFIX + "/{study}/series/{series}/instances/{sop}/metadata", tags=["trials"])
async def identified_instance_metadata(
    trial: str,
    site: str,
    study: str,
    series: str,
    sop: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> Response:
    return await _identified_metadata(request, archive, identity, trial, site, study, series, sop)


@router.get(_PREFIX + "/{study}/series/{series}/instances/{sop}", tags=["trials"])
async def identified_instance(
    trial: str,
    site: str,
    study: str,
    series: str,
    sop: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> Response:
    """One identified instance as stored, from its site's backend."""
    wado._uids(study, series, sop)
    choice = wado.choose_dicom(request.headers.get("accept"))

    def run() -> tuple[bytes, str]:
        _require_phi(archive, identity, trial, site)
        with archive.db.read() as session:
            row = session.execute(
                select(Instance.blob_key, Instance.store, Instance.transfer_syntax)
                .join(Series, Series.pk == Instance.series_pk)
                .join(Study, Study.pk == Instance.study_pk)
                .where(
                    Study.collection == QUARANTINE,
                    _site_condition(trial, site),
                    Study.study_uid == study,
                    Series.series_uid == series,
                    Instance.sop_uid == sop,
                )
            ).first()
        if row is None:
            raise NotFound("no such instance")
        blob_key, store_name, ts = row
        if choice.target not in (None, ts, EXPLICIT_LE):
            raise NotAcceptable(f"this instance is stored as {ts}; request transfer-syntax=*")
        data = backends.registry(archive).store(store_name).get(blob_key)
        if choice.target == EXPLICIT_LE and ts != EXPLICIT_LE:
            return to_explicit_le(data, ts), EXPLICIT_LE
        return data, ts

    data, ts = await run_in_threadpool(run)
    boundary = multipart.new_boundary()
    part = f"application/dicom; transfer-syntax={ts}"
    body = b"".join(multipart.stream(iter([(part, data)]), boundary))
    ctype = multipart.content_type(boundary, "application/dicom", choice.target or None)
    return Response(body, media_type=ctype)


@router.get("/api/pipeline/status", tags=["trials"])
async def status(
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> dict[str, Any]:
    if not visible_scopes(identity, "qc"):  # the QC/pipeline view of some trial
        raise NotFound("not found")
    return await run_in_threadpool(pipeline_status, archive)


def _identified(trial: str, site: str) -> Resource:
    return Resource(kind="image", trial=trial, site=site, collection="identified")
