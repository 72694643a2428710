"""Every HTTP error the server sends, as one JSON shape with a stable ``code``.

The body is OpenAI's error object, ``{"error": {"message", "type", "param", "code"}}``, for
every route (not only ``/v1``), so OpenAI clients raise their usual exceptions and other
clients have a single shape to parse. ``code`` is the stable, documented part; messages
are one line and may change. Nothing here ever sends a traceback: unexpected exceptions
are logged server-side and answered with ``internal_error``.

    status  type                    code
    400     invalid_request_error   invalid_request, invalid_query, invalid_input,
                                    blocked_url, invalid_config, unknown_backend,
                                    invalid_collection, invalid_id, not_supported
    401     authentication_error    unauthorized (missing or unknown API key)
    403     permission_error        forbidden (scope or collection not granted)
    404     not_found_error         not_found, model_not_found
    405     invalid_request_error   method_not_allowed
    409     invalid_request_error   conflict, busy
    413     invalid_request_error   too_large, too_many_files (per request, or more than
                                    the hourly upload quota)
    415     invalid_request_error   unsupported_media_type
    416     invalid_request_error   range_not_satisfiable (Content-Range: bytes */size)
    429     rate_limit_error        too_many_jobs, rate_limited (request rate or upload
                                    quota; with Retry-After)
    500     server_error            missing_dependency, store_error, mmrag_error,
                                    key_store_error, internal_error
    502     server_error            generation_failed
    503     server_error            unavailable

Clients need only ``error.code`` and ``error.message``; both are always present.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import (
    BlockedURLError,
    ConfigError,
    GenerationError,
    IngestError,
    MissingDependencyError,
    MmragError,
    QueryError,
    StoreError,
    UnknownBackendError,
)

__all__ = ["ApiError", "error_body", "error_for", "install_error_handlers", "one_line",
           "status_and_code"]

log = logging.getLogger(__name__)

# Most specific first: the first isinstance match wins.
_MMRAG_CODES: list[tuple[type[MmragError], int, str]] = [
    (BlockedURLError, 400, "blocked_url"),
    (IngestError, 400, "invalid_input"),
    (QueryError, 400, "invalid_query"),
    (UnknownBackendError, 400, "unknown_backend"),
    (ConfigError, 400, "invalid_config"),
    (MissingDependencyError, 500, "missing_dependency"),
    (GenerationError, 502, "generation_failed"),
    (StoreError, 500, "store_error"),
]
_HTTP_CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden",
               404: "not_found", 405: "method_not_allowed", 413: "too_large",
               415: "unsupported_media_type", 416: "range_not_satisfiable",
               422: "invalid_request",
               429: "too_many_requests"}
_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
          429: "rate_limit_error"}


class ApiError(Exception):
    """Raised by route code for a request it refuses; ``param`` names the bad field."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid_request",
                 param: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.param = status, code, param
        self.headers = headers  # e.g. WWW-Authenticate on a 401


def one_line(text: object, limit: int = 500) -> str:
    """Collapse a message to one line: clients and logs show it as is."""
    return (" ".join(str(text).split()) or "error")[:limit]


def error_body(message: str, status: int, code: str, param: str | None = None
               ) -> dict[str, Any]:
    kind = _TYPES.get(status) or ("server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": one_line(message), "type": kind, "param": param,
                      "code": code}}


def status_and_code(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and stable code an exception maps to (500/internal_error if none)."""
    if isinstance(exc, ApiError):
        return exc.status, exc.code
    for cls, status, code in _MMRAG_CODES:
        if isinstance(exc, cls):
            return status, code
    return (500, "mmrag_error") if isinstance(exc, MmragError) else (500, "internal_error")


def error_for(exc: BaseException, *, log_internal: bool = True) -> dict[str, Any]:
    """The error body for ``exc``; unexpected exceptions are logged, never described."""
    status, code = status_and_code(exc)
    if code == "internal_error":
        if log_internal:
            log.error("unexpected error while serving a request", exc_info=exc)
        return error_body("internal server error", status, code)
    return error_body(str(exc), status, code, getattr(exc, "param", None))


async def _on_error(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(error_for(exc), status_code=status_and_code(exc)[0],
                        headers=getattr(exc, "headers", None))


async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises after this response, so the server logs the traceback once.
    return JSONResponse(error_for(exc, log_internal=False),
                        status_code=status_and_code(exc)[0])


async def _on_http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return JSONResponse(error_body(message, exc.status_code, code),
                        status_code=exc.status_code, headers=exc.headers)


async def _on_validation(_: Request, exc: Exception) -> JSONResponse:
    """Pydantic's error list, reduced to the first problem: ``messages.0.role: ...``."""
    assert isinstance(exc, RequestValidationError)
    first = (exc.errors() or [{}])[0]
    where = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(where) or None
    message = first.get("msg", "invalid request body")
    return JSONResponse(error_body(f"{param}: {message}" if param else message, 400,
                                   "invalid_request", param), status_code=400)


def install_error_handlers(app: FastAPI) -> None:
    """Route every failure through :func:`error_body` (validation errors become 400, not
    FastAPI's 422, as OpenAI clients expect)."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(ApiError, _on_error)
    app.add_exception_handler(MmragError, _on_error)
    app.add_exception_handler(Exception, _on_unexpected)
