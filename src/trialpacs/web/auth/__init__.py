"""Sign-in routes: local/LDAP passwords, tokens, sessions, MFA, OIDC and SAML."""

from fastapi import APIRouter

from trialpacs.web.auth import local, oidc, reauth, saml

router = APIRouter(prefix="/auth", tags=["auth"])
router.include_router(local.router)
router.include_router(oidc.router)
router.include_router(saml.router)
router.include_router(reauth.router)
