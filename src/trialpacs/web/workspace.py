"""Private workspace routes: the caller's own files, viewer settings and annotations.

The owner is always the caller; there is no URL that names another user's
workspace, except the administrators' delete route, which never returns
content.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from trialpacs.access.policy import Principal
from trialpacs.access.workspace import Entry, Workspaces
from trialpacs.archive import Archive
from trialpacs.web.deps import get_archive, require_identity
from trialpacs.web.dicomweb.body import read_limited

router = APIRouter(tags=["workspace"])
MAX_UPLOAD = 512 * 1024**2
SETTINGS_NAME = "viewer"


def _workspaces(archive: Archive) -> Workspaces:
    return Workspaces(archive.db, archive.store, archive.settings.workspace_quota_bytes)


def _json(entry: Entry) -> dict[str, Any]:
    out = asdict(entry)
    out["updated_at"] = entry.updated_at.isoformat()
    return out


async def _put(
    request: Request, archive: Archive, principal: Principal, kind: str, name: str
) -> Response:
    limit = min(MAX_UPLOAD, archive.settings.workspace_quota_bytes)
    data = await read_limited(request, limit)
    ctype = request.headers.get("content-type", "application/octet-stream")
    entry = await run_in_threadpool(
        _workspaces(archive).put, principal, principal.subject, kind, name, data, ctype
    )
    return JSONResponse(_json(entry), status_code=201)


async def _get(archive: Archive, principal: Principal, kind: str, name: str) -> Response:
    entry, data = await run_in_threadpool(
        _workspaces(archive).get, principal, principal.subject, kind, name
    )
    return Response(
        data,
        media_type=entry.content_type,
        headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"},
    )


async def _list(archive: Archive, principal: Principal, kind: str) -> Response:
    entries = await run_in_threadpool(_workspaces(archive).list, principal, principal.subject, kind)
    return JSONResponse([_json(e) for e in entries])


async def _delete(archive: Archive, principal: Principal, kind: str, name: str) -> Response:
    await run_in_threadpool(_workspaces(archive).delete, principal, principal.subject, kind, name)
    return Response(status_code=204)


@router.get("/workspace/files")
async def list_files(
    archive: Archive = Depends(get_archive), principal: Principal = Depends(require_identity)
) -> Response:
    return await _list(archive, principal, "file")


@router.put("/workspace/files/{name}")
async def upload_file(
    name: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    principal: Principal = Depends(require_identity),
) -> Response:
    return await _put(request, archive, principal, "file", name)


@router.get("/workspace/files/{name}")
async def download_file(
    name: str,
    archive: Archive = Depends(get_archive),
    principal: Principal = Depends(require_identity),
) -> Response:
    return await _get(archive, principal, "file", name)


@router.delete("/workspace/files/{name}")
async def delete_file(
    name: str,
    archive: Archive = Depends(get_archive),
    principal: Principal = Depends(require_identity),
) -> Response:
    return await _delete(archive, principal, "file", name)


@router.get("/workspace/settings")
async def get_settings(
    archive: Archive = Depends(get_archive), principal: Principal = Depends(require_identity)
) -> Response:
    return await _get(archive, principal, "settings", SETTINGS_NAME)


@router.put("/workspace/settings")
async def put_settings(
    request: Request,
    archive: Archive = Depends(get_archive),
    principal: Principal = Depends(require_identity),
) -> Response:
    return await _put(request, archive, principal, "settings", SETTINGS_NAME)


@router.get("/workspace/annotations")
async def list_annotations(
    archive: Archive = Depends(get_archive), principal: Principal = Depends(require_identity)
) -> Response:
    return await _list(archive, principal, "annotation")


@router.put("/workspace/annotations/{name}")
async def put_annotation(
    name: str,
    request: Request,
    archive: Archive = Depends(get_archive),
    principal: Principal = Depends(require_identity),
) -> Response:
    return await _put(request, archive, principal, "annotation", name)


@router.get("/workspace/annotations/{name}")
async def get_annotation(
    name: str,
    archive: Archive = Depends(get_archive),
    principal: Principal = Depends(require_identity),
) -> Response:
    return await _get(archive, principal, "annotation", name)


@router.delete("/workspace/annotations/{name}")
async def delete_annotation(
    name: str,
    archive: Archive = Depends(get_archive),
    principal: Principal = Depends(require_identity),
) -> Response:
    return await _delete(archive, principal, "annotation", name)


@router.get("/workspace/usage")
async def usage(
    archive: Archive = Depends(get_archive), principal: Principal = Depends(require_identity)
) -> dict[str, int]:
    used = await run_in_threadpool(_workspaces(archive).usage, principal, principal.subject)
    return {"used_bytes": used, "quota_bytes": archive.settings.workspace_quota_bytes}


@router.delete("/admin/users/{username}/workspace")
async def delete_user_workspace(
    username: str,
    archive: Archive = Depends(get_archive),
    principal: Principal = Depends(require_identity),
) -> Response:
    """An administrator removes a departed user's workspace without reading it."""
    await run_in_threadpool(_workspaces(archive).delete_all, principal, username)
    return Response(status_code=204)
