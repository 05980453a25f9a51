"""The participant registry, operator side: every onboarded participant with its organisation
facts, roles from its credentials, data grade and DSP address (from its DID document's
DataService); filters; suspension sets its credentials' status entries (and refuses new
credentials) and reinstatement clears them, both audited; the revocation of its membership
revokes it."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from broker.app import create_app
from broker.settings import BrokerSettings
from identity.documents import Service
from identity.keyring import KeyRing
from identity.resolver import did_web_url
from identity.status import is_set
from identity.sts import WRITE_SCOPE, SecureTokenService
from tests.identity.world import COST, PASSPHRASE, engine_for
from tests.participants import ADMIN_KEY, BANK_ORG

AUTHORITY = "did:web:authority.test"
BANK = "did:web:bank.test"
OPERATOR = {"X-Api-Key": ADMIN_KEY}
TYPES = ["MembershipCredential", "FinancialInstitutionCredential"]


@dataclass
class Holder:
    """The bank, in memory: a DID document with its Credential Service and DSP catalogue."""

    ring: KeyRing
    catalogue: str = "https://bank.test/dsp/catalog"
    delivered: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url == did_web_url(BANK):
            services = [
                Service(f"{BANK}#credential-service", "CredentialService", "https://bank.test/cs"),
                Service(f"{BANK}#dsp-catalog", "DataService", self.catalogue),
            ]
            return httpx.Response(200, json=self.ring.document(services).to_json())
        if url == "https://bank.test/cs/credentials":
            self.delivered.append(json.loads(request.content))
            return httpx.Response(200)
        return httpx.Response(404)

    def ask(self, client: TestClient, types: list[str] = TYPES) -> str:
        sts = SecureTokenService(self.ring, lambda: datetime.now(UTC))
        grant = sts.access_token(AUTHORITY, [WRITE_SCOPE], lifetime=timedelta(days=1))
        answer = client.post(
            "/credentials",
            json={
                "type": "CredentialRequestMessage",
                "holderPid": "urn:uuid:bank-ask",
                "credentials": [{"id": kind} for kind in types],
            },
            headers={"Authorization": "Bearer " + sts.id_token(AUTHORITY, token=grant)},
        )
        assert answer.status_code == 201, answer.text
        request_id: str = answer.json()["issuerPid"]
        return request_id


@pytest.fixture
def holder() -> Holder:
    return Holder(
        KeyRing.load_or_create(engine_for(), BANK, PASSPHRASE, datetime.now(UTC), cost=COST)
    )


@pytest.fixture
def client(tmp_path: Path, holder: Holder) -> Iterator[TestClient]:
    settings = BrokerSettings(
        authority_id=AUTHORITY,
        database_url=f"sqlite:///{tmp_path / 'broker.db'}",
        key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
        admin_api_key=ADMIN_KEY,  # type: ignore[arg-type]
    )
    with TestClient(create_app(settings, transport=httpx.MockTransport(holder.handle))) as made:
        yield made


def onboard(client: TestClient, holder: Holder, types: list[str] = TYPES) -> Any:
    request_id = holder.ask(client, types)
    return client.post(
        f"/admin/requests/{request_id}/approve",
        json={"organisation": BANK_ORG},
        headers=OPERATOR,
    )


def listed(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    answer = client.get("/admin/participants", headers=OPERATOR, params=params)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def status_bits(client: TestClient) -> bytes:
    token = client.get("/status/1").text
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    encoded = claims["vc"]["credentialSubject"]["encodedList"]
    return gzip.decompress(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))


def indexes(holder: Holder) -> list[int]:
    found = []
    for message in holder.delivered:
        for credential in message["credentials"]:
            payload = credential["payload"].split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            found.append(int(claims["vc"]["credentialStatus"]["statusListIndex"]))
    return found


def test_an_onboarded_participant_is_registered_with_its_facts(
    client: TestClient, holder: Holder
) -> None:
    assert listed(client) == []
    assert onboard(client, holder).status_code == 200
    (bank,) = listed(client)
    assert bank["participant"] == BANK
    assert bank["organisation"] == {
        "name": BANK_ORG["name"], "creditCode": BANK_ORG["creditCode"], "region": "440106",
    }  # fmt: skip
    assert bank["roles"] == ["FinancialInstitution"]
    assert bank["dataGrade"] == "general"
    assert bank["dspAddress"] == "https://bank.test/dsp"
    assert bank["state"] == "active"
    assert bank["credentials"] == sorted(TYPES)


@pytest.mark.parametrize(
    ("params", "found"),
    [
        pytest.param({"state": "active"}, True, id="state"),
        pytest.param({"state": "suspended"}, False, id="other-state"),
        pytest.param({"region": "440106"}, True, id="district"),
        pytest.param({"region": "440100"}, True, id="its-city"),
        pytest.param({"region": "440000"}, True, id="its-province"),
        pytest.param({"region": "440300"}, False, id="another-city"),
        pytest.param({"role": "FinancialInstitution"}, True, id="role"),
        pytest.param({"role": "PublicDataHolder"}, False, id="role-not-held"),
        pytest.param({"dataGrade": "general"}, True, id="grade"),
        pytest.param({"dataGrade": "core"}, False, id="other-grade"),
    ],
)
def test_the_operator_filters_the_registry(
    client: TestClient, holder: Holder, params: dict[str, str], found: bool
) -> None:
    assert onboard(client, holder).status_code == 200
    assert [p["participant"] for p in listed(client, **params)] == ([BANK] if found else [])


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        pytest.param({"region": "999999"}, "bad_region", id="region"),
        pytest.param({"role": "Membership"}, "unknown_role", id="role"),
        pytest.param({"role": "x' OR 1=1 --"}, "unknown_role", id="injection"),
    ],
)
def test_bad_filters_are_refused(client: TestClient, params: dict[str, str], reason: str) -> None:
    answer = client.get("/admin/participants", headers=OPERATOR, params=params)
    assert answer.status_code == 400
    assert answer.json()["reason"] == reason


def test_without_the_key_the_registry_is_closed(client: TestClient) -> None:
    assert client.get("/admin/participants").status_code == 401
    suspend = client.post("/admin/participants/suspend", json={"participant": BANK, "reason": "x"})
    assert suspend.status_code == 401


def test_suspension_sets_the_status_and_reinstatement_clears_it(
    client: TestClient, holder: Holder
) -> None:
    assert onboard(client, holder).status_code == 200
    entries = indexes(holder)
    assert len(entries) == 2
    assert not any(is_set(status_bits(client), i) for i in entries)

    suspended = client.post(
        "/admin/participants/suspend",
        json={"participant": BANK, "reason": "unpaid fees"},
        headers=OPERATOR,
    )
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["state"] == "suspended"
    assert suspended.json()["reason"] == "unpaid fees"
    assert all(is_set(status_bits(client), i) for i in entries)
    # not again, and no new credentials while suspended
    again = client.post(
        "/admin/participants/suspend", json={"participant": BANK, "reason": "x"}, headers=OPERATOR
    )
    assert again.status_code == 409
    assert again.json()["type"] == "RegistryError"
    refused = onboard(client, holder, ["MembershipCredential"])
    assert refused.status_code == 409
    assert refused.json()["reason"] == "participant_suspended"

    reinstated = client.post(
        "/admin/participants/reinstate", json={"participant": BANK}, headers=OPERATOR
    )
    assert reinstated.status_code == 200
    assert reinstated.json()["state"] == "active"
    assert reinstated.json()["reason"] is None
    assert not any(is_set(status_bits(client), i) for i in entries)

    audit = client.get("/admin/audit", headers=OPERATOR, params={"subject": BANK}).json()["items"]
    decisions = [
        (e["decision"], e["decidedBy"], e["detail"], e["operatorKeyId"][:4])
        for e in audit
        if e["decision"].startswith("participant_")
    ]
    assert decisions == [
        ("participant_reinstated", "operator", None, "key:"),
        ("participant_suspended", "operator", "unpaid fees", "key:"),
    ]


def test_reinstatement_leaves_a_revoked_credential_revoked(
    client: TestClient, holder: Holder
) -> None:
    assert onboard(client, holder).status_code == 200
    credentials = client.get("/admin/credentials", headers=OPERATOR).json()
    licence = next(c for c in credentials if c["type"] == "FinancialInstitutionCredential")
    suspend = {"participant": BANK, "reason": "inquiry"}
    assert client.post("/admin/participants/suspend", json=suspend, headers=OPERATOR).is_success
    revoked = client.post(f"/admin/credentials/{licence['id']}/revoke", headers=OPERATOR)
    assert revoked.status_code == 200
    assert listed(client)[0]["state"] == "suspended"  # its membership stands
    reinstate = {"participant": BANK}
    assert client.post("/admin/participants/reinstate", json=reinstate, headers=OPERATOR).is_success
    membership_index, licence_index = indexes(holder)
    bits = status_bits(client)
    assert not is_set(bits, membership_index)
    assert is_set(bits, licence_index)
    (bank,) = listed(client)
    assert bank["roles"] == []
    assert bank["credentials"] == ["MembershipCredential"]


def test_revoking_the_membership_revokes_the_participant(
    client: TestClient, holder: Holder
) -> None:
    assert onboard(client, holder).status_code == 200
    credentials = client.get("/admin/credentials", headers=OPERATOR).json()
    membership = next(c for c in credentials if c["type"] == "MembershipCredential")
    assert client.post(f"/admin/credentials/{membership['id']}/revoke", headers=OPERATOR).is_success
    assert listed(client)[0]["state"] == "revoked"
    reinstate = client.post(
        "/admin/participants/reinstate", json={"participant": BANK}, headers=OPERATOR
    )
    assert reinstate.status_code == 409
    # onboarded anew, it is active again
    assert onboard(client, holder, ["MembershipCredential"]).status_code == 200
    assert listed(client)[0]["state"] == "active"


def test_an_unknown_participant_cannot_be_suspended(client: TestClient) -> None:
    answer = client.post(
        "/admin/participants/suspend", json={"participant": BANK, "reason": "x"}, headers=OPERATOR
    )
    assert answer.status_code == 404
    assert answer.json()["reason"] == "unknown_participant"


@pytest.mark.parametrize(
    "catalogue",
    [
        pytest.param("https://bank.test/dsp/other", id="not-a-catalog-endpoint"),
        pytest.param("javascript:alert(1)//catalog", id="not-http"),
    ],
)
def test_a_bad_dsp_address_is_not_registered(
    client: TestClient, holder: Holder, catalogue: str
) -> None:
    holder.catalogue = catalogue
    assert onboard(client, holder).status_code == 200
    assert listed(client)[0]["dspAddress"] is None


def test_the_members_list_needs_a_member(client: TestClient) -> None:
    answer = client.get("/registry/v1/participants")
    assert answer.status_code == 401
    assert answer.json()["type"] == "IdentityError"
