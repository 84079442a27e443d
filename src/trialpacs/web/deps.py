"""FastAPI dependencies: the archive, the caller, and what the caller may see.

Every route takes its caller from :func:`require_identity` (bearer access
token, service-account API key, or browser session cookie) and its object
filter from :func:`visible_studies`; the decision itself is made by
``trialpacs.access.policy`` and nowhere else.
"""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request
from sqlalchemy import ColumnElement

from trialpacs.access.authenticator import Authenticator
from trialpacs.access.policy import Action, Grant, Principal, Resource, decide
from trialpacs.access.visibility import study_condition
from trialpacs.archive import Archive
from trialpacs.errors import NotFound

# With auth disabled (loopback benchmarks only) the caller is a global administrator.
ANONYMOUS = Principal(subject="anonymous", kind="anonymous", grants=(Grant("administrator"),))
SESSION_COOKIE = "tp_session"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def get_archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


def get_authenticator(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    return auth


def _unauthorized() -> HTTPException:
    return HTTPException(
        status_code=401,
        detail="sign in, or send a bearer token (`trialpacs token create` for machines)",
        headers={"WWW-Authenticate": 'Bearer realm="trialpacs"'},
    )


def optional_identity(request: Request) -> Principal | None:
    archive: Archive = request.app.state.archive
    if not archive.settings.auth_enabled:
        return ANONYMOUS
    auth: Authenticator = request.app.state.auth
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return auth.from_bearer(token)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        if request.method in UNSAFE_METHODS and not _same_origin(request):
            return None
        return auth.from_cookie(cookie)
    return None


def require_identity(request: Request) -> Principal:
    """The caller; 401 with a challenge when there is no valid credential."""
    principal = optional_identity(request)
    if principal is None:
        raise _unauthorized()
    request.state.principal = principal
    return principal


def _same_origin(request: Request) -> bool:
    """Cookie-authenticated writes must come from our own pages (CSRF defence)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser cross-site form/fetch: browsers send Origin on those
    return origin.rstrip("/") == str(request.base_url).rstrip("/")


def visible_studies(
    principal: Principal = Depends(require_identity),
) -> ColumnElement[bool] | None:
    """SQL condition on studies the caller may read (None: everything)."""
    return study_condition(principal, "read")


def require_action(principal: Principal, action: Action, resource: Resource) -> None:
    """Refuse like a missing object: the caller learns nothing from a refusal."""
    if not decide(principal, action, resource):
        raise NotFound("not found")


def base_url(request: Request) -> str:
    """Public base of the DICOMweb API, for RetrieveURL and BulkDataURI values."""
    archive: Archive = request.app.state.archive
    configured = archive.settings.public_base_url
    if configured:
        return configured.rstrip("/") + "/dicomweb"
    return str(request.base_url).rstrip("/") + "/dicomweb"


# What a route receives from visible_studies: a condition on studies, or None.
Visible = ColumnElement[bool] | None
