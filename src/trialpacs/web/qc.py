"""QC queue routes: list held series, a held series' thumbnail, a signed decision.

Thin adapter over ``trialpacs.qc.queue``; the policy decides inside it, and a
series the caller may not decide is the same 404 as one that does not exist.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from trialpacs.access.policy import Principal
from trialpacs.access.reauth import reauthenticator, source_of
from trialpacs.archive import Archive
from trialpacs.dicom.uids import require_uid
from trialpacs.qc import queue
from trialpacs.web.deps import get_archive, require_identity

router = APIRouter(tags=["qc"])


class DecisionBody(BaseModel):
    decision: str = Field(description="approve or reject")
    password: str = Field(
        default="", description="the caller's password: the signature re-authenticates"
    )
    grant: str | None = Field(
        default=None,
        max_length=128,
        description="SSO accounts: the signing grant of a forced sign-in (instead of a password)",
    )
    meaning: str | None = Field(default=None, description="Approved or Rejected")
    reason: str = Field(default="", max_length=2000)


@router.get("/api/qc/queue")
async def qc_queue(
    trial: str | None = None,
    archive: Archive = Depends(get_archive),
    identity: Principal = Depends(require_identity),
) -> list[dict[str, Any]]:
    items = await run_in_threadpool(queue.list_queue, archive, identity, trial)
    return [i.to_json() for i in items]


@router.get("/api/qc/series/{series}/thumbnail")
async def qc_thumbnail(
    series: str,
    archive: Archive = Depends(get_archive),
    identity: Principal = Depends(require_identity),
) -> Response:
    require_uid(series, "series")
    png = await run_in_threadpool(queue.thumbnail, archive, identity, series)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private"})


@router.post("/api/qc/series/{series}/decision")
async def qc_decision(
    series: str,
    body: DecisionBody,
    archive: Archive = Depends(get_archive),
    identity: Principal = Depends(require_identity),
) -> Response:
    require_uid(series, "series")
    source = await run_in_threadpool(source_of, archive.db, identity.subject)
    sso = source in ("oidc", "saml")
    if sso and not body.grant:
        return JSONResponse(
            {
                "detail": "this account signs in through single sign-on: signing needs a fresh "
                "forced-authentication sign-in (POST /auth/reauth, then the grant)"
            },
            409,
        )
    if not (body.password or body.grant):
        return JSONResponse(
            {"detail": "a password (or, for single sign-on, a signing grant) is needed"}, 422
        )
    check = (
        reauthenticator(archive.db, archive.settings, purpose=f"qc_decision:{series}")
        if sso
        else None
    )
    try:
        outcome = await run_in_threadpool(
            lambda: queue.decide_series(
                archive,
                identity,
                series,
                decision=body.decision,
                password=body.grant or body.password,
                meaning=body.meaning,
                reason=body.reason,
                reauthenticate=check,
            )
        )
    except queue.ReauthenticationFailed as exc:
        return JSONResponse({"detail": f"signature refused: {exc}"}, status_code=403)
    return JSONResponse(outcome.to_json())
