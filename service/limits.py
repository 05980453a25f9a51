"""Limits before work: a request body larger than the service's limit is refused with 413
before anything reads it — from its Content-Length when it declares one, and while it streams
in when it does not (chunked) — so that no route parses, authenticates or buffers an attacker's
64 MiB body first; a JSON body nested deeper than :data:`MAX_JSON_DEPTH` is refused with 400
``too_deep`` once it is in, before any parser (FastAPI's body models, ``read_json``) recurses
into it. A plain ASGI middleware; answers without a body pass through untouched."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from itertools import accumulate
from typing import Any, Final

import anyio
from anyio.to_thread import run_sync
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOO_LARGE: Final = 413
TOO_DEEP: Final = 400
MAX_JSON_DEPTH: Final = 64
"""How deep any JSON body may nest (arrays and objects; the outermost is level 1): room for a
policy's own 32 levels inside a message, and far below what a recursive parser survives."""

DRAIN_BYTES: Final = 16 * 1024 * 1024
"""A body refused for its size is read and thrown away up to this much before the answer goes:
a server that answers while the client is still sending, then closes, makes the client's kernel
see a reset, and the client never reads the 413 (nginx's lingering close does the same). Larger
bodies get the answer at once. Nothing is kept: memory stays flat whatever is sent."""
DRAIN_S: Final = 2.0
"""At most this long spent throwing a refused body away."""

_STEPS: Final = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS: Final = bytes(c for c in range(256) if c not in b"[]{}")


def json_depth(body: bytes | bytearray) -> int:
    """How deep the arrays and objects of a JSON text nest, brackets inside strings left out,
    without parsing or recursing (linear, in C: about 50 ms for 1 MiB of brackets). Exact for
    JSON; for anything else a number that the parser's own refusal makes moot."""
    # Escaped backslashes first, then escaped quotes: what is left of a string is quote to quote.
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    steps = memoryview(outside.translate(_STEPS, _NOT_BRACKETS)).cast("b")
    return max(accumulate(steps), default=0)


def nests_deeper(body: bytes | bytearray, max_depth: int = MAX_JSON_DEPTH) -> bool:
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False  # the common case, without a copy
    return json_depth(body) > max_depth


def too_deep(max_depth: int) -> str:
    return f"a JSON body nests at most {max_depth} deep"


class BodyRefusedError(Exception):
    """The body went past a limit while it streamed in."""


Refusal = Callable[[str, int, str, str], dict[str, Any]]
"""The body of a refusal for a path, its status, reason and message (a service may type it by
path)."""
Refused = Callable[[str, str, str], None]
"""Told of each refusal (method, path, ``reason: message``), e.g. to audit it; runs in a
worker thread."""


def plain_refusal(_path: str, _status: int, reason: str, message: str) -> dict[str, Any]:
    return {"type": "BadRequest", "reason": reason, "message": message}


def _may_be_json(content_type: bytes | None) -> bool:
    """What a JSON parser may be given: a body that declares no media type or a JSON one
    (FastAPI parses both kinds; ``read_json`` checks whatever it parses itself)."""
    return content_type is None or b"json" in content_type.lower()


async def _drain(receive: Receive, budget: int) -> None:
    """Read the rest of a refused body and throw it away: at most ``budget`` bytes, for at most
    :data:`DRAIN_S` seconds."""
    with anyio.move_on_after(DRAIN_S):
        while budget > 0:
            message = await receive()
            if message["type"] != "http.request":
                return
            budget -= len(message.get("body", b""))
            if not message.get("more_body", False):
                return


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        max_depth: int = MAX_JSON_DEPTH,
        refusal: Refusal = plain_refusal,
        refused: Refused | None = None,
        max_bytes_for: Mapping[str, int] | None = None,
    ) -> None:
        self.app, self.max_bytes, self.max_depth = app, max_bytes, max_depth
        self.refusal, self.refused = refusal, refused
        self.max_bytes_for = dict(max_bytes_for or {})
        """Paths (exact) that take bodies of another size than ``max_bytes``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        max_bytes = self.max_bytes_for.get(str(scope.get("path", "")), self.max_bytes)
        too_large = f"a body is at most {max_bytes} bytes"
        if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
            if declared.isdigit() and int(declared) <= DRAIN_BYTES:
                await _drain(receive, int(declared))
            await self._refuse(scope, send, TOO_LARGE, "body_too_large", too_large)
            return
        json_body = _may_be_json(headers.get(b"content-type"))
        chunks: list[bytes] = []
        seen = 0
        started = refused = False

        async def refuse(status: int, reason: str, message: str) -> None:
            nonlocal refused
            refused = True
            if not started:  # refused here, whatever the route makes of the error
                await self._refuse(scope, send, status, reason, message)
            raise BodyRefusedError

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request" and not refused:
                chunk = message.get("body", b"")
                seen += len(chunk)
                if seen > max_bytes:
                    if message.get("more_body", False):
                        await _drain(receive, DRAIN_BYTES - seen)
                    await refuse(TOO_LARGE, "body_too_large", too_large)
                if json_body:
                    chunks.append(chunk)
                    whole = not message.get("more_body", False)
                    if whole and nests_deeper(b"".join(chunks), self.max_depth):
                        await refuse(TOO_DEEP, "too_deep", too_deep(self.max_depth))
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the refusal went out; what the route answers to the error does not
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(BodyRefusedError):  # answered already: 413 or 400
            await self.app(scope, counted, tracked)

    async def _refuse(
        self, scope: Scope, send: Send, status: int, reason: str, message: str
    ) -> None:
        path = str(scope.get("path", ""))
        body = json.dumps(self.refusal(path, status, reason, message)).encode()
        await send({
            "type": "http.response.start", "status": status,
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()), (b"connection", b"close")],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})
        if self.refused is not None:
            why = f"{reason}: {message}"
            await run_sync(self.refused, str(scope.get("method", "")), path, why)
