"""Connector settings, read from ``CONNECTOR_*`` environment variables or passed as keywords."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from identity.did import DID
from storage.engine import DatabaseURL


class ConnectorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONNECTOR_", frozen=True, extra="forbid")

    participant_id: DID
    """This participant's DID, e.g. ``did:web:bank.example.cn``."""
    host: str = "127.0.0.1"
    port: int = Field(default=8181, ge=1, le=65535)
    database_url: DatabaseURL = "sqlite:///connector.db"
    migrate_on_start: bool = True
    """Bring the database schema to the newest revision when the app starts."""
