"""The provider's side of a transfer process (DSP 2025-1 Transfer Process Protocol).

A request must name an agreement FINALIZED with this same consumer; the agreement's policy
decides again in the transfer scope (time since the agreement, earlier transfers under it as its
count, the declared purpose, the consumer's credentials now). Admitted, the transfer starts at
once (or is held for a person, if so configured); refused, it is terminated with the policy's
reasons. A repeated request for the same ``consumerPid`` changes nothing and is answered again
(idempotent), with a new start message when the transfer is running. A consumer's request to
resume is decided again the same way.
"""

from __future__ import annotations

import json
import uuid
from functools import partial
from typing import Any

from sqlmodel import Session, select

from connector.dataplane.store import agreement_time, uses
from connector.inbox import digest, remember
from connector.negotiation.machine import Role
from connector.negotiation.machine import State as NegotiationState
from connector.negotiation.store import ContractNegotiationRecord
from connector.processes import POLICY_DENIED
from connector.transfer.machine import Event, State, next_state
from connector.transfer.messages import TransferRequestMessage
from connector.transfer.steps import FORMATS, TransferSteps
from connector.transfer.store import TransferProcessRecord
from identity.verifier import Peer
from policy.evaluate import evaluate
from policy.jsonld import read_policy
from policy.operands import Context, Scope


class ProviderSide(TransferSteps):
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
            problem = (
                self.dataplane.push_problem(
                    message.data_address.model_dump(by_alias=True), peer.did
                )
                if message.format == "HttpData-PUSH" and message.data_address and self.dataplane
                else None
            )
            if problem is not None:
                raise self.error(
                    400, "invalid_push_address", problem, consumer_pid=message.consumer_pid
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
            remember(  # its INSERT takes SQLite's write lock: last, just before the commit
                session, process_id=record.id, body_digest=digest(message.dump()), kind=action,
                status=201, answer=acknowledged, now=now,
            )  # fmt: skip
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
            vocabulary=self.vocabulary,
            agreement_start=agreement_time(negotiation, policy),
            uses_so_far=uses(session, record.agreement_id),
        )
        decision = evaluate(policy, context, Scope.TRANSFER)
        return None if decision.allowed else list(decision.reasons)

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
