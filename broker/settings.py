"""Broker settings, read from ``BROKER_*`` environment variables or passed as keywords.

The broker hosts the data-space authority: it issues the data space's credentials.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from identity.claims import OrganisationClaims
from identity.credentials import CredentialType
from identity.did import DID
from identity.keys import MIN_PASSPHRASE_CHARS, KeyType
from storage.engine import DatabaseURL

MIN_API_KEY_CHARS = 16


class OnboardingGrant(BaseModel):
    """An allow-list entry: this participant gets these credentials, saying this, at once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    types: list[CredentialType] = Field(min_length=1)
    organisation: OrganisationClaims


class BrokerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BROKER_", frozen=True, extra="forbid")

    authority_id: DID
    """The data-space authority's DID (did:web; its DID document is served here)."""
    host: str = "127.0.0.1"
    port: int = Field(default=8282, ge=1, le=65535)
    public_url: str | None = None
    """Where participants reach the broker; default ``http://{host}:{port}``."""
    database_url: DatabaseURL = "sqlite:///broker.db"
    migrate_on_start: bool = True
    key_passphrase: SecretStr = Field(min_length=MIN_PASSPHRASE_CHARS)
    key_type: KeyType = KeyType.ED25519
    """Ed25519 or P-256, for keys generated from now on (existing keys stay until rotated)."""
    admin_api_key: SecretStr = Field(min_length=MIN_API_KEY_CHARS)
    """The operator's key for the admin API (header X-Api-Key)."""
    onboarding_allow: dict[DID, OnboardingGrant] = Field(default_factory=dict)
    """JSON: participants that get credentials without waiting for the operator."""
    credential_validity_days: int = Field(default=365, ge=1, le=3650)
    did_web_allow_http: bool = False
    """Resolve did:web over plain HTTP (loopback test and demo set-ups only)."""
    http_timeout_s: float = Field(default=10.0, gt=0)
    max_body_bytes: int = Field(default=1 << 20, ge=1024)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
