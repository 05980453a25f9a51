from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from connector.app import create_app
from connector.settings import ConnectorSettings
from storage.migrate import SchemaNotCurrentError
from tests.participants import PASSPHRASE


def make_settings(database_url: str, **overrides: Any) -> ConnectorSettings:
    return ConnectorSettings(
        participant_id="did:web:127.0.0.1%3A8181:bank",
        database_url=database_url,
        key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
        **overrides,
    )


def test_health_reports_a_migrated_database(database_url: str) -> None:
    with TestClient(create_app(make_settings(database_url))) as client:
        response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["service"] == "connector"
    assert body["database"] == "ok"
    assert body["schema"] == "current"


def test_without_migration_the_app_refuses_to_start_and_says_what_to_run(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'c.db'}", migrate_on_start=False)
    with (
        pytest.raises(SchemaNotCurrentError, match="dataspace db upgrade connector"),
        TestClient(create_app(settings)),
    ):
        pass


def test_the_did_document_lists_the_key_and_the_credential_service(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'c.db'}", public_url="http://127.0.0.1:8181")
    with TestClient(create_app(settings)) as client:
        document = client.get("/bank/did.json").json()
    did = "did:web:127.0.0.1%3A8181:bank"
    assert document["id"] == did
    assert [m["id"] for m in document["verificationMethod"]] == [f"{did}#key-1"]
    assert document["capabilityInvocation"] == [f"{did}#key-1"]
    assert document["service"] == [
        {
            "id": f"{did}#credential-service",
            "type": "CredentialService",
            "serviceEndpoint": "http://127.0.0.1:8181/cs",
        }
    ]


def test_keys_are_generated_once_and_survive_a_restart(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'c.db'}")
    with TestClient(create_app(settings)) as client:
        first = client.get("/bank/did.json").json()["verificationMethod"]
    with TestClient(create_app(settings)) as client:
        assert client.get("/bank/did.json").json()["verificationMethod"] == first


def test_a_wrong_passphrase_refuses_to_start(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(f"sqlite:///{tmp_path / 'c.db'}"))):
        pass
    wrong = ConnectorSettings(
        participant_id="did:web:127.0.0.1%3A8181:bank",
        database_url=f"sqlite:///{tmp_path / 'c.db'}",
        key_passphrase="not the passphrase at all",  # type: ignore[arg-type]
    )
    with pytest.raises(ValueError, match="wrong passphrase"), TestClient(create_app(wrong)):
        pass


def test_the_frameworks_own_refusals_are_typed_dsp_errors_on_dsp_paths(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(f"sqlite:///{tmp_path / 'c.db'}"))) as client:
        unknown = client.get("/dsp/negotiations/a%0Ab/nothing")
        wrong_method = client.put("/dsp/catalog/request")
        management = client.get("/management/v1/nothing")
        unreadable = client.post(
            "/management/v1/policydefinitions",
            content=b'{"id": "\xff"}',
            headers={"Content-Type": "application/json"},
        )
    assert unknown.status_code == 404
    assert unknown.json()["@type"] == "ContractNegotiationError"
    assert unknown.json()["code"] == "not_found"
    assert wrong_method.status_code == 405
    assert wrong_method.json()["@type"] == "CatalogError"
    assert wrong_method.headers["allow"] == "POST"
    assert management.status_code == 404
    assert management.json() == {
        "type": "BadRequest",
        "reason": "not_found",
        "message": "Not Found",
    }
    assert unreadable.status_code == 400, unreadable.text
    assert unreadable.json()["reason"] == "bad_request"
