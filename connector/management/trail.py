"""The audit trail of the data holder's own actions: every change made through the management
API or the data contracts API (any method but GET) is audited with who made it (the API key's
id, never the key), what (method and path) and how it ended (the HTTP status). A plain ASGI
middleware: it passes everything else, data-plane streams included, through untouched.

The event is written after the action's own transaction (not in it): a crash between the two,
or a database that fails the event's write (logged), can lose the event of an action that took
effect.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Final

from anyio.to_thread import run_sync
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connector.audit import AuditRecord, AuditSink, Outcome

log = logging.getLogger("kexin.connector.trail")

MANAGED_PATHS: Final = ("/management/", "/contracts/")


def key_id(api_key: str | None) -> str:
    """Names an API key in the audit log without revealing it."""
    if not api_key:
        return "no key"
    return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


class ManagementTrail:
    def __init__(
        self, app: ASGIApp, *, audit: AuditSink, actor: str, clock: Callable[[], datetime]
    ) -> None:
        self.app, self.audit, self.actor, self.clock = app, audit, actor, clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if (
            scope["type"] != "http"
            or scope.get("method") in ("GET", "HEAD", "OPTIONS")
            or not path.startswith(MANAGED_PATHS)
        ):
            await self.app(scope, receive, send)
            return
        status = 500

        async def seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, seen)
        finally:
            headers = dict(scope.get("headers") or [])
            api_key = headers.get(b"x-api-key", b"").decode("latin-1")
            record = AuditRecord(
                actor=self.actor,
                action=f"{scope.get('method')} {path}"[:200],
                outcome=Outcome.ACCEPTED if status < 400 else Outcome.REFUSED,
                occurred_at=self.clock(),
                subject=f"operator {key_id(api_key)}",
                reason=f"HTTP {status}",
            )
            try:
                await run_sync(self.audit.record, record)
            except SQLAlchemyError as error:  # the database failed the action too, most likely
                log.error("management action not audited (%s): %s %s", error, record.action,
                          record.reason)  # fmt: skip
