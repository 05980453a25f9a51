"""Transfer processes as this connector keeps them (either role)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Text, UniqueConstraint
from sqlmodel import Field

from connector.database import ConnectorBase


class TransferProcessRecord(ConnectorBase, table=True):
    __tablename__ = "transfer_process"
    __table_args__ = (UniqueConstraint("role", "counterparty", "consumer_pid"),)

    id: str = Field(primary_key=True, max_length=100)
    """Our own pid: the providerPid when we provide, the consumerPid when we consume."""
    role: str = Field(max_length=20)
    state: str = Field(max_length=20, index=True)
    consumer_pid: str | None = Field(default=None, max_length=500, index=True)
    provider_pid: str | None = Field(default=None, max_length=500, index=True)
    counterparty: str = Field(max_length=2048, index=True)
    counterparty_address: str = Field(max_length=2048)
    agreement_id: str = Field(max_length=300, index=True)
    format: str = Field(max_length=200)
    data_address: str | None = Field(default=None, sa_column=Column(Text))
    """JSON: the consumer's push address, or the provider's pull address once started."""
    on_hold: bool = False
    """Provider: admitted by the policy, waiting for a person to start it."""
    suspended_by: str | None = Field(default=None, max_length=20)
    """Who suspended it (provider or consumer) while it is suspended: the consumer may resume
    only its own suspension; the provider's stands until the provider resumes."""
    termination_code: str | None = Field(default=None, max_length=200)
    termination_reason: str | None = Field(default=None, sa_column=Column(Text))
    callbacks: str | None = Field(default=None, sa_column=Column(Text))
    """JSON: the callback addresses the management API's caller named (``connector.webhooks``)."""
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
