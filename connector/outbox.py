"""The persisted outbox: every outbound DSP message is written in the same transaction as the
state change that causes it, and delivered by a worker with retries and exponential backoff.
A crash between the two loses nothing; after a restart the worker sends what is pending.

Delivery outcomes: 2xx sent (an ``on_sent`` handler may read the answer, e.g. the providerPid
of an initial request); 408, 429, 5xx and network errors are retried; 404 and 409, which a
message that arrives before the counter-party recorded its previous step may get, are retried
a few times quickly; any other 4xx, or too many attempts, fails the message, and its
``on_failed`` handler ends the process it belongs to (both sides must agree on the state; a
refused message means they no longer do).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

import httpx
from sqlalchemy import Column, DateTime, Text, update
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, col, select

from connector.database import ConnectorBase
from identity.participant import Participant
from identity.presentations import EVERY_SCOPE

log = logging.getLogger("kexin.connector.outbox")

MAX_ATTEMPTS: Final = 8
BACKOFF_BASE_S: Final = 0.5
BACKOFF_MAX_S: Final = 60.0
RETRIED_STATUSES: Final = frozenset({408, 425, 429})
EARLY_STATUSES: Final = frozenset({404, 409})
"""What a counter-party answers to a message that may simply have arrived early (before it
recorded its own previous step, or registered the process): retried a few times, quickly."""
EARLY_ATTEMPTS: Final = 6
EARLY_BACKOFF_BASE_S: Final = 0.1
WORKER_BACKOFF_S: Final = 0.5
WORKER_BACKOFF_MAX_S: Final = 10.0
CONCURRENCY: Final = 16
"""Processes whose messages are sent at the same time."""


class Delivery(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class OutboxMessage(ConnectorBase, table=True):
    __tablename__ = "outbox_message"

    id: int | None = Field(default=None, primary_key=True)
    process_id: str = Field(max_length=100, index=True)
    kind: str = Field(max_length=100)
    """What sent it, so that the right handler sees the answer (e.g. ``negotiation.request``)."""
    audience: str = Field(max_length=2048)
    url: str = Field(max_length=4096)
    body: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default=Delivery.PENDING, max_length=20, index=True)
    attempts: int = 0
    next_attempt_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


def enqueue(
    session: Session,
    *,
    process_id: str,
    kind: str,
    audience: str,
    url: str,
    body: dict[str, Any],
    now: datetime,
) -> None:
    """Add a message to the caller's transaction: it is sent only if that transaction commits."""
    session.add(
        OutboxMessage(
            process_id=process_id, kind=kind, audience=audience, url=url,
            body=json.dumps(body, ensure_ascii=False), next_attempt_at=now, created_at=now,
        )
    )  # fmt: skip


@dataclass(frozen=True)
class Handlers:
    on_sent: Callable[[OutboxMessage, httpx.Response], None] | None = None
    on_failed: Callable[[OutboxMessage, str], None] | None = None
    headers: Callable[[OutboxMessage], dict[str, str]] | None = None
    """How to authorize the message; default: a DCP self-issued token for its audience."""


def worker_backoff_s(failures: int) -> float:
    """How long a worker waits after its ``failures``-th failed round in a row."""
    return float(min(WORKER_BACKOFF_MAX_S, WORKER_BACKOFF_S * 2 ** min(failures - 1, 10)))


def backoff(attempts: int, base_s: float = BACKOFF_BASE_S) -> timedelta:
    return timedelta(seconds=min(BACKOFF_MAX_S, base_s * 2 ** (attempts - 1)))


