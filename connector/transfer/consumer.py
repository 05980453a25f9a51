"""The consumer's side of a transfer process (DSP 2025-1 Transfer Process Protocol): asking
for a transfer under an agreement FINALIZED with the provider, in a format, with a data address
for push. What the provider answers arrives through the messages either side receives.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, select

from connector.negotiation.machine import Role
from connector.negotiation.machine import State as NegotiationState
from connector.negotiation.store import ContractNegotiationRecord
from connector.transfer.machine import Event, next_state
from connector.transfer.messages import DataAddress, TransferRequestMessage
from connector.transfer.steps import TransferSteps
from connector.transfer.store import TransferProcessRecord
from connector.webhooks import Callback, callbacks_json


class ConsumerSide(TransferSteps):
    def request(
        self,
        provider: str,
        address: str,
        agreement_id: str,
        data_format: str,
        data_address: dict[str, Any] | None,
        callbacks: Sequence[Callback] = (),
    ) -> TransferProcessRecord:
        """Start a transfer (management API, data contracts API) under a finalized agreement:
        send a TransferRequestMessage. ``callbacks``: the caller's own addresses to hear of its
        state changes."""
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
                callbacks=callbacks_json(callbacks),
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
