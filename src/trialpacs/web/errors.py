"""Map domain errors to HTTP answers whose body names the problem."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from trialpacs.errors import Conflict, InvalidInput, NotFound, TooLarge

log = logging.getLogger(__name__)


def install(app: FastAPI) -> None:
    @app.exception_handler(TooLarge)
    async def _too_large(_: Request, exc: TooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413)

    @app.exception_handler(InvalidInput)
    async def _invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(NotFound)
    async def _missing(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)


class UnsupportedMediaType(InvalidInput):
    """The request body is not of a type the route accepts (415)."""


class NotAcceptable(InvalidInput):
    """No representation matches the Accept header (406)."""


def install_media_errors(app: FastAPI) -> None:
    @app.exception_handler(UnsupportedMediaType)
    async def _unsupported(_: Request, exc: UnsupportedMediaType) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=415)

    @app.exception_handler(NotAcceptable)
    async def _not_acceptable(_: Request, exc: NotAcceptable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=406)
