"""The data holder's own actions are audited: each change through the management API, with
the key's id (never the key) and how it ended; reads are not."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from connector.app import create_app
from connector.audit import AuditEvent
from connector.management.trail import key_id
from storage.engine import create_engine
from tests.connector.test_conformance import KEY, settings
from tests.participants import ADMIN_KEY

ASSET = {
    "id": "urn:kexin:asset:a",
    "titleEn": "a",
    "dataGrade": "general",
    "dataAddress": {"type": "file", "path": "/srv/a.csv"},
}


def test_management_changes_are_audited_with_the_keys_id(tmp_path: Path) -> None:
    configured = settings(tmp_path)
    with TestClient(create_app(configured)) as client:
        assert client.post("/management/v1/assets", headers=KEY, json=ASSET).status_code == 201
        assert client.post("/management/v1/assets", json=ASSET).status_code == 401
        assert client.get("/management/v1/assets", headers=KEY).status_code == 200
    engine = create_engine(configured.database_url)
    with Session(engine) as session:
        events = session.exec(
            select(AuditEvent).where(AuditEvent.action == "POST /management/v1/assets")
        ).all()
        reads = session.exec(select(AuditEvent).where(AuditEvent.action.startswith("GET"))).all()
    engine.dispose()
    assert [(e.outcome, e.subject, e.reason) for e in events] == [
        ("accepted", f"operator {key_id(ADMIN_KEY)}", "HTTP 201"),
        ("refused", "operator no key", "HTTP 401"),
    ]
    assert ADMIN_KEY not in str([vars(e) for e in events])
    assert reads == []
