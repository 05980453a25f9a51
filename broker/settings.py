"""Broker settings, read from ``BROKER_*`` environment variables or passed as keywords.

The broker hosts the data-space authority: it issues the data space's credentials.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

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

    @classmethod
    def local_defaults(cls, given: dict[str, Any]) -> dict[str, Any]:
        """As every service, and the authority's DID from where it is reached:
        ``did:web:127.0.0.1%3A8282:authority`` on the default address."""
        public = given.get("public_url")
        netloc = (
            urlsplit(str(public)).netloc
            if public
            else f"{given.get('host', '127.0.0.1')}:{given.get('port', 8282)}"
        )
        return {
            **super().local_defaults(given),
            "authority_id": f"did:web:{netloc.replace(':', '%3A')}:authority",
        }

    authority_id: DID
    """The data-space authority's DID (did:web; its DID document is served here)."""
    port: int = Field(default=8282, ge=1, le=65535)
    database_url: DatabaseURL = "sqlite:///broker.db"
    admin_api_key: SecretStr = Field(min_length=MIN_API_KEY_CHARS)
    """The operator's key for the admin API (header X-Api-Key)."""
    onboarding_allow: dict[DID, OnboardingGrant] = Field(default_factory=dict)
    """JSON: participants that get credentials without waiting for the operator."""
    credential_validity_days: int = Field(default=365, ge=1, le=3650)
    organisation: OrganisationClaims | None = None
    """JSON: the broker's own organisation, as its own MembershipCredential states it. Unset:
    the broker holds no membership and does not crawl providers' catalogues."""
    crawl_interval_s: float = Field(default=300.0, ge=0, le=86_400)
    """How often every active participant's catalogue is crawled; 0: only on the operator's
    command (``POST /admin/catalogue/crawl``)."""
    crawl_notice_settle_s: float = Field(default=0.3, ge=0, le=600)
    """How long after a provider's change notice the broker crawls it (notices meanwhile: the
    same crawl)."""
    crawl_grace_s: float = Field(default=86_400.0, ge=0, le=30 * 86_400)
    """How long the datasets of a provider that does not answer (or whose catalogue is refused)
    are kept after its last good crawl; it is shown as stale meanwhile."""
    crawl_page_timeout_s: float = Field(default=10.0, gt=0, le=600)
    """The whole exchange of one catalogue page, connect to last byte."""
    crawl_provider_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    """All pages of one provider's catalogue."""
    crawl_max_pages: int = Field(default=1000, ge=1, le=100_000)
    crawl_max_page_bytes: int = Field(default=4 << 20, ge=1024, le=64 << 20)
    crawl_max_datasets: int = Field(default=20_000, ge=1, le=1_000_000)
    """The most datasets one provider's catalogue may hold; more is refused."""
