"""Issue 3's end-to-end test, on real loopback servers: the authority onboards two connectors;
A calls B with a self-issued token; B pulls A's presentation from A's Credential Service and
accepts; after the operator revokes A's membership, A presents it no more and B refuses A once
the caches refresh."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from connector.participant import standalone
from connector.settings import ConnectorSettings
from identity.credentials import CredentialType
from tests.e2e.space import TTL_S, Space, call, onboard
from tests.participants import ADMIN_KEY, BANK_ORG


def test_onboarding_authentication_and_revocation(space: Space) -> None:
    for settings, role in ((space.bureau, CredentialType.PUBLIC_DATA_HOLDER), (space.bank, CredentialType.FINANCIAL_INSTITUTION)):  # fmt: skip
        status = asyncio.run(onboard(settings, space.authority, [CredentialType.MEMBERSHIP, role]))
        assert status["status"] == "ISSUED", status

    # A (the bureau) calls B (the bank); B pulls A's presentation and accepts.
    response = asyncio.run(
        call(space.bureau, space.bank.participant_id, f"{space.bank_url}/identity/peer")
    )
    assert response.status_code == 200, response.text
    peer = response.json()
    assert peer["participant"] == space.bureau.participant_id
    assert peer["membership"] is True
    assert peer["roles"] == ["PublicDataHolder"]
    assert peer["dataGrade"] == "important"
    assert peer["region"] == "440100"
    assert {c["issuer"] for c in peer["credentials"]} == {space.authority}

    # The operator revokes A's membership.
    admin = {"X-Api-Key": ADMIN_KEY}
    issued = httpx.get(f"{space.authority_url}/admin/credentials", params={"holder": space.bureau.participant_id}, headers=admin).json()  # fmt: skip
    membership = next(c for c in issued if c["type"] == "MembershipCredential")
    revoked = httpx.post(
        f"{space.authority_url}/admin/credentials/{membership['id']}/revoke", headers=admin
    )
    assert revoked.status_code == 200
    assert revoked.json()["revoked"] is True

    time.sleep(TTL_S * 2)  # A's and B's status-list caches refresh
    # A, the holder, sees its membership revoked and presents it no more: B finds none.
    refused = asyncio.run(
        call(space.bureau, space.bank.participant_id, f"{space.bank_url}/identity/peer")
    )
    assert refused.status_code == 403
    assert refused.json() == {
        "type": "IdentityError",
        "reason": "missing_credential",
        "message": f"{space.bureau.participant_id} lacks MembershipCredential",
    }

    # The bank, not revoked, is still accepted by the bureau... and by itself nothing changed.
    bureau_url = space.bureau.base_url
    assert (
        asyncio.run(
            call(space.bank, space.bureau.participant_id, f"{bureau_url}/identity/peer")
        ).status_code
        == 200
    )


async def holder_get(holder: ConnectorSettings, authority: str, url: str) -> httpx.Response:
    async with standalone(holder) as (participant, client):
        token = participant.sts.id_token(authority)
        return await client.get(url, headers={"Authorization": f"Bearer {token}"})


def test_operator_approval_flow(closed_space: Space) -> None:
    space = closed_space
    status = asyncio.run(onboard(space.bank, space.authority, [CredentialType.MEMBERSHIP]))
    assert status["status"] == "RECEIVED"
    request_id = status["issuerPid"]

    # only the holder may read its request's status
    own = asyncio.run(
        holder_get(space.bank, space.authority, f"{space.authority_url}/requests/{request_id}")
    )
    assert own.json()["status"] == "RECEIVED"
    other = asyncio.run(
        holder_get(space.bureau, space.authority, f"{space.authority_url}/requests/{request_id}")
    )
    assert other.status_code == 404

    # nothing yet: the bank cannot authenticate
    before = asyncio.run(
        call(space.bank, space.bureau.participant_id, f"{space.bureau.base_url}/identity/peer")
    )
    assert before.status_code == 403
    assert before.json()["reason"] == "missing_credential"

    admin = {"X-Api-Key": ADMIN_KEY}
    pending = httpx.get(
        f"{space.authority_url}/admin/requests", params={"status": "RECEIVED"}, headers=admin
    ).json()
    assert [r["holder"] for r in pending] == [space.bank.participant_id]
    bad = httpx.post(
        f"{space.authority_url}/admin/requests/{request_id}/approve",
        json={"organisation": {**BANK_ORG, "creditCode": "91440101MA59XKQ72C"}},
        headers=admin,
    )
    assert bad.status_code == 422
    approved = httpx.post(
        f"{space.authority_url}/admin/requests/{request_id}/approve",
        json={"organisation": BANK_ORG},
        headers=admin,
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "ISSUED"
    again = httpx.post(
        f"{space.authority_url}/admin/requests/{request_id}/approve",
        json={"organisation": BANK_ORG},
        headers=admin,
    )
    assert again.status_code == 409

    after = asyncio.run(
        call(space.bank, space.bureau.participant_id, f"{space.bureau.base_url}/identity/peer")
    )
    assert after.status_code == 200, after.text
    assert after.json()["membership"] is True


def test_operator_rejection(closed_space: Space) -> None:
    space = closed_space
    status = asyncio.run(onboard(space.bureau, space.authority, [CredentialType.REGULATOR]))
    admin = {"X-Api-Key": ADMIN_KEY}
    rejected = httpx.post(
        f"{space.authority_url}/admin/requests/{status['issuerPid']}/reject",
        json={"reason": "not a regulator"},
        headers=admin,
    )
    assert rejected.json()["status"] == "REJECTED"
    assert rejected.json()["reason"] == "not a regulator"
    assert httpx.get(f"{space.authority_url}/admin/credentials", headers=admin).json() == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param({"type": "Nonsense"}, "malformed_message", id="wrong-type"),
        pytest.param(
            {
                "type": "CredentialRequestMessage",
                "holderPid": "x",
                "credentials": [{"id": "PassportCredential"}],
            },
            "unknown_credential",
            id="unknown-credential",
        ),
        pytest.param(
            {"type": "CredentialRequestMessage", "credentials": [{"id": "MembershipCredential"}]},
            "malformed_message",
            id="no-holder-pid",
        ),
        pytest.param(
            {"type": "CredentialRequestMessage", "holderPid": "x", "credentials": []},
            "malformed_message",
            id="no-credentials",
        ),
    ],
)
def test_bad_credential_requests_are_refused_and_nothing_stored(
    closed_space: Space, body: dict[str, object], reason: str
) -> None:
    async def send() -> httpx.Response:
        async with standalone(closed_space.bank) as (participant, client):
            token = participant.sts.id_token(closed_space.authority, token="grant")
            return await client.post(
                f"{closed_space.authority_url}/credentials",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            )

    response = asyncio.run(send())
    assert response.status_code == 400
    assert response.json()["reason"] == reason
    assert (
        httpx.get(
            f"{closed_space.authority_url}/admin/requests", headers={"X-Api-Key": ADMIN_KEY}
        ).json()
        == []
    )


def test_a_credential_request_without_a_valid_token_is_refused(closed_space: Space) -> None:
    response = httpx.post(
        f"{closed_space.authority_url}/credentials",
        json={"type": "CredentialRequestMessage"},
        headers={"Authorization": "Bearer nonsense"},
    )
    assert response.status_code == 401
    assert response.json()["reason"] == "malformed_token"
    missing = httpx.post(f"{closed_space.authority_url}/credentials", json={})
    assert missing.status_code == 401
