"""HTTP plumbing the service apps share: bounded JSON bodies and typed error bodies.

Every refusal leaves as ``{"type": ..., "reason": ..., "message": ...}`` with a 4xx status,
the framework's own (unknown path, wrong method, unreadable body) included; a malformed,
oversized or too deeply nested body never reaches a handler as a half-read object; a database
that cannot be used gives 503 ``database_unavailable``. :mod:`service.refusals` documents them
in the routes' OpenAPI ``responses``.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Annotated, Any, Final

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator
from sqlalchemy.exc import InternalError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from identity.credential_service import UnsupportedQueryError
from identity.errors import IdentityError, http_status
from service.headers import SecurityHeaders
from service.limits import MAX_JSON_DEPTH, BodyLimit, Refusal, nests_deeper, plain_refusal, too_deep
from service.logs import one_line, redact_access_log

log = logging.getLogger("kexin.service")
RETRY_AFTER_S: Final = 5
DATABASE_UNAVAILABLE: Final = (OperationalError, InternalError, PoolTimeout)
"""What a database that is locked, unreachable, read-only or full raises (SQLite and
PostgreSQL): answered 503 ``database_unavailable``, never a 500 with a traceback."""


class BadRequestError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


async def read_json(request: Request, max_bytes: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise BadRequestError(413, "body_too_large", f"a body is at most {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise BadRequestError(413, "body_too_large", f"a body is at most {max_bytes} bytes")
    if nests_deeper(body, MAX_JSON_DEPTH):  # whatever its media type says
        raise BadRequestError(400, "too_deep", too_deep(MAX_JSON_DEPTH))
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequestError(400, "malformed_json", "the body is not JSON") from None


def check_http_url(value: str) -> str:
    """An absolute http(s) URL that an HTTP client can send to (no control characters, a
    host, a valid port), for settings and request fields naming a peer: a bad one is the
    caller's 4xx, never the client library's exception later."""
    if any(ord(c) < 0x21 or 0x7F <= ord(c) <= 0x9F for c in value):
        raise ValueError("a URL has no spaces or control characters")
    try:
        url = httpx.URL(value)
        port = url.port
    except (httpx.InvalidURL, ValueError, TypeError) as error:
        raise ValueError(f"not a URL: {error}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("an absolute http(s) URL is needed")
    if port is not None and not 0 < port < 65536:
        raise ValueError("the port must be 1 to 65535")
    return value


HttpUrl = Annotated[str, AfterValidator(check_http_url)]


def error_body(kind: str, reason: str, message: str) -> dict[str, str]:
    return {"type": kind, "reason": reason, "message": message}


def install_error_handlers(
    app: FastAPI, *, max_body_bytes: int | None = None, refusal: Refusal = plain_refusal
) -> None:
    """Typed error bodies for every refusal, the security headers, the access log's redaction
    and, given ``max_body_bytes``, the body limit applied before any route runs. ``refusal``
    types the framework's own refusals and the body limit's (a service may type them by
    path)."""

    async def identity_error(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, IdentityError)  # noqa: S101 - registered for this type only
        return JSONResponse(
            error_body("IdentityError", error.reason.value, error.message),
            status_code=http_status(error.reason),
            headers={"WWW-Authenticate": "Bearer"} if http_status(error.reason) == 401 else None,
        )

    async def bad_request(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, BadRequestError)  # noqa: S101 - registered for this type only
        return JSONResponse(
            error_body("BadRequest", error.reason, error.message), status_code=error.status
        )

    async def unsupported(_request: Request, error: Exception) -> JSONResponse:
        return JSONResponse(error_body("NotImplemented", "unsupported", str(error)), 501)

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        # the framework's own refusals: no such path, a method the path does not take, a body
        # that cannot be read
        assert isinstance(error, HTTPException)  # noqa: S101 - registered for this type only
        reason = HTTPStatus(error.status_code).phrase.lower().replace(" ", "_")
        body = refusal(request.url.path, error.status_code, reason, str(error.detail))
        return JSONResponse(body, status_code=error.status_code, headers=error.headers)

    async def invalid_request(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)  # noqa: S101 - registered for this type
        problems = [
            f"{'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        ]
        body = error_body("BadRequest", "invalid_request", "; ".join(problems))
        return JSONResponse(body, status_code=422)

    async def database_unavailable(_request: Request, error: Exception) -> JSONResponse:
        # locked, unreachable, read-only or full: nothing was changed, and it may pass
        log.error("database unavailable: %s", one_line(error))
        body = error_body(
            "ServiceUnavailable",
            "database_unavailable",
            "the database cannot be used at the moment; nothing was changed, try again later",
        )
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})

    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, database_unavailable)
    if max_body_bytes is not None:
        app.add_middleware(BodyLimit, max_bytes=max_body_bytes, refusal=refusal)
    app.add_middleware(SecurityHeaders)
    redact_access_log()
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(IdentityError, identity_error)
    app.add_exception_handler(BadRequestError, bad_request)
    app.add_exception_handler(UnsupportedQueryError, unsupported)
