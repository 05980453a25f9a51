"""Limits before work: a request body larger than the service's limit is refused with 413
before anything reads it — from its Content-Length when it declares one, and while it streams
in when it does not (chunked) — so that no route parses, authenticates or buffers an attacker's
64 MiB body first. A plain ASGI middleware; answers without a body pass through untouched."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any, Final

from anyio.to_thread import run_sync
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOO_LARGE: Final = 413


class BodyTooLargeError(Exception):
    """The body went past the limit while it streamed in."""


Refusal = Callable[[str, int], dict[str, Any]]
"""The body of the 413 for a path and the limit (a service may type it by path)."""
Refused = Callable[[str, str, int], None]
"""Told of each refusal (method, path, limit), e.g. to audit it; runs in a worker thread."""


def plain_refusal(_path: str, max_bytes: int) -> dict[str, Any]:
    return {
        "type": "BadRequest",
        "reason": "body_too_large",
        "message": f"a body is at most {max_bytes} bytes",
    }


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        refusal: Refusal = plain_refusal,
        refused: Refused | None = None,
    ) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.refusal, self.refused = refusal, refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, send)
            return
        seen = 0
        started = refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes and not refused:
                    refused = True
                    if not started:  # refused here, whatever the route makes of the error
                        await self._refuse(scope, send)
                    raise BodyTooLargeError
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out; what the route answers to the error does not
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(BodyTooLargeError):  # answered already: 413
            await self.app(scope, counted, tracked)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        path = str(scope.get("path", ""))
        body = json.dumps(self.refusal(path, self.max_bytes)).encode()
        await send({
            "type": "http.response.start", "status": TOO_LARGE,
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()), (b"connection", b"close")],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})
        if self.refused is not None:
            await run_sync(self.refused, str(scope.get("method", "")), path, self.max_bytes)
