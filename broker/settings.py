"""Broker settings, read from ``BROKER_*`` environment variables or passed as keywords.

The broker hosts the data-space authority: it issues the data space's credentials.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from identity.claims import OrganisationClaims
from identity.credentials import CredentialType
from identity.did import DID
from service.settings import ParticipantServiceSettings
from storage.engine import DatabaseURL

MIN_API_KEY_CHARS = 16


class OnboardingGrant(BaseModel):
    """An allow-list entry: this participant gets these credentials, saying this, at once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    types: list[CredentialType] = Field(min_length=1)
    organisation: OrganisationClaims


class BrokerSettings(ParticipantServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BROKER_", frozen=True, extra="forbid")

    authority_id: DID
    """The data-space authority's DID (did:web; its DID document is served here)."""
    port: int = Field(default=8282, ge=1, le=65535)
    database_url: DatabaseURL = "sqlite:///broker.db"
    admin_api_key: SecretStr = Field(min_length=MIN_API_KEY_CHARS)
    """The operator's key for the admin API (header X-Api-Key)."""
    onboarding_allow: dict[DID, OnboardingGrant] = Field(default_factory=dict)
    """JSON: participants that get credentials without waiting for the operator."""
    credential_validity_days: int = Field(default=365, ge=1, le=3650)
