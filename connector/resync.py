"""Re-synchronisation: a process that has heard nothing from the other side for a long time
(``resync_after_s``, one hour by default), with nothing of ours still to be delivered, asks the
other side how it stands (a GET of the process: the provider's path for a consumer, the
consumer's callback path for a provider) and follows an end it missed: TERMINATED there (or
unknown there: 404) ends it here too; FINALIZED or COMPLETED there is taken over when the table
allows it from here. A process still going on at the other side is left as it is.

This is what repairs a process whose messages were all given up while the other side was down
for longer than the delivery deadline: when it comes back, both sides end the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

import httpx
from sqlalchemy import exists
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from connector.negotiation.machine import Role
from connector.outbox import Delivery, OutboxMessage
from connector.processes import join
from service.logs import one_line
from service.threads import run_to_completion

log = logging.getLogger("kexin.connector.resync")

BATCH: Final = 50
"""Processes asked about in one sweep."""
TIMEOUT_S: Final = 10.0


class Followable(Protocol):
    """A protocol's process steps, as far as re-synchronisation needs them."""

    engine: Engine
    noun: str
    record_type: Any
    terminal: frozenset[str]
    path: str
    """``negotiations`` or ``transfers``: where the other side serves its processes."""

    def follow_peer(self, process_id: str, seen_state: str, their_state: str | None) -> None: ...


@dataclass(frozen=True)
class Stale:
    steps: Followable
    process_id: str
    state: str
    url: str
    counterparty: str


class Resync:
    def __init__(
        self,
        *,
        processes: Sequence[Followable],
        client: httpx.AsyncClient,
        authorization: Callable[[str], dict[str, str]],
        clock: Callable[[], datetime],
        after_s: float,
        interval_s: float,
    ) -> None:
        self.processes = processes
        self.client = client
        self.authorization = authorization
        self.clock = clock
        self.after = timedelta(seconds=after_s)
        self.interval_s = interval_s
        self.failing: str | None = None

    def stale(self) -> list[Stale]:
        found: list[Stale] = []
        before = self.clock() - self.after
        for steps in self.processes:
            table = steps.record_type
            pending = exists().where(
                col(OutboxMessage.process_id) == table.id,
                col(OutboxMessage.status) == Delivery.PENDING,
            )
            query = (
                select(table)
                .where(
                    col(table.state).not_in(list(steps.terminal)),
                    col(table.provider_pid).is_not(None),
                    col(table.consumer_pid).is_not(None),
                    col(table.updated_at) < before,
                    ~pending,
                )
                .order_by(col(table.updated_at))
                .limit(BATCH)
            )
            with Session(steps.engine) as session:
                for record in session.exec(query).all():
                    theirs = (
                        record.provider_pid if record.role == Role.CONSUMER else record.consumer_pid
                    )
                    url = join(record.counterparty_address, f"/{steps.path}/{theirs}")
                    found.append(Stale(steps, record.id, record.state, url, record.counterparty))
        return found

    async def sweep(self) -> int:
        """Ask about every stale process; how many answered."""
        answered = 0
        for item in await run_to_completion(self.stale):
            try:
                response = await self.client.get(
                    item.url, headers=self.authorization(item.counterparty), timeout=TIMEOUT_S
                )
            except httpx.HTTPError as error:
                log.info("resync of %s: %s unreachable (%s)", item.process_id, item.url, error)
                continue
            if response.status_code == 404:
                theirs = None
            elif response.is_success:
                state = _state_of(response)
                if state is None:
                    continue
                theirs = state
            else:
                continue
            answered += 1
            await run_to_completion(item.steps.follow_peer, item.process_id, item.state, theirs)
        return answered

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
                self.failing = None
            except Exception as error:  # a bad sweep must not end the worker
                self.failing = one_line(error)
                log.warning("resync sweep failed, retrying: %s", self.failing)
            await asyncio.sleep(self.interval_s)


def _state_of(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    state = body.get("state") if isinstance(body, dict) else None
    return state if isinstance(state, str) else None
