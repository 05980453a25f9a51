"""The management API's held credentials: listed with what the connector believes of each now,
filtered and paged, removed by id (404 typed when unknown), behind the API key. The connector
runs in-process; only the network (the authority's DID document and status list) is mocked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from connector.app import create_app
from connector.participant import migrate
from connector.settings import ConnectorSettings
from identity.credentials import CredentialType
from identity.keyring import KeyRing
from identity.status import StatusEntry
from identity.sts import WRITE_SCOPE, SecureTokenService
from storage.engine import create_engine
from tests.identity.world import AUTHORITY, NOW, PASSPHRASE, World
from tests.participants import ADMIN_KEY

BANK = "did:web:bank.test"
KEY = {"X-Api-Key": ADMIN_KEY}
TTL_S = 0.05


@dataclass
class Connector:
    client: TestClient
    world: World
    licence: StatusEntry


@pytest.fixture
def connector(tmp_path: Path) -> Iterator[Connector]:
    world = World()
    world.add(AUTHORITY)
    settings = ConnectorSettings(
        participant_id=BANK,
        database_url=f"sqlite:///{tmp_path / 'bank.db'}",
        key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
        management_api_key=ADMIN_KEY,  # type: ignore[arg-type]
        trusted_issuers={kind: [AUTHORITY] for kind in CredentialType},
        did_web_allow_http=True,
        status_list_ttl_s=TTL_S,
    )
    engine = create_engine(settings.database_url)
    migrate(engine)
    ring = KeyRing.load_or_create(engine, BANK, PASSPHRASE, NOW)  # the connector's own keys
    engine.dispose()
    membership, _ = world.issue(BANK)
    licence, entry = world.issue(BANK, CredentialType.FINANCIAL_INSTITUTION)
    grant = SecureTokenService(ring, lambda: NOW).access_token(AUTHORITY, [WRITE_SCOPE])
    bearer = SecureTokenService(world.rings[AUTHORITY], lambda: NOW).id_token(BANK, token=grant)
    app = create_app(settings, transport=httpx.MockTransport(world.handle), clock=lambda: NOW)
    with TestClient(app) as client:
        delivered = client.post(
            "/cs/credentials",
            headers={"Authorization": f"Bearer {bearer}"},
            json={
                "type": "CredentialMessage",
                "credentials": [{"format": "jwt", "payload": t} for t in (membership, licence)],
            },
        )
        assert delivered.json() == {"stored": 2}, delivered.text
        yield Connector(client, world, entry)


def listed(connector: Connector, **params: str) -> list[dict[str, object]]:
    answer = connector.client.get("/management/v1/credentials", headers=KEY, params=params)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, object]] = answer.json()["items"]
    return items


def test_held_credentials_are_listed_with_what_the_connector_believes(
    connector: Connector,
) -> None:
    connector.world.revoke(connector.licence)
    time.sleep(TTL_S * 2)  # the status-list cache refreshes
    items = sorted(listed(connector), key=lambda item: str(item["type"]))
    assert items == [
        {
            "id": "urn:uuid:cred-1",
            "type": "FinancialInstitutionCredential",
            "issuer": AUTHORITY,
            "issuedAt": "2026-11-23T09:00:00+00:00",
            "expiresAt": "2027-11-24T09:00:00+00:00",
            "receivedAt": "2026-11-24T09:00:00+00:00",
            "status": "revoked",
            "statusReason": "revoked in http://authority.test/status/1 (entry 1)",
            "statusEntry": {
                "statusListCredential": "http://authority.test/status/1",
                "statusListIndex": 1,
            },
            "presented": False,
        },
        {
            "id": "urn:uuid:cred-0",
            "type": "MembershipCredential",
            "issuer": AUTHORITY,
            "issuedAt": "2026-11-23T09:00:00+00:00",
            "expiresAt": "2027-11-24T09:00:00+00:00",
            "receivedAt": "2026-11-24T09:00:00+00:00",
            "status": "valid",
            "statusReason": None,
            "statusEntry": {
                "statusListCredential": "http://authority.test/status/1",
                "statusListIndex": 0,
            },
            "presented": True,
        },
    ]
    connector.world.status_up = False
    time.sleep(TTL_S * 2)
    assert {item["status"] for item in listed(connector)} == {"unknown"}


def test_held_credentials_are_filtered_and_paged(connector: Connector) -> None:
    assert [item["id"] for item in listed(connector, type="MembershipCredential")] == [
        "urn:uuid:cred-0"
    ]
    first = connector.client.get("/management/v1/credentials", headers=KEY, params={"limit": 1})
    assert len(first.json()["items"]) == 1
    assert first.json()["next"] == 1
    second = connector.client.get(
        "/management/v1/credentials", headers=KEY, params={"limit": 1, "offset": 1}
    )
    assert second.json()["next"] is None
    assert {first.json()["items"][0]["id"], second.json()["items"][0]["id"]} == {
        "urn:uuid:cred-0",
        "urn:uuid:cred-1",
    }
    unknown = connector.client.get(
        "/management/v1/credentials", headers=KEY, params={"type": "PassportCredential"}
    )
    assert unknown.status_code == 422
    assert unknown.json()["type"] == "BadRequest"


def test_a_held_credential_is_removed_and_never_presented_again(connector: Connector) -> None:
    removed = connector.client.delete("/management/v1/credentials/urn:uuid:cred-1", headers=KEY)
    assert removed.status_code == 204
    assert [item["id"] for item in listed(connector)] == ["urn:uuid:cred-0"]
    again = connector.client.delete("/management/v1/credentials/urn:uuid:cred-1", headers=KEY)
    assert again.status_code == 404
    assert again.json() == {
        "type": "ManagementError",
        "reason": "not_found",
        "message": "no held credential urn:uuid:cred-1",
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/management/v1/credentials", id="list"),
        pytest.param("DELETE", "/management/v1/credentials/urn:uuid:cred-0", id="remove"),
    ],
)
def test_held_credentials_need_the_api_key(connector: Connector, method: str, path: str) -> None:
    refused = connector.client.request(method, path, headers={"X-Api-Key": "wrong-key-0123456789"})
    assert refused.status_code == 401
    assert refused.json()["type"] == "ManagementError"
    assert len(listed(connector)) == 2
