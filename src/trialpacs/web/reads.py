"""Read assignments and their e-signatures over HTTP (a thin adapter of trialpacs.reads).

``GET /api/reads`` lists the caller's reads (``?trial=T``: every read of T,
for its data managers), ``POST /api/reads`` assigns a study to a reader,
``GET /api/reads/{read}`` shows one, ``POST /api/reads/{read}/sign`` signs
with re-authentication (password, and TOTP code when enrolled; an SSO
account gives the one-time ``grant`` of a forced sign-in started with
``POST /auth/reauth``). A refused re-authentication answers 403
and is itself an audit entry; an SSO account without a grant gets 409
saying a fresh forced-authentication sign-in is needed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from trialpacs.access.policy import Principal
from trialpacs.access.reauth import source_of
from trialpacs.archive import Archive
from trialpacs.audit.signatures import MEANINGS, SignatureRefused
from trialpacs.reads import assignments
from trialpacs.web.deps import get_archive, require_identity

router = APIRouter(prefix="/api/reads", tags=["reads"])
# Bounded so a huge number is a 422, not an integer overflow in the database
# (a 500 found by tests/hardening/test_openapi_schemathesis.py).
ReadId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Read assignment number.")]


class Assign(BaseModel):
    trial: str = Field(min_length=1, max_length=64)
    study: str = Field(min_length=1, max_length=64)
    reader: str = Field(min_length=1, max_length=128)


class SignRequest(BaseModel):
    password: str = Field(default="", max_length=1024)
    grant: str | None = Field(
        default=None,
        max_length=128,
        description="SSO accounts: the signing grant of a forced sign-in (instead of a password)",
    )
    meaning: str = Field(min_length=1, max_length=32, description=", ".join(MEANINGS))
    findings: str | None = Field(default=None, max_length=assignments.MAX_FINDINGS)
    otp: str | None = Field(default=None, max_length=16)


@router.get("")
async def list_reads(
    trial: str | None = None,
    archive: Archive = Depends(get_archive),
    principal: Principal = Depends(require_identity),
) -> dict[str, Any]:
    if trial:
        reads = await run_in_threadpool(assignments.for_trial, archive, principal, trial)
    else:
        reads = await run_in_threadpool(assignments.for_reader, archive, principal)
    return {"reads": [r.as_dict() for r in reads], "meanings": list(MEANINGS)}


@router.post("", status_code=201)
async def assign_read(
    body: Assign,
    archive: Archive = Depends(get_archive),
    principal: Principal = Depends(require_identity),
) -> dict[str, Any]:
    read = await run_in_threadpool(
        lambda: assignments.assign(
            archive, principal, trial=body.trial, study=body.study, reader=body.reader
        )
    )
    return read.as_dict()


@router.get("/{read}")
async def get_read(
    read: ReadId,
    archive: Archive = Depends(get_archive),
    principal: Principal = Depends(require_identity),
) -> dict[str, Any]:
    return (await run_in_threadpool(assignments.get, archive, principal, read)).as_dict()


@router.post("/{read}/sign")
async def sign_read(
    read: ReadId,
    body: SignRequest,
    archive: Archive = Depends(get_archive),
    principal: Principal = Depends(require_identity),
) -> dict[str, Any]:
    if body.meaning not in MEANINGS:
        raise HTTPException(422, f"meaning must be one of {', '.join(MEANINGS)}")
    source = await run_in_threadpool(source_of, archive.db, principal.subject)
    if not (body.password or body.grant) and source not in ("oidc", "saml"):
        raise HTTPException(422, "a password (or, for single sign-on, a signing grant) is needed")
    try:
        signed = await run_in_threadpool(
            lambda: assignments.sign_read(
                archive,
                principal,
                read,
                password=body.grant or body.password,
                meaning=body.meaning,
                findings=body.findings,
                otp=body.otp,
            )
        )
    except SignatureRefused as exc:
        if source in ("oidc", "saml") and not body.grant:
            raise HTTPException(
                409,
                "this account signs in through single sign-on: signing needs a fresh "
                "forced-authentication sign-in (POST /auth/reauth, then the grant)",
            ) from exc
        raise HTTPException(403, "re-authentication failed: the signature was not applied") from exc
    return signed.as_dict()