class Outbox:
    def __init__(
        self,
        engine: Engine,
        participant: Participant,
        client: httpx.AsyncClient,
        clock: Callable[[], datetime],
        static_tokens: dict[str, str] | None = None,
    ) -> None:
        self._static_tokens = static_tokens or {}
        """Conformance-testing mode: audience DID -> the static token sent instead of DCP."""
        self._engine = engine
        self._participant = participant
        self._client = client
        self._clock = clock
        self._handlers: dict[str, Handlers] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.failing: str | None = None
        """Why the worker's last round failed, while it keeps failing (for readiness)."""

    def register(self, kind: str, handlers: Handlers) -> None:
        self._handlers[kind] = handlers

    def wake(self) -> None:
        """Tell the worker that something was enqueued (call after the commit), from the event
        loop or from any other thread (sync routes run in a thread pool)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._wake.set()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    def _due(self) -> list[OutboxMessage]:
        with Session(self._engine) as session:
            return list(
                session.exec(
                    select(OutboxMessage)
                    .where(OutboxMessage.status == Delivery.PENDING)
                    .where(col(OutboxMessage.next_attempt_at) <= self._clock())
                    .order_by(col(OutboxMessage.id))
                    .limit(100)
                ).all()
            )

    def _next_due_at(self) -> datetime | None:
        with Session(self._engine) as session:
            pending = session.exec(
                select(OutboxMessage.next_attempt_at)
                .where(OutboxMessage.status == Delivery.PENDING)
                .order_by(col(OutboxMessage.next_attempt_at))
                .limit(1)
            ).first()
        if pending is None:
            return None
        return pending if pending.tzinfo else pending.replace(tzinfo=UTC)

    async def deliver_due(self) -> int:
        """Send what is due: processes in parallel (at most ``CONCURRENCY`` at once), each
        process's messages strictly in order; returns how many were attempted."""
        by_process: dict[str, list[OutboxMessage]] = {}
        for message in self._due():
            by_process.setdefault(message.process_id, []).append(message)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def in_order(messages: list[OutboxMessage]) -> None:
            async with gate:
                for message in messages:
                    if await self._deliver(message) != Delivery.SENT:
                        return  # a later message must not overtake one retried or failed

        await asyncio.gather(*(in_order(messages) for messages in by_process.values()))
        return sum(len(messages) for messages in by_process.values())

    def _dcp_headers(self, message: OutboxMessage) -> dict[str, str]:
        static = self._static_tokens.get(message.audience)
        if static is not None:
            return {"Authorization": f"Bearer {static}"}
        token = self._participant.sts.bearer_for(message.audience, EVERY_SCOPE)
        return {"Authorization": f"Bearer {token}"}

    async def _deliver(self, message: OutboxMessage) -> Delivery:
        """Attempt one message: sent, failed, or still pending (to be retried)."""
        handlers = self._handlers.get(message.kind, Handlers())
        headers = (handlers.headers or self._dcp_headers)(message)
        error: str | None = None
        retry = early = False
        response: httpx.Response | None = None
        try:
            response = await self._client.post(
                message.url,
                content=message.body,
                headers={**headers, "Content-Type": "application/json"},
            )
        except httpx.HTTPError as failure:
            error, retry = f"{type(failure).__name__}: {failure}", True
        if response is not None and not response.is_success:
            error = f"{response.status_code}: {response.text[:500]}"
            retry = response.status_code >= 500 or response.status_code in RETRIED_STATUSES
            early = response.status_code in EARLY_STATUSES
        with Session(self._engine) as session:
            stored = session.get(OutboxMessage, message.id)
            assert stored is not None  # noqa: S101 - read a moment ago, never deleted
            stored.attempts += 1
            stored.last_error = error
            if error is None:
                stored.status = Delivery.SENT
            elif retry and stored.attempts < MAX_ATTEMPTS:
                stored.next_attempt_at = self._clock() + backoff(stored.attempts)
            elif early and stored.attempts < EARLY_ATTEMPTS:
                wait = backoff(stored.attempts, EARLY_BACKOFF_BASE_S)
                stored.next_attempt_at = self._clock() + wait
            else:
                stored.status = Delivery.FAILED
                self._drop_later(session, stored)
            session.add(stored)
            session.commit()
            session.refresh(stored)
        if stored.status == Delivery.SENT and handlers.on_sent and response is not None:
            handlers.on_sent(stored, response)
        if stored.status == Delivery.FAILED and handlers.on_failed:
            handlers.on_failed(stored, error or "failed")
        return Delivery(stored.status)

    @staticmethod
    def _drop_later(session: Session, failed: OutboxMessage) -> None:
        """Messages to the same party that the process enqueued after one that failed assumed it
        was delivered: they are not sent either (the process's failure handler decides what
        to tell the other side)."""
        session.execute(
            update(OutboxMessage)
            .where(
                col(OutboxMessage.process_id) == failed.process_id,
                col(OutboxMessage.audience) == failed.audience,
                col(OutboxMessage.status) == Delivery.PENDING,
                col(OutboxMessage.id) > failed.id,
            )
            .values(status=Delivery.FAILED, last_error=f"not sent: message {failed.id} failed")
        )

    async def run(self) -> None:
        """The worker: deliver what is due; sleep until woken or until the next retry is due.
        A round that fails (the database locked, read-only, full or gone) is logged and tried
        again after a backoff: the worker never ends but with the app, and what was pending
        is sent once the fault clears (a message delivered but not recorded as sent goes
        again: receivers answer a repeat as the first time)."""
        self._loop = asyncio.get_running_loop()
        failures = 0
        while True:
            self._wake.clear()
            try:
                await self.deliver_due()
                due = self._next_due_at()
            except Exception as error:
                failures += 1
                self.failing = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                log.warning("outbox round %d failed, retrying: %s", failures, self.failing)
                await asyncio.sleep(worker_backoff_s(failures))
                continue
            failures, self.failing = 0, None
            timeout = None if due is None else max(0.0, (due - self._clock()).total_seconds())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
