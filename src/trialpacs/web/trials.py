"""Trial routes: quarantine STOW-RS, identified QIDO for PHI roles, pipeline status.

``/dicomweb/trials/{trial}/sites/{site}/studies`` takes identified data into
the site's quarantine; the published archive under ``/dicomweb/studies`` never
shows it. Searching identified data needs a role with PHI access at the site;
anyone else gets the same 404 as for a trial that does not exist.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from trialpacs.access.policy import Resource, decide, visible_scopes
from trialpacs.access.tokens import Identity
from trialpacs.archive import Archive
from trialpacs.dicom.dicomjson import dumps
from trialpacs.errors import NotFound
from trialpacs.index.qido import Query, search
from trialpacs.pipeline.status import pipeline_status
from trialpacs.trials.backends import ResidencyViolation
from trialpacs.trials.intake import site_placement
from trialpacs.trials.models import QUARANTINE
from trialpacs.trials.routing import route_trial_site
from trialpacs.web.deps import get_archive, require_action, require_identity
from trialpacs.web.dicomweb import stow

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
    try:
        placement = await run_in_threadpool(site_placement, archive, trial, site)
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
