"""The conformance-testing mode: off unless configured; when on, a static token stands for one
participant (an external test kit) and the connector says so loudly."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from connector.app import create_app
from connector.settings import ConnectorSettings
from tests.participants import ADMIN_KEY, PASSPHRASE

TOKEN = "conformance-token-0123456789"
KIT = "did:web:tck.example"
DSP = "https://w3id.org/dspace/2025/1/context.jsonld"
REQUEST = {"@context": [DSP], "@type": "CatalogRequestMessage"}


def settings(tmp_path: Path, **extra: Any) -> ConnectorSettings:
    return ConnectorSettings(
        participant_id="did:web:127.0.0.1%3A8181:bureau",
        database_url=f"sqlite:///{tmp_path / 'c.db'}",
        key_passphrase=SecretStr(PASSPHRASE),
        management_api_key=SecretStr(ADMIN_KEY),
        **extra,
    )


def publish(client: TestClient) -> None:
    key = {"X-Api-Key": ADMIN_KEY}
    client.post(
        "/management/v1/assets",
        headers=key,
        json={
            "id": "urn:kexin:asset:open",
            "titleEn": "open data",
            "dataGrade": "general",
            "dataAddress": {"type": "file", "path": "/srv/open.csv"},
        },
    )
    client.post(
        "/management/v1/policydefinitions",
        headers=key,
        json={"id": "open", "policy": {"@type": "Set", "permission": [{"action": "use"}]}},
    )
    client.post(
        "/management/v1/contractdefinitions",
        headers=key,
        json={"id": "open", "accessPolicyId": "open", "contractPolicyId": "open"},
    )


@pytest.fixture
def conformance(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[TestClient]:
    caplog.set_level(logging.WARNING, logger="kexin.connector")
    with TestClient(
        create_app(
            settings(tmp_path, conformance_token=SecretStr(TOKEN), conformance_participant_id=KIT)
        )
    ) as client:
        publish(client)
        yield client


def test_the_static_token_stands_for_the_test_kit(
    conformance: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = conformance.post(
        "/dsp/catalog/request", json=REQUEST, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200, response.text
    assert [d["@id"] for d in response.json()["dataset"]] == ["urn:kexin:asset:open"]
    assert any(
        "CONFORMANCE-TESTING MODE IS ON" in r.getMessage() and KIT in r.getMessage()
        for r in caplog.get_records("setup")  # the app started in the fixture
    )


def test_another_token_is_not_accepted(conformance: TestClient) -> None:
    response = conformance.post(
        "/dsp/catalog/request",
        json=REQUEST,
        headers={"Authorization": "Bearer not-the-conformance-token"},
    )
    assert response.status_code == 401


def test_the_mode_is_off_unless_configured(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kexin.connector")
    with TestClient(create_app(settings(tmp_path))) as client:
        publish(client)
        response = client.post(
            "/dsp/catalog/request", json=REQUEST, headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert response.status_code == 401
    assert not any("CONFORMANCE" in r.getMessage() for r in caplog.records)


def test_token_and_participant_go_together(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match="conformance_token and conformance_participant_id together"
    ):
        settings(tmp_path, conformance_token=SecretStr(TOKEN))
