"""Connector settings, read from ``CONNECTOR_*`` environment variables or passed as keywords."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from identity.credentials import CredentialType
from identity.did import DID
from identity.keys import MIN_PASSPHRASE_CHARS, KeyType
from storage.engine import DatabaseURL


class ConnectorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONNECTOR_", frozen=True, extra="forbid")

    participant_id: DID
    """This participant's DID, e.g. ``did:web:bank.example.cn``; its DID document is served here."""
    host: str = "127.0.0.1"
    port: int = Field(default=8181, ge=1, le=65535)
    public_url: str | None = None
    """Where others reach this connector; default ``http://{host}:{port}``."""
    database_url: DatabaseURL = "sqlite:///connector.db"
    migrate_on_start: bool = True
    """Bring the database schema to the newest revision when the app starts."""
    key_passphrase: SecretStr = Field(min_length=MIN_PASSPHRASE_CHARS)
    key_type: KeyType = KeyType.ED25519
    """Ed25519 or P-256, for keys generated from now on (existing keys stay until rotated)."""
    """Encrypts this participant's private keys at rest."""
    trusted_issuers: dict[CredentialType, list[DID]] = Field(default_factory=dict)
    """JSON: which issuers are trusted for which credential type. Empty: nobody is trusted."""
    required_credentials: list[CredentialType] = Field(
        default_factory=lambda: [CredentialType.MEMBERSHIP]
    )
    """What a calling participant must present before anything else is considered."""
    status_list_ttl_s: float = Field(default=60.0, gt=0)
    """How long revocation lists and verified presentations are cached."""
    did_web_allow_http: bool = False
    """Resolve did:web over plain HTTP (loopback test and demo set-ups only)."""
    http_timeout_s: float = Field(default=10.0, gt=0)
    max_body_bytes: int = Field(default=1 << 20, ge=1024)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
