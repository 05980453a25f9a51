"""Ledger service settings, read from ``LEDGER_*`` environment variables or passed as keywords."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.engine import DatabaseURL


class LedgerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8383, ge=1, le=65535)
    database_url: DatabaseURL = "sqlite:///ledger.db"
