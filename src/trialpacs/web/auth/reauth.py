"""Forced SSO re-authentication for e-signatures: start it, and finish it in the IdP callbacks.

``POST /auth/reauth {"purpose": "read:7"}`` (signed in through OIDC or
SAML) answers the IdP URL to send the browser to (``prompt=login`` and
``max_age=0`` / ``ForceAuthn="true"``) and a one-time ``grant``. The OIDC
callback and the SAML ACS recognise the answer by its state / RelayState and
hand it to :func:`finish_oidc` / :func:`finish_saml`, which make the grant
usable only if the IdP signed in the same account after the request
(``access.signing_grants``). The sign routes take the grant instead of a
password.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from trialpacs.access import signing_grants
from trialpacs.access.local import AuthFailed
from trialpacs.access.oidc import OidcProvider
from trialpacs.access.oidc import Pending as OidcPending
from trialpacs.access.policy import Principal
from trialpacs.access.reauth import source_of
from trialpacs.access.saml import SamlServiceProvider
from trialpacs.access.users import get_user
from trialpacs.archive import Archive
from trialpacs.index.db import Database
from trialpacs.web.deps import get_archive, require_identity

router = APIRouter()
PURPOSE = re.compile(r"^(read:[1-9][0-9]{0,9}|qc_decision:[0-9][0-9.]{0,63})$")
RELAY_PREFIX = "reauth:"


class ReauthRequest(BaseModel):
    purpose: str = Field(
        min_length=1,
        max_length=80,
        description="to be signed: read:ID or qc_decision:SERIES",
    )


@router.post("/reauth")
async def start_reauth(
    body: ReauthRequest,
    request: Request,
    archive: Archive = Depends(get_archive),
    principal: Principal = Depends(require_identity),
) -> dict[str, Any]:
    if not PURPOSE.match(body.purpose):
        raise HTTPException(422, "purpose must be read:ID or qc_decision:SERIES_UID")
    source = await run_in_threadpool(source_of, archive.db, principal.subject)
    if source == "oidc":
        from trialpacs.web.auth.oidc import provider

        oidc = provider(request)
        try:
            url, pending = await run_in_threadpool(lambda: oidc.begin("/", force=True))
        except Exception:
            raise HTTPException(502, "the identity provider cannot be reached") from None
        secret = {"nonce": pending.nonce, "code_verifier": pending.code_verifier}
        handle = pending.state
    elif source == "saml":
        from trialpacs.web.auth.saml import service_provider

        sp = service_provider(request)
        handle = secrets.token_urlsafe(24)
        request_id, url = await run_in_threadpool(
            lambda: sp.begin(RELAY_PREFIX + handle, force=True)
        )
        secret = {"request_id": request_id}
    else:
        raise HTTPException(409, "this account re-authenticates with its password when signing")
    grant = await run_in_threadpool(
        lambda: signing_grants.start(
            archive.db,
            username=principal.subject,
            purpose=body.purpose,
            method=source,
            handle=handle,
            secret=secret,
        )
    )
    return {
        "grant": grant,
        "location": url,
        "purpose": body.purpose,
        "expires_in": int(signing_grants.GRANT_SECONDS),
    }


def _external_id(db: Database, username: str) -> str:
    with db.read() as session:
        user = get_user(session, username)
        return (user.external_id or "") if user is not None else ""


def _answer(grant: signing_grants.Pending, problem: str | None) -> Response:
    if problem is not None:
        return JSONResponse({"detail": f"re-authentication refused: {problem}"}, 403)
    return JSONResponse({"status": "ready", "purpose": grant.purpose})


def finish_oidc(
    db: Database, oidc: OidcProvider, grant: signing_grants.Pending, code: str, state: str
) -> Response:
    """The provider's answer to a forced sign-in (sync: call in a worker thread)."""
    pending = OidcPending(state, grant.secret["nonce"], grant.secret["code_verifier"], "/")
    try:
        claims = oidc.finish(pending, code, state)
    except AuthFailed:
        return JSONResponse({"detail": "sign-in failed"}, 401)
    try:
        signing_grants.complete(
            db,
            grant,
            external_id=oidc.external_id(claims),
            expected_external_id=_external_id(db, grant.username),
            authn_at=float(claims.get("auth_time") or 0),
        )
    except signing_grants.GrantRefused as exc:
        return _answer(grant, str(exc))
    return _answer(grant, None)


def finish_saml(
    db: Database, sp: SamlServiceProvider, grant: signing_grants.Pending, saml_response: str
) -> Response:
    """The IdP's answer to a ForceAuthn request (sync: call in a worker thread)."""
    try:
        name, _, instant = sp.finish_with_instant(saml_response, str(grant.secret["request_id"]))
    except AuthFailed:
        return JSONResponse({"detail": "sign-in failed"}, 401)
    try:
        signing_grants.complete(
            db,
            grant,
            external_id=sp.external_id(name),
            expected_external_id=_external_id(db, grant.username),
            authn_at=instant,
        )
    except signing_grants.GrantRefused as exc:
        return _answer(grant, str(exc))
    return _answer(grant, None)
