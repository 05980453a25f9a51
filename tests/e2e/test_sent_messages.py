"""Every DSP message the connectors actually sent during an exchange (read back from their
outboxes) validates against the official DSP 2025-1 schemas."""

from __future__ import annotations

import json

from sqlmodel import Session, select

from connector.outbox import OutboxMessage
from connector.webhooks import KIND as WEBHOOK
from storage.engine import create_engine
from tests.dsp_schemas import errors
from tests.e2e.space import Space
from tests.e2e.test_negotiation import negotiate, ready, state_of, wait_for
from tests.e2e.test_transfer import bureau_transfers, in_state, move, transfer

SCHEMAS = {
    "ContractRequestMessage": "negotiation/contract-request-message-schema.json",
    "ContractOfferMessage": "negotiation/contract-offer-message-schema.json",
    "ContractAgreementMessage": "negotiation/contract-agreement-message-schema.json",
    "ContractAgreementVerificationMessage": "negotiation/contract-agreement-verification-message-schema.json",
    "ContractNegotiationEventMessage": "negotiation/contract-negotiation-event-message-schema.json",
    "ContractNegotiationTerminationMessage": "negotiation/contract-negotiation-termination-message-schema.json",
    "TransferRequestMessage": "transfer/transfer-request-message-schema.json",
    "TransferStartMessage": "transfer/transfer-start-message-schema.json",
    "TransferSuspensionMessage": "transfer/transfer-suspension-message-schema.json",
    "TransferCompletionMessage": "transfer/transfer-completion-message-schema.json",
    "TransferTerminationMessage": "transfer/transfer-termination-message-schema.json",
}


def sent(database_url: str) -> list[dict[str, object]]:
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            rows = session.exec(select(OutboxMessage)).all()
            return [json.loads(row.body) for row in rows if row.kind != WEBHOOK]
    finally:
        engine.dispose()


def test_every_message_sent_validates(space: Space) -> None:
    negotiation = negotiate(space, ready(space))
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "FINALIZED")
    agreement_id = state_of(space.bank.base_url, negotiation["id"])["agreementId"]
    first = transfer(space, agreement_id)
    in_state(space, first["id"], "STARTED")
    move(space.bank.base_url, first["id"], "suspend", code="pause", reason="a pause")
    in_state(space, first["id"], "SUSPENDED")
    move(space.bank.base_url, first["id"], "resume")
    in_state(space, first["id"], "STARTED")
    move(space.bank.base_url, first["id"], "complete")
    in_state(space, first["id"], "COMPLETED")
    second = transfer(space, agreement_id)
    in_state(space, second["id"], "STARTED")
    provider = next(t for t in bureau_transfers(space) if t["consumerPid"] == second["id"])
    move(space.bureau.base_url, provider["id"], "terminate", code="stop", reason="stopped")
    in_state(space, second["id"], "TERMINATED")

    messages = sent(space.bank.database_url) + sent(space.bureau.database_url)
    kinds = {str(m["@type"]) for m in messages}
    assert kinds >= {
        "ContractRequestMessage", "ContractAgreementMessage", "ContractAgreementVerificationMessage",
        "ContractNegotiationEventMessage", "TransferRequestMessage", "TransferStartMessage",
        "TransferSuspensionMessage", "TransferCompletionMessage", "TransferTerminationMessage",
    }  # fmt: skip
    for message in messages:
        assert errors(SCHEMAS[str(message["@type"])], message) == [], message
