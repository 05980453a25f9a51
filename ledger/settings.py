"""Ledger service settings, read from ``LEDGER_*`` environment variables or passed as keywords.

The regulator's ledger service is a participant of its own: it has a DID (served here, did:web)
and keys, so that it can verify DCP callers (their ID tokens are addressed to it, and it asks
their Credential Services for their credentials with a token of its own).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from identity.credentials import CredentialType
from identity.did import DID
from service.settings import ParticipantServiceSettings
from storage.engine import DatabaseURL


class LedgerSettings(ParticipantServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", frozen=True, extra="forbid")

    ledger_id: DID
    """The ledger service's DID (did:web: its DID document is served here)."""
    port: int = Field(default=8383, ge=1, le=65535)
    database_url: DatabaseURL = "sqlite:///ledger.db"
    trusted_issuers: dict[CredentialType, list[DID]] = Field(default_factory=dict)
    """JSON: credential type -> issuer DIDs trusted for it (the authority for
    ``RegulatorCredential``)."""
    status_list_ttl_s: float = Field(default=60.0, gt=0, le=86400)
    chain_url: str = "http://127.0.0.1:8545"
    """The EVM JSON-RPC node where participants anchor their batch roots."""
    registry_address: str | None = None
    """The ``AnchorRegistry`` contract's address; unset: batches cannot be accepted (503)."""
    chain_timeout_s: float = Field(default=10.0, gt=0, le=300)
    retention_days: int = Field(default=3 * 365, ge=1, le=36_500)
    """How long accepted events are kept: their deletion before that is refused."""
    max_body_bytes: int = Field(default=32 << 20, ge=1024)
    """A pushed batch carries its events: the body limit is larger than the other services'."""
