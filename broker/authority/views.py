"""What the authority's admin API answers: one pydantic model per view, used by the routes
(their ``response_model``) and read by the typed admin client (:mod:`broker.authority.client`).
Timestamps are ISO 8601 text as the routes write them; unknown fields are ignored when read."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class View(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)


class RequestView(View):
    """A credential request (DCP CredentialStatus) with what the operator decides on."""

    context: list[str] = Field(alias="@context")
    type: str
    issuer_pid: str = Field(alias="issuerPid")
    holder_pid: str = Field(alias="holderPid")
    status: str
    """``RECEIVED`` (waiting for the operator), ``ISSUED`` or ``REJECTED``."""
    holder: str
    credential_types: list[str] = Field(alias="credentialTypes")
    stated_organisation: dict[str, Any] | None = Field(alias="statedOrganisation")
    reason: str | None
    created_at: str = Field(alias="createdAt")
    warnings: list[str] = Field(default_factory=list)
    """What the operator should know before deciding, e.g. that the credit code is already
    held by another participant (a second connector of the same organisation, or not)."""


class IssuedCredentialView(View):
    id: str
    holder: str
    type: str
    issued_at: str = Field(alias="issuedAt")
    expires_at: str = Field(alias="expiresAt")
    revoked: bool


class AuditEventView(View):
    id: int
    occurred_at: str = Field(alias="occurredAt")
    decision: str
    subject: str
    decided_by: str = Field(alias="decidedBy")
    operator_key_id: str | None = Field(alias="operatorKeyId")
    request_id: str | None = Field(alias="requestId")
    credential_id: str | None = Field(alias="credentialId")
    detail: str | None


class AuditPage(View):
    items: list[AuditEventView]
    offset: int
    next: int | None
