"""Settings for an authority and participants on loopback, shared by the multi-party tests.

The organisations are the demo's, so that tests and demo describe the same data space."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any

from broker.settings import BrokerSettings
from connector.settings import ConnectorSettings
from dataspace.demo import BANK_ORG, BUREAU_ORG
from identity.credentials import CredentialType

PASSPHRASE = "correct horse battery staple"
WEBHOOK_SECRET = "webhook-secret-0123456789"
ADMIN_KEY = "operator-key-0123456789"
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]
"""Everything runs on 127.0.0.1: the destination policy must allow it explicitly."""


def did_for(sock: socket.socket, name: str) -> str:
    port = sock.getsockname()[1]
    return f"did:web:127.0.0.1%3A{port}:{name}"


def url_for(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def authority_settings(
    sock: socket.socket, folder: Path, allow: dict[str, Any] | None = None, **overrides: Any
) -> BrokerSettings:
    return BrokerSettings(
        authority_id=did_for(sock, "authority"),
        public_url=url_for(sock),
        database_url=f"sqlite:///{folder / 'broker.db'}",
        key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
        admin_api_key=ADMIN_KEY,  # type: ignore[arg-type]
        onboarding_allow=allow or {},
        did_web_allow_http=True,
        outbound_allowed_networks=LOOPBACK,
        **overrides,
    )


def connector_settings(
    sock: socket.socket,
    folder: Path,
    name: str,
    authority: str,
    ttl_s: float = 60.0,
    page_size: int = 100,
    approval: str = "auto",
    webhook_url: str | None = None,
    database_url: str | None = None,
    verification: str = "auto",
    transfer_approval: str = "auto",
    sql_sources: dict[str, str] | None = None,
) -> ConnectorSettings:
    return ConnectorSettings(
        participant_id=did_for(sock, name),
        public_url=url_for(sock),
        database_url=database_url or f"sqlite:///{folder / f'{name}.db'}",
        key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
        trusted_issuers={kind: [authority] for kind in CredentialType},
        did_web_allow_http=True,
        outbound_allowed_networks=LOOPBACK,
        data_roots=[folder, Path("/srv")],  # /srv: assets that are offered, never read
        http_source_hosts=["127.0.0.1"],
        status_list_ttl_s=ttl_s,
        management_api_key=ADMIN_KEY,  # type: ignore[arg-type]
        catalog_page_size=page_size,
        negotiation_approval=approval,  # type: ignore[arg-type]
        agreement_verification=verification,  # type: ignore[arg-type]
        transfer_approval=transfer_approval,  # type: ignore[arg-type]
        webhook_url=webhook_url,
        webhook_secret=WEBHOOK_SECRET if webhook_url else None,  # type: ignore[arg-type]
        monitor_interval_s=0.2,
        sql_sources=sql_sources or {},
    )


__all__ = ["BANK_ORG", "BUREAU_ORG"]
