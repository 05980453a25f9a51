"""Where the resource commands of ``dataspace`` find the services they call: the same
``CONNECTOR_*`` and ``BROKER_*`` variables the services read (public URL, or host and port; the
management or admin API key), each overridden by ``--url`` and ``--api-key``.

Only these variables are read: a client needs no passphrase and no database."""

from __future__ import annotations

from typing import Annotated, TypeVar

import httpx
import typer
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from broker.authority.client import AdminClient
from connector.management.client import ManagementClient
from dataspace.output import EXIT_CONFIG, EXIT_USAGE, fail

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url", help="The service's base URL (default: from its *_PUBLIC_URL, *_HOST, *_PORT)."
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", help="The API key (default: from the service's settings)."),
]

S = TypeVar("S", bound=BaseSettings)


class _Access(BaseSettings):
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    public_url: str | None = None

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class ConnectorAccess(_Access):
    model_config = SettingsConfigDict(env_prefix="CONNECTOR_", extra="ignore", frozen=True)
    port: int = Field(default=8181, ge=1, le=65535)
    management_api_key: SecretStr | None = None


class BrokerAccess(_Access):
    model_config = SettingsConfigDict(env_prefix="BROKER_", extra="ignore", frozen=True)
    port: int = Field(default=8282, ge=1, le=65535)
    admin_api_key: SecretStr | None = None


def _load(cls: type[S]) -> S:
    try:
        return cls()
    except ValidationError as error:
        prefix = str(cls.model_config.get("env_prefix", ""))
        problem = error.errors()[0]
        name = f"{prefix}{str(problem['loc'][0]).upper()}" if problem["loc"] else f"{prefix}*"
        fail(f"error: invalid setting {name}: {problem['msg']}", EXIT_CONFIG)


def _base_url(given: str | None, access: _Access, prefix: str) -> str:
    """``--url`` (exit 2 when it is no http(s) URL) or the settings' (exit 78 likewise)."""
    url = given or access.base_url
    try:
        parsed = httpx.URL(url)
        problem = None if parsed.scheme in ("http", "https") and parsed.host else "no http(s) URL"
    except httpx.InvalidURL as error:
        problem = str(error)
    if problem is None:
        return url
    if given:
        fail(f"error: --url {given!r}: {problem}", EXIT_USAGE)
    fail(f"error: invalid setting {prefix}PUBLIC_URL (or HOST): {url!r}: {problem}", EXIT_CONFIG)


def connector(url: str | None, api_key: str | None) -> ManagementClient:
    """The management client of one's own connector; exit 78 without a key."""
    access = _load(ConnectorAccess)
    key = api_key or (access.management_api_key and access.management_api_key.get_secret_value())
    if not key:
        fail("error: set CONNECTOR_MANAGEMENT_API_KEY (or give --api-key)", EXIT_CONFIG)
    return ManagementClient(_base_url(url, access, "CONNECTOR_"), key)


def authority(url: str | None, api_key: str | None) -> AdminClient:
    """The admin client of the data-space authority; exit 78 without the operator's key."""
    access = _load(BrokerAccess)
    key = api_key or (access.admin_api_key and access.admin_api_key.get_secret_value())
    if not key:
        fail("error: set BROKER_ADMIN_API_KEY (or give --api-key)", EXIT_CONFIG)
    return AdminClient(_base_url(url, access, "BROKER_"), key)
