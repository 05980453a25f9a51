"""DSP 2025-1 wire messages against the official examples and JSON Schemas in ../shared/dsp."""

from __future__ import annotations

from typing import Any

import pytest

from connector.negotiation import messages as cn
from connector.protocol import DSP_CONTEXT, DspMessage, MessageError
from connector.transfer import messages as tp
from policy.jsonld import read_policy, write_policy
from tests.dsp_schemas import errors, example
from tests.policy.policies import FIRM_LIST

CASES: list[tuple[type[DspMessage], str, str]] = [
    (
        cn.ContractRequestMessage,
        "negotiation/contract-request-message_initial.json",
        "negotiation/contract-request-message-schema.json",
    ),
    (
        cn.ContractRequestMessage,
        "negotiation/contract-request-message.json",
        "negotiation/contract-request-message-schema.json",
    ),
    (
        cn.ContractOfferMessage,
        "negotiation/contract-offer-message_initial.json",
        "negotiation/contract-offer-message-schema.json",
    ),
    (
        cn.ContractOfferMessage,
        "negotiation/contract-offer-message.json",
        "negotiation/contract-offer-message-schema.json",
    ),
    (
        cn.ContractAgreementMessage,
        "negotiation/contract-agreement-message.json",
        "negotiation/contract-agreement-message-schema.json",
    ),
    (
        cn.ContractAgreementMessage,
        "negotiation/contract-agreement-message-full.json",
        "negotiation/contract-agreement-message-schema.json",
    ),
    (
        cn.ContractAgreementVerificationMessage,
        "negotiation/contract-agreement-verification-message.json",
        "negotiation/contract-agreement-verification-message-schema.json",
    ),
    (
        cn.ContractNegotiationEventMessage,
        "negotiation/contract-negotiation-event-message.json",
        "negotiation/contract-negotiation-event-message-schema.json",
    ),
    (
        cn.ContractNegotiationTerminationMessage,
        "negotiation/contract-negotiation-termination-message.json",
        "negotiation/contract-negotiation-termination-message-schema.json",
    ),
    (
        cn.ContractNegotiation,
        "negotiation/contract-negotiation.json",
        "negotiation/contract-negotiation-schema.json",
    ),
    (
        cn.ContractNegotiationError,
        "negotiation/contract-negotiation-error.json",
        "negotiation/contract-negotiation-error-schema.json",
    ),
    (
        tp.TransferRequestMessage,
        "transfer/transfer-request-message.json",
        "transfer/transfer-request-message-schema.json",
    ),
    (
        tp.TransferStartMessage,
        "transfer/transfer-start-message.json",
        "transfer/transfer-start-message-schema.json",
    ),
    (
        tp.TransferSuspensionMessage,
        "transfer/transfer-suspension-message.json",
        "transfer/transfer-suspension-message-schema.json",
    ),
    (
        tp.TransferCompletionMessage,
        "transfer/transfer-completion-message.json",
        "transfer/transfer-completion-message-schema.json",
    ),
    (
        tp.TransferTerminationMessage,
        "transfer/transfer-termination-message.json",
        "transfer/transfer-termination-message-schema.json",
    ),
    (tp.TransferProcess, "transfer/transfer-process.json", "transfer/transfer-process-schema.json"),
    (tp.TransferError, "transfer/transfer-error.json", "transfer/transfer-error-schema.json"),
]
SCHEMA_OF = {model: schema for model, _, schema in CASES}


@pytest.mark.parametrize(("model", "example_file", "schema"), CASES, ids=[c[1] for c in CASES])
def test_official_examples_read_and_round_trip(
    model: type[DspMessage], example_file: str, schema: str
) -> None:
    document = example(example_file)
    assert errors(schema, document) == []
    message = model.read(document)
    assert message.dump() == document


