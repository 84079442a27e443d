"""Research export routes for the portal: thin JSON adapters over trialpacs.exports.

Who may do what is the policy's ``export`` action (data manager, administrator);
anyone else gets the same 404 as for a cohort that does not exist. A bucket
outside the trial's regions is refused with 403 and the reason. Local
directories are not offered here (no client-supplied paths): the API
exports to an allowed S3 bucket or to a download link.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from trialpacs.access.policy import Principal
from trialpacs.access.tokens import Identity
from trialpacs.archive import Archive
from trialpacs.exports import links
from trialpacs.exports.cohort import CohortDefinition
from trialpacs.exports.destinations import DOWNLOAD, DestinationRefused, staging_dir
from trialpacs.exports.governance import (
    ExportRefused,
    exportable_trials,
    may_export_trial,
    require_sites,
    require_trial,
)
from trialpacs.exports.job import (
    ExportOptions,
    export_history,
    get_export,
    load_cohort,
    run_export,
)
from trialpacs.exports.saved import list_cohorts, save_cohort
from trialpacs.exports.select import counts, resolve
from trialpacs.trials import catalog
from trialpacs.web.deps import get_archive, require_identity

router = APIRouter(tags=["exports"])


class CohortIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    definition: dict[str, Any]


class ExportIn(BaseModel):
    cohort: str = Field(min_length=1, max_length=80)
    destination: str = Field(min_length=1, max_length=1024)
    nifti: bool = False


def _require_trial(archive: Archive, principal: Principal, trial_id: str) -> None:
    """An unknown trial and a refused one answer alike."""
    require_trial(principal, trial_id)
    if catalog.get_trial(archive.db, trial_id) is None:
        raise ExportRefused(f"no cohort or trial {trial_id!r} to export")


@router.post("/api/cohorts", status_code=201)
async def save(
    body: CohortIn,
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        definition = CohortDefinition.from_mapping(body.definition)
        _require_trial(archive, identity, definition.trial)
        return save_cohort(archive.db, body.name, definition, identity.subject).to_mapping()

    return await run_in_threadpool(run)


@router.get("/api/cohorts")
async def cohorts(
    all_versions: bool = False,
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> list[dict[str, Any]]:
    def run() -> list[dict[str, Any]]:
        return [
            c.to_mapping()
            for c in list_cohorts(archive.db, all_versions=all_versions)
            if may_export_trial(identity, c.definition.trial)
        ]

    return await run_in_threadpool(run)


@router.get("/api/cohorts/{cohort}/preview")
async def preview(
    cohort: str,
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        saved = load_cohort(archive, identity, cohort)
        series = resolve(archive, saved.definition)
        require_sites(identity, saved.definition.trial, {s.site_id for s in series})
        return {"cohort": saved.to_mapping(), "counts": counts(series).to_mapping()}

    return await run_in_threadpool(run)


@router.post("/api/exports", status_code=201)
async def start_export(
    body: ExportIn,
    request: Request,
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> Response:
    def run() -> dict[str, Any]:
        result = run_export(
            archive,
            identity,
            body.cohort,
            body.destination,
            ExportOptions(nifti=body.nifti),
            allow_local=False,
        )
        out = result.to_mapping()
        if result.destination_kind == DOWNLOAD:
            link = links.issue(request.app.state.auth.signer, result.export_id, identity.subject)
            out["download_url"] = f"/api/exports/{result.export_id}/download?token={link.token}"
            out["expires_in"] = link.expires_in
        return out

    try:
        return JSONResponse(await run_in_threadpool(run), status_code=201)
    except DestinationRefused as exc:
        return JSONResponse({"detail": str(exc)}, status_code=403)


@router.get("/api/exports")
async def history(
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> list[dict[str, Any]]:
    def run() -> list[dict[str, Any]]:
        trials = [t.trial_id for t in catalog.all_trials(archive.db)]
        allowed = exportable_trials(identity, trials)
        if not allowed and not identity.is_global_admin():
            raise ExportRefused("not found")
        return export_history(archive, None if identity.is_global_admin() else allowed)

    return await run_in_threadpool(run)


@router.get("/api/exports/{export}/download")
async def download(
    export: str,
    request: Request,
    token: str | None = None,
    archive: Archive = Depends(get_archive),
) -> Response:
    """With the link's token, or with the caller's own credentials; else like missing."""
    missing = ExportRefused(f"no export {export!r} to download")
    if token is None:
        principal: Principal = require_identity(request)
    else:
        subject = links.check(request.app.state.auth.signer, token, export)
        if subject is None:
            raise missing
        principal = Principal(subject, kind="user")
        request.state.principal = principal
    row = await run_in_threadpool(get_export, archive, export) if export.isalnum() else None
    if row is None or row.destination_kind != DOWNLOAD or row.state != "done":
        raise missing
    if token is None and not may_export_trial(principal, row.trial_id):
        raise missing
    root = staging_dir(archive, export)
    if not root.is_dir():
        raise missing
    name = f"{row.cohort_name}-v{row.cohort_version}-{export[:8]}"
    return StreamingResponse(
        links.zip_stream(root, name),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}.zip"'},
    )


__all__ = ["router"]
