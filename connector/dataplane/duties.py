"""Duties after the transfer, both sides.

Consumer: the application says it deleted the data (management API); the connector signs a
deletion receipt (a Kexin statement) with its key, marks the duty fulfilled, and sends the
receipt to the provider through the outbox (persisted, retried). Provider: a receipt is taken
only from the party that owed the duty, signed with a key of its DID document, about exactly
this duty, before the deadline. Overdue duties are marked violated on both sides by the data
plane's duty clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from connector.audit import AuditRecord, AuditSink, Outcome
from connector.dataplane.store import DutyRecord
from connector.negotiation.machine import Role
from connector.outbox import Handlers, Outbox, enqueue
from identity.documents import DIDDocument
from identity.errors import IdentityError
from identity.keys import PublicKey
from identity.participant import Participant
from identity.statements import sign_statement, verify_statement
from policy.duties import DutyError, DutyState, Obligation, fulfil

KIND = "duty.receipt"


class DutyRequestError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def obligation_of(record: DutyRecord) -> Obligation:
    deadline = record.deadline
    if deadline is not None and deadline.tzinfo is None:
        deadline = deadline.replace(tzinfo=UTC)
    return Obligation(
        id=record.id, agreement_id=record.agreement_id, duty_path=record.duty_path,
        action=record.action, party=record.party, deadline=deadline,
        state=DutyState(record.state), evidence=record.evidence,
    )  # fmt: skip


class Duties:
    def __init__(
        self,
        *,
        engine: Engine,
        participant: Participant,
        outbox: Outbox,
        audit: AuditSink,
        clock: Callable[[], datetime],
    ) -> None:
        self.engine, self.participant, self.outbox = engine, participant, outbox
        self.audit, self.clock = audit, clock
        outbox.register(KIND, Handlers())

    def list(
        self, *, role: Role | None, agreement_id: str | None, offset: int, limit: int
    ) -> list[DutyRecord]:
        query = select(DutyRecord).order_by(col(DutyRecord.created_at), col(DutyRecord.id))
        if role is not None:
            query = query.where(DutyRecord.role == role.value)
        if agreement_id is not None:
            query = query.where(DutyRecord.agreement_id == agreement_id)
        with Session(self.engine) as session:
            return list(session.exec(query.offset(offset).limit(limit)).all())

    def performed(self, duty_id: str, performed_at: datetime | None) -> DutyRecord:
        """Consumer: the application did what the duty asks (e.g. deleted the data)."""
        now = self.clock()
        when = performed_at or now
        key = self.participant.keyring.current
        with Session(self.engine) as session:
            record = session.get(DutyRecord, (duty_id, Role.CONSUMER.value))
            if record is None:
                raise DutyRequestError(404, "not_found", f"no duty {duty_id} of ours")
            receipt = sign_statement(
                {
                    "obligation": record.id,
                    "action": record.action,
                    "agreementId": record.agreement_id,
                    "performedAt": when.isoformat(),
                    "iat": int(now.timestamp()),
                },
                self.participant.did,
                key.private_key,
                key.key_id,
            )
            own = self.participant.keyring.document()
            try:
                settled = fulfil(
                    obligation_of(record),
                    receipt,
                    lambda token: verify_statement(token, _keys_of(own)),
                    now,
                )
            except DutyError as error:
                raise DutyRequestError(409, "duty_not_pending", str(error)) from None
            record.state, record.evidence, record.settled_at = (
                settled.state.value, receipt, now,
            )  # fmt: skip
            session.add(record)
            if record.receipt_endpoint is not None:
                enqueue(
                    session, process_id=record.id[:100], kind=KIND, audience=record.counterparty,
                    url=record.receipt_endpoint, body={"receipt": receipt}, now=now,
                )  # fmt: skip
            self._audit(session, "duty fulfilled", record, "receipt signed and sent")
            session.commit()
            session.refresh(record)
        self.outbox.wake()
        return record

    def receipt(self, peer: str, receipt: str, document: DIDDocument) -> DutyRecord:
        """Provider: a consumer's signed receipt for one of its duties."""
        now = self.clock()
        try:
            statement = verify_statement(receipt, _keys_of(document))
        except Exception as error:
            self._refuse(peer, None, f"receipt not valid: {error}")
            raise DutyRequestError(
                400, "invalid_receipt", f"the receipt is not valid: {error}"
            ) from None
        duty_id = statement.claims.get("obligation")
        with Session(self.engine) as session:
            record = (
                session.get(DutyRecord, (duty_id, Role.PROVIDER.value))
                if isinstance(duty_id, str)
                else None
            )
            if record is None or record.counterparty != peer:
                self._refuse(peer, None, f"no duty {duty_id} of {peer}")
                raise DutyRequestError(404, "not_found", f"no duty {duty_id} owed by {peer}")
            try:
                settled = fulfil(obligation_of(record), receipt, lambda _e: statement, now)
            except DutyError as error:
                self._refuse(peer, record.id, str(error))
                raise DutyRequestError(409, "duty_not_pending", str(error)) from None
            record.state, record.evidence, record.settled_at = (
                settled.state.value, receipt, now,
            )  # fmt: skip
            session.add(record)
            self._audit(session, "duty receipt", record, "signed receipt recorded")
            session.commit()
            session.refresh(record)
        return record

    def _audit(self, session: Session, action: str, record: DutyRecord, reason: str) -> None:
        """The duty's event, in the transaction that settles it: both or neither."""
        self.audit.add(
            session,
            AuditRecord(
                actor=self.participant.did, action=action, outcome=Outcome.ACCEPTED,
                occurred_at=self.clock(), counterparty=record.counterparty, subject=record.id,
                reason=reason, duty_action=record.action, agreement_id=record.agreement_id,
                evidence_hash=(
                    None if record.evidence is None
                    else hashlib.sha256(record.evidence.encode()).hexdigest()
                ),
            )
        )  # fmt: skip

    def _refuse(self, peer: str, subject: str | None, reason: str) -> None:
        self.audit.record(
            AuditRecord(
                actor=self.participant.did, action="duty receipt", outcome=Outcome.REFUSED,
                occurred_at=self.clock(), counterparty=peer, subject=subject, reason=reason,
            )
        )  # fmt: skip


def _keys_of(document: DIDDocument) -> Callable[[str], PublicKey]:
    """The assertion keys of a DID document, by kid (KeyError when not one of them)."""

    def lookup(kid: str) -> PublicKey:
        try:
            return document.method(kid, "assertionMethod").public_key
        except IdentityError:
            raise KeyError(kid) from None

    return lookup
