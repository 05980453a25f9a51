"""Every move of the negotiation table can be made by a person through the management API:
counter-offers and counter-requests, acceptance, approval, verification."""

from __future__ import annotations

import copy
from typing import Any

import httpx

from tests.e2e.space import Space
from tests.e2e.test_negotiation import (
    KEY,
    finalize_when_verified,
    negotiate,
    provider_side,
    ready,
    state_of,
    wait_for,
)
from tests.e2e.test_transfer import bureau_transfers, in_state, transfer


def act(
    base_url: str, negotiation_id: str, verb: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = httpx.post(
        f"{base_url}/management/v1/negotiations/{negotiation_id}/{verb}", headers=KEY, json=body
    )
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def with_count(offer: dict[str, Any], limit: str) -> dict[str, Any]:
    changed = copy.deepcopy(offer)
    changed["permission"][0]["constraint"][3]["rightOperand"] = limit
    return changed


def count_of(agreement: dict[str, Any]) -> str:
    limit: str = agreement["permission"][0]["constraint"][3]["rightOperand"]
    return limit


def test_the_provider_counters_the_consumer_accepts_a_person_approves(held_space: Space) -> None:
    space = held_space
    offer = ready(space)
    negotiation = negotiate(space, offer)
    wait_for(lambda: provider_side(space).get("onHold") is True)
    act(
        space.bureau.base_url,
        provider_side(space)["id"],
        "counter",
        {"offer": with_count(offer, "2")},
    )
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "OFFERED")
    act(space.bank.base_url, negotiation["id"], "accept")
    wait_for(
        lambda: (
            provider_side(space)["state"] == "ACCEPTED" and provider_side(space)["onHold"] is True
        )
    )
    act(space.bureau.base_url, provider_side(space)["id"], "approve")
    finalize_when_verified(space)
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "FINALIZED")
    assert count_of(state_of(space.bank.base_url, negotiation["id"])["agreement"]) == "2"


def test_the_consumer_counters_and_the_provider_agrees_to_the_new_terms(held_space: Space) -> None:
    space = held_space
    offer = ready(space)
    negotiation = negotiate(space, offer)
    wait_for(lambda: provider_side(space).get("onHold") is True)
    act(
        space.bureau.base_url,
        provider_side(space)["id"],
        "counter",
        {"offer": with_count(offer, "2")},
    )
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "OFFERED")
    act(space.bank.base_url, negotiation["id"], "counter", {"offer": with_count(offer, "1")})
    wait_for(
        lambda: (
            provider_side(space)["state"] == "REQUESTED" and provider_side(space)["onHold"] is True
        )
    )
    act(space.bureau.base_url, provider_side(space)["id"], "approve")
    finalize_when_verified(space)
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "FINALIZED")
    assert count_of(provider_side(space)["agreement"]) == "1"


def test_a_person_verifies_the_agreement(manual_space: Space) -> None:
    space = manual_space
    negotiation = negotiate(space, ready(space))
    wait_for(lambda: provider_side(space).get("onHold") is True)
    act(space.bureau.base_url, provider_side(space)["id"], "approve")
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "AGREED")
    act(space.bank.base_url, negotiation["id"], "verify")
    finalize_when_verified(space)
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "FINALIZED")


def test_a_person_starts_a_held_transfer(manual_space: Space) -> None:
    space = manual_space
    negotiation = negotiate(space, ready(space))
    wait_for(lambda: provider_side(space).get("onHold") is True)
    act(space.bureau.base_url, provider_side(space)["id"], "approve")
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "AGREED")
    act(space.bank.base_url, negotiation["id"], "verify")
    finalize_when_verified(space)
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "FINALIZED")
    view = transfer(space, state_of(space.bank.base_url, negotiation["id"])["agreementId"])
    wait_for(lambda: [t["onHold"] for t in bureau_transfers(space)] == [True])
    (held,) = bureau_transfers(space)
    assert held["state"] == "REQUESTED"
    started = httpx.post(
        f"{space.bureau.base_url}/management/v1/transfers/{held['id']}/start", headers=KEY, json={}
    )
    assert started.status_code == 200, started.text
    in_state(space, view["id"], "STARTED")


def test_a_move_the_table_does_not_allow_is_a_conflict(space: Space) -> None:
    negotiation = negotiate(space, ready(space))
    wait_for(lambda: state_of(space.bank.base_url, negotiation["id"])["state"] == "FINALIZED")
    response = httpx.post(
        f"{space.bank.base_url}/management/v1/negotiations/{negotiation['id']}/accept", headers=KEY
    )
    assert response.status_code == 409
    assert response.json()["reason"] == "illegal_transition"


def offered_to_the_bank(space: Space) -> str:
    """The bureau offers its firm list to the bank; returns the bank's negotiation id."""
    offer = ready(space)
    started = httpx.post(
        f"{space.bureau.base_url}/management/v1/negotiations/offers",
        headers=KEY,
        json={
            "counterPartyId": space.bank.participant_id,
            "counterPartyAddress": f"{space.bank.base_url}/dsp/callback",
            "offerId": offer["@id"],
        },
    )
    assert started.status_code == 201, started.text
    assert started.json()["state"] == "OFFERED"

    def banks() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = httpx.get(
            f"{space.bank.base_url}/management/v1/negotiations", headers=KEY
        ).json()["items"]
        return items

    wait_for(lambda: [n["state"] for n in banks()] == ["OFFERED"])
    (consumer,) = banks()
    assert consumer["assetId"] == "urn:kexin:asset:firm-list"
    wait_for(lambda: provider_side(space).get("consumerPid") is not None)
    negotiation_id: str = consumer["id"]
    return negotiation_id


def test_the_provider_starts_a_negotiation_and_the_consumer_accepts_for_a_purpose(
    space: Space,
) -> None:
    negotiation_id = offered_to_the_bank(space)
    act(space.bank.base_url, negotiation_id, "accept", {"purpose": "credit-assessment"})
    wait_for(lambda: state_of(space.bank.base_url, negotiation_id)["state"] == "FINALIZED")
    assert provider_side(space)["state"] == "FINALIZED"
    assert provider_side(space)["purpose"] == "credit-assessment"


def test_accepting_without_the_purpose_the_policy_needs_is_refused(space: Space) -> None:
    negotiation_id = offered_to_the_bank(space)
    act(space.bank.base_url, negotiation_id, "accept")
    wait_for(lambda: state_of(space.bank.base_url, negotiation_id)["state"] == "TERMINATED")
    refused = state_of(space.bank.base_url, negotiation_id)
    assert refused["terminationCode"] == "policy_denied"
    assert "purpose isA credit-assessment: no value known" in refused["terminationReason"]
