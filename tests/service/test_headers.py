"""Every answer of every service says: do not cache, do not sniff, do not frame, no referrer;
and, but for the interactive docs, a strict content security policy."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from connector.app import create_app
from tests.connector.test_conformance import KEY, settings


def test_answers_carry_the_security_headers(tmp_path: Path) -> None:
    with TestClient(create_app(settings(tmp_path))) as client:
        answers = [
            client.get("/health"),
            client.get("/management/v1/assets", headers=KEY),
            client.post("/management/v1/assets", json={}),  # refused: headers all the same
            client.get("/.well-known/dspace-version"),
        ]
        docs = client.get("/docs")
    for answer in answers:
        assert answer.headers["cache-control"] == "no-store", answer.request.url
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    assert docs.status_code == 200
    assert "content-security-policy" not in docs.headers
    assert docs.headers["x-frame-options"] == "DENY"
