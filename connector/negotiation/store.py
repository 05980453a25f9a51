"""Contract negotiations as this connector keeps them (either role)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Text, UniqueConstraint
from sqlmodel import Field

from connector.database import ConnectorBase


class ContractNegotiationRecord(ConnectorBase, table=True):
    __tablename__ = "contract_negotiation"
    __table_args__ = (UniqueConstraint("role", "counterparty", "consumer_pid"),)

    id: str = Field(primary_key=True, max_length=100)
    """Our own pid: the providerPid when we provide, the consumerPid when we consume."""
    role: str = Field(max_length=20)
    state: str = Field(max_length=20, index=True)
    consumer_pid: str | None = Field(default=None, max_length=500, index=True)
    provider_pid: str | None = Field(default=None, max_length=500, index=True)
    counterparty: str = Field(max_length=2048, index=True)
    counterparty_address: str = Field(max_length=2048)
    """Provider: the consumer's callbackAddress. Consumer: the provider's DSP base URL."""
    counterparty_region: str | None = Field(default=None, max_length=6)
    """Provider: the region (GB/T 2260) of the consumer's verified membership credential when
    it asked; the ledger's cross-border flag is read from it."""
    offer: str = Field(sa_column=Column(Text, nullable=False))
    """JSON: the offer under negotiation (with its target)."""
    asset_id: str = Field(max_length=300, index=True)
    contract_definition_id: str | None = Field(default=None, max_length=300)
    purpose: str | None = Field(default=None, max_length=200)
    agreement: str | None = Field(default=None, sa_column=Column(Text))
    agreement_id: str | None = Field(default=None, max_length=300, index=True)
    on_hold: bool = False
    """Provider: waiting for a person to approve or reject."""
    termination_code: str | None = Field(default=None, max_length=200)
    termination_reason: str | None = Field(default=None, sa_column=Column(Text))
    callbacks: str | None = Field(default=None, sa_column=Column(Text))
    """JSON: the callback addresses the management API's caller named (``connector.webhooks``)."""
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
