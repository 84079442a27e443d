"""The monitor's HTTP view of the audit trail: search, verify, export.

A thin adapter: who may read which part of the trail comes from
``policy.other_scopes(principal, "audit")`` (administrator: all of it;
``monitor@T``: the entries of trial T, i.e. naming T or a study the index
places in T); the query, chain check and export formats live in
``trialpacs.audit``. A caller with no audit grant gets the 404 of a missing
route. Every read is itself an entry (``audit.read``, ``audit.verify``,
``audit.export``) with the filters used, on top of the request entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from trialpacs.access.policy import Principal, other_scopes
from trialpacs.archive import Archive
from trialpacs.audit import checkpoints, exports
from trialpacs.audit.chain import AuditEvent, Filter, query, record, verify
from trialpacs.errors import InvalidInput, NotFound
from trialpacs.web.deps import get_archive, require_identity

router = APIRouter(prefix="/api/audit", tags=["audit"])
PAGE = 1000
MAX_LIMIT = 1000


def _scopes(principal: Principal) -> list[tuple[str | None, str | None]] | None:
    scopes = other_scopes(principal, "audit")
    if not scopes:
        raise NotFound("not found")
    if any(s.trial is None and s.site is None for s in scopes):
        return None
    return [(s.trial, s.site) for s in scopes]


def _filter(
    user: str | None = Query(None, max_length=128),
    trial: str | None = Query(None, max_length=64),
    site: str | None = Query(None, max_length=64),
    action: str | None = Query(None, max_length=128),
    object: str | None = Query(None, max_length=256),
    since: str | None = Query(None, max_length=40),
    until: str | None = Query(None, max_length=40),
) -> Filter:
    for name, value in (("since", since), ("until", until)):
        if value:
            try:
                from trialpacs.audit.chain import _iso_bound

                _iso_bound(value)
            except ValueError:
                raise InvalidInput(f"{name} must be an ISO date or time, got {value!r}") from None
    return Filter(user, trial, site, action, object, since, until)


def _shown(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry as stored, detail decoded, and a signature's manifestation spelled out."""
    out = dict(entry)
    out["detail"] = json.loads(entry["detail"]) if entry.get("detail") else {}
    if entry["action"] == "signature.sign" and entry["outcome"] == "success":
        manifest = out["detail"].get("manifest", {})
        out["signature"] = {
            "manifestation": entry["new_value"],
            "printed_name": manifest.get("printed_name"),
            "meaning": manifest.get("meaning"),
            "signed_at": manifest.get("signed_at"),
            "record": f"{manifest.get('record_kind')}:{manifest.get('record_id')}",
        }
    return out


def _reader_event(principal: Principal, action: str, detail: dict[str, Any]) -> AuditEvent:
    return AuditEvent(
        action=action,
        actor=principal.subject,
        roles=[str(g) for g in principal.grants],
        agent="api",
        detail={k: v for k, v in detail.items() if v not in (None, "", 0)},
    )


@router.get("")
async def search(
    flt: Filter = Depends(_filter),
    limit: int = Query(100, ge=1, le=MAX_LIMIT),
    offset: int = Query(0, ge=0),
    archive: Archive = Depends(get_archive),
    principal: Principal = Depends(require_identity),
) -> dict[str, Any]:
    flt.scopes = _scopes(principal)
    flt.limit, flt.offset = limit, offset
    rows = await run_in_threadpool(query, archive.db, flt)
    detail = {**vars(flt), "scopes": None, "returned": len(rows)}
    await run_in_threadpool(record, archive.db, _reader_event(principal, "audit.read", detail))
    return {"entries": [_shown(r) for r in rows], "limit": limit, "offset": offset}


@router.get("/verify")
async def verify_chain(
    archive: Archive = Depends(get_archive),
    principal: Principal = Depends(require_identity),
) -> dict[str, Any]:
    """Chain and checkpoint check (hashes only: it reveals no entry's content)."""
    _scopes(principal)
    result = await run_in_threadpool(verify, archive.db)
    problems = await run_in_threadpool(checkpoints.check, archive.db)
    await run_in_threadpool(
        record, archive.db, _reader_event(principal, "audit.verify", {"ok": result.ok})
    )
    broken = result.broken
    return {
        "ok": result.ok and not problems,
        "entries": result.entries,
        "head": result.last_hash,
        "first_broken": None if broken is None else {"seq": broken.seq, "reason": broken.reason},
        "checkpoint_problems": problems,
    }


@router.get("/export")
async def export(
    format: str = Query("json", pattern="^(csv|json|fhir|atna)$"),
    flt: Filter = Depends(_filter),
    archive: Archive = Depends(get_archive),
    principal: Principal = Depends(require_identity),
) -> StreamingResponse:
    flt.scopes = _scopes(principal)
    detail = {**vars(flt), "scopes": None, "format": format}
    await run_in_threadpool(record, archive.db, _reader_event(principal, "audit.export", detail))

    def pages() -> Iterator[list[dict[str, Any]]]:
        offset = 0
        while True:
            page = query(archive.db, Filter(**{**vars(flt), "limit": PAGE, "offset": offset}))
            if not page:
                return
            yield page
            offset += len(page)

    suffix = {"csv": "csv", "json": "json", "fhir": "fhir.json", "atna": "xml"}[format]
    return StreamingResponse(
        exports.stream(format, pages()),
        media_type=exports.MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="audit.{suffix}"'},
    )
