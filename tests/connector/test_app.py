from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from connector.app import create_app
from connector.settings import ConnectorSettings


def make_settings(tmp_path: Path, **overrides: object) -> ConnectorSettings:
    return ConnectorSettings(
        participant_id="did:web:127.0.0.1%3A8181:bank",
        database_url=f"sqlite:///{tmp_path / 'connector.db'}",
        **overrides,  # type: ignore[arg-type]
    )


def test_health_reports_a_migrated_database(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as client:
        response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["service"] == "connector"
    assert body["database"] == "ok"
    assert body["schema"] == "current"


def test_health_is_unavailable_until_the_schema_is_migrated(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, migrate_on_start=False)
    with TestClient(create_app(settings)) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["schema"] == "not migrated"


def test_health_on_postgres(database_url: str, tmp_path: Path) -> None:
    settings = ConnectorSettings(participant_id="did:web:bank", database_url=database_url)
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").json()["schema"] == "current"
