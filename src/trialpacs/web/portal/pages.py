"""Portal pages: worklist, study, upload, QC, reads, audit, workspace, administration.

Thin adapters: each asks the policy (through ``trialpacs.portal`` and the
access package) what the caller may see and renders it. Pages whose data
comes from JSON APIs (QC queue, reads) render a shell that their script
fills from those APIs with the browser's session.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from trialpacs.access.policy import Principal, Resource, decide, visible_scopes
from trialpacs.access.users import list_users
from trialpacs.access.workspace import Workspaces
from trialpacs.audit import exports as audit_exports
from trialpacs.audit.chain import Filter, verify
from trialpacs.dimse.remote_aes import list_all
from trialpacs.errors import InvalidInput
from trialpacs.portal import auditview, uploads, worklist
from trialpacs.records import catalog as record_catalog
from trialpacs.trials.catalog import all_sites, all_trials
from trialpacs.web.portal.render import (
    SECURITY_HEADERS,
    PortalRefusal,
    archive_of,
    caller,
    can_audit,
    menu,
    page,
)

router = APIRouter()
FILTER_FIELDS = ("trial", "site", "subject", "timepoint", "modality", "date_from", "date_to",
                 "status")  # fmt: skip


def _refuse() -> PortalRefusal:
    return PortalRefusal(404, "There is no such page.")


@router.get("/", include_in_schema=False)
async def home(request: Request) -> Response:
    caller(request)
    return RedirectResponse("/worklist", status_code=303)


def _filters(request: Request) -> worklist.Filters:
    q = request.query_params
    values: dict[str, Any] = {k: q.get(k, "").strip() for k in FILTER_FIELDS}
    try:
        values["offset"] = int(q.get("offset", "0") or 0)
        values["limit"] = int(q.get("limit", "50") or 50)
    except ValueError:
        raise InvalidInput("offset and limit must be whole numbers") from None
    return worklist.Filters(**values)


@router.get("/worklist", include_in_schema=False)
async def worklist_page(request: Request) -> Response:
    principal = caller(request)
    try:
        filters = _filters(request)
        result = await run_in_threadpool(
            worklist.search, archive_of(request).db, principal, filters
        )
        error = ""
    except InvalidInput as exc:
        filters, error = worklist.Filters(), str(exc)
        result = worklist.Page([], False, filters)
    context = {
        "page": result,
        "error": error,
        "statuses": worklist.STATUSES,
        "query": {k: v for k, v in asdict(filters).items() if v not in ("", 0) and k != "limit"},
    }
    template = "worklist_rows.html" if request.headers.get("hx-request") else "worklist.html"
    return page(request, template, context, principal=principal, status=400 if error else 200)


@router.get("/studies/{study}", include_in_schema=False)
async def study_page(study: str, request: Request) -> Response:
    principal = caller(request)
    try:
        row, series = await run_in_threadpool(
            worklist.get_study, archive_of(request).db, principal, study
        )
    except Exception as exc:  # NotFound and malformed UIDs alike
        raise _refuse() from exc
    # Records and videos of the study (issue 12): same trial and site, so the same access.
    records = (
        []
        if row.identified or not row.trial
        else await run_in_threadpool(
            record_catalog.list_published, archive_of(request), row.trial, "", study
        )
    )
    context = {"study": row, "series": series, "records": records}
    return page(request, "study.html", context, principal=principal)


@router.get("/upload", include_in_schema=False)
async def upload_page(request: Request) -> Response:
    principal = caller(request)
    found = await run_in_threadpool(uploads.targets, archive_of(request), principal)
    if not found:
        raise _refuse()
    return page(request, "upload.html", {"targets": found}, principal=principal)


@router.get("/upload/status", include_in_schema=False)
async def upload_status(request: Request, trial: str = "", site: str = "") -> Response:
    principal = caller(request)
    counts = await run_in_threadpool(
        uploads.site_status, archive_of(request), principal, trial, site
    )
    if not counts and not any(
        t.trial == trial and t.site == site
        for t in await run_in_threadpool(uploads.targets, archive_of(request), principal)
    ):
        raise _refuse()
    context = {"counts": counts, "trial": trial, "site": site}
    return page(request, "upload_status.html", context, principal=principal)


@router.get("/qc", include_in_schema=False)
async def qc_page(request: Request) -> Response:
    principal = caller(request)
    scopes = visible_scopes(principal, "qc")
    if not scopes:
        raise _refuse()
    trials = sorted({s.trial for s in scopes if s.trial})
    return page(request, "qc.html", {"trials": trials}, principal=principal)


@router.get("/reads", include_in_schema=False)
async def reads_page(request: Request) -> Response:
    principal = caller(request)
    if not menu(archive_of(request), principal).reads:
        raise _refuse()
    return page(request, "reads.html", {}, principal=principal)


def _audit_filter(request: Request) -> Filter:
    q = request.query_params

    def value(name: str) -> str | None:
        return (q.get(name) or "").strip() or None

    return Filter(
        user=value("user"),
        trial=value("trial"),
        site=value("site"),
        action=value("action"),
        object=value("object"),
        since=value("since"),
        until=value("until"),
    )


def _paging(request: Request, default: int) -> tuple[int, int]:
    q = request.query_params
    try:
        return int(q.get("offset", "0") or 0), int(q.get("limit", "") or default)
    except ValueError:
        raise InvalidInput("offset and limit must be whole numbers") from None


def _filter_values(flt: Filter) -> dict[str, Any]:
    """The filter as the form sent it (not the paging and scope the query adds)."""
    names = ("user", "trial", "site", "action", "object", "since", "until")
    return {k: getattr(flt, k) for k in names}


@router.get("/audit", include_in_schema=False)
async def audit_page(request: Request) -> Response:
    principal = caller(request)
    if not can_audit(principal):
        raise _refuse()
    flt = _audit_filter(request)
    error = ""
    db = archive_of(request).db
    try:
        offset, limit = _paging(request, auditview.PAGE_SIZE)
        found = await run_in_threadpool(auditview.page, db, principal, flt, offset, limit)
    except InvalidInput as exc:
        found, error = auditview.AuditPage([], 0, auditview.PAGE_SIZE, False), str(exc)
    context = {
        "entries": found.entries,
        "paging": found,
        "flt": flt,
        "error": error,
        "formats": auditview.FORMATS,
        "query": {k: v for k, v in _filter_values(flt).items() if v},
    }
    template = "audit_rows.html" if request.headers.get("hx-request") else "audit.html"
    return page(request, template, context, principal=principal, status=400 if error else 200)


@router.get("/audit/verify", include_in_schema=False)
async def audit_verify(request: Request) -> Response:
    principal = caller(request)
    if not can_audit(principal):
        raise _refuse()
    result = await run_in_threadpool(verify, archive_of(request).db)
    return page(request, "audit_verify.html", {"result": result}, principal=principal)


@router.get("/audit/export", include_in_schema=False)
async def audit_export(request: Request, format: str = "csv") -> Response:
    principal = caller(request)
    if not can_audit(principal):
        raise _refuse()
    flt = _audit_filter(request)
    media_type = auditview.export_media_type(format)
    pages = await run_in_threadpool(auditview.export_pages, archive_of(request).db, principal, flt)
    suffix = {"fhir": "fhir.json", "atna": "atna.xml"}.get(format, format)
    headers = {
        **SECURITY_HEADERS,
        "Content-Disposition": f'attachment; filename="audit.{suffix}"',
    }
    return StreamingResponse(
        audit_exports.stream(format, pages), media_type=media_type, headers=headers
    )


@router.get("/workspace", include_in_schema=False)
async def workspace_page(request: Request) -> Response:
    principal = caller(request)
    archive = archive_of(request)
    spaces = Workspaces(archive.db, archive.store, archive.settings.workspace_quota_bytes)

    def load() -> dict[str, Any]:
        return {
            "files": spaces.list(principal, principal.subject, "file"),
            "annotations": spaces.list(principal, principal.subject, "annotation"),
            "quota": archive.settings.workspace_quota_bytes,
        }

    return page(request, "workspace.html", await run_in_threadpool(load), principal=principal)


@router.get("/admin", include_in_schema=False)
async def admin_page(request: Request) -> Response:
    principal = caller(request)
    archive = archive_of(request)
    if not menu(archive, principal).admin:
        raise _refuse()
    everything = principal.is_global_admin()

    def load() -> dict[str, Any]:
        trials = [
            t for t in all_trials(archive.db)
            if everything or _manages(principal, t.trial_id)
        ]  # fmt: skip
        return {
            "trials": trials,
            "sites": all_sites(archive.db) if everything else [],
            "aes": list_all(archive.db) if everything else [],
            "users": list_users(archive.db) if everything else [],
            "done": bool(request.query_params.get("done")),
        }

    return page(request, "admin.html", await run_in_threadpool(load), principal=principal)


def _manages(principal: Principal, trial: str) -> bool:
    return decide(principal, "manage", Resource("admin", trial))
