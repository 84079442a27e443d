"""Rendering portal pages: templates, the caller, CSRF and the security headers.

Every page goes out with a strict Content-Security-Policy (scripts and styles
only from our own origin, nothing inline, no framing) and ``no-store``, and
with the CSRF cookie the page's forms echo back. A page asked for without a
credential answers 401 with the sign-in form; a page the caller may not use
answers 404 like a page that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from trialpacs.access.policy import Principal, Resource, decide, other_scopes, visible_scopes
from trialpacs.archive import Archive
from trialpacs.portal import csrf
from trialpacs.portal.uploads import targets
from trialpacs.web.deps import optional_identity

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}

env = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


class PortalRefusal(Exception):
    """Raised by a page for a caller it does not serve (rendered as 401 or 404)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Menu:
    """Which sections the caller's grants open; the policy decides each one."""

    worklist: bool
    upload: bool
    qc: bool
    reads: bool
    audit: bool
    admin: bool


def menu(archive: Archive, principal: Principal) -> Menu:
    return Menu(
        worklist=bool(visible_scopes(principal, "read")),
        upload=bool(targets(archive, principal)),
        qc=bool(visible_scopes(principal, "qc")),
        reads=any(g.role == "reader" for g in principal.grants),
        audit=can_audit(principal),
        admin=any(
            decide(principal, "manage", Resource("admin", g.trial)) for g in principal.grants
        ),
    )


def can_audit(principal: Principal) -> bool:
    return bool(other_scopes(principal, "audit"))


def caller(request: Request) -> Principal:
    """The signed-in caller (session cookie, or a bearer credential for scripts)."""
    principal = optional_identity(request)
    if principal is None:
        raise PortalRefusal(401, "sign in to continue")
    request.state.principal = principal
    return principal


def archive_of(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


def csrf_token(request: Request) -> str:
    """The page's CSRF value: the browser's cookie, or a fresh one set with this page."""
    existing = request.cookies.get(csrf.COOKIE)
    if existing and len(existing) >= 32:
        return existing
    token: str | None = getattr(request.state, "new_csrf", None)
    if token is None:
        token = csrf.new_token()
        request.state.new_csrf = token
    return token


async def require_csrf(request: Request) -> dict[str, str]:
    """The submitted form, after its CSRF value matched the cookie (403 otherwise)."""
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    submitted = values.get(csrf.FIELD) or request.headers.get(csrf.HEADER)
    if not csrf.valid(request.cookies.get(csrf.COOKIE), submitted):
        raise PortalRefusal(403, "The form expired or came from another site; reload the page.")
    return values


def page(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    status: int = 200,
    principal: Principal | None = None,
) -> Response:
    archive = archive_of(request)
    ctx: dict[str, Any] = {
        "principal": principal,
        "menu": menu(archive, principal) if principal is not None else None,
        "csrf": csrf_token(request),
        "csrf_field": csrf.FIELD,
        "path": request.url.path,
    }
    ctx.update(context or {})
    body = env.get_template(template).render(**ctx)
    response = HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
    set_csrf_cookie(request, response)
    return response


def set_csrf_cookie(request: Request, response: Response) -> None:
    token = getattr(request.state, "new_csrf", None)
    if token is None:
        return
    response.set_cookie(
        csrf.COOKIE,
        token,
        path="/",
        secure=archive_of(request).settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def refusal(request: Request, exc: PortalRefusal) -> Response:
    if exc.status == 401:
        return sign_in_page(request, exc.detail, status=401)
    return page(
        request, "missing.html", {"detail": exc.detail, "status": exc.status}, status=exc.status
    )


def sign_in_page(
    request: Request,
    message: str = "",
    *,
    status: int = 200,
    username: str = "",
    otp: bool = False,
    change: bool = False,
) -> Response:
    settings = archive_of(request).settings
    providers = {
        "password": settings.local_accounts or bool(settings.ldap_url),
        "oidc": bool(settings.oidc_issuer),
        "saml": bool(settings.saml_idp_metadata),
    }
    return page(
        request,
        "login.html",
        {
            "message": message,
            "providers": providers,
            "username": username,
            "otp": otp,
            "change": change,
        },
        status=status,
    )
