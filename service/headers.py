"""Response headers every service sends (security review): no caching of answers (tokens,
credentials and personal data pass through them), no content sniffing, no framing, no
referrer; a strict content security policy on everything but the interactive API docs
(which load their scripts). A plain ASGI middleware: streams pass through untouched, only the
start of each response gets the headers it does not already have."""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADERS: Final = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
CSP: Final = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
DOCS: Final = ("/docs", "/redoc")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = str(scope.get("path", "")).startswith(DOCS)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                wanted = HEADERS if docs else (*HEADERS, CSP)
                headers += [(name, value) for name, value in wanted if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
