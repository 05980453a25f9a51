from __future__ import annotations

import socket
from pathlib import Path

from fastapi.testclient import TestClient

from broker.app import create_app
from tests.participants import ADMIN_KEY, authority_settings


def test_health_and_public_documents(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    settings = authority_settings(sock, tmp_path)
    sock.close()
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").json()["schema"] == "current"
        metadata = client.get("/metadata").json()
        assert metadata["type"] == "IssuerMetadata"
        assert metadata["issuer"] == settings.authority_id
        assert {c["id"] for c in metadata["credentialsSupported"]} == {
            "MembershipCredential", "PublicDataHolderCredential",
            "FinancialInstitutionCredential", "RegulatorCredential",
        }  # fmt: skip
        trusted = client.get("/trusted-issuers").json()
        assert trusted["MembershipCredential"] == [settings.authority_id]
        document = client.get("/authority/did.json").json()
        assert document["service"][0]["type"] == "IssuerService"
        assert client.get("/status/1").headers["content-type"].startswith("application/vc+jwt")


def test_the_admin_api_needs_the_operators_key(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    settings = authority_settings(sock, tmp_path)
    sock.close()
    with TestClient(create_app(settings)) as client:
        assert client.get("/admin/requests").status_code == 401
        wrong = client.get("/admin/requests", headers={"X-Api-Key": "x" * 20})
        assert wrong.status_code == 401
        assert wrong.json()["reason"] == "not_operator"
        assert client.get("/admin/requests", headers={"X-Api-Key": ADMIN_KEY}).json() == []
        missing = client.post(
            "/admin/credentials/urn:uuid:nope/revoke", headers={"X-Api-Key": ADMIN_KEY}
        )
        assert missing.status_code == 404
