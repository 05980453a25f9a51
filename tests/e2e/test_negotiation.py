"""Contract negotiation between two connectors over real HTTP (DCP-authenticated, outbox-driven):
the bank negotiates the bureau's firm list; both sides reach FINALIZED with the same agreement;
refusals terminate with their reasons on both sides."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from typing import Any

import httpx

from connector.audit import Outcome
from tests.dsp_schemas import errors
from tests.e2e.dataplane_helpers import audit
from tests.e2e.space import Space, call
from tests.e2e.test_catalog import bank_asks, onboard_both, publish
from tests.participants import ADMIN_KEY

KEY = {"X-Api-Key": ADMIN_KEY}
DSP = "https://w3id.org/dspace/2025/1/context.jsonld"


def wait_for(
    check: Callable[[], bool],
    timeout_s: float = 10.0,
    seen: Callable[[], object] | None = None,
) -> None:
    """Poll ``check``; on timeout, fail with what ``seen`` shows of the current state."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; seen: {seen()!r}" if seen else "timed out")
        time.sleep(0.05)


def firm_list_offer(space: Space) -> dict[str, Any]:
    catalog = bank_asks(space, "/dsp/catalog/request").json()
    dataset = next(d for d in catalog["dataset"] if d["@id"] == "urn:kexin:asset:firm-list")
    offer: dict[str, Any] = dataset["hasPolicy"][0]
    return offer


def negotiate(
    space: Space, offer: dict[str, Any], purpose: str = "credit-assessment"
) -> dict[str, Any]:
    started = httpx.post(
        f"{space.bank.base_url}/management/v1/negotiations",
        headers=KEY,
        json={
            "counterPartyId": space.bureau.participant_id,
            "counterPartyAddress": f"{space.bureau.base_url}/dsp",
            "offer": offer,
            "target": "urn:kexin:asset:firm-list",
            "purpose": purpose,
        },
    )
    assert started.status_code == 201, started.text
    negotiation: dict[str, Any] = started.json()
    return negotiation


def state_of(base_url: str, negotiation_id: str) -> dict[str, Any]:
    view: dict[str, Any] = httpx.get(
        f"{base_url}/management/v1/negotiations/{negotiation_id}", headers=KEY
    ).json()
    return view


def provider_side(space: Space) -> dict[str, Any]:
    """The bureau's one negotiation; empty while the bank's request is still on its way."""
    items = httpx.get(f"{space.bureau.base_url}/management/v1/negotiations", headers=KEY).json()[
        "items"
    ]
    assert len(items) <= 1, items
    view: dict[str, Any] = items[0] if items else {}
    return view


def ready(space: Space) -> dict[str, Any]:
    onboard_both(space)
    publish(space)
    return firm_list_offer(space)


def test_the_bank_negotiates_the_firm_list_to_finalized(space: Space) -> None:
    negotiation = negotiate(space, ready(space))
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "FINALIZED")
    consumer = state_of(space.bank.base_url, negotiation["id"])
    wait_for(lambda: provider_side(space).get("state") == "FINALIZED")
    provider = provider_side(space)
    assert consumer["agreement"] == provider["agreement"]
    agreement = consumer["agreement"]
    assert errors("negotiation/contract-schema.json#/definitions/Agreement", agreement) == []
    assert (agreement["assigner"], agreement["assignee"], agreement["target"]) == (
        space.bureau.participant_id,
        space.bank.participant_id,
        "urn:kexin:asset:firm-list",
    )
    assert consumer["providerPid"] == provider["providerPid"]
    agreements = httpx.get(f"{space.bank.base_url}/management/v1/agreements", headers=KEY).json()[
        "items"
    ]
    assert [a["agreement"]["@id"] for a in agreements] == [agreement["@id"]]
    # The peer can read the negotiation; a stranger's or unknown pid is 404.
    seen = asyncio.run(
        call(
            space.bank,
            space.bureau.participant_id,
            f"{space.bureau.base_url}/dsp/negotiations/{provider['providerPid']}",
        )
    )
    assert seen.json()["state"] == "FINALIZED"
    assert errors("negotiation/contract-negotiation-schema.json", seen.json()) == []
    unknown = asyncio.run(
        call(
            space.bank,
            space.bureau.participant_id,
            f"{space.bureau.base_url}/dsp/negotiations/urn:uuid:nope",
        )
    )
    assert unknown.status_code == 404
    assert errors("negotiation/contract-negotiation-error-schema.json", unknown.json()) == []


def test_a_purpose_the_policy_does_not_admit_is_terminated_with_the_reasons(space: Space) -> None:
    negotiation = negotiate(space, ready(space), purpose="marketing")
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "TERMINATED")
    consumer = state_of(space.bank.base_url, negotiation["id"])
    assert consumer["terminationCode"] == "policy_denied"
    assert (
        "purpose isA credit-assessment: violated (actual marketing)"
        in consumer["terminationReason"]
    )
    assert provider_side(space)["state"] == "TERMINATED"
    refusals = [
        e for e in audit(space) if e["action"] == "ContractRequestMessage"
        and e["subject"] == provider_side(space)["id"]
    ]  # fmt: skip
    assert [e["outcome"] for e in refusals] == [Outcome.REFUSED]
    assert refusals[0]["reason"].startswith("policy_denied: ")
    assert "purpose isA credit-assessment: violated (actual marketing)" in refusals[0]["reason"]


def test_a_tampered_offer_is_refused_and_ends_the_negotiation(space: Space) -> None:
    offer = copy.deepcopy(ready(space))
    offer["permission"][0]["constraint"][3]["rightOperand"] = "30"  # count lteq 3 -> 30
    negotiation = negotiate(space, offer)
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "TERMINATED")
    consumer = state_of(space.bank.base_url, negotiation["id"])
    assert consumer["terminationCode"] == "delivery_failed"
    assert "tampered_offer" in consumer["terminationReason"]
    assert (
        httpx.get(f"{space.bureau.base_url}/management/v1/negotiations", headers=KEY).json()[
            "items"
        ]
        == []
    )


