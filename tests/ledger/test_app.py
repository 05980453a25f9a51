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


def test_health_is_unavailable_when_the_database_is_unreachable() -> None:
    settings = LedgerSettings(
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json() | {"version": None} == {
        "status": "unavailable",
        "service": "ledger",
        "version": None,
        "database": "unreachable",
        "schema": "unknown",
    }
