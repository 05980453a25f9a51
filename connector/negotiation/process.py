"""Contract negotiation in both roles: what happens when a message arrives or a person moves.

Each step loads the negotiation (404 if it is unknown or belongs to another participant), asks
the pure table for the next state (400 and nothing changed if the move is illegal), and commits
the new state together with the message it causes (the outbox sends it). Every state change and
every refusal is written to the audit log.

The provider's handling is ``provider``, the consumer's ``consumer``, what both share
``steps``. Here: the messages either side receives (events; terminations, which carry and keep
their code and reason), the operator's moves, the end of a negotiation whose message the other
side refused, and resync.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from connector.audit import AuditSink
from connector.faults import NO_FAULTS, Faults
from connector.negotiation.consumer import ConsumerSide
from connector.negotiation.machine import Event, Role, State, next_state
from connector.negotiation.messages import (
    ContractNegotiationEventMessage,
    ContractNegotiationTerminationMessage,
    ContractOfferMessage,
    ContractRequestMessage,
)
from connector.negotiation.provider import ProviderSide
from connector.negotiation.steps import MAX_REASON_CHARS, parse_policy
from connector.negotiation.store import ContractNegotiationRecord
from connector.outbox import Handlers, Outbox, OutboxMessage
from connector.processes import Steering
from connector.webhooks import Webhook
from identity.verifier import Peer
from policy.operands import Vocabulary


class Negotiations(ProviderSide, ConsumerSide):
    def __init__(
        self,
        *,
        engine: Engine,
        me: str,
        base_url: str,
        outbox: Outbox,
        audit: AuditSink,
        clock: Callable[[], datetime],
        manual_approval: bool = False,
        manual_verification: bool = False,
        webhook: Webhook | None = None,
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
        self.manual_approval = manual_approval
        self.manual_verification = manual_verification
        creates = Handlers(answer=self.ack_changes, on_sent=self.on_ack, on_failed=self.on_failed)
        self.outbox.register("negotiation.initial_offer", creates)
        self.outbox.register("negotiation.request", creates)
        for kind in (
            "negotiation.agreement",
            "negotiation.verification",
            "negotiation.finalized",
            "negotiation.offer",
            "negotiation.accepted",
        ):
            self.outbox.register(kind, Handlers(on_failed=self.on_failed))
        self.outbox.register("negotiation.termination", Handlers())

    def receive_event(
        self, peer: Peer, role: Role, pid: str, message: ContractNegotiationEventMessage
    ) -> dict[str, Any]:
        """Provider: ACCEPTED from the consumer. Consumer: FINALIZED from the provider."""
        sender = Role.CONSUMER if role is Role.PROVIDER else Role.PROVIDER

        def apply(session: Session, record: ContractNegotiationRecord) -> None:
            self.move(record, message.event, sender)
            purpose = (message.model_extra or {}).get("kexin:purpose")
            if message.event is Event.ACCEPT and isinstance(purpose, str):
                record.purpose = purpose[:200]
            if message.event is Event.ACCEPT:
                self._decide(session, record, peer, parse_policy(json.loads(record.offer), "offer"))

        action = f"ContractNegotiationEventMessage:{message.event_type}"
        pids = (message.provider_pid, message.consumer_pid)
        return self.receive_move(action, peer.did, role, pid, message, pids, apply)

    def receive_termination(
        self, peer: Peer, role: Role, pid: str, message: ContractNegotiationTerminationMessage
    ) -> dict[str, Any]:
        sender = Role.CONSUMER if role is Role.PROVIDER else Role.PROVIDER

        def apply(_session: Session, record: ContractNegotiationRecord) -> str:
            self.move(record, Event.TERMINATE, sender)
            record.termination_code = message.code
            record.termination_reason = (
                "\n".join(str(r) for r in message.reason or [])[:MAX_REASON_CHARS] or None
            )
            return f"terminated by {sender.value}: {message.code}"

        pids = (message.provider_pid, message.consumer_pid)
        return self.receive_move(
            "ContractNegotiationTerminationMessage", peer.did, role, pid, message, pids, apply
        )

    # --- people -------------------------------------------------------------------------------

    def finalize(self, negotiation_id: str) -> ContractNegotiationRecord:
        """Provider, manual mode: finalize a verified agreement."""
        with Session(self.engine) as session:
            record = self._own(session, negotiation_id, Role.PROVIDER)
            self._finalize(session, record)
            self.commit(session, record, "finalize")
            return record

    def terminate(self, negotiation_id: str, code: str, reason: str) -> ContractNegotiationRecord:
        with Session(self.engine) as session:
            record = self.lock(session, negotiation_id)
            if record is None:
                raise self.error(404, "not_found", f"no contract negotiation {negotiation_id}")
            self._terminate(session, record, Role(record.role), code, [reason])
            self.commit(session, record, "terminate", f"{code}: {reason}")
            return record

    def _own(
        self, session: Session, negotiation_id: str, role: Role | None
    ) -> ContractNegotiationRecord:
        """A negotiation of ours, locked, in ``role`` (None: either), acknowledged by the other
        side."""
        record = self.lock(session, negotiation_id)
        if record is None or (role is not None and record.role != role.value):
            kind = "contract" if role is None else role.value
            raise self.error(404, "not_found", f"no {kind} negotiation {negotiation_id}")
        if record.provider_pid is None or record.consumer_pid is None:
            raise self.error(
                409, "not_acknowledged", "the other side has not acknowledged yet", record
            )
        return record

    def verify(self, negotiation_id: str) -> ContractNegotiationRecord:
        """Consumer, manual mode: verify an agreement a person has read."""
        with Session(self.engine) as session:
            record = self._own(session, negotiation_id, Role.CONSUMER)
            self._verify(session, record)
            self.commit(session, record, "verify")
            return record

    def accept(self, negotiation_id: str, purpose: str | None = None) -> ContractNegotiationRecord:
        """Consumer: accept the provider's (counter-)offer as it stands, declaring a purpose."""
        with Session(self.engine) as session:
            record = self._own(session, negotiation_id, Role.CONSUMER)
            self.move(record, Event.ACCEPT, Role.CONSUMER)
            record.purpose = purpose or record.purpose
            declared = {"kexin:purpose": record.purpose} if record.purpose else {}
            accepted = ContractNegotiationEventMessage.build(
                providerPid=record.provider_pid,
                consumerPid=record.consumer_pid,
                eventType="ACCEPTED",
                **declared,
            ).dump()
            self.send(
                session,
                record,
                "negotiation.accepted",
                f"/negotiations/{record.provider_pid}/events",
                accepted,
            )
            self.commit(session, record, "accept")
            return record

    def counter(self, negotiation_id: str, offer: dict[str, Any]) -> ContractNegotiationRecord:
        """Either side proposes other terms: the consumer a counter-request to an offer, the
        provider a counter-offer to a request it holds. The target stays the same."""
        with Session(self.engine) as session:
            record = self._own(session, negotiation_id, None)
            terms = {**offer, "target": record.asset_id}
            parse_policy(terms, "offer")
            pids = {"providerPid": record.provider_pid, "consumerPid": record.consumer_pid}
            if record.role == Role.CONSUMER.value:
                self.move(record, Event.REQUEST, Role.CONSUMER)
                message = ContractRequestMessage.build(**pids, offer=terms).dump()
                self.send(
                    session,
                    record,
                    "negotiation.request",
                    f"/negotiations/{record.provider_pid}/request",
                    message,
                )
            else:
                self.move(record, Event.OFFER, Role.PROVIDER)
                message = ContractOfferMessage.build(**pids, offer=terms).dump()
                self.send(
                    session,
                    record,
                    "negotiation.offer",
                    f"/negotiations/{record.consumer_pid}/offers",
                    message,
                )
                record.on_hold = False
            record.offer = json.dumps(terms, ensure_ascii=False)
            self.commit(session, record, "counter")
            return record

    def approve(self, negotiation_id: str) -> ContractNegotiationRecord:
        """A person agrees to a request held for approval (its policy admitted the consumer)."""
        with Session(self.engine) as session:
            record = self.lock(session, negotiation_id)
            if record is None or record.role != Role.PROVIDER.value or not record.on_hold:
                raise self.error(
                    409, "not_on_hold", f"negotiation {negotiation_id} is not waiting for approval"
                )
            self._agree(session, record)
            self.commit(session, record, "approve")
            return record

    def on_failed(self, message: OutboxMessage, error: str) -> None:
        """A message the counterparty refused: the two sides no longer agree; terminate."""
        with Session(self.engine) as session:
            record = self.lock(session, message.process_id)
            if record is None or State(record.state) in (State.FINALIZED, State.TERMINATED):
                return
            self._terminate(
                session, record, Role(record.role), "delivery_failed", [f"{message.kind}: {error}"]
            )
            self.commit(session, record, "delivery_failed", error)

    def list(
        self, *, role: Role | None, state: State | None, offset: int, limit: int
    ) -> list[ContractNegotiationRecord]:
        query = select(ContractNegotiationRecord).order_by(
            col(ContractNegotiationRecord.created_at)
        )
        if role is not None:
            query = query.where(ContractNegotiationRecord.role == role.value)
        if state is not None:
            query = query.where(ContractNegotiationRecord.state == state.value)
        with Session(self.engine) as session:
            return list(session.exec(query.offset(offset).limit(limit)).all())