def test_illegal_moves_by_the_peer_change_nothing(space: Space) -> None:
    negotiation = negotiate(space, ready(space))
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "FINALIZED")
    provider = provider_side(space)
    message = {
        "@context": [DSP],
        "@type": "ContractAgreementVerificationMessage",
        "providerPid": provider["providerPid"],
        "consumerPid": provider["consumerPid"],
    }
    again = asyncio.run(
        call(
            space.bank,
            space.bureau.participant_id,
            f"{space.bureau.base_url}/dsp/negotiations/{provider['providerPid']}/agreement/verification",
            method="POST",
            body=message,
        )
    )
    assert again.status_code == 400
    assert again.json()["code"] == "illegal_transition"
    assert errors("negotiation/contract-negotiation-error-schema.json", again.json()) == []
    mismatched = asyncio.run(
        call(
            space.bank,
            space.bureau.participant_id,
            f"{space.bureau.base_url}/dsp/negotiations/urn:uuid:other/agreement/verification",
            method="POST",
            body=message,
        )
    )
    assert mismatched.status_code == 400
    assert mismatched.json()["code"] == "pid_mismatch"
    assert provider_side(space)["state"] == "FINALIZED"
    # the bureau's own operator cannot terminate a finalized negotiation either
    refused = httpx.post(
        f"{space.bureau.base_url}/management/v1/negotiations/{provider['id']}/terminate",
        headers=KEY,
        json={"reason": "changed my mind"},
    )
    assert refused.status_code == 409


def finalize_when_verified(space: Space) -> None:
    """In manual mode the provider holds a verified agreement: a person finalizes it."""
    wait_for(
        lambda: (
            provider_side(space)["state"] == "VERIFIED" and provider_side(space)["onHold"] is True
        )
    )
    finalized = httpx.post(
        f"{space.bureau.base_url}/management/v1/negotiations/{provider_side(space)['id']}/finalize",
        headers=KEY,
    )
    assert finalized.status_code == 200, finalized.text


def test_a_held_request_waits_for_the_operator_who_approves_it(held_space: Space) -> None:
    space = held_space
    negotiation = negotiate(space, ready(space))
    wait_for(lambda: provider_side(space).get("onHold") is True)
    assert provider_side(space)["state"] == "REQUESTED"
    assert state_of(space.bank.base_url, negotiation["id"])["state"] == "REQUESTED"
    approved = httpx.post(
        f"{space.bureau.base_url}/management/v1/negotiations/{provider_side(space)['id']}/approve",
        headers=KEY,
    )
    assert approved.status_code == 200, approved.text
    finalize_when_verified(space)
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "FINALIZED")
    again = httpx.post(
        f"{space.bureau.base_url}/management/v1/negotiations/{provider_side(space)['id']}/approve",
        headers=KEY,
    )
    assert again.status_code == 409


def test_the_consumer_terminates_and_the_provider_keeps_code_and_reason(held_space: Space) -> None:
    space = held_space
    negotiation = negotiate(space, ready(space))
    wait_for(lambda: provider_side(space).get("onHold") is True)
    terminated = httpx.post(
        f"{space.bank.base_url}/management/v1/negotiations/{negotiation['id']}/terminate",
        headers=KEY,
        json={"code": "no_longer_needed", "reason": "the credit application was withdrawn"},
    )
    assert terminated.status_code == 200, terminated.text
    assert terminated.json()["state"] == "TERMINATED"
    wait_for(lambda: provider_side(space).get("state") == "TERMINATED")
    provider = provider_side(space)
    assert provider["terminationCode"] == "no_longer_needed"
    assert provider["terminationReason"] == "the credit application was withdrawn"


def test_the_provider_terminates_a_held_request_and_the_consumer_keeps_code_and_reason(
    held_space: Space,
) -> None:
    space = held_space
    negotiation = negotiate(space, ready(space))
    wait_for(lambda: provider_side(space).get("onHold") is True)
    terminated = httpx.post(
        f"{space.bureau.base_url}/management/v1/negotiations/{provider_side(space)['id']}/terminate",
        headers=KEY,
        json={"code": "not_this_quarter", "reason": "the firm list is being revised"},
    )
    assert terminated.status_code == 200, terminated.text
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "TERMINATED")
    consumer = state_of(space.bank.base_url, negotiation["id"])
    assert (consumer["terminationCode"], consumer["terminationReason"]) == (
        "not_this_quarter",
        "the firm list is being revised",
    )


def test_an_approval_clicked_twice_at_once_agrees_once(held_space: Space) -> None:
    """Two approvals of one held request at the same moment (a double click, two operators):
    one agrees, the other is told the request no longer waits; one agreement is sent."""
    space = held_space
    negotiation = negotiate(space, ready(space))
    wait_for(lambda: provider_side(space).get("onHold") is True)
    url = f"{space.bureau.base_url}/management/v1/negotiations/{provider_side(space)['id']}/approve"

    async def twice() -> list[int]:
        async with httpx.AsyncClient(headers=KEY, timeout=30) as client:
            answers = await asyncio.gather(client.post(url), client.post(url))
        return sorted(answer.status_code for answer in answers)

    assert asyncio.run(twice()) == [200, 409]
    finalize_when_verified(space)
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "FINALIZED")
    agreements = httpx.get(f"{space.bank.base_url}/management/v1/agreements", headers=KEY)
    assert len(agreements.json()["items"]) == 1
