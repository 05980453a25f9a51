"""Contract negotiation in both roles: what happens when a message arrives or a person moves.

Each step loads the negotiation (404 if it is unknown or belongs to another participant), asks
the pure table for the next state (400 and nothing changed if the move is illegal), and commits
the new state together with the message it causes (the outbox sends it). Every state change and
every refusal is written to the audit log.

Provider: a request must name an offer this party may see, unchanged; the contract policy then
decides in the negotiation scope, on the consumer's verified credentials and declared purpose.
Admitted, the provider agrees at once (or holds the request for a person, if so configured);
refused, it terminates with the policy's reasons. A verification is finalized at once.
Consumer: an agreement must be exactly the offer it requested (policy.agreement); it is then
verified at once. Terminations carry and keep their code and reason.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from connector.audit import AuditSink
from connector.catalog.offers import admitted_definitions, offer_document, parse_offer_id
from connector.catalog.store import Asset, ContractDefinition, PolicyDefinition
from connector.inbox import digest, remember
from connector.negotiation.machine import TERMINAL, Event, Role, State, next_state
from connector.negotiation.messages import (
    ContractAgreementMessage,
    ContractAgreementVerificationMessage,
    ContractNegotiation,
    ContractNegotiationEventMessage,
    ContractNegotiationTerminationMessage,
    ContractOfferMessage,
    ContractRequestMessage,
)
from connector.negotiation.store import ContractNegotiationRecord
from connector.outbox import Handlers, Outbox, OutboxMessage
from connector.processes import POLICY_DENIED, ProcessSteps, Repeated, Steering
from connector.protocol import DspError
from connector.webhooks import Webhook
from identity.verifier import Peer
from policy.agreement import agreement_differences
from policy.errors import PolicyError
from policy.evaluate import evaluate
from policy.jsonld import read_policy
from policy.model import Policy
from policy.operands import Context, Scope

ERROR_TYPE = "ContractNegotiationError"
PEER_ENDED = "ended_at_peer"
"""Termination code of a process ended here because the other side had ended it (resync)."""
MAX_REASON_CHARS = 2000


def _read_policy(document: Any, what: str) -> Policy:
    try:
        return read_policy(document)
    except PolicyError as error:
        raise DspError(400, ERROR_TYPE, "malformed_policy", f"{what}: {error}") from None


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


class Negotiations(ProcessSteps[ContractNegotiationRecord]):
    ack_type = ContractNegotiation
    record_type = ContractNegotiationRecord
    error_type = ERROR_TYPE
    noun = "contract negotiation"

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
        self.manual_approval = manual_approval
        self.manual_verification = manual_verification
        creates = Handlers(on_sent=self.on_ack, on_failed=self.on_failed)
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

    # --- shared steps -------------------------------------------------------------------------

    def ack(self, record: ContractNegotiationRecord) -> dict[str, Any]:
        return ContractNegotiation.build(
            providerPid=self.known_pid(record, "provider_pid"),
            consumerPid=self.known_pid(record, "consumer_pid"),
            state=record.state,
        ).dump()

    def _terminate(
        self,
        session: Session,
        record: ContractNegotiationRecord,
        sender: Role,
        code: str,
        reasons: list[str],
    ) -> None:
        self.move(record, Event.TERMINATE, sender)
        record.termination_code = code
        record.termination_reason = "\n".join(reasons)[:MAX_REASON_CHARS]
        if record.provider_pid and record.consumer_pid:
            message = ContractNegotiationTerminationMessage.build(
                providerPid=record.provider_pid,
                consumerPid=record.consumer_pid,
                code=code,
                reason=reasons[:20],
            ).dump()
            path = (
                f"/negotiations/{record.consumer_pid}/termination"
                if sender is Role.PROVIDER
                else f"/negotiations/{record.provider_pid}/termination"
            )
            self.send(session, record, "negotiation.termination", path, message)

    # --- provider -----------------------------------------------------------------------------

    def _our_offer(
        self, session: Session, peer: Peer, offer: dict[str, Any]
    ) -> tuple[ContractDefinition, PolicyDefinition, Asset]:
        found = _offer_parts(session, str(offer.get("@id", "")))
        if found is None:
            raise self.error(400, "unknown_offer", f"no offer {offer.get('@id')!r} here")
        definition, contract, asset = found
        visible = admitted_definitions(self.engine, peer.did, peer.facts(), self.clock())
        if definition.id not in {item.definition.id for item in visible}:
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
            ours = _read_policy(
                {**offer_document(definition, contract, asset.id, self.me), "target": asset.id},
                "our offer",
            )
            theirs = _read_policy(message.offer, "offer")
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
            ours = _read_policy(json.loads(record.offer), "our offer")
            changed = agreement_differences(ours, _read_policy(message.offer, "offer"))
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
        context = Context(
            now=self.clock(),
            recipient=peer.did,
            credentials=peer.facts(),
            target=record.asset_id,
            purpose=record.purpose,
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

    def finalize(self, negotiation_id: str) -> ContractNegotiationRecord:
        """Provider, manual mode: finalize a verified agreement."""
        with Session(self.engine) as session:
            record = self._own(session, negotiation_id, Role.PROVIDER)
            self._finalize(session, record)
            self.commit(session, record, "finalize")
            return record

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
                self._decide(session, record, peer, _read_policy(json.loads(record.offer), "offer"))

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

    # --- consumer -----------------------------------------------------------------------------

    def request(
        self, provider: str, address: str, offer: dict[str, Any], target: str, purpose: str | None
    ) -> ContractNegotiationRecord:
        """Start a negotiation (management API): send a ContractRequestMessage."""
        _read_policy({**offer, "target": target}, "offer")
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
            _read_policy(message.offer, "offer")
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
            agreement = _read_policy(message.agreement, "agreement")
            differences = agreement_differences(
                _read_policy(json.loads(record.offer), "offer"), agreement
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
            _read_policy(message.offer, "offer")
            self.move(record, Event.OFFER, Role.PROVIDER)
            record.offer = json.dumps(message.offer, ensure_ascii=False)

        pids = (message.provider_pid, consumer_pid)
        return self.receive_move(
            "ContractOfferMessage", peer.did, Role.CONSUMER, consumer_pid, message, pids, apply
        )

    # --- people -------------------------------------------------------------------------------

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
            _read_policy(terms, "offer")
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

    terminal = frozenset(state.value for state in TERMINAL)
    path = "negotiations"

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
            elif their_state == State.FINALIZED.value and record.state == State.VERIFIED.value:
                self.move(record, Event.FINALIZE, Role.PROVIDER)
            else:
                return
            self.commit(session, record, "resync", f"the {peer.value} says {their_state}")

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