PID_C, PID_P = "urn:uuid:consumer-1", "urn:uuid:provider-1"
OFFER = write_policy(read_policy({**FIRM_LIST, "target": "urn:uuid:firm-list"}))
AGREEMENT = write_policy(
    read_policy(
        {
            **FIRM_LIST,
            "@id": "urn:uuid:agreement-1",
            "@type": "Agreement",
            "target": "urn:uuid:firm-list",
            "assigner": "did:web:bureau",
            "assignee": "did:web:bank",
            "timestamp": "2026-11-24T09:00:00Z",
        }
    )
)
BUILT: list[DspMessage] = [
    cn.ContractRequestMessage.build(
        consumerPid=PID_C, offer=OFFER, callbackAddress="https://bank.example.cn/dsp"
    ),
    cn.ContractRequestMessage.build(consumerPid=PID_C, providerPid=PID_P, offer=OFFER),
    cn.ContractOfferMessage.build(providerPid=PID_P, consumerPid=PID_C, offer=OFFER),
    cn.ContractOfferMessage.build(
        providerPid=PID_P, offer=OFFER, callbackAddress="https://bureau.example.cn/dsp"
    ),
    cn.ContractAgreementMessage.build(providerPid=PID_P, consumerPid=PID_C, agreement=AGREEMENT),
    cn.ContractAgreementVerificationMessage.build(providerPid=PID_P, consumerPid=PID_C),
    cn.ContractNegotiationEventMessage.build(
        providerPid=PID_P, consumerPid=PID_C, eventType="FINALIZED"
    ),
    cn.ContractNegotiationTerminationMessage.build(
        providerPid=PID_P,
        consumerPid=PID_C,
        code="policy",
        reason=["the contract policy does not admit the consumer"],
    ),
    cn.ContractNegotiation.build(providerPid=PID_P, consumerPid=PID_C, state="AGREED"),
    cn.ContractNegotiationError.build(
        providerPid=PID_P,
        consumerPid=PID_C,
        code="illegal_transition",
        reason=["the consumer cannot send ContractAgreementMessage"],
    ),
    tp.TransferRequestMessage.build(
        consumerPid=PID_C,
        agreementId="urn:uuid:agreement-1",
        format="HttpData-PULL",
        callbackAddress="https://bank.example.cn/dsp",
    ),
    tp.TransferStartMessage.build(
        providerPid=PID_P,
        consumerPid=PID_C,
        dataAddress={
            "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
            "endpoint": "https://bureau.example.cn/data/1",
            "endpointProperties": [{"name": "authorization", "value": "token"}],
        },
    ),
    tp.TransferSuspensionMessage.build(
        providerPid=PID_P, consumerPid=PID_C, code="maintenance", reason=["back soon"]
    ),
    tp.TransferCompletionMessage.build(providerPid=PID_P, consumerPid=PID_C),
    tp.TransferTerminationMessage.build(
        providerPid=PID_P, consumerPid=PID_C, code="expired", reason=["the agreement expired"]
    ),
    tp.TransferProcess.build(providerPid=PID_P, consumerPid=PID_C, state="STARTED"),
    tp.TransferError.build(providerPid=PID_P, consumerPid=PID_C, code="not_found"),
]


@pytest.mark.parametrize("message", BUILT, ids=[f"{m.type}-{i}" for i, m in enumerate(BUILT)])
def test_every_message_we_build_validates_against_the_official_schema(message: DspMessage) -> None:
    assert errors(SCHEMA_OF[type(message)], message.dump()) == []


def initial_request(**changes: Any) -> dict[str, Any]:
    return {**example("negotiation/contract-request-message_initial.json"), **changes}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param([], "must be a JSON object", id="not-an-object"),
        pytest.param(
            initial_request(**{"@context": ["https://example.com/other"]}),
            "@context: Value error, @context must include",
            id="no-dsp-context",
        ),
        pytest.param(
            initial_request(**{"@type": "ContractOfferMessage"}),
            "@type: Value error, expected @type ContractRequestMessage",
            id="wrong-type",
        ),
        pytest.param(
            initial_request(consumerPid=""),
            "consumerPid: String should have at least 1 character",
            id="empty-pid",
        ),
        pytest.param(
            initial_request(consumerPid="x" * 600),
            "consumerPid: String should have at most 500 characters",
            id="oversized-pid",
        ),
        pytest.param(
            initial_request(providerPid="urn:uuid:p"),
            "exactly one of providerPid and callbackAddress",
            id="pid-and-callback",
        ),
        pytest.param(
            {k: v for k, v in initial_request().items() if k != "consumerPid"},
            "consumerPid: Field required",
            id="missing-pid",
        ),
        pytest.param(
            initial_request(offer={"@type": "Offer"}),
            "offer.@id is required",
            id="offer-without-id",
        ),
    ],
)
def test_malformed_requests_are_refused_with_a_path(body: Any, message: str) -> None:
    with pytest.raises(MessageError) as raised:
        cn.ContractRequestMessage.read(body)
    assert message in str(raised.value)


def test_extra_properties_and_contexts_are_accepted_and_kept() -> None:
    body = initial_request(
        **{
            "@context": [DSP_CONTEXT, "https://w3id.org/kexin/extension"],
            "kexin:purpose": "credit-assessment",
        }
    )
    message = cn.ContractRequestMessage.read(body)
    assert message.dump()["kexin:purpose"] == "credit-assessment"
    assert message.context == [DSP_CONTEXT, "https://w3id.org/kexin/extension"]


def test_a_single_string_context_is_read_and_written_as_an_array() -> None:
    message = cn.ContractAgreementVerificationMessage.read(
        {
            "@context": DSP_CONTEXT,
            "@type": "ContractAgreementVerificationMessage",
            "providerPid": PID_P,
            "consumerPid": PID_C,
        }
    )
    assert message.dump()["@context"] == [DSP_CONTEXT]


def test_event_messages_map_to_their_events() -> None:
    from connector.negotiation.machine import Event

    accepted = cn.ContractNegotiationEventMessage.build(
        providerPid=PID_P, consumerPid=PID_C, eventType="ACCEPTED"
    )
    assert accepted.event is Event.ACCEPT
    with pytest.raises(MessageError, match="eventType"):
        cn.ContractNegotiationEventMessage.read({**accepted.dump(), "eventType": "REJECTED"})
