"""The management API refuses data addresses the connector must not serve (400
``data_address_refused``): any file outside the data roots (``/etc/passwd``, ``../``, a symlink
out), the connector's own database even inside a root, and HTTP backends on hosts that are not
configured (the broker's loopback admin API). Checked again at every access (the data plane's
tests)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from connector.app import create_app
from connector.settings import ConnectorSettings
from tests.participants import ADMIN_KEY, PASSPHRASE

KEY = {"X-Api-Key": ADMIN_KEY}


def settings(folder: Path, **extra: Any) -> ConnectorSettings:
    return ConnectorSettings(
        participant_id="did:web:bureau.example.cn",
        database_url=f"sqlite:///{folder / 'connector.db'}",
        key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
        management_api_key=ADMIN_KEY,  # type: ignore[arg-type]
        **extra,
    )


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """A connector whose data root is the very folder its database is in."""
    (tmp_path / "firms.csv").write_text("code,name\n")
    configured = settings(
        tmp_path, data_roots=[tmp_path], http_source_hosts=["warehouse.example.cn"]
    )
    with TestClient(create_app(configured)) as test_client:
        yield test_client


def create(client: TestClient, address: dict[str, str], n: int = 0) -> Any:
    body = {"id": f"urn:kexin:asset:{n}", "titleEn": "x", "dataGrade": "general",
            "dataAddress": address}  # fmt: skip
    return client.post("/management/v1/assets", json=body, headers=KEY)


def refused(client: TestClient, address: dict[str, str]) -> str:
    answer = create(client, address)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert (body["type"], body["reason"]) == ("ManagementError", "data_address_refused")
    assert client.get("/management/v1/assets", headers=KEY).json()["items"] == []
    message: str = body["message"]
    return message


def test_a_file_in_a_data_root_and_a_configured_backend_are_accepted(
    client: TestClient, tmp_path: Path
) -> None:
    assert create(client, {"type": "file", "path": str(tmp_path / "firms.csv")}).status_code == 201
    not_yet = {"type": "file", "path": str(tmp_path / "later" / "report.csv")}
    assert create(client, not_yet, 1).status_code == 201  # may arrive later: checked at access
    backend = {"type": "http", "url": "https://warehouse.example.cn/firms"}
    assert create(client, backend, 2).status_code == 201


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/etc/passwd", id="outside"),
        pytest.param("{root}/../../../../../etc/passwd", id="dot-dot"),
        pytest.param("{root}/.env", id="hidden"),
    ],
)
def test_files_outside_the_roots_are_refused(client: TestClient, tmp_path: Path, path: str) -> None:
    refused(client, {"type": "file", "path": path.format(root=tmp_path)})


def test_a_symlink_out_of_the_root_is_refused(client: TestClient, tmp_path: Path) -> None:
    (tmp_path / "passwd.csv").symlink_to("/etc/passwd")
    assert "inside a data root" in refused(
        client, {"type": "file", "path": str(tmp_path / "passwd.csv")}
    )


def test_the_connectors_own_database_is_refused_even_inside_a_root(
    client: TestClient, tmp_path: Path
) -> None:
    assert "own files" in refused(client, {"type": "file", "path": str(tmp_path / "connector.db")})
    (tmp_path / "keys.csv").symlink_to(tmp_path / "connector.db")
    refused(client, {"type": "file", "path": str(tmp_path / "keys.csv")})
    os.link(tmp_path / "connector.db", tmp_path / "outbox.csv")
    refused(client, {"type": "file", "path": str(tmp_path / "outbox.csv")})


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1:8282/admin/credentials", id="the broker's admin API"),
        pytest.param("https://169.254.169.254/latest/meta-data", id="cloud metadata"),
        pytest.param("https://other.example.cn/data", id="a host not configured"),
        pytest.param("http://warehouse.example.cn/firms", id="plain HTTP"),
    ],
)
def test_backends_off_the_configured_hosts_are_refused(client: TestClient, url: str) -> None:
    refused(client, {"type": "http", "url": url})


def test_without_roots_or_hosts_files_and_backends_are_refused(tmp_path: Path) -> None:
    (tmp_path / "firms.csv").write_text("code,name\n")
    with TestClient(create_app(settings(tmp_path))) as client:
        assert "none configured" in refused(
            client, {"type": "file", "path": str(tmp_path / "firms.csv")}
        )
        refused(client, {"type": "http", "url": "https://warehouse.example.cn/firms"})


def test_a_configured_loopback_backend_needs_its_network_allowed(tmp_path: Path) -> None:
    loopback = {"type": "http", "url": "http://127.0.0.1:9000/data"}
    hosts: dict[str, Any] = {"http_source_hosts": ["127.0.0.1:9000"], "did_web_allow_http": True}
    with TestClient(create_app(settings(tmp_path, **hosts))) as client:
        refused(client, loopback)
    allowed = [ipaddress.ip_network("127.0.0.0/8")]
    with TestClient(
        create_app(settings(tmp_path, outbound_allowed_networks=allowed, **hosts))
    ) as client:
        assert create(client, loopback).status_code == 201


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("data_roots", ["relative/data"]),
        ("http_source_hosts", ["bad host"]),
        ("http_source_hosts", ["warehouse.example.cn:99999"]),
        ("outbound_allowed_networks", ["10.0.0.1/8"]),
        ("credential_service_hosts", ["https://wallet.example.org"]),
    ],
)
def test_bad_settings_are_refused_at_start(tmp_path: Path, name: str, value: list[str]) -> None:
    with pytest.raises(ValueError, match=name):
        settings(tmp_path, **{name: value})
