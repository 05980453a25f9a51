from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient
from sqlalchemy import text

from connector.app import create_app
from connector.protocol import DSP_CONTEXT
from connector.settings import ConnectorSettings
from identity import keys
from identity.database import migrations as identity_migrations
from identity.documents import DID_CONTEXT
from storage.engine import create_engine
from storage.migrate import SchemaNotCurrentError, upgrade
from tests import dsp_schemas
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


def test_the_did_document_lists_the_key_the_credential_service_and_the_catalogue(
    tmp_path: Path,
) -> None:
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
        },
        {
            "id": f"{did}#dsp-catalog",
            "type": "DataService",
            "serviceEndpoint": "http://127.0.0.1:8181/dsp/catalog",
        },
    ]
    data_service = {"@context": [DSP_CONTEXT, DID_CONTEXT], **document["service"][1]}
    assert dsp_schemas.errors("common/did-service-schema.json", data_service) == []


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


def test_an_old_format_key_ring_is_rewrapped_on_first_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    old = keys.generate(keys.KeyType.ED25519)
    pem = old.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    )  # fmt: skip
    engine = create_engine(url)
    upgrade(engine, identity_migrations(), "2cc58d6b67b7")  # before the KDF was recorded
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO identity_key (key_id, key_type, encrypted_pem, created_at) "
                "VALUES ('key-1', 'Ed25519', :pem, '2026-11-24 09:00:00')"
            ),
            {"pem": pem},
        )
    with TestClient(create_app(make_settings(url))) as client:
        (method,) = client.get("/bank/did.json").json()["verificationMethod"]
    assert method["publicKeyJwk"] == keys.public_jwk(old)
    with engine.connect() as connection:
        kdf, params, wrapped = connection.execute(
            text("SELECT kdf, kdf_params, wrapped_key FROM identity_key")
        ).one()
    engine.dispose()
    assert kdf == "scrypt"
    assert json.loads(params)["n"] == 2 ** make_settings(url).key_scrypt_log2_n
    assert b"ENCRYPTED PRIVATE KEY" not in wrapped


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


def test_the_openapi_declares_the_management_key_and_where_it_is_needed(database_url: str) -> None:
    settings = make_settings(database_url, management_api_key="a-management-key-0123")
    with TestClient(create_app(settings)) as client:
        spec = client.get("/openapi.json").json()
        # the declared scheme is the one the API takes: Swagger UI's Authorize sends this header
        assert client.get("/management/v1/assets").status_code == 401
        authorized = client.get(
            "/management/v1/assets", headers={"X-Api-Key": "a-management-key-0123"}
        )
        assert authorized.status_code == 200
    assert spec["components"]["securitySchemes"]["ManagementApiKey"] == {
        "type": "apiKey", "in": "header", "name": "X-Api-Key",
        "description": "The management API's key (CONNECTOR_MANAGEMENT_API_KEY).",
    }  # fmt: skip
    secured: set[str] = set()
    open_: set[str] = set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            needs = {"ManagementApiKey": []} in operation.get("security", [])
            (secured if needs else open_).add(f"{method.upper()} {path}")
    assert "GET /management/v1/assets" in secured
    assert "GET /management/v1/edrs/{transfer_id}" in secured
    assert "GET /management/v1/credentials" in secured
    assert all(not op.split(" ", 1)[1].startswith("/management/") for op in open_), open_
    assert all(not op.split(" ", 1)[1].startswith("/dsp") for op in secured)
