"""One audit entry per request, written by the server after the response.

A pure ASGI middleware (not BaseHTTPMiddleware, which buffers streamed WADO
bodies): it sees the final status and, once routing has run, the route
template and path parameters FastAPI left in the scope, and the principal
``require_identity`` left in ``request.state``. The entry is appended in a
worker thread so the event loop never waits on the database; the request's
task ends only once the entry is committed.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trialpacs.access.policy import Principal
from trialpacs.audit.chain import AuditEvent, record
from trialpacs.index.db import Database

SKIP_PREFIXES = ("/health", "/ready", "/viewer", "/static/")  # probes and static files
_OBJECT_PARAMS = {"study": "study", "series": "series", "sop": "sop", "trial": "trial",
                  "site": "site"}  # fmt: skip


def outcome_of(status: int) -> str:
    if status < 400:
        return "success"
    if status in (401, 403, 404):
        # A refusal looks like a missing object to the caller, not in the trail.
        return "denied" if status != 404 else "failure"
    return "failure" if status < 500 else "error"


def event_for(scope: Scope, status: int) -> AuditEvent:
    params: dict[str, Any] = scope.get("path_params") or {}
    template = route_template(scope, params) if scope.get("endpoint") else "<unmatched>"
    state = scope.get("state") or {}
    principal = state.get("principal")
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
    client = scope.get("client")
    event = AuditEvent(
        action=f"{scope.get('method', 'GET')} {template}",
        outcome=outcome_of(status),
        address=client[0] if client else "",
        agent=headers.get("user-agent", ""),
        detail={"status": status},
    )
    if isinstance(principal, Principal):
        event.actor = principal.subject
        event.roles = [str(g) for g in principal.grants]
    for param, field in _OBJECT_PARAMS.items():
        value = params.get(param)
        if isinstance(value, str):
            setattr(event, field, value[:64])
    for other in ("name", "username"):
        if isinstance(params.get(other), str):
            event.object = f"{other}={params[other]}"[:256]
    if template == "<unmatched>":
        event.object = str(scope.get("path", ""))[:256]
    return event


def request_template(request: Any, action: str) -> AuditEvent:
    """An entry template naming the caller of ``request``, for domain code that
    writes its own entries (the store path writes them with the instances)."""
    event = AuditEvent(action=action, agent=request.headers.get("user-agent", "")[:256])
    client = request.client
    event.address = client.host if client else ""
    principal = getattr(request.state, "principal", None)
    if isinstance(principal, Principal):
        event.actor = principal.subject
        event.roles = [str(g) for g in principal.grants]
    return event


def route_template(scope: Scope, params: dict[str, Any]) -> str:
    """The route as declared (``/dicomweb/studies/{study}``), rebuilt from the matched path.

    Included routers keep their prefix apart from the route object, so the
    concrete path with each parameter's value put back as ``{name}`` (in the
    order they appear) is the reliable form, and it is what monitors filter on.
    """
    path = str(scope.get("path", ""))
    for name, value in params.items():
        text = str(value)
        if not text:
            continue
        marker = "/" + text
        at = path.find(marker + "/")
        if at < 0 and path.endswith(marker):
            at = len(path) - len(marker)
        if at >= 0:
            path = path[:at] + "/{" + name + "}" + path[at + len(marker) :]
    return path


class AuditMiddleware:
    def __init__(self, app: ASGIApp, db: Database) -> None:
        self.app = app
        self.db = db

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(SKIP_PREFIXES):
            await self.app(scope, receive, send)
            return
        status = 500
        served = ""

        async def send_status(message: Message) -> None:
            nonlocal status, served
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-range":
                        served = value.decode("latin-1")[:64]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            event = event_for(scope, status)
            if served:
                # A byte-range request (a <video> seeking) is its own entry, with the part sent.
                event.detail["range"] = served
            await anyio.to_thread.run_sync(record, self.db, event)
