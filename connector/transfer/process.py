"""Transfer processes in both roles (DSP 2025-1 Transfer Process Protocol).

Provider: a request must name an agreement FINALIZED with this same consumer; the agreement's
policy decides again in the transfer scope (time since the agreement, earlier transfers under
it as its count, the declared purpose, the consumer's credentials now). Admitted, the transfer
starts at once; refused, it is terminated with the policy's reasons. A repeated request for the
same ``consumerPid`` changes nothing and is answered again (idempotent), with a new start
message when the transfer is running. Either side, or a person through the management API, may
suspend, resume, complete or terminate, as the protocol table allows.

The data plane (``connector/dataplane``) gives a started pull transfer its data address (an
endpoint and a short-lived token) and revokes the tokens when the transfer stops; uses are the
data plane's accesses under the agreement, so the count limit holds across transfers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, Final, Protocol

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from connector.audit import AuditSink
from connector.dataplane.store import agreement_time, uses
from connector.inbox import digest, remember
from connector.negotiation.machine import Role
from connector.negotiation.machine import State as NegotiationState
from connector.negotiation.store import ContractNegotiationRecord
from connector.outbox import Handlers, Outbox, OutboxMessage
from connector.processes import POLICY_DENIED, ProcessSteps, Steering
from connector.protocol import DspError
from connector.transfer.machine import TERMINAL, Event, State, next_state
from connector.transfer.messages import (
    DataAddress,
    TransferCompletionMessage,
    TransferProcess,
    TransferRequestMessage,
    TransferStartMessage,
    TransferSuspensionMessage,
    TransferTerminationMessage,
)
from connector.transfer.store import TransferProcessRecord
from connector.webhooks import Webhook
from identity.verifier import Peer
from policy.evaluate import evaluate
from policy.jsonld import read_policy
from policy.operands import Context, Scope

ERROR_TYPE: Final = "TransferError"
PEER_ENDED: Final = "ended_at_peer"
FORMATS: Final = frozenset({"HttpData-PULL", "HttpData-PUSH"})
MAX_REASON_CHARS: Final = 2000
VERB: Final = {
    Event.START: "start",
    Event.SUSPEND: "suspension",
    Event.COMPLETE: "completion",
    Event.TERMINATE: "termination",
}


class DataPlaneHooks(Protocol):
    """What a transfer process needs of a data plane, called inside the transaction of its
    move (the connector's own: ``connector.dataplane.grants``)."""

    def grant(self, session: Session, record: TransferProcessRecord, peer: Peer) -> None:
        """Provider: remember the consumer's credentials as verified with its request."""

    def address(self, session: Session, record: TransferProcessRecord) -> dict[str, Any] | None:
        """Provider, on start: the pull address for the start message (None for push)."""

    def revoke(self, session: Session, record: TransferProcessRecord) -> None:
        """Provider: the transfer no longer runs; its tokens stop working."""

    def consumer_started(self, session: Session, record: TransferProcessRecord) -> None:
        """Consumer: the transfer started; the agreement's duties are tracked."""


def _reasons(reason: list[Any] | None) -> str | None:
    return "\n".join(str(r) for r in reason or [])[:MAX_REASON_CHARS] or None


class Transfers(ProcessSteps[TransferProcessRecord]):
    ack_type = TransferProcess
    record_type = TransferProcessRecord
    error_type = ERROR_TYPE
    noun = "transfer process"

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
        )
        self.manual_start = manual_start
        self.dataplane = dataplane
        self.outbox.register(
            "transfer.request", Handlers(on_sent=self.on_ack, on_failed=self.on_failed)
        )
        for event in (Event.START, Event.SUSPEND, Event.COMPLETE):
            self.outbox.register(f"transfer.{VERB[event]}", Handlers(on_failed=self.on_failed))
        self.outbox.register("transfer.termination", Handlers())

    def ack(self, record: TransferProcessRecord) -> dict[str, Any]:
        return TransferProcess.build(
            providerPid=self.known_pid(record, "provider_pid"),
            consumerPid=self.known_pid(record, "consumer_pid"),
            state=record.state,
        ).dump()

    def _path(self, record: TransferProcessRecord, event: Event) -> str:
        """Where a message goes: the consumer's callback paths, or the provider's paths."""
        if record.role == Role.PROVIDER.value:
            return f"/transfers/{record.consumer_pid}/{VERB[event]}"
        return f"/transfers/{record.provider_pid}/{VERB[event]}"

    def _send_move(
        self, session: Session, record: TransferProcessRecord, event: Event, **extra: Any
    ) -> None:
        """Move as ourselves and tell the other side."""
        self.move(record, event, Role(record.role))
        self._data_plane_sees(session, record)
        if event is Event.START and record.role == Role.PROVIDER.value and self.dataplane:
            address = self.dataplane.address(session, record)
            if address is not None:
                extra["dataAddress"] = address
        pids = {"providerPid": record.provider_pid, "consumerPid": record.consumer_pid}
        message: dict[str, Any]
        match event:
            case Event.START:
                message = TransferStartMessage.build(**pids, **extra).dump()
            case Event.SUSPEND:
                message = TransferSuspensionMessage.build(**pids, **extra).dump()
            case Event.COMPLETE:
                message = TransferCompletionMessage.build(**pids).dump()
            case _:
                message = TransferTerminationMessage.build(**pids, **extra).dump()
                record.termination_code = extra.get("code")
                record.termination_reason = _reasons(extra.get("reason"))
        self.send(session, record, f"transfer.{VERB[event]}", self._path(record, event), message)

    def _data_plane_sees(self, session: Session, record: TransferProcessRecord) -> None:
        """After any move: a provider transfer that is not running loses its tokens; a consumer
        transfer that starts tracks the agreement's duties."""
        if self.dataplane is None:
            return
        if record.role == Role.PROVIDER.value and record.state != State.STARTED.value:
            self.dataplane.revoke(session, record)
        if record.role == Role.CONSUMER.value and record.state == State.STARTED.value:
            self.dataplane.consumer_started(session, record)

    # --- provider -----------------------------------------------------------------------------

    def receive_request(
        self, peer: Peer, message: TransferRequestMessage
    ) -> tuple[int, dict[str, Any]]:
        """A TransferRequestMessage: 201 and a new process, or (the same consumerPid again,
        idempotent) 200 and the process as it is."""
        action = "TransferRequestMessage"
        return self.receive_creating(
            action, peer.did, partial(self._receive_request, peer, message, action)
        )

    def _receive_request(
        self, peer: Peer, message: TransferRequestMessage, action: str
    ) -> tuple[int, dict[str, Any]]:
        with Session(self.engine) as session:
            found = session.exec(
                select(TransferProcessRecord.id).where(
                    TransferProcessRecord.role == Role.PROVIDER.value,
                    TransferProcessRecord.counterparty == peer.did,
                    TransferProcessRecord.consumer_pid == message.consumer_pid,
                )
            ).first()
            existing = None if found is None else self.lock(session, found)
            if existing is not None:  # this very message again: its first answer
                self.check_repeat(session, existing, message)
            if existing is not None:  # idempotent per consumerPid
                if existing.state == State.STARTED.value:
                    self._send_move(session, existing, Event.START)
                self.commit(session, existing, action, "repeated request")
                return 200, self.ack(existing)
            negotiation = self._agreement(session, peer, message.agreement_id, message.consumer_pid)
            if message.format not in FORMATS:
                raise self.error(
                    400,
                    "unsupported_format",
                    f"format {message.format!r} is not offered",
                    consumer_pid=message.consumer_pid,
                )
            if message.format == "HttpData-PUSH" and message.data_address is None:
                raise self.error(
                    400,
                    "malformed_message",
                    "a push transfer needs a dataAddress",
                    consumer_pid=message.consumer_pid,
                )
            if not message.callback_address.startswith(("http://", "https://")):
                raise self.error(
                    400,
                    "unrecoverable",
                    "callbackAddress is not an HTTP(S) URL",
                    consumer_pid=message.consumer_pid,
                )
            now = self.clock()
            record = TransferProcessRecord(
                id=f"urn:uuid:{uuid.uuid4()}",
                role=Role.PROVIDER.value,
                state=next_state(None, Event.REQUEST, Role.CONSUMER).value,
                consumer_pid=message.consumer_pid,
                counterparty=peer.did,
                counterparty_address=message.callback_address,
                agreement_id=message.agreement_id,
                format=message.format,
                data_address=message.data_address.model_dump_json(by_alias=True)
                if message.data_address
                else None,
                created_at=now,
                updated_at=now,
            )
            record.provider_pid = record.id
            acknowledged = self.ack(record)
            remember(
                session, process_id=record.id, body_digest=digest(message.dump()), kind=action,
                status=201, answer=acknowledged, now=now,
            )  # fmt: skip
            if self.dataplane is not None:
                self.dataplane.grant(session, record, peer)
            decision = self._decide(session, record, peer, negotiation)
            if decision is None and (self.manual_start or not self.automatic(record)):
                record.on_hold = True
            elif decision is None:
                self._send_move(session, record, Event.START)
            else:
                self._send_move(
                    session, record, Event.TERMINATE, code=POLICY_DENIED, reason=decision[:20]
                )
            self.commit(session, record, action)
            return 201, acknowledged

    def _agreement(
        self, session: Session, peer: Peer, agreement_id: str, consumer_pid: str
    ) -> ContractNegotiationRecord:
        negotiation = session.exec(
            select(ContractNegotiationRecord).where(
                ContractNegotiationRecord.role == Role.PROVIDER.value,
                ContractNegotiationRecord.counterparty == peer.did,
                ContractNegotiationRecord.agreement_id == agreement_id,
                ContractNegotiationRecord.state == NegotiationState.FINALIZED.value,
            )
        ).first()
        if negotiation is None or negotiation.agreement is None:
            raise self.error(
                400,
                "unknown_agreement",
                f"no finalized agreement {agreement_id} with {peer.did}",
                consumer_pid=consumer_pid,
            )
        return negotiation

    def _decide(
        self,
        session: Session,
        record: TransferProcessRecord,
        peer: Peer,
        negotiation: ContractNegotiationRecord,
    ) -> list[str] | None:
        """None when the agreement's policy admits the transfer now, else the reasons."""
        policy = read_policy(json.loads(str(negotiation.agreement)))
        context = Context(
            now=self.clock(),
            recipient=peer.did,
            credentials=peer.facts(),
            target=negotiation.asset_id,
            purpose=negotiation.purpose,
            agreement_start=agreement_time(negotiation, policy),
            uses_so_far=uses(session, record.agreement_id),
        )
        decision = evaluate(policy, context, Scope.TRANSFER)
        return None if decision.allowed else list(decision.reasons)

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
            self.move(record, message.event, sender)
            self._data_plane_sees(session, record)
            if isinstance(message, TransferStartMessage) and message.data_address is not None:
                record.data_address = message.data_address.model_dump_json(by_alias=True)
            if isinstance(message, TransferSuspensionMessage | TransferTerminationMessage):
                record.termination_code, record.termination_reason = (
                    message.code,
                    _reasons(message.reason),
                )
            if isinstance(message, TransferStartMessage) and role is Role.PROVIDER:
                self._answer_resumption(session, record, peer)

        pids = (message.provider_pid, message.consumer_pid)
        return self.receive_move(message.TYPE, peer.did, role, pid, message, pids, apply)

    def _answer_resumption(
        self, session: Session, record: TransferProcessRecord, peer: Peer
    ) -> None:
        """The consumer asked to resume: the policy decides again, and we start or terminate."""
        negotiation = self._agreement(session, peer, record.agreement_id, str(record.consumer_pid))
        if self.dataplane is not None:
            self.dataplane.grant(session, record, peer)
        reasons = self._decide(session, record, peer, negotiation)
        if reasons is None:
            self._send_move(session, record, Event.START)
        else:
            self._send_move(
                session, record, Event.TERMINATE, code=POLICY_DENIED, reason=reasons[:20]
            )

    # --- consumer -----------------------------------------------------------------------------

    def request(
        self,
        provider: str,
        address: str,
        agreement_id: str,
        data_format: str,
        data_address: dict[str, Any] | None,
    ) -> TransferProcessRecord:
        with Session(self.engine) as session:
            negotiation = session.exec(
                select(ContractNegotiationRecord).where(
                    ContractNegotiationRecord.role == Role.CONSUMER.value,
                    ContractNegotiationRecord.counterparty == provider,
                    ContractNegotiationRecord.agreement_id == agreement_id,
                    ContractNegotiationRecord.state == NegotiationState.FINALIZED.value,
                )
            ).first()
            if negotiation is None:
                raise self.error(
                    404,
                    "unknown_agreement",
                    f"no finalized agreement {agreement_id} with {provider}",
                )
            try:
                address_model = (
                    DataAddress.model_validate(data_address) if data_address is not None else None
                )
            except ValueError as error:
                raise self.error(400, "malformed_message", f"dataAddress: {error}") from None
            now = self.clock()
            record = TransferProcessRecord(
                id=f"urn:uuid:{uuid.uuid4()}",
                role=Role.CONSUMER.value,
                state=next_state(None, Event.REQUEST, Role.CONSUMER).value,
                counterparty=provider,
                counterparty_address=address,
                agreement_id=agreement_id,
                format=data_format,
                data_address=address_model.model_dump_json(by_alias=True)
                if address_model
                else None,
                created_at=now,
                updated_at=now,
            )
            record.consumer_pid = record.id
            body = TransferRequestMessage.build(
                consumerPid=record.consumer_pid,
                agreementId=agreement_id,
                format=data_format,
                callbackAddress=f"{self.base_url}/dsp/callback",
                **(
                    {"dataAddress": address_model.model_dump(by_alias=True)}
                    if address_model
                    else {}
                ),
            ).dump()
            self.send(session, record, "transfer.request", "/transfers/request", body)
            self.commit(session, record, "TransferRequestMessage")
            return record

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
            extra: dict[str, Any] = {}
            if event in (Event.SUSPEND, Event.TERMINATE):
                extra = {
                    "code": code or f"by_{by.replace(' ', '_')}",
                    "reason": reasons or [reason or f"by the {by}"],
                }
            self._send_move(session, record, event, **extra)
            record.on_hold = False
            self.commit(session, record, f"{VERB[event]} by {by}", reason or _reasons(reasons))
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

    terminal = frozenset(state.value for state in TERMINAL)
    path = "transfers"

    def follow_peer(self, process_id: str, seen_state: str, their_state: str | None) -> None:
        """Re-synchronisation (connector.resync): take over an end the other side reached
        while we did not hear of it; None: the other side does not know the process."""
        with Session(self.engine) as session:
            record = self.lock(session, process_id)
            if record is None or record.state != seen_state:
                return  # moved meanwhile: nothing was missed
            peer = Role.PROVIDER if record.role == Role.CONSUMER.value else Role.CONSUMER
            if their_state in (None, State.TERMINATED.value):
                self.move(record, Event.TERMINATE, peer)
                record.termination_code = PEER_ENDED
                record.termination_reason = f"the {peer.value} says: {their_state or 'unknown'}"
            elif their_state == State.COMPLETED.value and record.state == State.STARTED.value:
                self.move(record, Event.COMPLETE, peer)
            else:
                return
            self._data_plane_sees(session, record)
            self.commit(session, record, "resync", f"the {peer.value} says {their_state}")

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
