"""OIDC routes: redirect to the provider, and the callback that signs the browser in."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from trialpacs.access import signing_grants
from trialpacs.access.access_tokens import seal, unseal
from trialpacs.access.authenticator import Authenticator
from trialpacs.access.local import AuthFailed
from trialpacs.access.oidc import OidcProvider, Pending
from trialpacs.archive import Archive
from trialpacs.errors import NotFound
from trialpacs.web.auth import reauth
from trialpacs.web.auth.finish import browser_response
from trialpacs.web.deps import get_archive, get_authenticator

router = APIRouter()
STATE_COOKIE = "tp_oidc"
STATE_SECONDS = 600


def provider(request: Request) -> OidcProvider:
    """One provider object per app, so discovery and keys are cached."""
    archive: Archive = request.app.state.archive
    if not archive.settings.oidc_issuer:
        raise NotFound("not found")
    found: OidcProvider | None = getattr(request.app.state, "oidc", None)
    if found is None:
        found = OidcProvider.from_settings(archive.settings)
        request.app.state.oidc = found
    return found


@router.get("/oidc/login")
async def oidc_login(
    request: Request, next: str = "/", auth: Authenticator = Depends(get_authenticator)
) -> Response:
    oidc = provider(request)
    try:
        url, pending = await run_in_threadpool(oidc.begin, next)
    except Exception:
        return JSONResponse({"detail": "the identity provider cannot be reached"}, 502)
    response = RedirectResponse(url, status_code=302)
    archive: Archive = request.app.state.archive
    response.set_cookie(
        STATE_COOKIE,
        seal(auth.signer, "oidc-state", asdict(pending), STATE_SECONDS),
        max_age=STATE_SECONDS,
        path="/auth/oidc",
        secure=archive.settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )
    return response


@router.get("/oidc/callback")
async def oidc_callback(
    request: Request,
    archive: Archive = Depends(get_archive),
    auth: Authenticator = Depends(get_authenticator),
) -> Response:
    oidc = provider(request)
    sealed = request.cookies.get(STATE_COOKIE, "")
    data = unseal(auth.signer, "oidc-state", sealed) if sealed else None
    code = request.query_params.get("code")
    state = request.query_params.get("state")
    if code and state:  # the answer to a forced sign-in for an e-signature?
        grant = await run_in_threadpool(signing_grants.pending, archive.db, state, "oidc")
        if grant is not None:
            return await run_in_threadpool(reauth.finish_oidc, archive.db, oidc, grant, code, state)
    if data is None or not code or not state:
        return JSONResponse({"detail": "sign-in failed: start again"}, status_code=401)
    pending = Pending(data["state"], data["nonce"], data["code_verifier"], data["next_url"])

    def finish() -> int:
        claims = oidc.finish(pending, code, state)
        return oidc.sign_in(archive.db, claims)

    try:
        user_pk = await run_in_threadpool(finish)
    except AuthFailed:
        return JSONResponse({"detail": "sign-in failed"}, status_code=401)
    response = browser_response(request, auth, user_pk, "oidc", pending.next_url)
    response.delete_cookie(STATE_COOKIE, path="/auth/oidc")
    return response
