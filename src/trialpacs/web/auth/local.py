"""Password sign-in (local accounts and LDAP), refresh, logout, whoami and TOTP enrolment."""

from __future__ import annotations

import base64
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from trialpacs.access import mfa
from trialpacs.access.authenticator import Authenticator
from trialpacs.access.ldap import LdapDirectory
from trialpacs.access.local import (
    AuthFailed,
    LockoutPolicy,
    MfaRequired,
    PasswordChangeRequired,
    authenticate,
)
from trialpacs.access.policy import Principal
from trialpacs.access.users import get_user
from trialpacs.archive import Archive
from trialpacs.web.auth.finish import clear_session_cookie, set_session_cookie, token_response
from trialpacs.web.deps import SESSION_COOKIE, get_archive, get_authenticator, require_identity

router = APIRouter()
FAILED = {"detail": "sign-in failed: wrong username, password or code"}


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)
    otp: str | None = Field(default=None, max_length=16)
    provider: Literal["local", "ldap"] | None = None
    session: Literal["token", "cookie"] = "token"


class Refresh(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=256)


class Code(BaseModel):
    code: str = Field(min_length=6, max_length=8)


def _password_sign_in(archive: Archive, body: Login) -> tuple[int, str]:
    settings = archive.settings
    provider = body.provider
    if provider is None:
        with archive.db.read() as session:
            user = get_user(session, body.username)
        local_account = user is not None and user.source == "local"
        provider = "local" if local_account or not settings.ldap_url else "ldap"
    if provider == "local":
        if not settings.local_accounts:
            raise AuthFailed()
        policy = LockoutPolicy(settings.lockout_threshold, settings.lockout_minutes)
        return authenticate(archive.db, body.username, body.password, body.otp, policy), "local"
    if not settings.ldap_url:
        raise AuthFailed()
    directory = LdapDirectory.from_settings(settings)
    return directory.sign_in(archive.db, body.username, body.password), "ldap"


@router.post("/login")
async def login(
    body: Login,
    request: Request,
    archive: Archive = Depends(get_archive),
    auth: Authenticator = Depends(get_authenticator),
) -> Response:
    try:
        user_pk, provider = await run_in_threadpool(_password_sign_in, archive, body)
    except MfaRequired:
        return JSONResponse({"detail": "a one-time code is required", "mfa_required": True}, 401)
    except PasswordChangeRequired:
        detail = "the password is a temporary one: choose a new one on the sign-in page"
        return JSONResponse({"detail": detail, "password_change_required": True}, 401)
    except AuthFailed:
        return JSONResponse(FAILED, status_code=401)
    if body.session == "cookie":
        value = await run_in_threadpool(auth.browser_session, user_pk, provider)
        response: Response = JSONResponse({"status": "signed in"})
        set_session_cookie(response, request, value)
        return response
    return await run_in_threadpool(token_response, auth, user_pk, provider)


@router.post("/token/refresh")
async def refresh(body: Refresh, auth: Authenticator = Depends(get_authenticator)) -> Response:
    pair = await run_in_threadpool(auth.refresh, body.refresh_token)
    if pair is None:
        return JSONResponse({"detail": "the refresh token is not valid"}, status_code=401)
    return JSONResponse(pair.__dict__, headers={"Cache-Control": "no-store"})


@router.post("/logout")
async def logout(
    request: Request,
    principal: Principal = Depends(require_identity),
    auth: Authenticator = Depends(get_authenticator),
) -> Response:
    if principal.session_id:
        await run_in_threadpool(auth.revoke_session, principal.session_id, principal.subject)
    response = JSONResponse({"status": "signed out"})
    if request.cookies.get(SESSION_COOKIE):
        clear_session_cookie(response, request)
    return response


@router.get("/me")
async def me(principal: Principal = Depends(require_identity)) -> dict[str, object]:
    return {
        "subject": principal.subject,
        "kind": principal.kind,
        "roles": [str(g) for g in principal.grants],
        "scopes": sorted(principal.scopes),
    }


@router.get("/session/token")
async def session_token(
    request: Request,
    principal: Principal = Depends(require_identity),
    auth: Authenticator = Depends(get_authenticator),
) -> Response:
    """A short-lived bearer token for the viewer of a signed-in browser (OHIF sends it)."""
    if not request.cookies.get(SESSION_COOKIE) or principal.session_id is None:
        raise HTTPException(404, "not found")
    user_pk = await run_in_threadpool(auth.user_pk, principal.subject)
    token = (
        await run_in_threadpool(auth.access_token_for_session, user_pk, principal.session_id)
        if user_pk is not None
        else None
    )
    if token is None:
        raise HTTPException(401, "session ended")
    return JSONResponse(
        {"access_token": token, "token_type": "Bearer"}, headers={"Cache-Control": "no-store"}
    )


def _local_user(archive: Archive, principal: Principal) -> None:
    with archive.db.read() as session:
        user = get_user(session, principal.subject)
    if user is None or user.source != "local" or user.kind != "user":
        raise HTTPException(404, "not found")


@router.post("/mfa/enrol")
async def mfa_enrol(
    principal: Principal = Depends(require_identity),
    archive: Archive = Depends(get_archive),
) -> Response:
    """Start TOTP enrolment: the secret, its otpauth URI and the same URI as a QR code."""
    await run_in_threadpool(_local_user, archive, principal)
    try:
        enrolment = await run_in_threadpool(mfa.begin, archive.db, principal.subject)
    except ValueError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=409)
    png = base64.b64encode(enrolment.qr_png()).decode()
    return JSONResponse(
        {
            "secret": enrolment.secret,
            "otpauth_uri": enrolment.uri,
            "qr_png": f"data:image/png;base64,{png}",
            "qr_svg": enrolment.qr_svg().decode(),
        },
        headers={"Cache-Control": "no-store"},
    )


@router.post("/mfa/confirm")
async def mfa_confirm(
    body: Code,
    principal: Principal = Depends(require_identity),
    archive: Archive = Depends(get_archive),
) -> Response:
    ok = await run_in_threadpool(mfa.confirm, archive.db, principal.subject, body.code)
    if not ok:
        return JSONResponse({"detail": "the code is not right; try the current one"}, 400)
    return JSONResponse({"status": "second factor enabled"})
