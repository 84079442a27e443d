"""FastAPI dependencies: the archive and the caller's identity."""

from __future__ import annotations

from fastapi import HTTPException, Request

from trialpacs.access.tokens import Identity, TokenVerifier
from trialpacs.archive import Archive

ANONYMOUS = Identity(name="anonymous", kind="anonymous")


def get_archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


def require_identity(request: Request) -> Identity:
    """The caller, from ``Authorization: Bearer``; 401 with a challenge otherwise."""
    archive: Archive = request.app.state.archive
    if not archive.settings.auth_enabled:
        return ANONYMOUS
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    verifier: TokenVerifier = request.app.state.tokens
    identity = verifier.verify(token.strip()) if scheme.lower() == "bearer" else None
    if identity is None:
        raise HTTPException(
            status_code=401,
            detail="a valid bearer token is required (create one with `trialpacs token create`)",
            headers={"WWW-Authenticate": 'Bearer realm="trialpacs"'},
        )
    return identity


def base_url(request: Request) -> str:
    """Public base of the DICOMweb API, for RetrieveURL and BulkDataURI values."""
    archive: Archive = request.app.state.archive
    configured = archive.settings.public_base_url
    if configured:
        return configured.rstrip("/") + "/dicomweb"
    return str(request.base_url).rstrip("/") + "/dicomweb"
