"""Research export routes for the portal: thin JSON adapters over trialpacs.exports.

Who may do what is the policy's ``export`` action (data manager, administrator);
anyone else gets the same 404 as for a cohort that does not exist. A bucket
outside the trial's regions is refused with 403 and the reason. Local
directories are not offered here (no client-supplied paths): the API
exports to an allowed S3 bucket or to a download link.
"""

from __future__ import annotations

import logging
import threading
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
    PreparedExport,
    execute_export,
    export_history,
    get_export,
    load_cohort,
    prepare_export,
)
from trialpacs.exports.saved import list_cohorts, save_cohort
from trialpacs.exports.select import counts, resolve
from trialpacs.trials import catalog
from trialpacs.web.deps import get_archive, require_identity

router = APIRouter(tags=["exports"])
log = logging.getLogger(__name__)


class CohortIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    definition: dict[str, Any]


class ExportIn(BaseModel):
    cohort: str = Field(min_length=1, max_length=80)
    destination: str = Field(min_length=1, max_length=1024)
    nifti: bool = False
    wait: bool = False


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


@router.post("/api/exports", status_code=202)
async def start_export(
    body: ExportIn,
    request: Request,
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> Response:
    """Checks happen now (404, 403, 400); the package is written in the background
    (``GET /api/exports`` shows its state), or before answering with ``"wait": true``."""

    def prepare() -> PreparedExport:
        return prepare_export(
            archive,
            identity,
            body.cohort,
            body.destination,
            ExportOptions(nifti=body.nifti),
            allow_local=False,
        )

    try:
        job = await run_in_threadpool(prepare)
    except DestinationRefused as exc:
        return JSONResponse({"detail": str(exc)}, status_code=403)
    if body.wait:
        result = await run_in_threadpool(execute_export, job)
        out = result.to_mapping() | {"state": "done"}
        out |= _link(request, result.export_id, result.destination_kind, identity.subject)
        return JSONResponse(out, status_code=201)
    threading.Thread(
        target=_background, args=(job,), name=f"export-{job.result.export_id[:8]}", daemon=True
    ).start()
    out = job.result.to_mapping() | {"state": "running", "series": len(job.series)}
    return JSONResponse(out, status_code=202)


def _background(job: PreparedExport) -> None:
    try:
        execute_export(job)
    except Exception:  # recorded as failed in the history and the audit trail
        log.exception("export %s failed", job.result.export_id)


def _link(request: Request, export_id: str, kind: str, subject: str) -> dict[str, Any]:
    if kind != DOWNLOAD:
        return {}
    link = links.issue(request.app.state.auth.signer, export_id, subject)
    return {
        "download_url": f"/api/exports/{export_id}/download?token={link.token}",
        "expires_in": link.expires_in,
    }


@router.get("/api/exports")
async def history(
    request: Request,
    archive: Archive = Depends(get_archive),
    identity: Identity = Depends(require_identity),
) -> list[dict[str, Any]]:
    """Exports of the caller's trials, newest first; finished downloads carry a fresh link."""

    def run() -> list[dict[str, Any]]:
        trials = [t.trial_id for t in catalog.all_trials(archive.db)]
        allowed = exportable_trials(identity, trials)
        if not allowed and not identity.is_global_admin():
            raise ExportRefused("not found")
        rows = export_history(archive, None if identity.is_global_admin() else allowed)
        for row in rows:
            if row["state"] == "done":
                row |= _link(request, row["export_id"], row["destination_kind"], identity.subject)
        return rows

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
