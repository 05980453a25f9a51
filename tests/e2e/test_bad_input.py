"""Bad input at the DSP endpoints: a typed 4xx error (valid against the official schemas), the
state unchanged, and an audit event for the refusal."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from connector.audit import Outcome, SqlAuditSink
from connector.participant import standalone
from identity.presentations import EVERY_SCOPE
from storage.engine import create_engine
from tests.dsp_schemas import errors
from tests.e2e.space import Space, call, calls_at_once
from tests.e2e.test_negotiation import KEY, negotiate, provider_side, ready, state_of, wait_for

DSP = "https://w3id.org/dspace/2025/1/context.jsonld"


def refusals(space: Space) -> list[str]:
    engine = create_engine(space.bureau.database_url)
    try:
        return [
            f"{r.action} {r.reason}"
            for r in SqlAuditSink(engine).recent(500)
            if r.outcome is Outcome.REFUSED
        ]
    finally:
        engine.dispose()


def post_as_bank(space: Space, path: str, body: Any, *, raw: bytes | None = None) -> httpx.Response:
    async def send() -> httpx.Response:
        async with standalone(space.bank) as (participant, client):
            token = participant.sts.bearer_for(space.bureau.participant_id, EVERY_SCOPE)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            if raw is not None:
                return await client.post(
                    f"{space.bureau.base_url}{path}", content=raw, headers=headers
                )
            return await client.post(f"{space.bureau.base_url}{path}", json=body, headers=headers)

    return asyncio.run(send())


@pytest.mark.parametrize(
    ("raw", "body", "status", "code"),
    [
        pytest.param(b"{not json", None, 400, "malformed_json", id="malformed-json"),
        pytest.param(
            None,
            {
                "@context": [DSP],
                "@type": "ContractOfferMessage",
                "providerPid": "x",
                "offer": {},
                "callbackAddress": "http://x",
            },
            400,
            "malformed_message",
            id="wrong-type",
        ),
        pytest.param(
            None,
            {
                "@context": [DSP],
                "@type": "ContractRequestMessage",
                "offer": {"@id": "o"},
                "callbackAddress": "http://x",
            },
            400,
            "malformed_message",
            id="missing-pid",
        ),
        pytest.param(
            None,
            {
                "@context": ["https://example.com"],
                "@type": "ContractRequestMessage",
                "consumerPid": "c",
                "offer": {"@id": "o"},
                "callbackAddress": "http://x",
            },
            400,
            "malformed_message",
            id="no-dsp-context",
        ),
        pytest.param(
            None,
            {
                "@context": [DSP],
                "@type": "ContractRequestMessage",
                "consumerPid": "c",
                "offer": {"@id": "urn:kexin:offer:nope", "target": "x"},
                "callbackAddress": "http://x",
            },
            400,
            "unknown_offer",
            id="unknown-offer",
        ),
        pytest.param(b"[" + b"0," * 600_000 + b"0]", None, 413, "body_too_large", id="oversized"),
    ],
)
def test_bad_requests_are_typed_refused_and_audited(
    space: Space, raw: bytes | None, body: Any, status: int, code: str
) -> None:
    ready(space)
    response = post_as_bank(space, "/dsp/negotiations/request", body, raw=raw)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert errors("negotiation/contract-negotiation-error-schema.json", response.json()) == []
    assert (
        httpx.get(f"{space.bureau.base_url}/management/v1/negotiations", headers=KEY).json()[
            "items"
        ]
        == []
    )
    assert any(code in line for line in refusals(space)), refusals(space)


def test_a_message_for_the_other_role_changes_nothing(space: Space) -> None:
    negotiation = negotiate(space, ready(space))
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "FINALIZED")
    provider = provider_side(space)
    # FINALIZED is the provider's event: a consumer may not send it to the provider.
    event = {
        "@context": [DSP],
        "@type": "ContractNegotiationEventMessage",
        "providerPid": provider["providerPid"],
        "consumerPid": provider["consumerPid"],
        "eventType": "FINALIZED",
    }
    response = post_as_bank(space, f"/dsp/negotiations/{provider['providerPid']}/events", event)
    assert response.status_code == 400
    assert response.json()["code"] == "illegal_transition"
    assert provider_side(space)["state"] == "FINALIZED"
    assert any("illegal_transition" in line for line in refusals(space))


def test_another_participants_negotiation_is_not_found(space: Space) -> None:
    negotiation = negotiate(space, ready(space))
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "FINALIZED")
    provider = provider_side(space)
    # The bureau itself (a different participant than the negotiation's consumer) asks.
    stranger = asyncio.run(
        call(
            space.bureau,
            space.bureau.participant_id,
            f"{space.bureau.base_url}/dsp/negotiations/{provider['providerPid']}",
        )
    )
    assert stranger.status_code == 404


def test_unauthenticated_dsp_calls_are_refused(space: Space) -> None:
    response = httpx.post(f"{space.bureau.base_url}/dsp/transfers/request", json={})
    assert response.status_code == 401
    assert response.json()["@type"] == "TransferError"
    assert errors("transfer/transfer-error-schema.json", response.json()) == []


def test_the_version_endpoint_is_open_and_valid(space: Space) -> None:
    response = httpx.get(f"{space.bureau.base_url}/.well-known/dspace-version")
    assert response.status_code == 200
    assert errors("common/protocol-version-schema.json", response.json()) == []
    assert response.json()["protocolVersions"][0]["version"] == "2025-1"


def test_one_consumer_pid_twice_at_once_makes_one_negotiation(space: Space) -> None:
    """The same initial request twice at the same moment (a retry racing the first): one
    negotiation, and both get its first answer (201), never a 500. Another request with that
    consumerPid is refused as a duplicate pid."""
    offer = {**ready(space), "target": "urn:kexin:asset:firm-list"}

    url = f"{space.bureau.base_url}/dsp/negotiations/request"
    for round_ in range(5):
        body = {
            "@context": [DSP],
            "@id": f"urn:uuid:{uuid.uuid4()}",
            "@type": "ContractRequestMessage",
            "consumerPid": f"urn:uuid:{uuid.uuid4()}",
            "offer": offer,
            "callbackAddress": f"{space.bank.base_url}/dsp/callback",
        }
        answers = asyncio.run(calls_at_once(space.bank, space.bureau.participant_id, url, body))
        assert [answer.status_code for answer in answers] == [201, 201], answers[1].text
        assert answers[0].json() == answers[1].json()
        other = {**body, "@id": f"urn:uuid:{uuid.uuid4()}"}
        again = asyncio.run(
            call(space.bank, space.bureau.participant_id, url, method="POST", body=other)
        )
        assert again.status_code == 400
        assert again.json()["code"] == "duplicate_pid"
        made = httpx.get(f"{space.bureau.base_url}/management/v1/negotiations", headers=KEY)
        assert len(made.json()["items"]) == round_ + 1
