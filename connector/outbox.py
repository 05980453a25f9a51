"""The persisted outbox: every outbound DSP message is written in the same transaction as the
state change that causes it, and delivered by a worker with retries and exponential backoff.
A crash between the two loses nothing; after a restart the worker sends what is pending. A move
that found nothing of its process pending before its messages hands them to the worker once
committed (``hand``), so they go at once, without a scan of the table; a process's messages
still go one after the other, in order.

Delivery outcomes: 2xx sent (an ``on_sent`` handler may read the answer, e.g. the providerPid
of an initial request); 408, 425, 429, 5xx and network errors are retried with capped,
jittered exponential backoff until the delivery deadline (24 h after the message was enqueued,
by default); 404 and 409, which a message that arrives before the counter-party recorded its
previous step may get, are retried a few times quickly; any other 4xx, or the deadline passed,
fails the message (given up: the operator can list and retry it), and its ``on_failed``
handler ends the process it belongs to (both sides must agree on the state; a refused message
means they no longer do): the termination it sends is retried until its own deadline, so the
other side hears of it when it comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any, Final

import httpx
from sqlalchemy import Column, DateTime, Text, bindparam, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlalchemy.sql.expression import Executable
from sqlmodel import Field, Session, col, select

from connector.database import ConnectorBase
from connector.faults import NO_FAULTS, FaultPoint, Faults
from identity.participant import Participant
from identity.presentations import EVERY_SCOPE
from service.logs import one_line
from service.threads import run_to_completion

log = logging.getLogger("kexin.connector.outbox")

DEADLINE_S: Final = 24 * 3600.0
"""Default: how long a message is retried after it was enqueued before it is given up."""
BACKOFF_BASE_S: Final = 0.5
BACKOFF_MAX_S: Final = 60.0
_JITTER: Final = secrets.SystemRandom()
RETRIED_STATUSES: Final = frozenset({408, 425, 429})
EARLY_STATUSES: Final = frozenset({404, 409})
"""What a counter-party answers to a message that may simply have arrived early (before it
recorded its own previous step, or registered the process): retried a few times, quickly."""
EARLY_ATTEMPTS: Final = 6
EARLY_BACKOFF_BASE_S: Final = 0.1
WORKER_BACKOFF_S: Final = 0.5
WORKER_BACKOFF_MAX_S: Final = 10.0
CONCURRENCY: Final = 32
"""Processes whose messages are sent at the same time."""
TRIED_KEPT: Final = 10_000
"""Processes whose last attempted message the worker remembers (``Outbox._trying``)."""
PENDING_SCAN: Final = 2000
"""Pending messages the worker looks at in one round (more: it looks again soon)."""


class Delivery(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True)
class _Plan:
    """A round of the worker, as read from the database."""

    going: list[tuple[str, list[OutboxMessage]]]
    held: set[str]
    next_due: datetime | None
    saturated: bool


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
    retried_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    """When the operator last sent it again after it was given up: its deadline starts anew."""


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


OLDER_LIMIT: Final = 8
"""``older_pending`` looks for at most this many (more: the worker scans the table)."""

# Hot statements built once, with their parameters bound at each call: building a statement
# and its cache key each time cost more than running it (measured: 140 us against 24 us).
_MESSAGES: Final = OutboxMessage.__table__  # type: ignore[attr-defined]
_OLDER_PENDING: Final = (
    sa_select(_MESSAGES.c.id)
    .where(_MESSAGES.c.process_id == bindparam("process_id"))
    .where(_MESSAGES.c.status == bindparam("status"))
    .limit(OLDER_LIMIT)
)
_MARK_SENT: Final = (
    update(_MESSAGES)
    .where(_MESSAGES.c.id == bindparam("message_id"))
    .values(
        status=Delivery.SENT, attempts=_MESSAGES.c.attempts + 1, last_error=None,
        body=bindparam("sent_body"),
    )
)  # fmt: skip


def older_pending(session: Session, process_id: str) -> list[int] | None:
    """In the transaction that enqueues a process's messages, holding the process's lock: the
    process's messages pending before them (not the ones added but not yet flushed: Core, on
    the session's connection, does not flush), to be given to ``Outbox.hand`` with them once
    committed; None if there are too many."""
    older = (
        session.connection()
        .execute(_OLDER_PENDING, {"process_id": process_id, "status": Delivery.PENDING})
        .scalars()
        .all()
    )
    return None if len(older) >= OLDER_LIMIT else [i for i in older if i is not None]


@dataclass(frozen=True)
class Handlers:
    answer: Callable[[OutboxMessage, httpx.Response], Sequence[Executable]] | None = None
    """What the answer to a sent message changes, as statements run in the transaction that
    records the message sent (one write, not two; a handler that finds the answer unusable
    ends the process itself and returns none)."""
    on_sent: Callable[[OutboxMessage, httpx.Response], None] | None = None
    """Told after the message is recorded sent."""
    on_failed: Callable[[OutboxMessage, str], None] | None = None
    headers: Callable[[OutboxMessage], dict[str, str]] | None = None
    """How to authorize the message; default: a DCP self-issued token for its audience."""


SECRET_NAMES: Final = frozenset({"authorization", "refreshtoken", "token", "authtoken"})
REDACTED: Final = "[redacted]"


def without_secrets(body: str) -> str:
    """A message as it may be kept once it is sent or given up: the tokens it carried (a data
    address's ``authorization`` and ``refreshToken`` endpoint properties, or such keys) are
    replaced, so that the database never holds them raw once they are on their way."""
    try:
        document = json.loads(body)
    except ValueError:
        return body

    def scrub(node: Any) -> Any:
        if isinstance(node, list):
            return [scrub(item) for item in node]
        if not isinstance(node, dict):
            return node
        named = str(node.get("name", "")).lower() in SECRET_NAMES and "value" in node
        return {
            key: REDACTED
            if (named and key == "value") or key.lower() in SECRET_NAMES
            else scrub(value)
            for key, value in node.items()
        }

    return json.dumps(scrub(document), ensure_ascii=False)


def worker_backoff_s(failures: int) -> float:
    """How long a worker waits after its ``failures``-th failed round in a row."""
    return float(min(WORKER_BACKOFF_MAX_S, WORKER_BACKOFF_S * 2 ** min(failures - 1, 10)))


def backoff(attempts: int, base_s: float = BACKOFF_BASE_S) -> timedelta:
    """Exponential from ``base_s``, capped, with jitter (between half and all of it), so that
    the messages held up by one outage do not all come back at the same moment."""
    ceiling = min(BACKOFF_MAX_S, base_s * 2 ** min(attempts - 1, 30))
    return timedelta(seconds=ceiling * _JITTER.uniform(0.5, 1.0))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Outbox:
    def __init__(
        self,
        engine: Engine,
        participant: Participant,
        client: httpx.AsyncClient,
        clock: Callable[[], datetime],
        static_tokens: dict[str, str] | None = None,
        *,
        deadline_s: float = DEADLINE_S,
        backoff_s: float = BACKOFF_BASE_S,
        faults: Faults = NO_FAULTS,
    ) -> None:
        self._faults = faults
        self._backoff_s = backoff_s
        self._deadline = timedelta(seconds=deadline_s)
        self._static_tokens = static_tokens or {}
        """Conformance-testing mode: audience DID -> the static token sent instead of DCP."""
        self._engine = engine
        self._participant = participant
        self._client = client
        self._clock = clock
        self._handlers: dict[str, Handlers] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._round_failing: str | None = None
        self._delivery_failing: str | None = None
        self._in_flight: dict[str, asyncio.Task[bool]] = {}
        self._queues: dict[str, list[OutboxMessage]] = {}
        """Each process in flight: the messages its task goes through, in order."""
        self._tried: dict[str, int] = {}
        """Recent processes (least recent first): the id of the last message attempted."""
        self._handed: set[str] = set()
        """Processes whose delivery a hand-over started since the worker's round began (what
        the round read of them may be out of date)."""
        self._dirty = True
        """Something may have been enqueued since the worker last looked."""
        self._saturated = False
        """The last round left due processes waiting for a free slot."""
        self._held: set[str] = set()
        """Processes in flight that have more messages pending."""
        self._pending_query = (
            sa_select(OutboxMessage.id, OutboxMessage.process_id, OutboxMessage.next_attempt_at)  # type: ignore[call-overload]
            .where(col(OutboxMessage.status) == Delivery.PENDING)
            .order_by(col(OutboxMessage.id))
            .limit(PENDING_SCAN)
        )

    @property
    def failing(self) -> str | None:
        """Why the worker's last round or delivery failed, while it keeps failing."""
        return self._round_failing or self._delivery_failing

    def register(self, kind: str, handlers: Handlers) -> None:
        self._handlers[kind] = handlers

    def wake(self) -> None:
        """Tell the worker that something was enqueued (call after the commit), from the event
        loop or from any other thread (sync routes run in a thread pool)."""
        self._dirty = True  # before the event: the worker clears the event, then reads this
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

    def hand(self, messages: list[OutboxMessage], older: Sequence[int] = ()) -> None:
        """Deliver ``messages`` (just committed, of one process, in order) without a scan of
        the table. ``older``: the process's messages that were pending before them, as the
        committing transaction saw while it held the process (``older_pending``); they are
        sent after those when those are all in the process's delivery under way, at once when
        there are none. Otherwise (or when every slot is taken) the worker looks at the table
        as after ``wake``. From any thread."""
        loop = self._loop
        if not messages or loop is None or loop.is_closed():
            self.wake()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._take(messages, frozenset(older))
        else:
            loop.call_soon_threadsafe(self._take, messages, frozenset(older))

    def _take(self, messages: list[OutboxMessage], older: frozenset[int]) -> None:
        process_id = messages[0].process_id
        # a round of the worker that ran since the commit may have picked them up already
        tried = self._tried.get(process_id, 0)
        task = self._in_flight.get(process_id)
        queued = {message.id for message in self._queues.get(process_id, [])}
        messages = [m for m in messages if (m.id or 0) > tried and m.id not in queued]
        if not messages:
            return
        if task is not None:
            queue = self._queues[process_id]
            if not task.done() and older <= queued:
                queue.extend(messages)  # its delivery goes on with them
            else:
                self._held.add(process_id)  # looked for when its task is done
        elif older or len(self._in_flight) >= CONCURRENCY or self._saturated:
            self._dirty = True
            self._wake.set()
        else:
            self._handed.add(process_id)
            self._start(process_id, messages)

    def _start(self, process_id: str, messages: list[OutboxMessage]) -> None:
        self._queues[process_id] = messages
        task = asyncio.create_task(self._in_order(messages))
        self._in_flight[process_id] = task
        task.add_done_callback(partial(self._landed, process_id))

    def _pending(self) -> list[tuple[int, str, datetime]]:
        """Every pending message's id, process and due time, in order (one light query: the
        bodies are read only for the messages that go now)."""
        with self._engine.connect() as connection:
            rows = connection.execute(self._pending_query).all()
        return [(row[0], row[1], _aware(row[2])) for row in rows]

    async def _dispatch(self) -> datetime | None:
        """Start one delivery task for each process with messages due and none in flight (at
        most ``CONCURRENCY`` at once): a slow peer holds up only its own processes, and a
        message enqueued meanwhile goes as soon as its process is free. A process's messages
        go in order: one waiting for its retry holds back the later ones (no overtaking).
        Returns when the next message not sent now is due (None: only a wake-up can bring
        one), for the processes not in flight (a busy process's task wakes the worker when
        it is done, if it left anything for later)."""
        # the database work in one worker thread hop, as all database work
        self._handed.clear()
        plan = await run_to_completion(self._plan, frozenset(self._in_flight), self._clock())
        for process_id in plan.held:
            if process_id in self._in_flight:
                self._held.add(process_id)  # goes when its process's task is done
            else:  # its task landed while we planned: look again
                self._dirty = True
        self._saturated = plan.saturated
        for process_id, batch in plan.going:
            if process_id in self._in_flight:  # handed over while we planned: after it
                self._held.add(process_id)
            elif process_id in self._handed:  # handed over and sent while we planned
                self._dirty = True
            else:
                self._start(process_id, batch)
        return plan.next_due

    def _plan(self, in_flight: frozenset[str], now: datetime) -> _Plan:
        """What goes now (the messages, bodies read only for those), which processes in
        flight have more pending, and when the next message not sent now is due."""
        due: dict[str, list[int]] = {}
        waiting: set[str] = set()
        held: set[str] = set()
        next_due: datetime | None = None
        pending = self._pending()
        for message_id, process_id, at in pending:
            if process_id in in_flight:
                held.add(process_id)
                continue
            if process_id in waiting:
                continue
            if at > now:
                waiting.add(process_id)
                next_due = at if next_due is None else min(next_due, at)
            else:
                due.setdefault(process_id, []).append(message_id)
        if len(pending) >= PENDING_SCAN:  # more than one scan holds: look again soon
            soon = now + timedelta(seconds=WORKER_BACKOFF_S)
            next_due = soon if next_due is None else min(next_due, soon)
        free = CONCURRENCY - len(in_flight)
        going = list(due.items())[: max(free, 0)]
        messages = self._load([i for _, ids in going for i in ids]) if going else {}
        batches = [(pid, [messages[i] for i in ids if i in messages]) for pid, ids in going]
        return _Plan(batches, held, next_due, saturated=len(due) > free)

    def _load(self, ids: list[int]) -> dict[int | None, OutboxMessage]:
        with Session(self._engine) as session:
            rows = session.exec(select(OutboxMessage).where(col(OutboxMessage.id).in_(ids)))
            return {message.id: message for message in rows}

    async def _in_order(self, messages: list[OutboxMessage]) -> bool:
        """Deliver in order; False if one was not sent (it is retried later, or failed), which
        stops the rest: a later message must not overtake it."""
        index = 0
        while index < len(messages):  # ``_take`` may add to them meanwhile
            if await self._deliver(messages[index]) != Delivery.SENT:
                return False
            index += 1
        return True

    def _landed(self, process_id: str, task: asyncio.Task[bool]) -> None:
        self._in_flight.pop(process_id, None)
        self._queues.pop(process_id, None)
        error = None if task.cancelled() else task.exception()
        if error is None:
            self._delivery_failing = None
        else:  # the database failed while recording a delivery: the message is still pending
            # (sent again later; a repeat is answered as the first time)
            self._delivery_failing = one_line(error)
            log.warning("outbox delivery for %s failed: %s", process_id, self._delivery_failing)
        held = process_id in self._held
        self._held.discard(process_id)
        if held or self._saturated or error is not None or task.cancelled() or not task.result():
            # messages enqueued while it was in flight, processes that waited for a slot, or
            # a retry to schedule: look again
            self._dirty = True
        self._wake.set()

    def _dcp_headers(self, message: OutboxMessage) -> dict[str, str]:
        return self.authorization_for(message.audience)

    def authorization_for(self, audience: str) -> dict[str, str]:
        """How this connector authenticates to ``audience``: a DCP self-issued token (or, in
        conformance mode, the test kit's static token)."""
        static = self._static_tokens.get(audience)
        if static is not None:
            return {"Authorization": f"Bearer {static}"}
        token = self._participant.sts.bearer_for(audience, EVERY_SCOPE)
        return {"Authorization": f"Bearer {token}"}

    def _trying(self, message: OutboxMessage) -> None:
        """Remember the last message attempted of each recent process (its messages go in
        order), so that a hand-over that comes late does not send it again."""
        last = self._tried.pop(message.process_id, 0)
        self._tried[message.process_id] = max(message.id or 0, last)
        while len(self._tried) > TRIED_KEPT:
            self._tried.pop(next(iter(self._tried)))

    async def _deliver(self, message: OutboxMessage) -> Delivery:
        """Attempt one message: sent, failed, or still pending (to be retried)."""
        self._trying(message)
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
        if error is None:
            self._faults.reached(FaultPoint.DELIVERED, message.kind)
        # the database work in a worker thread: the event loop never waits for a lock
        return await run_to_completion(
            self._settle, message, handlers, response, error, retry, early
        )

    def _settle(
        self,
        message: OutboxMessage,
        handlers: Handlers,
        response: httpx.Response | None,
        error: str | None,
        retry: bool,
        early: bool,
    ) -> Delivery:
        """Record what became of an attempt, and tell the message's handlers."""
        if error is None:
            changes = handlers.answer(message, response) if handlers.answer and response else ()
            sent = self._record_sent(message, changes)
            if handlers.on_sent and response is not None:
                handlers.on_sent(sent, response)
            return Delivery.SENT
        with Session(self._engine, expire_on_commit=False) as session:
            stored = session.get(OutboxMessage, message.id)
            assert stored is not None  # noqa: S101 - read a moment ago, never deleted
            stored.attempts += 1
            stored.last_error = error
            if retry and self._clock() < self._deadline_of(stored):
                stored.next_attempt_at = self._clock() + backoff(stored.attempts, self._backoff_s)
            elif early and stored.attempts < EARLY_ATTEMPTS:
                wait = backoff(stored.attempts, EARLY_BACKOFF_BASE_S)
                stored.next_attempt_at = self._clock() + wait
            else:  # refused for good, or retried until the deadline: given up
                stored.status = Delivery.FAILED
                stored.body = without_secrets(stored.body)
                self._drop_later(session, stored)
            session.add(stored)
            session.commit()
        if stored.status == Delivery.FAILED and handlers.on_failed:
            handlers.on_failed(stored, error or "failed")
        return Delivery(stored.status)

    def _record_sent(
        self, message: OutboxMessage, changes: Sequence[Executable] = ()
    ) -> OutboxMessage:
        """Mark a message sent (one UPDATE: the message was read a moment ago, and only its own
        delivery task changes a pending message), kept without the tokens it carried, with
        what its answer ``changes`` in the same transaction."""
        body = without_secrets(message.body)
        with self._engine.begin() as connection:
            connection.execute(_MARK_SENT, {"message_id": message.id, "sent_body": body})
            for change in changes:
                connection.execute(change)
        message.status, message.attempts = Delivery.SENT, message.attempts + 1
        message.last_error, message.body = None, body
        return message

    def messages(self, *, status: Delivery | None, offset: int, limit: int) -> list[OutboxMessage]:
        """For the operator: messages, newest first (given up ones with ``status=failed``)."""
        query = select(OutboxMessage).order_by(col(OutboxMessage.id).desc())
        if status is not None:
            query = query.where(OutboxMessage.status == status)
        with Session(self._engine) as session:
            return list(session.exec(query.offset(offset).limit(limit)).all())

    def retry(self, message_id: int) -> OutboxMessage | None:
        """The operator sends a given-up message again, with a new deadline (its process's
        state is not changed by this: the other side answers what it makes of it). Tokens it
        carried were redacted when it was given up, and are not sent again."""
        with Session(self._engine) as session:
            stored = session.get(OutboxMessage, message_id)
            if stored is None or stored.status != Delivery.FAILED:
                return stored
            now = self._clock()
            stored.status, stored.attempts, stored.last_error = Delivery.PENDING, 0, None
            stored.next_attempt_at = stored.retried_at = now
            session.add(stored)
            session.commit()
            session.refresh(stored)
        self.wake()
        return stored

    def _deadline_of(self, message: OutboxMessage) -> datetime:
        return _aware(message.retried_at or message.created_at) + self._deadline

    @staticmethod
    def _drop_later(session: Session, failed: OutboxMessage) -> None:
        """Messages to the same party that the process enqueued after one that failed assumed it
        was delivered: they are not sent either (the process's failure handler decides what
        to tell the other side), and are kept, like the one that failed, without their tokens."""
        later = session.exec(
            select(OutboxMessage).where(
                col(OutboxMessage.process_id) == failed.process_id,
                col(OutboxMessage.audience) == failed.audience,
                col(OutboxMessage.status) == Delivery.PENDING,
                col(OutboxMessage.id) > failed.id,
            )
        ).all()
        for message in later:
            message.status = Delivery.FAILED
            message.last_error = f"not sent: message {failed.id} failed"
            message.body = without_secrets(message.body)
            session.add(message)

    async def run(self) -> None:
        """The worker: deliver what is due; sleep until woken or until the next retry is due.
        It looks at the database only when something was enqueued, a delivery left something
        for later, or a retry is due. A round that fails (the database locked, read-only, full
        or gone) is logged and tried again after a backoff: the worker never ends but with the
        app, and what was pending is sent once the fault clears (a message delivered but not
        recorded as sent goes again: receivers answer a repeat as the first time)."""
        self._loop = asyncio.get_running_loop()
        try:
            await self._rounds()
        finally:  # the app stops: its deliveries end before the database goes
            self._loop = None
            flying = list(self._in_flight.values())
            for task in flying:
                task.cancel()
            await asyncio.gather(*flying, return_exceptions=True)

    async def _rounds(self) -> None:
        failures = 0
        due: datetime | None = None
        self._dirty = True
        while True:
            self._wake.clear()
            if self._dirty or (due is not None and due <= self._clock()):
                self._dirty = False
                try:
                    due = await self._dispatch()
                except Exception as error:
                    self._dirty = True
                    failures += 1
                    self._round_failing = one_line(error)
                    log.warning(
                        "outbox round %d failed, retrying: %s", failures, self._round_failing
                    )
                    await asyncio.sleep(worker_backoff_s(failures))
                    continue
                failures, self._round_failing = 0, None
            timeout = None if due is None else max(0.0, (due - self._clock()).total_seconds())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
