"""The provider's side of a contract negotiation (DSP 2025-1 Contract Negotiation Protocol).

A request must name an offer this party may see, unchanged; the contract policy then decides in
the negotiation scope, on the consumer's verified credentials and declared purpose. Admitted,
the provider agrees at once (or holds the request for a person, if so configured); refused, it
terminates with the policy's reasons. A verification is finalized at once (or held likewise).
The provider may also start a negotiation by offering one of its offers to a participant.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC
from functools import partial
from typing import Any

from sqlmodel import Session, select

from connector.catalog.offers import admits, offer_document, parse_offer_id
from connector.catalog.store import Asset, ContractDefinition, PolicyDefinition
from connector.inbox import digest, remember
from connector.negotiation.machine import Event, Role, next_state
from connector.negotiation.messages import (
    ContractAgreementMessage,
    ContractAgreementVerificationMessage,
    ContractNegotiationEventMessage,
    ContractOfferMessage,
    ContractRequestMessage,
)
from connector.negotiation.steps import NegotiationSteps, parse_policy
from connector.negotiation.store import ContractNegotiationRecord
from connector.processes import POLICY_DENIED
from identity.verifier import Peer
from policy.agreement import agreement_differences
from policy.evaluate import evaluate
from policy.model import Policy
from policy.operands import Context, Scope


def _offer_parts(
    session: Session, offer_id: str
) -> tuple[ContractDefinition, PolicyDefinition, Asset] | None:
    """What an offer id stands for (contract definition, contract policy, asset), if it still
    stands for anything: all three exist and the definition selects the asset."""
    ids = parse_offer_id(offer_id)
    if ids is None:
        return None
    definition = session.get(ContractDefinition, ids[0])
    asset = session.get(Asset, ids[1])
    if definition is None or asset is None or not definition.selects(asset):
        return None
    contract = session.get(PolicyDefinition, definition.contract_policy_id)
    return None if contract is None else (definition, contract, asset)


class ProviderSide(NegotiationSteps):
    def _our_offer(
        self, session: Session, peer: Peer, offer: dict[str, Any]
    ) -> tuple[ContractDefinition, PolicyDefinition, Asset]:
        found = _offer_parts(session, str(offer.get("@id", "")))
        if found is None:
            raise self.error(400, "unknown_offer", f"no offer {offer.get('@id')!r} here")
        definition, contract, asset = found
        # judged as the catalogue judges it, for this definition only, in this session
        access = session.get(PolicyDefinition, definition.access_policy_id)
        if access is None or not admits(access, peer.did, peer.facts(), self.clock()):
            raise self.error(400, "unknown_offer", f"no offer {offer.get('@id')!r} here")
        return definition, contract, asset

    def receive_request(
        self, peer: Peer, message: ContractRequestMessage
    ) -> tuple[int, dict[str, Any]]:
        """A ContractRequestMessage: initial (201, a new negotiation) or a counter-request."""
        action = "ContractRequestMessage"
        if message.provider_pid is not None:
            return 200, self._counter_request(peer, message, message.provider_pid)
        return self.receive_creating(
            action, peer.did, partial(self._receive_request, peer, message, action)
        )

    def _receive_request(
        self, peer: Peer, message: ContractRequestMessage, action: str
    ) -> tuple[int, dict[str, Any]]:
        with Session(self.engine) as session:
            duplicate = session.exec(
                select(ContractNegotiationRecord).where(
                    ContractNegotiationRecord.role == Role.PROVIDER.value,
                    ContractNegotiationRecord.counterparty == peer.did,
                    ContractNegotiationRecord.consumer_pid == message.consumer_pid,
                )
            ).first()
            if duplicate is not None:
                self.check_repeat(session, duplicate, message)
                raise self.error(
                    400,
                    "duplicate_pid",
                    f"consumerPid {message.consumer_pid} is in use",
                    consumer_pid=message.consumer_pid,
                )
            if not str(message.callback_address).startswith(("http://", "https://")):
                # "If the address is not understood, the Provider MUST return an
                # UNRECOVERABLE error" (Contract Negotiation Protocol)
                raise self.error(
                    400,
                    "unrecoverable",
                    "callbackAddress is not an HTTP(S) URL",
                    consumer_pid=message.consumer_pid,
                )
            definition, contract, asset = self._our_offer(session, peer, message.offer)
            ours = parse_policy(
                {**offer_document(definition, contract, asset.id, self.me), "target": asset.id},
                "our offer",
            )
            theirs = parse_policy(message.offer, "offer")
            if theirs.assigner is None:
                # The 2025-1 schema does not require an assigner in a request's offer: absent,
                # it is the provider the request is sent to; only another one is a change.
                theirs = replace(theirs, assigner=self.me)
            differences = agreement_differences(ours, theirs)
            if message.offer.get("target") != asset.id:
                differences.append(f"target is not {asset.id}")
            if differences:
                raise self.error(
                    400,
                    "tampered_offer",
                    "; ".join(differences),
                    consumer_pid=message.consumer_pid,
                )
            now = self.clock()
            purpose = message.model_extra.get("kexin:purpose") if message.model_extra else None
            record = ContractNegotiationRecord(
                id=f"urn:uuid:{uuid.uuid4()}",
                role=Role.PROVIDER.value,
                state=next_state(None, Event.REQUEST, Role.CONSUMER).value,
                consumer_pid=message.consumer_pid,
                counterparty=peer.did,
                counterparty_address=str(message.callback_address),
                offer=json.dumps(message.offer, ensure_ascii=False),
                asset_id=asset.id,
                contract_definition_id=definition.id,
                purpose=purpose if isinstance(purpose, str) else None,
                created_at=now,
                updated_at=now,
            )
            record.provider_pid = record.id
            acknowledged = self.ack(record)
            self._decide(session, record, peer, ours)
            remember(
                session, process_id=record.id, body_digest=digest(message.dump()), kind=action,
                status=201, answer=acknowledged, now=now,
            )  # fmt: skip
            self.commit(session, record, action)
            return 201, acknowledged

    def _counter_request(
        self, peer: Peer, message: ContractRequestMessage, provider_pid: str
    ) -> dict[str, Any]:
        def apply(session: Session, record: ContractNegotiationRecord) -> None:
            self.move(record, Event.REQUEST, Role.CONSUMER)
            ours = parse_policy(json.loads(record.offer), "our offer")
            changed = agreement_differences(ours, parse_policy(message.offer, "offer"))
            if changed:  # new terms: a person decides
                record.offer, record.on_hold = json.dumps(message.offer, ensure_ascii=False), True
            else:
                self._decide(session, record, peer, ours)

        pids = (provider_pid, message.consumer_pid)
        return self.receive_move(
            "ContractRequestMessage", peer.did, Role.PROVIDER, provider_pid, message, pids, apply
        )

    def _decide(
        self, session: Session, record: ContractNegotiationRecord, peer: Peer, offer: Policy
    ) -> None:
        facts = peer.facts()
        record.counterparty_region = facts.region  # who asked, from where (the ledger's)
        context = Context(
            now=self.clock(),
            recipient=peer.did,
            credentials=facts,
            target=record.asset_id,
            purpose=record.purpose,
            vocabulary=self.vocabulary,
        )
        decision = evaluate(offer, context, Scope.NEGOTIATION)
        if not decision.allowed:
            self._terminate(session, record, Role.PROVIDER, POLICY_DENIED, list(decision.reasons))
        elif self.manual_approval or not self.automatic(record):
            record.on_hold = True
        else:
            self._agree(session, record)

    def _agree(self, session: Session, record: ContractNegotiationRecord) -> None:
        self.move(record, Event.AGREE, Role.PROVIDER)
        offer = json.loads(record.offer)
        agreement = {
            **{k: v for k, v in offer.items() if k not in ("@context", "@id", "@type", "assignee")},
            "@id": f"urn:uuid:{uuid.uuid4()}",
            "@type": "Agreement",
            "target": record.asset_id,
            "assigner": self.me,
            "assignee": record.counterparty,
            "timestamp": self.clock().astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }
        record.agreement, record.agreement_id, record.on_hold = (
            json.dumps(agreement, ensure_ascii=False),
            agreement["@id"],
            False,
        )
        message = ContractAgreementMessage.build(
            providerPid=record.provider_pid, consumerPid=record.consumer_pid, agreement=agreement
        ).dump()
        self.send(
            session,
            record,
            "negotiation.agreement",
            f"/negotiations/{record.consumer_pid}/agreement",
            message,
        )

    def receive_verification(
        self, peer: Peer, provider_pid: str, message: ContractAgreementVerificationMessage
    ) -> dict[str, Any]:
        def apply(session: Session, record: ContractNegotiationRecord) -> None:
            self.move(record, Event.VERIFY, Role.CONSUMER)
            if self.manual_approval or not self.automatic(record):
                record.on_hold = True  # a person (or the steering) finalizes
            else:
                self._finalize(session, record)

        return self.receive_move(
            "ContractAgreementVerificationMessage", peer.did, Role.PROVIDER, provider_pid,
            message, (message.provider_pid, message.consumer_pid), apply,
        )  # fmt: skip

    def _finalize(self, session: Session, record: ContractNegotiationRecord) -> None:
        self.move(record, Event.FINALIZE, Role.PROVIDER)
        record.on_hold = False
        finalized = ContractNegotiationEventMessage.build(
            providerPid=record.provider_pid, consumerPid=record.consumer_pid, eventType="FINALIZED"
        ).dump()
        path = f"/negotiations/{record.consumer_pid}/events"
        self.send(session, record, "negotiation.finalized", path, finalized)

    def offer(self, consumer: str, address: str, offer_id: str) -> ContractNegotiationRecord:
        """Provider: start a negotiation by offering one of our offers to a participant."""
        with Session(self.engine) as session:
            found = _offer_parts(session, offer_id)
            if found is None:
                raise self.error(404, "unknown_offer", f"no offer {offer_id}")
            definition, contract, asset = found
            terms = {**offer_document(definition, contract, asset.id, self.me), "target": asset.id}
            now = self.clock()
            record = ContractNegotiationRecord(
                id=f"urn:uuid:{uuid.uuid4()}",
                role=Role.PROVIDER.value,
                state=next_state(None, Event.OFFER, Role.PROVIDER).value,
                counterparty=consumer,
                counterparty_address=address,
                offer=json.dumps(terms, ensure_ascii=False),
                asset_id=asset.id,
                contract_definition_id=definition.id,
                created_at=now,
                updated_at=now,
            )
            record.provider_pid = record.id
            body = ContractOfferMessage.build(
                providerPid=record.provider_pid, offer=terms, callbackAddress=f"{self.base_url}/dsp"
            ).dump()
            self.send(session, record, "negotiation.initial_offer", "/negotiations/offers", body)
            self.commit(session, record, "ContractOfferMessage")
            return record
