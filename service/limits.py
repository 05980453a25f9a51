"""Limits before work: a request body larger than the service's limit is refused with 413
before anything reads it — from its Content-Length when it declares one, and while it streams
in when it does not (chunked) — so that no route parses, authenticates or buffers an attacker's
64 MiB body first. A plain ASGI middleware; answers without a body pass through untouched."""

from __future__ import annotations

import contextlib
import json
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOO_LARGE: Final = 413


class BodyTooLargeError(Exception):
    """The body went past the limit while it streamed in."""


def _refusal(max_bytes: int) -> bytes:
    return json.dumps(
        {"type": "BadRequest", "reason": "body_too_large",
         "message": f"a body is at most {max_bytes} bytes"}
    ).encode()  # fmt: skip


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
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
                        await self._refuse(send)
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

    async def _refuse(self, send: Send) -> None:
        body = _refusal(self.max_bytes)
        await send({
            "type": "http.response.start", "status": TOO_LARGE,
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()), (b"connection", b"close")],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})
