"""The end of every sign-in: tokens for API clients, a cookie for browsers."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from trialpacs.access.authenticator import Authenticator
from trialpacs.archive import Archive
from trialpacs.web.deps import SESSION_COOKIE


def token_response(auth: Authenticator, user_pk: int, provider: str) -> JSONResponse:
    pair = auth.sign_in(user_pk, provider)
    body = asdict(pair)
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def set_session_cookie(response: Response, request: Request, value: str) -> None:
    archive: Archive = request.app.state.archive
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=archive.settings.session_absolute_hours * 3600,
        path="/",
        secure=archive.settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )


def browser_response(
    request: Request, auth: Authenticator, user_pk: int, provider: str, next_url: str = "/"
) -> Response:
    """Sign the browser in and send it on; only local paths are followed (no open redirect)."""
    if not next_url.startswith("/") or next_url.startswith("//") or "\\" in next_url:
        next_url = "/"
    response = RedirectResponse(next_url, status_code=303)
    set_session_cookie(response, request, auth.browser_session(user_pk, provider))
    response.headers["Cache-Control"] = "no-store"
    return response


def clear_session_cookie(response: Response, request: Request) -> None:
    archive: Archive = request.app.state.archive
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        secure=archive.settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )
