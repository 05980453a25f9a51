"""What can be checked of docker-compose.yml without a Docker engine: every service's command is
a real CLI command, every variable is one its settings class reads and is valid there, every
database named in a URL is created by the init script, and the Dockerfile copies every package."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings
from typer.testing import CliRunner

from broker.settings import BrokerSettings
from connector.settings import ConnectorSettings
from dataspace.cli import app
from ledger.settings import LedgerSettings
from storage.engine import parse_database_url

ROOT = Path(__file__).resolve().parent.parent
SETTINGS: dict[str, type[BaseSettings]] = {
    "CONNECTOR_": ConnectorSettings,
    "BROKER_": BrokerSettings,
    "LEDGER_": LedgerSettings,
}


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def our_services() -> list[str]:
    return [name for name, spec in compose()["services"].items() if "build" in spec]


def test_compose_has_every_service() -> None:
    commands = {" ".join(compose()["services"][name]["command"]) for name in our_services()}
    assert commands == {
        "dataspace connector serve",
        "dataspace broker serve",
        "dataspace ledger serve",
    }


@pytest.mark.parametrize("service", our_services())
def test_command_exists_in_the_cli(service: str) -> None:
    program, *args = compose()["services"][service]["command"]
    assert program == "dataspace"
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("service", our_services())
def test_every_variable_is_read_and_valid(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    environment: dict[str, str] = compose()["services"][service]["environment"]
    prefixes = {next(p for p in SETTINGS if name.startswith(p)) for name in environment}
    assert len(prefixes) == 1, f"{service} mixes settings of several services"
    (prefix,) = prefixes
    cls = SETTINGS[prefix]
    for name, value in environment.items():
        field = name.removeprefix(prefix).lower()
        assert field in cls.model_fields, f"{name} is not read by {cls.__name__}"
        monkeypatch.setenv(name, str(value))
    settings = cls()
    for name, value in environment.items():
        read = getattr(settings, name.removeprefix(prefix).lower())
        if isinstance(read, bool):
            assert read is (str(value).lower() == "true")
        elif isinstance(read, SecretStr):
            assert read.get_secret_value() == value
        elif isinstance(read, str | int):
            assert str(read) == str(value)
        elif isinstance(read, dict):  # JSON settings: every entry arrived
            assert len(read) == len(json.loads(value))


def test_every_database_in_a_url_is_created_by_the_init_script() -> None:
    created = set(
        re.findall(r"CREATE DATABASE (\w+);", (ROOT / "deploy/postgres-init.sql").read_text())
    )
    for service in our_services():
        for name, value in compose()["services"][service]["environment"].items():
            if name.endswith("_DATABASE_URL"):
                assert parse_database_url(value).database in created


def test_the_image_holds_every_package() -> None:
    copied = set(re.findall(r"^COPY (\w+) \1$", (ROOT / "Dockerfile").read_text(), re.M))
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert packages <= copied
