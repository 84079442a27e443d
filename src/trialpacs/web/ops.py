"""Operations routes: ``/ready`` for load balancers, ``/metrics`` for an authorised scraper.

``/metrics`` needs a caller the policy lets do ``metrics``: an administrator
grant on a credential with the ``metrics`` scope (``trialpacs apikey create
--name prometheus --scope metrics``); anyone else gets the same 404 as for a
route that does not exist. ``/ready`` answers without credentials, like
``/health``, and says only whether the database and the store answer.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trialpacs.access.policy import Principal, Resource
from trialpacs.archive import Archive
from trialpacs.ops import readiness
from trialpacs.ops.metrics import Metrics
from trialpacs.web.audit import route_template
from trialpacs.web.deps import get_archive, require_action, require_identity

router = APIRouter(tags=["operations"])


@router.get("/ready")
async def ready(archive: Archive = Depends(get_archive)) -> JSONResponse:
    result = await run_in_threadpool(readiness.check, archive)
    return JSONResponse(
        {"status": "ready" if result.ready else "not ready", "checks": result.checks},
        status_code=200 if result.ready else 503,
    )


@router.get("/metrics")
async def metrics(request: Request, principal: Principal = Depends(require_identity)) -> Response:
    require_action(principal, "metrics", Resource(kind="admin"))
    registry = request.app.state.metrics.registry
    body = await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Counts requests and their latency by route template (never by concrete URL:
    UIDs in paths would make one time series per study, and are not for a dashboard)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            params = scope.get("path_params") or {}
            route = route_template(scope, params) if scope.get("endpoint") else "<unmatched>"
            self.metrics.observe(
                str(scope.get("method", "GET")), route, status, time.perf_counter() - t0
            )
