"""SAML routes: redirect to the IdP, the assertion consumer service, and our metadata."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from trialpacs.access import signing_grants
from trialpacs.access.access_tokens import seal, unseal
from trialpacs.access.authenticator import Authenticator
from trialpacs.access.local import AuthFailed
from trialpacs.access.saml import SamlServiceProvider
from trialpacs.archive import Archive
from trialpacs.errors import InvalidInput, NotFound
from trialpacs.web.auth import reauth
from trialpacs.web.auth.finish import browser_response
from trialpacs.web.deps import get_archive, get_authenticator

router = APIRouter()
STATE_COOKIE = "tp_saml"
STATE_SECONDS = 600
MAX_FORM = 512 * 1024


def service_provider(request: Request) -> SamlServiceProvider:
    archive: Archive = request.app.state.archive
    if not archive.settings.saml_idp_metadata:
        raise NotFound("not found")
    found: SamlServiceProvider | None = getattr(request.app.state, "saml", None)
    if found is None:
        found = SamlServiceProvider.from_settings(archive.settings)
        request.app.state.saml = found
    return found


@router.get("/saml/login")
async def saml_login(
    request: Request, next: str = "/", auth: Authenticator = Depends(get_authenticator)
) -> Response:
    sp = service_provider(request)
    request_id, location = await run_in_threadpool(sp.begin, "")
    archive: Archive = request.app.state.archive
    response = RedirectResponse(location, status_code=302)
    # The ACS is reached by a cross-site POST from the IdP: SameSite=None is needed here.
    response.set_cookie(
        STATE_COOKIE,
        seal(auth.signer, "saml-state", {"rid": request_id, "next": next}, STATE_SECONDS),
        max_age=STATE_SECONDS,
        path="/auth/saml",
        secure=archive.settings.cookie_secure,
        httponly=True,
        samesite="none" if archive.settings.cookie_secure else "lax",
    )
    return response


@router.post("/saml/acs")
async def saml_acs(
    request: Request,
    archive: Archive = Depends(get_archive),
    auth: Authenticator = Depends(get_authenticator),
) -> Response:
    sp = service_provider(request)
    declared = int(request.headers.get("content-length") or 0)
    if declared > MAX_FORM:
        raise InvalidInput("the SAML response is too large")
    form = await request.form()
    saml_response = form.get("SAMLResponse")
    relay = form.get("RelayState")
    if isinstance(relay, str) and relay.startswith(reauth.RELAY_PREFIX):
        # the answer to a ForceAuthn request for an e-signature
        handle = relay[len(reauth.RELAY_PREFIX) :]
        grant = await run_in_threadpool(signing_grants.pending, archive.db, handle, "saml")
        if grant is None or not isinstance(saml_response, str):
            return JSONResponse({"detail": "re-authentication expired: start again"}, 401)
        return await run_in_threadpool(reauth.finish_saml, archive.db, sp, grant, saml_response)
    sealed = request.cookies.get(STATE_COOKIE, "")
    state = unseal(auth.signer, "saml-state", sealed) if sealed else None
    if not isinstance(saml_response, str) or state is None:
        return JSONResponse({"detail": "sign-in failed: start again"}, status_code=401)

    def finish() -> int:
        name, attrs = sp.finish(saml_response, str(state["rid"]))
        return sp.sign_in(archive.db, name, attrs)

    try:
        user_pk = await run_in_threadpool(finish)
    except AuthFailed:
        return JSONResponse({"detail": "sign-in failed"}, status_code=401)
    response = browser_response(request, auth, user_pk, "saml", str(state.get("next") or "/"))
    response.delete_cookie(STATE_COOKIE, path="/auth/saml")
    return response


@router.get("/saml/metadata")
async def saml_metadata(request: Request) -> Response:
    """Our SP metadata, for registering trialpacs at the IdP."""
    from saml2.metadata import entity_descriptor

    sp = service_provider(request)
    xml = str(entity_descriptor(sp.client().config))
    return Response(xml, media_type="application/samlmetadata+xml")
