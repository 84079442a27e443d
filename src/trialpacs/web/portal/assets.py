"""The portal's static files: our own scripts and styles, and htmx vendored from npm."""

from __future__ import annotations

import sys
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from trialpacs.errors import NotFound

HTMX_VERSION = "2.0.11"
STATIC = Path(__file__).with_name("static")
TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml"}
router = APIRouter()


def htmx_path() -> Path:
    return Path(sys.prefix) / "share" / "trialpacs" / f"htmx-{HTMX_VERSION}" / "htmx.min.js"


@router.get("/static/{name}", include_in_schema=False)
async def static_file(name: str) -> Response:
    if name == "htmx.min.js":
        target = htmx_path()
        if not target.is_file():
            raise NotFound(
                f"htmx is not installed: run scripts/install.sh (htmx.org {HTMX_VERSION})"
            )
    else:
        target = STATIC / name
        if "/" in name or name.startswith(".") or not target.is_file():
            raise NotFound("no such file")
    return FileResponse(
        target,
        media_type=TYPES.get(target.suffix, "application/octet-stream"),
        headers={
            "Cache-Control": "public, max-age=3600",
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Resource-Policy": "same-origin",
        },
    )
