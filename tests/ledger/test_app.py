from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from ledger.app import create_app
from ledger.settings import LedgerSettings
from tests.ledger.pushes import PASSPHRASE


def settings(database_url: str) -> LedgerSettings:
    return LedgerSettings(
        ledger_id="did:web:127.0.0.1%3A8383:ledger",
        database_url=database_url,
        key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
    )


def test_health(tmp_path: Path) -> None:
    with TestClient(create_app(settings(f"sqlite:///{tmp_path / 'ledger.db'}"))) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["service"] == "ledger"


def test_the_service_does_not_start_on_an_unreachable_database() -> None:
    """It migrates its schemas and opens its keys at start (as the broker does): without its
    database it has nothing to serve."""
    unreachable = settings("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(OperationalError), TestClient(create_app(unreachable)):
        pass
