from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from ledger.app import create_app
from ledger.settings import LedgerSettings


def test_health(tmp_path: Path) -> None:
    settings = LedgerSettings(database_url=f"sqlite:///{tmp_path / 'ledger.db'}")
    with TestClient(create_app(settings)) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["service"] == "ledger"
