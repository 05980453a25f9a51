"""The matching parts of the management and data contracts APIs, in one connector: what is
refused before any provider is asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from connector.app import create_app
from tests.connector.test_conformance import KEY, settings

MATCH: dict[str, Any] = {
    "provider": "did:web:bureau.example.cn",
    "providerAddress": "https://bureau.example.cn/dsp",
    "dataset": "urn:kexin:asset:firm-list",
    "purpose": "credit-assessment",
    "kind": "uscc",
}


def test_a_set_without_one_valid_identifier_is_refused_with_the_rows(tmp_path: Path) -> None:
    with TestClient(create_app(settings(tmp_path))) as client:
        refused = client.post(
            "/contracts/v1/match", headers=KEY, json={**MATCH, "items": ["123", "", "ABC"]}
        )
    assert refused.status_code == 400
    body = refused.json()
    assert (body["type"], body["reason"]) == ("ContractError", "no_valid_items")
    assert [r.split(":")[0] for r in body["reasons"]] == ["row 1", "row 2", "row 3"]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"kind": "passport"}, id="unknown-kind"),
        pytest.param({"mode": "everything"}, id="unknown-mode"),
        pytest.param({"items": []}, id="no-items"),
        pytest.param({"items": ["x" * 201]}, id="item-too-long"),
    ],
)
def test_a_malformed_match_request_is_422(tmp_path: Path, change: dict[str, Any]) -> None:
    with TestClient(create_app(settings(tmp_path))) as client:
        refused = client.post(
            "/contracts/v1/match", headers=KEY, json={**MATCH, "items": ["1"], **change}
        )
    assert refused.status_code == 422


def test_the_match_api_needs_the_key(tmp_path: Path) -> None:
    with TestClient(create_app(settings(tmp_path))) as client:
        refused = client.post("/contracts/v1/match", json={**MATCH, "items": ["1"]})
    assert refused.status_code == 401


@pytest.mark.parametrize(
    ("address", "status"),
    [
        pytest.param({"type": "http", "url": "https://x.example.cn/a",
                      "matching": {"column": "uscc", "kind": "uscc"}}, 422, id="http"),
        pytest.param({"type": "file", "path": "/srv/firms.csv",
                      "matching": {"column": "uscc", "kind": "passport"}}, 422, id="unknown-kind"),
        pytest.param({"type": "file", "path": "/srv/firms.csv",
                      "matching": {"column": "", "kind": "uscc"}}, 422, id="no-column"),
        pytest.param({"type": "file", "path": "/srv/firms.csv",
                      "matching": {"column": "uscc", "kind": "uscc"}}, 201, id="a-matching-set"),
    ],
)  # fmt: skip
def test_a_matching_set_is_a_file_or_query_with_a_column_and_a_kind(
    tmp_path: Path, address: dict[str, Any], status: int
) -> None:
    with TestClient(create_app(settings(tmp_path))) as client:
        created = client.post(
            "/management/v1/assets", headers=KEY,
            json={"id": "urn:kexin:asset:firms", "titleEn": "firms", "dataGrade": "general",
                  "dataAddress": address},
        )  # fmt: skip
    assert created.status_code == status, created.text
    if status == 201:
        assert created.json()["dataAddress"]["matching"] == {"column": "uscc", "kind": "uscc"}
