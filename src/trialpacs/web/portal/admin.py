"""Administration forms: grant or revoke a role, disable or enable an account.

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
