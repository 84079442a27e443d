"""The ASGI application: routers mounted over one Archive."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from trialpacs import __version__
from trialpacs.access.authenticator import Authenticator
from trialpacs.archive import Archive
from trialpacs.ops.metrics import create_metrics
from trialpacs.web import audit_api, auth, errors, portal, qc, reads, trials, viewer, workspace
from trialpacs.web import exports as export_routes
from trialpacs.web import identified_wado as identified_routes
from trialpacs.web import ops as ops_routes
from trialpacs.web import records as records_routes
from trialpacs.web.audit import AuditMiddleware
from trialpacs.web.dicomweb import qido, stow, wado, wado_uri

DICOMWEB_PREFIX = "/dicomweb"


def create_app(archive: Archive) -> FastAPI:
    app = FastAPI(
        title="trialpacs",
        version=__version__,
        description="DICOMweb archive and imaging gateway for clinical trials.",
    )
    app.state.archive = archive
    app.state.auth = Authenticator(archive.db, archive.settings)
    errors.install(app)
    errors.install_media_errors(app)
    if archive.settings.audit_enabled:
        app.add_middleware(AuditMiddleware, db=archive.db)
    app.state.metrics = create_metrics(archive)
    app.add_middleware(ops_routes.MetricsMiddleware, metrics=app.state.metrics)
    if archive.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=archive.settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Accept"],
            expose_headers=["Warning", "Content-Type", "Content-Length"],
        )

    @app.get("/health", include_in_schema=True)
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.include_router(ops_routes.router)
    app.include_router(auth.router)
    app.include_router(workspace.router)
    app.include_router(trials.router)
    app.include_router(identified_routes.router)
    app.include_router(records_routes.router)
    app.include_router(export_routes.router)
    app.include_router(qc.router)
    app.include_router(audit_api.router)
    app.include_router(reads.router)
    # Order matters: QIDO's /studies/{study}/series must win over WADO's /studies/{study}.
    for router in (qido.router, stow.router, wado.router, wado_uri.router):
        app.include_router(router, prefix=DICOMWEB_PREFIX, tags=["dicomweb"])
    app.include_router(wado_uri.router, tags=["wado-uri"])
    app.include_router(viewer.router, tags=["viewer"])
    portal.install(app)
    return app
