"""The ASGI response that streams one admitted access and records how it ended.

It listens for the client going away (uvicorn's ``send`` returns silently after a disconnect),
so an interrupted download is recorded as interrupted, never as completed. When the source
fails mid-stream the response is left unfinished: the connection closes before the promised
length (or the last chunk), so the client sees an error instead of a short file that looks
whole.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from connector.dataplane.sources import Body, SourceError

Finish = Callable[[str, int, int | None, str | None], None]
"""outcome, bytes sent, rows sent, reason"""
Progress = Callable[[int], None]
"""bytes sent so far"""
PROGRESS_BYTES = 8 << 20
"""How often, in bytes sent, the access records how far it got (so that a crash still leaves
the bytes that went out, give or take this much)."""


class AccessResponse(Response):
    def __init__(self, body: Body, finish: Finish, progress: Progress | None = None) -> None:
        self.background = None
        self.source = body
        self.finish = finish
        self.progress = progress

    def _header_list(self) -> list[tuple[bytes, bytes]]:
        headers = {"content-type": self.source.media_type, "cache-control": "no-store"}
        headers.update({k.lower(): v for k, v in self.source.headers.items()})
        if self.source.length is not None:
            headers["content-length"] = str(self.source.length)
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sent, recorded, outcome = 0, 0, "interrupted"
        reason: str | None = "the client went away"
        try:
            await send(
                {"type": "http.response.start", "status": self.source.status,
                 "headers": self._header_list()}
            )  # fmt: skip
            async with anyio.create_task_group() as group:

                async def listen() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(listen)
                try:
                    async for chunk in self.source.chunks:
                        await send({"type": "http.response.body", "body": chunk,
                                    "more_body": True})  # fmt: skip
                        sent += len(chunk)
                        if self.progress is not None and sent >= recorded + PROGRESS_BYTES:
                            recorded = sent
                            await anyio.to_thread.run_sync(self.progress, sent)
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    outcome, reason = "completed", None
                except SourceError as error:
                    outcome, reason = "failed", f"{error.code}: {error.message}"
                except OSError as error:
                    outcome, reason = "failed", f"source_failed: {error}"
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.source.aclose()
                await anyio.to_thread.run_sync(self.finish, outcome, sent, self.source.rows, reason)
