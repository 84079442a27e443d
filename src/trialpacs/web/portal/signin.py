"""Sign-in, second-factor enrolment and sign-out pages.

The password check is the one the JSON sign-in uses (local accounts, then
LDAP); success sets the same HttpOnly session cookie. The QR code for TOTP
enrolment is rendered in the page as a data: image, never stored or logged.
"""

from __future__ import annotations

import base64

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from trialpacs.access import mfa, users
from trialpacs.access.authenticator import Authenticator
from trialpacs.access.local import AuthFailed, MfaRequired, PasswordChangeRequired
from trialpacs.access.users import get_user
from trialpacs.web.auth.finish import clear_session_cookie, set_session_cookie
from trialpacs.web.auth.local import Login, _password_sign_in
from trialpacs.web.deps import SESSION_COOKIE
from trialpacs.web.portal.render import (
    archive_of,
    caller,
    page,
    require_csrf,
    sign_in_page,
)

router = APIRouter()
FAILED = "Sign-in failed: wrong username, password or code."


def _local_next(value: str) -> str:
    """Only our own paths are followed after sign-in (no open redirect)."""
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/worklist"
    return value if value not in ("/login", "/logout") else "/worklist"


@router.get("/login", include_in_schema=False)
async def login_form(request: Request) -> Response:
    return sign_in_page(request)


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    form = await require_csrf(request)
    username = form.get("username", "").strip()
    try:
        body = Login(
            username=username,
            password=form.get("password", ""),
            otp=form.get("otp") or None,
            session="cookie",
        )
    except ValidationError:
        return sign_in_page(request, FAILED, status=401, username=username)
    archive = archive_of(request)
    try:
        user_pk, provider = await run_in_threadpool(_password_sign_in, archive, body)
    except MfaRequired:
        message = "Enter the code from your authenticator app." if not body.otp else FAILED
        return sign_in_page(request, message, status=401, username=username, otp=True)
    except PasswordChangeRequired as exc:
        new = form.get("new_password", "")
        if not new:
            message = "Your password is a temporary one: choose your own."
            return sign_in_page(request, message, status=401, username=username, change=True)
        if new == body.password:
            message = "The new password must differ from the temporary one."
            return sign_in_page(request, message, status=400, username=username, change=True)
        try:
            await run_in_threadpool(
                users.set_password, archive.db, username, new,
                min_length=archive.settings.password_min_length, actor=username,
            )  # fmt: skip
        except ValueError as problem:
            return sign_in_page(request, str(problem), status=400, username=username, change=True)
        # Password and code were verified in this request; the new password is now the only one.
        user_pk, provider = exc.user_pk, "local"
    except AuthFailed:
        return sign_in_page(request, FAILED, status=401, username=username)
    auth: Authenticator = request.app.state.auth
    value = await run_in_threadpool(auth.browser_session, user_pk, provider)
    response = RedirectResponse(_local_next(form.get("next", "")), status_code=303)
    set_session_cookie(response, request, value)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    principal = caller(request)
    await require_csrf(request)
    if principal.session_id:
        auth: Authenticator = request.app.state.auth
        await run_in_threadpool(auth.revoke_session, principal.session_id, principal.subject)
    response = RedirectResponse("/login", status_code=303)
    if request.cookies.get(SESSION_COOKIE):
        clear_session_cookie(response, request)
    return response


def _mfa_state(request: Request, subject: str) -> str:
    """'enabled', 'available' (a local account without it) or 'external'."""
    with archive_of(request).db.read() as session:
        user = get_user(session, subject)
        if user is None or user.source != "local" or user.kind != "user":
            return "external"
        return "enabled" if user.totp_enabled else "available"


@router.get("/account", include_in_schema=False)
async def account(request: Request) -> Response:
    principal = caller(request)
    state = await run_in_threadpool(_mfa_state, request, principal.subject)
    return page(request, "account.html", {"mfa": state}, principal=principal)


@router.post("/account/mfa", include_in_schema=False)
async def mfa_enrol(request: Request) -> Response:
    principal = caller(request)
    await require_csrf(request)
    state = await run_in_threadpool(_mfa_state, request, principal.subject)
    if state != "available":
        return page(request, "account.html", {"mfa": state}, principal=principal, status=409)
    enrolment = await run_in_threadpool(mfa.begin, archive_of(request).db, principal.subject)
    qr = "data:image/png;base64," + base64.b64encode(enrolment.qr_png()).decode()
    context = {"mfa": "enrolling", "qr": qr, "secret": enrolment.secret}
    return page(request, "account.html", context, principal=principal)


@router.post("/account/mfa/confirm", include_in_schema=False)
async def mfa_confirm(request: Request) -> Response:
    principal = caller(request)
    form = await require_csrf(request)
    code = form.get("code", "").strip()
    ok = len(code) in range(6, 9) and await run_in_threadpool(
        mfa.confirm, archive_of(request).db, principal.subject, code
    )
    if not ok:
        context = {"mfa": "available", "message": "The code is not right; start again."}
        return page(request, "account.html", context, principal=principal, status=400)
    return page(request, "account.html", {"mfa": "enabled"}, principal=principal)
