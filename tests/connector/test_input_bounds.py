"""Bad numbers and addresses from the data holder's own applications are typed 4xx, never a
500 from the HTTP client or the database driver (security review)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from connector.app import create_app
from tests.connector.test_conformance import KEY, settings

BAD_ADDRESSES = [
    "https://CV\u008eD",
    "http://bureau.test:99999/dsp",
    "http://bureau.test:port/dsp",
    "http://bureau test/dsp",
    "ftp://bureau.test/dsp",
    "http:///dsp",
]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings(tmp_path)), raise_server_exceptions=False) as test:
        yield test


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_a_bad_provider_address_is_refused_before_any_request(
    client: TestClient, address: str
) -> None:
    contracts = client.post(
        "/contracts/v1/data",
        headers=KEY,
        json={"provider": "did:web:bureau.test", "providerAddress": address,
              "dataset": "d", "purpose": "p"},
    )  # fmt: skip
    catalog = client.post(
        "/management/v1/catalog/request",
        headers=KEY,
        json={"counterPartyId": "did:web:bureau.test", "counterPartyAddress": address},
    )
    assert contracts.status_code == 422, contracts.text
    assert catalog.status_code == 422, catalog.text
    assert catalog.json()["reason"] == "invalid_request"


@pytest.mark.parametrize("offset", ["10000001", "9" * 30, "-1"])
def test_a_huge_offset_is_refused(client: TestClient, offset: str) -> None:
    response = client.get("/management/v1/duties", headers=KEY, params={"offset": offset})
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("message_id", [str(2**63), str(-(2**63) - 1), "9" * 30, "0"])
def test_an_outbox_id_past_the_database_is_refused(client: TestClient, message_id: str) -> None:
    response = client.post(f"/management/v1/outbox/{message_id}/retry", headers=KEY)
    assert response.status_code == 422, response.text
    assert response.json()["reason"] == "invalid_request"
