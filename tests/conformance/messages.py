"""The messages the kit sends, built as the Eclipse DSP TCK builds them (``NegotiationFunctions``,
``TransferFunctions``, ``CatalogFunctions``), in the compact form its serializer puts on the
wire: a fresh random ``@id`` on every message, the DSP 2025-1 context, offers typed ``Offer``
with one ``use`` permission and an empty ``constraint`` list, a ``callbackAddress`` inside the
ContractAgreementMessage, termination and suspension codes ``"1"`` with ``reason`` (when given)
as a list of ``{"message": …}``.

A value the kit leaves ``null`` (the assigner of its counter-offer) is absent here, as the kit's
JSON-LD compaction drops it. Plain data, no I/O.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final

from tests.conformance.checks import CONTEXT

TCK_PARTICIPANT: Final = "TCK_PARTICIPANT"
OFFER_PREFIX: Final = "offer"

Message = dict[str, Any]


def new_id() -> str:
    return str(uuid.uuid4())


def offer_id_of(dataset_id: str) -> str:
    """The kit's ``IdGenerator.offerIdFromDatasetId``."""
    return OFFER_PREFIX + dataset_id


def dataset_id_of(offer_id: str) -> str:
    """The kit's ``IdGenerator.datasetIdFromOfferId``: it refuses an offer id it did not make."""
    if not offer_id.startswith(OFFER_PREFIX):
        raise ValueError(f"Offer ID must start with {OFFER_PREFIX}")
    return offer_id[len(OFFER_PREFIX) :]


def _base(kind: str, **fields: Any) -> Message:
    message: Message = {"@id": new_id(), "@type": kind, "@context": list(CONTEXT)}
    message.update({key: value for key, value in fields.items() if value is not None})
    return message


def _permissions() -> list[dict[str, Any]]:
    return [{"action": "use", "constraint": []}]


def _reasons(reasons: tuple[str, ...]) -> list[dict[str, str]] | None:
    return [{"message": reason} for reason in reasons] or None


def contract_request(
    consumer_pid: str,
    offer_id: str,
    target: str,
    callback_address: str | None,
    provider_pid: str | None = None,
) -> Message:
    offer = {"@id": offer_id, "target": target, "@type": "Offer", "permission": _permissions()}
    return _base(
        "ContractRequestMessage",
        consumerPid=consumer_pid,
        providerPid=provider_pid,
        offer=offer,
        callbackAddress=callback_address,
    )


def _offer_policy(
    offer_id: str, assigner: str | None, assignee: str | None, target: str
) -> Message:
    policy: Message = {"@type": "Offer", "@id": offer_id, "permission": _permissions()}
    policy.update({"target": target, "assignee": assignee, "assigner": assigner})
    return {key: value for key, value in policy.items() if value is not None}


def counter_offer(
    provider_pid: str,
    consumer_pid: str,
    offer_id: str,
    assigner: str | None,
    assignee: str,
    target: str,
) -> Message:
    """The consumer's counter ContractRequestMessage (``createCounterOffer``)."""
    return _base(
        "ContractRequestMessage",
        providerPid=provider_pid,
        consumerPid=consumer_pid,
        offer=_offer_policy(offer_id, assigner, assignee, target),
    )


def contract_offer(
    provider_pid: str, consumer_pid: str, offer_id: str, assigner: str, assignee: str, target: str
) -> Message:
    return _base(
        "ContractOfferMessage",
        providerPid=provider_pid,
        consumerPid=consumer_pid,
        offer=_offer_policy(offer_id, assigner, assignee, target),
    )


def contract_agreement(
    provider_pid: str,
    consumer_pid: str,
    agreement_id: str,
    assigner: str,
    assignee: str,
    target: str,
    callback_address: str,
) -> Message:
    agreement = {
        "@type": "Agreement",
        "@id": agreement_id,
        "target": target,
        "permission": _permissions(),
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "assignee": assignee,
        "assigner": assigner,
    }
    return _base(
        "ContractAgreementMessage",
        providerPid=provider_pid,
        consumerPid=consumer_pid,
        agreement=agreement,
        callbackAddress=callback_address,
    )


def verification(provider_pid: str, consumer_pid: str) -> Message:
    return _base(
        "ContractAgreementVerificationMessage", providerPid=provider_pid, consumerPid=consumer_pid
    )


def negotiation_event(provider_pid: str, consumer_pid: str, event_type: str) -> Message:
    return _base(
        "ContractNegotiationEventMessage",
        providerPid=provider_pid,
        consumerPid=consumer_pid,
        eventType=event_type,
    )


def negotiation_termination(
    provider_pid: str, consumer_pid: str, code: str, *reasons: str
) -> Message:
    return _base(
        "ContractNegotiationTerminationMessage",
        providerPid=provider_pid,
        consumerPid=consumer_pid,
        code=code,
        reason=_reasons(reasons),
    )


def negotiation(provider_pid: str, consumer_pid: str | None, state: str) -> Message:
    """The kit's ContractNegotiation answer (``createNegotiationResponse``)."""
    return _base(
        "ContractNegotiation", providerPid=provider_pid, consumerPid=consumer_pid, state=state
    )


def transfer_request(
    consumer_pid: str, agreement_id: str, format_: str, callback_address: str
) -> Message:
    return _base(
        "TransferRequestMessage",
        consumerPid=consumer_pid,
        agreementId=agreement_id,
        format=format_,
        callbackAddress=callback_address,
    )


def transfer(provider_pid: str, consumer_pid: str | None, state: str) -> Message:
    """The kit's TransferProcess answer (``createTransferResponse``)."""
    return _base("TransferProcess", providerPid=provider_pid, consumerPid=consumer_pid, state=state)


def transfer_start(
    provider_pid: str, consumer_pid: str, data_address: dict[str, Any] | None
) -> Message:
    return _base(
        "TransferStartMessage",
        providerPid=provider_pid,
        consumerPid=consumer_pid,
        dataAddress=data_address,
    )


def transfer_termination(provider_pid: str, consumer_pid: str, code: str, *reasons: str) -> Message:
    return _base(
        "TransferTerminationMessage",
        providerPid=provider_pid,
        consumerPid=consumer_pid,
        code=code,
        reason=_reasons(reasons),
    )


def transfer_suspension(provider_pid: str, consumer_pid: str, code: str, *reasons: str) -> Message:
    return _base(
        "TransferSuspensionMessage",
        providerPid=provider_pid,
        consumerPid=consumer_pid,
        code=code,
        reason=_reasons(reasons),
    )


def transfer_completion(provider_pid: str, consumer_pid: str) -> Message:
    return _base("TransferCompletionMessage", providerPid=provider_pid, consumerPid=consumer_pid)


def data_address() -> dict[str, Any]:
    """The kit's DataAddress of a started push-less transfer (``TransferFunctions.dataAddress``)."""
    return {
        "@type": "DataAddress",
        "endpoint": "http://example.com",
        "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
    }


def catalog_request() -> Message:
    return _base("CatalogRequestMessage")
