"""``KEXIN_PROFILE=local``: the loopback conveniences of a trial on one machine, read by the
connector's and the broker's settings, a loud warning at start; without it nothing changes."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from broker.app import create_app as create_broker_app
from broker.settings import BrokerSettings
from connector.app import create_app as create_connector_app
from connector.settings import ConnectorSettings
from dataspace.cli import app
from identity.credentials import CredentialType
from service.settings import LOCAL_AUTHORITY, LOCAL_WARNING
from tests.participants import ADMIN_KEY, PASSPHRASE

BANK = "did:web:127.0.0.1%3A8191:bank"
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


@pytest.fixture(autouse=True)
def _no_profile_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEXIN_PROFILE", raising=False)


def connector(**given: object) -> ConnectorSettings:
    return ConnectorSettings.model_validate(
        {"participant_id": BANK, "key_passphrase": PASSPHRASE, **given}
    )


def broker(**given: object) -> BrokerSettings:
    return BrokerSettings.model_validate(
        {"key_passphrase": PASSPHRASE, "admin_api_key": ADMIN_KEY, **given}
    )


def test_without_the_profile_nothing_is_loosened() -> None:
    settings = connector()
    assert settings.profile is None
    assert settings.did_web_allow_http is False
    assert settings.outbound_allowed_networks == []
    assert settings.trusted_issuers == {}
    with pytest.raises(ValueError, match="authority_id"):
        broker()


def test_the_local_profile_turns_on_the_loopback_conveniences() -> None:
    settings = connector(KEXIN_PROFILE="local")
    assert settings.did_web_allow_http is True
    assert settings.outbound_allowed_networks == LOOPBACK
    assert settings.trusted_issuers == {kind: [LOCAL_AUTHORITY] for kind in CredentialType}
    authority = broker(KEXIN_PROFILE="local")
    assert authority.authority_id == LOCAL_AUTHORITY
    assert authority.did_web_allow_http is True
    assert authority.outbound_allowed_networks == LOOPBACK


def test_the_authority_of_the_profile_follows_where_it_is_reached() -> None:
    assert broker(KEXIN_PROFILE="local", port=9000).authority_id == (
        "did:web:127.0.0.1%3A9000:authority"
    )
    assert broker(KEXIN_PROFILE="local", public_url="http://localhost:8300").authority_id == (
        "did:web:localhost%3A8300:authority"
    )


def test_a_setting_given_explicitly_wins_over_the_profile() -> None:
    mine = {"MembershipCredential": ["did:web:authority.example.cn"]}
    settings = connector(
        KEXIN_PROFILE="local",
        did_web_allow_http=False,
        outbound_allowed_networks=["10.0.0.0/8"],
        trusted_issuers=mine,
    )
    assert settings.did_web_allow_http is False
    assert settings.outbound_allowed_networks == [ipaddress.ip_network("10.0.0.0/8")]
    assert settings.trusted_issuers == {CredentialType.MEMBERSHIP: ["did:web:authority.example.cn"]}


def test_the_profile_is_read_from_its_one_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEXIN_PROFILE", "local")
    monkeypatch.setenv("CONNECTOR_DID_WEB_ALLOW_HTTP", "false")
    settings = connector()
    assert settings.did_web_allow_http is False  # the environment's own setting wins too
    assert settings.outbound_allowed_networks == LOOPBACK
    monkeypatch.delenv("KEXIN_PROFILE")
    monkeypatch.setenv("CONNECTOR_PROFILE", "local")  # the service's prefix is not the profile's
    assert connector().profile is None
    assert connector().outbound_allowed_networks == []


def test_an_unknown_profile_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KEXIN_PROFILE", "production")
    monkeypatch.setenv("CONNECTOR_PARTICIPANT_ID", BANK)
    monkeypatch.setenv("CONNECTOR_KEY_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("CONNECTOR_DATABASE_URL", f"sqlite:///{tmp_path / 'bank.db'}")
    result = CliRunner().invoke(app, ["connector", "rotate-key"])
    assert result.exit_code == 78
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: invalid setting KEXIN_PROFILE: ")


@pytest.mark.parametrize(
    "profile", [pytest.param("local", id="local"), pytest.param(None, id="off")]
)
def test_each_service_warns_loudly_at_start_only_under_the_profile(
    profile: str | None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    given = {} if profile is None else {"KEXIN_PROFILE": profile}
    apps = [
        create_connector_app(connector(database_url=f"sqlite:///{tmp_path / 'c.db'}", **given)),
        create_broker_app(
            broker(
                database_url=f"sqlite:///{tmp_path / 'b.db'}",
                authority_id="did:web:127.0.0.1%3A8282:authority",
                **given,
            )
        ),
    ]
    for service in apps:
        caplog.clear()
        with caplog.at_level(logging.WARNING), TestClient(service) as client:
            assert client.get("/health").status_code == 200
        warned = [r for r in caplog.records if r.getMessage() == LOCAL_WARNING]
        assert len(warned) == (profile is not None)
