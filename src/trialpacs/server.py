"""Run the HTTP server (uvicorn) and the DICOM listener in one process.

They share one Archive, so both see the same index connection pool and the
same SQLite write lock.
"""

from __future__ import annotations

import logging
from typing import Any

import uvicorn

from trialpacs.archive import Archive
from trialpacs.ops import logs
from trialpacs.web import tls
from trialpacs.web.app import create_app
from trialpacs.web.slowclients import guarded_protocol

log = logging.getLogger(__name__)


def run(archive: Archive, *, log_level: str = "info") -> None:
    settings = archive.settings
    log_config = logs.configure(settings.log_format, log_level)
    https = tls.uvicorn_options(settings)  # refuses broken TLS settings before any port opens
    dimse: Any = None
    if settings.dicom_port or settings.dicom_tls_port:
        try:
            from trialpacs.dimse import server as dimse_server
        except ImportError:  # pragma: no cover - the DIMSE package ships with trialpacs
            log.warning("DICOM listener unavailable: trialpacs.dimse is not installed")
        else:
            dimse = dimse_server.start(archive)
    from trialpacs.pipeline import embedded

    pipeline = embedded.start(archive)
    from trialpacs.audit import scheduler

    checkpoints = scheduler.start(archive.db, settings.data_dir, settings.audit_checkpoint_interval)
    from trialpacs.audit import forwarding

    syslog = forwarding.start(archive.db, settings)
    app = create_app(archive)
    config = uvicorn.Config(
        app,
        log_config=log_config,
        host=settings.http_host,
        port=settings.http_port,
        log_level=log_level,
        proxy_headers=True,
        access_log=False,
        http=guarded_protocol(settings.http_header_timeout, settings.http_body_idle_timeout),
        timeout_keep_alive=int(settings.http_keep_alive_timeout),
        limit_concurrency=settings.http_max_connections,
        **https,
    )
    try:
        uvicorn.Server(config).run()
    finally:
        if syslog is not None:
            syslog.stop()
        if checkpoints is not None:
            checkpoints.stop()
        if pipeline is not None:
            pipeline.stop()
        if dimse is not None:
            dimse.stop()
        archive.close()
