"""The reviewer portal: server-rendered pages (Jinja2 + htmx) on the same app as DICOMweb."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from trialpacs.web.portal import admin, assets, measurements, pages, signin
from trialpacs.web.portal.render import PortalRefusal, refusal


def install(app: FastAPI) -> None:
    async def _refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PortalRefusal)
        return refusal(request, exc)

    app.add_exception_handler(PortalRefusal, _refused)
    app.include_router(assets.router, tags=["portal"])
    app.include_router(signin.router, tags=["portal"])
    app.include_router(pages.router, tags=["portal"])
    app.include_router(measurements.router)
    app.include_router(admin.router, tags=["portal"])
