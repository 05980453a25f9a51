"""Transfer processes in both roles (DSP 2025-1 Transfer Process Protocol).

The provider's handling is ``provider``, the consumer's ``consumer``, what both share
``steps``. Here: the messages either side receives (start, suspension, completion,
termination), the moves of a person through the management API or of the data plane (suspend,
resume, complete or terminate, as the protocol table allows), the end of a transfer whose
message the other side refused, and resync.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from connector.audit import AuditSink
from connector.faults import NO_FAULTS, Faults
from connector.negotiation.machine import Role
from connector.outbox import Handlers, Outbox, OutboxMessage
from connector.processes import Steering
from connector.protocol import DspError
from connector.transfer.consumer import ConsumerSide
from connector.transfer.machine import Event, State, next_state
from connector.transfer.messages import (
    TransferCompletionMessage,
    TransferStartMessage,
    TransferSuspensionMessage,
    TransferTerminationMessage,
)
from connector.transfer.provider import ProviderSide
from connector.transfer.steps import (
    MAX_REASON_CHARS,
    VERB,
    DataPlaneHooks,
    joined_reasons,
)
from connector.transfer.store import TransferProcessRecord
from connector.webhooks import Webhook
from identity.verifier import Peer
from policy.operands import Vocabulary


class Transfers(ProviderSide, ConsumerSide):
    def __init__(
        self,
        *,
        engine: Engine,
        me: str,
        base_url: str,
        outbox: Outbox,
        audit: AuditSink,
        clock: Callable[[], datetime],
        manual_start: bool = False,
        webhook: Webhook | None = None,
        dataplane: DataPlaneHooks | None = None,
        steering: Steering | None = None,
        faults: Faults = NO_FAULTS,
        vocabulary: Vocabulary | None = None,
    ) -> None:
        super().__init__(
            engine=engine,
            me=me,
            base_url=base_url,
            outbox=outbox,
            audit=audit,
            clock=clock,
            next_state=next_state,
            state_type=State,
            webhook=webhook,
            steering=steering,
            faults=faults,
            vocabulary=vocabulary,
        )
        self.manual_start = manual_start
        self.dataplane = dataplane
        self.outbox.register(
            "transfer.request",
            Handlers(answer=self.ack_changes, on_sent=self.on_ack, on_failed=self.on_failed),
        )
        for event in (Event.START, Event.SUSPEND, Event.COMPLETE):
            self.outbox.register(f"transfer.{VERB[event]}", Handlers(on_failed=self.on_failed))
        self.outbox.register("transfer.termination", Handlers())

    def receive(
        self,
        peer: Peer,
        role: Role,
        pid: str,
        message: TransferStartMessage
        | TransferSuspensionMessage
        | TransferCompletionMessage
        | TransferTerminationMessage,
    ) -> dict[str, Any]:
        """A start, suspension, completion or termination from the other side."""
        sender = Role.CONSUMER if role is Role.PROVIDER else Role.PROVIDER

        def apply(session: Session, record: TransferProcessRecord) -> None:
            resuming = isinstance(message, TransferStartMessage) and sender is Role.CONSUMER
            if resuming and record.suspended_by == Role.PROVIDER.value:
                raise self.error(
                    400, "suspended_by_provider",
                    "the provider suspended this transfer: only the provider resumes it", record,
                )  # fmt: skip
            self.move(record, message.event, sender)
            record.suspended_by = sender.value if message.event is Event.SUSPEND else None
            self._data_plane_sees(session, record)
            if isinstance(message, TransferStartMessage) and message.data_address is not None:
                record.data_address = message.data_address.model_dump_json(by_alias=True)
            if isinstance(message, TransferSuspensionMessage | TransferTerminationMessage):
                record.termination_code, record.termination_reason = (
                    message.code,
                    joined_reasons(message.reason),
                )
            if isinstance(message, TransferStartMessage) and role is Role.PROVIDER:
                self._answer_resumption(session, record, peer)

        pids = (message.provider_pid, message.consumer_pid)
        return self.receive_move(message.TYPE, peer.did, role, pid, message, pids, apply)

    def act(
        self,
        transfer_id: str,
        event: Event,
        code: str | None = None,
        reason: str | None = None,
        *,
        by: str = "operator",
        reasons: list[str] | None = None,
        only_from: State | None = None,
    ) -> TransferProcessRecord:
        """A person (or the data plane: ``by``) suspends, resumes (START), completes or
        terminates, as our own role. ``only_from``: do nothing unless the process is in that
        state when it is locked (a decision taken on an earlier read must not outlive it)."""
        with Session(self.engine) as session:
            record = self.lock(session, transfer_id)
            if record is None:
                raise self.error(404, "not_found", f"no transfer process {transfer_id}")
            if only_from is not None and record.state != only_from.value:
                return record
            if record.provider_pid is None or record.consumer_pid is None:
                raise self.error(
                    409,
                    "not_acknowledged",
                    "the provider has not acknowledged this transfer yet",
                    record,
                )
            theirs = Role.PROVIDER if record.role == Role.CONSUMER.value else None
            if event is Event.START and theirs and record.suspended_by == theirs.value:
                raise self.error(
                    409, "suspended_by_provider",
                    "the provider suspended this transfer: only the provider resumes it", record,
                )  # fmt: skip
            extra: dict[str, Any] = {}
            if event in (Event.SUSPEND, Event.TERMINATE):
                extra = {
                    "code": code or f"by_{by.replace(' ', '_')}",
                    "reason": reasons or [reason or f"by the {by}"],
                }
            self._send_move(session, record, event, **extra)
            record.on_hold = False
            self.commit(
                session, record, f"{VERB[event]} by {by}", reason or joined_reasons(reasons)
            )
            return record

    def terminate_by_monitor(
        self, transfer_id: str, reasons: list[str], code: str = "policy_monitor"
    ) -> None:
        """The data plane's policy monitor ends a STARTED transfer its agreement no longer
        admits; the reasons reach the consumer in the termination message. A transfer suspended
        since the monitor read it is left alone (a resumption is decided again anyway)."""
        try:
            self.act(
                transfer_id, Event.TERMINATE, code, by="policy monitor", reasons=reasons,
                only_from=State.STARTED,
            )  # fmt: skip
        except DspError:  # already ended meanwhile: nothing left to stop
            return
        self.outbox.wake()

    def complete_by_data_plane(self, transfer_id: str) -> None:
        try:
            self.act(transfer_id, Event.COMPLETE, by="data plane")
        except DspError:
            return
        self.outbox.wake()

    def on_failed(self, message: OutboxMessage, error: str) -> None:
        with Session(self.engine) as session:
            record = self.lock(session, message.process_id)
            if record is None or State(record.state) in (State.COMPLETED, State.TERMINATED):
                return
            if record.provider_pid is None:  # never acknowledged: nothing to tell the other side
                self.move(record, Event.TERMINATE, Role(record.role))
                record.termination_code, record.termination_reason = (
                    "delivery_failed",
                    f"{message.kind}: {error}"[:MAX_REASON_CHARS],
                )
            else:
                self._send_move(
                    session,
                    record,
                    Event.TERMINATE,
                    code="delivery_failed",
                    reason=[f"{message.kind}: {error}"],
                )
            self.commit(session, record, "delivery_failed", error)

    def moved_by_peer(self, session: Session, record: TransferProcessRecord) -> None:
        self._data_plane_sees(session, record)

    def list(
        self, *, role: Role | None, state: State | None, offset: int, limit: int
    ) -> list[TransferProcessRecord]:
        query = select(TransferProcessRecord).order_by(col(TransferProcessRecord.created_at))
        if role is not None:
            query = query.where(TransferProcessRecord.role == role.value)
        if state is not None:
            query = query.where(TransferProcessRecord.state == state.value)
        with Session(self.engine) as session:
            return list(session.exec(query.offset(offset).limit(limit)).all())
