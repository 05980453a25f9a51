"""The broker's OpenAPI declares the operator's key where the admin API needs it (Swagger UI's
Authorize sends it), and its /docs page loads only assets the broker itself serves."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from fastapi.testclient import TestClient

from broker.app import create_app
from tests.participants import ADMIN_KEY, authority_settings

LOCAL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|\burl\s*:\s*["']([^"']+)["']""")


def test_the_operator_key_is_a_declared_scheme_and_docs_are_local(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    with TestClient(create_app(authority_settings(sock, tmp_path))) as client:
        spec = client.get("/openapi.json").json()
        page = client.get("/docs").text
        found = {a or b for a, b in LOCAL.findall(page)}
        assert found
        assert not [u for u in found if "://" in u or u.startswith("//")], found
        assert all(client.get(u).status_code == 200 for u in found)
        operations = [
            (f"{method.upper()} {path}", operation)
            for path, item in spec["paths"].items()
            for method, operation in item.items()
        ]
        secured = {
            name for name, op in operations if {"OperatorApiKey": []} in op.get("security", [])
        }
        assert all(name in secured for name, _ in operations if " /admin/" in name)
        assert "GET /metadata" not in secured
        assert "GET /admin/requests" in secured
        assert client.get("/admin/requests").status_code == 401
        assert client.get("/admin/requests", headers={"X-Api-Key": ADMIN_KEY}).status_code == 200
    sock.close()
    assert spec["components"]["securitySchemes"]["OperatorApiKey"] == {
        "type": "apiKey", "in": "header", "name": "X-Api-Key",
        "description": "The operator's key for the admin API (BROKER_ADMIN_API_KEY).",
    }  # fmt: skip
