"""The consumer's side of a contract negotiation (DSP 2025-1 Contract Negotiation Protocol).

The consumer requests an offer it found in a catalogue, or hears of an initial offer a provider
makes it (a new negotiation, for a person). An agreement must be exactly the offer it requested
(policy.agreement); it is then verified at once (or held for a person, if so configured). A
counter-offer waits for a person.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, select

from connector.negotiation.machine import Event, Role, next_state
from connector.negotiation.messages import (
    ContractAgreementMessage,
    ContractAgreementVerificationMessage,
    ContractOfferMessage,
    ContractRequestMessage,
)
from connector.negotiation.steps import NegotiationSteps, parse_policy
from connector.negotiation.store import ContractNegotiationRecord
from connector.processes import Repeated
from connector.protocol import DspError
from connector.webhooks import Callback, callbacks_json
from identity.verifier import Peer
from policy.agreement import agreement_differences


class ConsumerSide(NegotiationSteps):
    def request(
        self,
        provider: str,
        address: str,
        offer: dict[str, Any],
        target: str,
        purpose: str | None,
        callbacks: Sequence[Callback] = (),
    ) -> ContractNegotiationRecord:
        """Start a negotiation (management API): send a ContractRequestMessage. ``callbacks``:
        the caller's own addresses to hear of its state changes."""
        parse_policy({**offer, "target": target}, "offer")
        now = self.clock()
        with Session(self.engine) as session:
            record = ContractNegotiationRecord(
                id=f"urn:uuid:{uuid.uuid4()}",
                role=Role.CONSUMER.value,
                state=next_state(None, Event.REQUEST, Role.CONSUMER).value,
                counterparty=provider,
                counterparty_address=address,
                offer=json.dumps({**offer, "target": target}, ensure_ascii=False),
                asset_id=target,
                purpose=purpose,
                callbacks=callbacks_json(callbacks),
                created_at=now,
                updated_at=now,
            )
            record.consumer_pid = record.id
            body = ContractRequestMessage.build(
                consumerPid=record.consumer_pid,
                offer={**offer, "target": target},
                callbackAddress=f"{self.base_url}/dsp/callback",
                **({"kexin:purpose": purpose} if purpose else {}),
            ).dump()
            self.send(session, record, "negotiation.request", "/negotiations/request", body)
            self.commit(session, record, "ContractRequestMessage")
            return record

    def receive_initial_offer(
        self, peer: Peer, message: ContractOfferMessage
    ) -> tuple[int, dict[str, Any]]:
        """Consumer: a provider offers to negotiate: a new negotiation, OFFERED, for a person."""
        action = "ContractOfferMessage"
        try:
            target = message.offer.get("target")
            if message.consumer_pid is not None or not isinstance(target, str) or not target:
                raise self.error(
                    400,
                    "malformed_message",
                    "an initial offer has no consumerPid and names its target",
                )
            parse_policy(message.offer, "offer")
            now = self.clock()
            with Session(self.engine) as session:
                earlier = session.exec(
                    select(ContractNegotiationRecord).where(
                        ContractNegotiationRecord.role == Role.CONSUMER.value,
                        ContractNegotiationRecord.counterparty == peer.did,
                        ContractNegotiationRecord.provider_pid == message.provider_pid,
                    )
                ).first()
                if earlier is not None:  # the same offer again is a repeat; another, a misuse
                    self.check_repeat(session, earlier, message)
                    raise self.error(
                        400, "duplicate_pid", f"providerPid {message.provider_pid} is in use",
                        provider_pid=message.provider_pid,
                    )  # fmt: skip
                record = ContractNegotiationRecord(
                    id=f"urn:uuid:{uuid.uuid4()}",
                    role=Role.CONSUMER.value,
                    state=next_state(None, Event.OFFER, Role.PROVIDER).value,
                    provider_pid=message.provider_pid,
                    counterparty=peer.did,
                    counterparty_address=str(message.callback_address),
                    offer=json.dumps(message.offer, ensure_ascii=False),
                    asset_id=target,
                    created_at=now,
                    updated_at=now,
                )
                record.consumer_pid = record.id
                return 201, self.applied(session, record, message, action, status=201)
        except Repeated as repeat:
            return self.answer_repeat(action, peer.did, repeat)
        except DspError as error:
            raise self.refuse(action, peer.did, error) from None

    def receive_agreement(
        self, peer: Peer, consumer_pid: str, message: ContractAgreementMessage
    ) -> dict[str, Any]:
        def apply(session: Session, record: ContractNegotiationRecord) -> None:
            agreement = parse_policy(message.agreement, "agreement")
            differences = agreement_differences(
                parse_policy(json.loads(record.offer), "offer"), agreement
            )
            if agreement.target != record.asset_id:
                differences.append(f"target is not {record.asset_id}")
            if agreement.assignee != self.me or agreement.assigner != record.counterparty:
                differences.append("assigner and assignee must be the provider and us")
            if differences:
                raise self.error(400, "agreement_mismatch", "; ".join(differences), record)
            self.move(record, Event.AGREE, Role.PROVIDER)
            record.agreement = json.dumps(message.agreement, ensure_ascii=False)
            record.agreement_id = agreement.uid
            if not self.manual_verification and self.automatic(record):
                self._verify(session, record)

        pids = (message.provider_pid, message.consumer_pid)
        return self.receive_move(
            "ContractAgreementMessage", peer.did, Role.CONSUMER, consumer_pid, message, pids, apply
        )

    def _verify(self, session: Session, record: ContractNegotiationRecord) -> None:
        self.move(record, Event.VERIFY, Role.CONSUMER)
        verification = ContractAgreementVerificationMessage.build(
            providerPid=record.provider_pid, consumerPid=record.consumer_pid
        ).dump()
        path = f"/negotiations/{record.provider_pid}/agreement/verification"
        self.send(session, record, "negotiation.verification", path, verification)

    def receive_offer(
        self, peer: Peer, consumer_pid: str, message: ContractOfferMessage
    ) -> dict[str, Any]:
        """A counter-offer from the provider: a person decides (manual move)."""

        def apply(_session: Session, record: ContractNegotiationRecord) -> None:
            parse_policy(message.offer, "offer")
            self.move(record, Event.OFFER, Role.PROVIDER)
            record.offer = json.dumps(message.offer, ensure_ascii=False)

        pids = (message.provider_pid, consumer_pid)
        return self.receive_move(
            "ContractOfferMessage", peer.did, Role.CONSUMER, consumer_pid, message, pids, apply
        )
