"""The data plane's background worker: at start, ends the accesses a stop cut off; then, every
interval or when woken, runs the duty clock, the policy monitor and the queued pushes.

The two moves it asks of the transfer process (end a transfer, complete a pushed one) go
through its own narrow port, ``TransferMoves``; it never changes a transfer's state itself.
Admission and access recording are ``plane``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any, Final, Protocol

import httpx
from sqlmodel import Session, col, select

from connector.audit import AuditRecord, Outcome
from connector.catalog.store import Asset
from connector.dataplane.matchsets import PSI_PULL
from connector.dataplane.plane import DataPlane, DataPlaneError
from connector.dataplane.push import PushAddressError, push_target
from connector.dataplane.sources import Body, SourceError, open_source
from connector.dataplane.store import DataAccess, DataGrant, DutyRecord
from connector.negotiation.machine import Role
from connector.transfer.machine import State
from connector.transfer.store import TransferProcessRecord
from policy.duties import DutyState
from policy.operands import CredentialFacts, Scope
from service.destinations import DestinationError
from service.logs import one_line
from service.threads import run_to_completion

log = logging.getLogger("kexin.dataplane")
PUSH_FAILED: Final = "the consumer's push endpoint is unreachable or did not take the data"


class TransferMoves(Protocol):
    """What the data plane asks of the transfer process (``connector.transfer.process``)."""

    def terminate_by_monitor(
        self, transfer_id: str, reasons: list[str], code: str = "policy_monitor"
    ) -> None: ...

    def complete_by_data_plane(self, transfer_id: str) -> None: ...


class Wakeup:
    """Wakes the worker from any thread before its interval is up (a push was queued); before
    the worker runs, it does nothing."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def __call__(self) -> None:
        if self._loop is not None and self._event is not None:
            self._loop.call_soon_threadsafe(self._event.set)

    def bind(self) -> asyncio.Event:
        """The event to wait on, in the running loop."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        return self._event


class DataPlaneWorker:
    def __init__(
        self,
        *,
        plane: DataPlane,
        transfers: TransferMoves,
        wake: Wakeup,
        monitor_interval_s: float,
    ) -> None:
        self.plane = plane
        self.transfers = transfers
        self.wake = wake
        self.monitor_interval_s = monitor_interval_s
        self.engine = plane.engine
        self.audit = plane.audit
        self.clock = plane.clock
        self.me = plane.me
        self.failing: str | None = None
        """Why the worker's last round failed, while it keeps failing (for readiness)."""

    def _recover(self) -> None:
        """Accesses cut off by a stop (or a crash) end as interrupted, with the bytes they had
        recorded as sent, and are audited; they are not counted as uses. A matching run that
        had sent answers ends as aborted, and stays counted (its consumer may have learned
        part of the result)."""
        with Session(self.engine) as session:
            for access in session.exec(
                select(DataAccess).where(DataAccess.outcome == "in_progress")
            ).all():
                transfer = session.get(TransferProcessRecord, access.transfer_id)
                run = transfer is not None and transfer.format == PSI_PULL
                outcome = "aborted" if run and access.bytes_sent else "interrupted"
                self.plane.end(
                    session, access, outcome, access.bytes_sent, access.rows_sent,
                    "the connector stopped",
                )  # fmt: skip
            session.commit()

    async def run(self) -> None:
        """The worker: the policy monitor, pushes and the duty clock, every interval. A round
        that fails (the database locked, read-only, full or gone) is logged and tried again:
        the worker never ends but with the app."""
        woken = self.wake.bind()
        recovered = False
        while True:
            try:
                if not recovered:
                    await run_to_completion(self._recover)
                    recovered = True
                await self.tick()
                self.failing = None
            except Exception as error:
                self.failing = one_line(error)
                log.warning("data plane round failed, retrying: %s", self.failing)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), self.monitor_interval_s)
            woken.clear()

    async def tick(self) -> None:
        await run_to_completion(self.duty_clock)
        await self.monitor()
        await self.push_pending()

    def duty_clock(self) -> None:
        """Both sides: a pending duty past its deadline is violated."""
        now = self.clock()
        with Session(self.engine) as session:
            overdue = session.exec(
                select(DutyRecord).where(
                    DutyRecord.state == DutyState.PENDING.value,
                    col(DutyRecord.deadline).is_not(None),
                    col(DutyRecord.deadline) < now,
                )
            ).all()
            for duty in overdue:
                duty.state, duty.settled_at = DutyState.VIOLATED.value, now
                session.add(duty)
                # audited in the transaction that records the violation: both or neither
                self.audit.add(
                    session,
                    AuditRecord(
                        actor=self.me, action="duty violated", outcome=Outcome.REFUSED,
                        occurred_at=now, counterparty=duty.counterparty, subject=duty.id,
                        reason=f"{duty.action} was due by {duty.deadline} and not done",
                        duty_action=duty.action, agreement_id=duty.agreement_id,
                    ),
                )  # fmt: skip
            session.commit()

    async def monitor(self) -> None:
        """Provider: every STARTED transfer whose agreement no longer admits it (expired, count
        exhausted, credential revoked, duty violated) is terminated and its tokens revoked."""
        with Session(self.engine) as session:
            running = session.exec(
                select(DataGrant, TransferProcessRecord)
                .join(
                    TransferProcessRecord,
                    col(TransferProcessRecord.id) == col(DataGrant.transfer_id),
                )
                .where(
                    TransferProcessRecord.state == State.STARTED.value,
                    TransferProcessRecord.role == Role.PROVIDER.value,
                )
            ).all()
        for grant, _transfer in running:
            try:
                facts = await self.plane.facts(grant)
                reasons, _ = await run_to_completion(self._decide_monitor, grant, facts)
            except DataPlaneError as error:
                if error.code == "status_unavailable":
                    continue  # not known to be revoked: decide next round
                if error.code == "transfer_not_started":
                    continue  # suspended or ended since it was read: not the monitor's to end
                reasons = (error.message, *error.reasons)
            if reasons:
                await run_to_completion(
                    self.transfers.terminate_by_monitor, grant.transfer_id, list(reasons)
                )

    def _decide_monitor(
        self, grant: DataGrant, facts: CredentialFacts
    ) -> tuple[tuple[str, ...], Asset | None]:
        with Session(self.engine) as session:
            return self.plane.decide(session, grant, facts, Scope.MONITOR, counted=("completed",))

    async def push_pending(self) -> None:
        with Session(self.engine, expire_on_commit=False) as session:
            pending = session.exec(select(DataGrant).where(DataGrant.push_state == "pending")).all()
            for grant in pending:
                grant.push_state = "running"
                session.add(grant)
            session.commit()
        for grant in pending:
            await self.push(grant)

    async def push(self, grant: DataGrant) -> None:
        """Provider: stream the data to the endpoint the consumer named, with its token; the
        transfer completes when the consumer's endpoint took it all, else it terminates."""
        plane = self.plane
        with Session(self.engine) as session:
            transfer = session.get(TransferProcessRecord, grant.transfer_id)
        target = json.loads(transfer.data_address) if transfer and transfer.data_address else {}
        access_id: int | None = None
        try:
            admitted = await plane.admit_grant(grant)
            body = await open_source(
                admitted.address, range_header=None, accept=None,
                sql_engines=plane.sql_sources, client=plane.client, rules=plane.rules,
            )  # fmt: skip
            access_id = await run_to_completion(plane.reserve, admitted, None)
            sent = await self._push_body(body, target, grant.consumer)
        except (DataPlaneError, SourceError) as error:
            message = error.message
            if access_id is not None:
                await run_to_completion(plane.finish, access_id, "failed", 0, None, message)
            elif isinstance(error, DataPlaneError):
                plane.refused(error, grant.consumer, grant.transfer_id)
            why = [message, *(error.reasons if isinstance(error, DataPlaneError) else ())]
            await run_to_completion(self._end_push, grant.transfer_id, "failed", why)
            return
        await run_to_completion(plane.finish, access_id, "completed", sent, body.rows, "pushed")
        await run_to_completion(self._end_push, grant.transfer_id, "done", [])

    async def _push_body(self, body: Body, target: Mapping[str, Any], consumer: str) -> int:
        """POST the data to the consumer's own endpoint (``push.push_target``). However the
        endpoint fails (unreachable, a TLS or protocol error, any answer but 2xx), the reason
        the consumer is given is the same, and nothing of the answer is in it."""
        try:
            push = push_target(target, consumer, self.plane.rules.destinations)
        except (DestinationError, PushAddressError) as error:
            await body.aclose()
            raise DataPlaneError(400, "bad_push_address", str(error)) from None
        sent = 0

        async def content() -> Any:
            nonlocal sent
            async for chunk in body.chunks:
                sent += len(chunk)
                yield chunk

        headers = {"Content-Type": body.media_type, **push.headers}
        try:
            response = await self.plane.client.post(
                push.endpoint, content=content(), headers=headers, follow_redirects=False
            )
        except httpx.HTTPError as error:
            log.warning("push to %s failed: %r", push.endpoint, error)
            raise SourceError(502, "push_failed", PUSH_FAILED) from None
        finally:
            await body.aclose()
        if not response.is_success:
            log.warning("push to %s answered %s", push.endpoint, response.status_code)
            raise SourceError(502, "push_failed", PUSH_FAILED)
        return sent

    def _end_push(self, transfer_id: str, state: str, reasons: list[str]) -> None:
        with Session(self.engine) as session:
            grant = session.get(DataGrant, transfer_id)
            if grant is not None:
                grant.push_state = state
                session.add(grant)
                session.commit()
        if state == "done":
            self.transfers.complete_by_data_plane(transfer_id)
        else:
            self.transfers.terminate_by_monitor(transfer_id, reasons, code="push_failed")
