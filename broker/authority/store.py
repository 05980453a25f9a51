"""The data-space authority's records: credential requests, issued credentials, status lists."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, DateTime, LargeBinary, Text
from sqlmodel import Field

from broker.database import BrokerBase


class RequestStatus(StrEnum):
    """DCP CredentialStatus values."""

    RECEIVED = "RECEIVED"
    REJECTED = "REJECTED"
    ISSUED = "ISSUED"


class CredentialRequest(BrokerBase, table=True):
    __tablename__ = "credential_request"

    id: str = Field(primary_key=True, max_length=100)
    holder: str = Field(max_length=2048, index=True)
    holder_pid: str = Field(max_length=200)
    credential_types: str = Field(max_length=500)
    """Space-separated credential type names."""
    status: str = Field(max_length=20, index=True)
    write_token: str = Field(sa_column=Column(Text, nullable=False))
    """The holder's access token for delivering into its Credential Service."""
    organisation: str | None = Field(default=None, sa_column=Column(Text))
    """The organisation claims the applicant stated (JSON), for the operator to review."""
    reason: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class IssuedCredential(BrokerBase, table=True):
    __tablename__ = "issued_credential"

    id: str = Field(primary_key=True, max_length=200)
    request_id: str = Field(foreign_key="credential_request.id", max_length=100)
    holder: str = Field(max_length=2048, index=True)
    credential_type: str = Field(max_length=100)
    status_list: str = Field(max_length=50)
    status_index: int
    issued_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class StatusList(BrokerBase, table=True):
    __tablename__ = "status_list"

    id: str = Field(primary_key=True, max_length=50)
    bits: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    next_index: int = 0
