"""Administration forms: create a local account, grant or revoke a role, disable or
enable an account, reset a second factor.

Accounts and their grants live in the index (the CLI's ``trialpacs user`` /
``trialpacs role`` do the same), so a global administrator may change them
here; trials, sites, AEs and role mappings come from configuration as code
and stay read-only on the page. Each change is audited by ``access.users``
with the administrator as actor, and revoking or disabling ends the user's
sessions at once.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from trialpacs.access import users
from trialpacs.access.policy import parse_grant
from trialpacs.web.portal.render import PortalRefusal, archive_of, caller, require_csrf

router = APIRouter()


def _admin(request: Request) -> str:
    principal = caller(request)
    if not principal.is_global_admin():
        raise PortalRefusal(404, "There is no such page.")
    return principal.subject


def _done(message: str) -> Response:
    return RedirectResponse(f"/admin?done={message}", status_code=303)


@router.post("/admin/roles", include_in_schema=False)
async def change_role(request: Request) -> Response:
    actor = _admin(request)
    form = await require_csrf(request)
    username, text, op = (form.get(k, "").strip() for k in ("username", "grant", "op"))
    db = archive_of(request).db
    try:
        if op == "grant":
            await run_in_threadpool(users.grant, db, username, text, actor)
        elif op == "revoke":
            await run_in_threadpool(users.revoke, db, username, text, actor)
        else:
            raise ValueError("choose grant or revoke")
    except (ValueError, users.UnknownUser) as exc:
        raise PortalRefusal(400, str(exc)) from None
    return _done("role-" + op)


@router.post("/admin/accounts", include_in_schema=False)
async def change_account(request: Request) -> Response:
    actor = _admin(request)
    form = await require_csrf(request)
    username, op = form.get("username", "").strip(), form.get("op", "")
    if op not in ("disable", "enable"):
        raise PortalRefusal(400, "choose disable or enable")
    if username == actor and op == "disable":
        raise PortalRefusal(400, "you cannot disable your own account")
    try:
        await run_in_threadpool(
            users.set_disabled, archive_of(request).db, username, op == "disable", actor
        )
    except users.UnknownUser as exc:
        raise PortalRefusal(400, str(exc)) from None
    return _done("account-" + op)


@router.post("/admin/users", include_in_schema=False)
async def create_user(request: Request) -> Response:
    """A local account with a temporary password (replaced at first sign-in), optionally a role."""
    actor = _admin(request)
    form = await require_csrf(request)
    username = form.get("username", "").strip()
    password, role = form.get("password", ""), form.get("grant", "").strip()
    archive = archive_of(request)
    min_length = archive.settings.password_min_length

    def create() -> None:
        # The role is checked before the account exists, so a typo leaves nothing behind.
        if role:
            parse_grant(role)
        users.add_user(
            archive.db,
            username,
            password=password,
            display_name=form.get("display_name", "").strip()[:256],
            min_length=min_length,
            actor=actor,
            temporary=True,
        )
        if role:
            users.grant(archive.db, username, role, actor)

    try:
        await run_in_threadpool(create)
    except ValueError as exc:
        raise PortalRefusal(400, str(exc)) from None
    return _done("user-created")


@router.post("/admin/mfa", include_in_schema=False)
async def reset_mfa(request: Request) -> Response:
    """Lost phone: the second factor is removed and the user's sessions end; they enrol again."""
    actor = _admin(request)
    form = await require_csrf(request)
    username = form.get("username", "").strip()
    try:
        await run_in_threadpool(users.reset_mfa, archive_of(request).db, username, actor)
    except users.UnknownUser as exc:
        raise PortalRefusal(400, str(exc)) from None
    return _done("mfa-reset")
