"""What the management API answers: one pydantic model per resource view, used by the routes
(their ``response_model``, so that the OpenAPI document shows them) and by the typed client
(:mod:`connector.management.client`), which reads the answers into the same models.

Timestamps are ISO 8601 text as the routes write them. Unknown fields are ignored when read, so
that an older client keeps working against a newer connector."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class View(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)


class Page(View, Generic[T]):
    """One page of a list: ``next`` is the offset of the next page, or None on the last."""

    items: list[T]
    offset: int
    next: int | None


class DomainName(View):
    zh: str
    en: str


class DomainView(View):
    id: str
    name_zh: str = Field(alias="nameZh")
    name_en: str = Field(alias="nameEn")


class DomainList(View):
    items: list[DomainView]


class AssetView(View):
    id: str
    title_zh: str | None = Field(alias="titleZh")
    title_en: str | None = Field(alias="titleEn")
    description_zh: str | None = Field(alias="descriptionZh")
    description_en: str | None = Field(alias="descriptionEn")
    keywords: list[str]
    domain: str | None
    domain_name: DomainName | None = Field(alias="domainName")
    data_grade: str = Field(alias="dataGrade")
    personal_information: bool = Field(alias="personalInformation")
    legal_basis: str | None = Field(default=None, alias="legalBasis")
    """PIPL article 13's basis for the personal information."""
    person_count: int | None = Field(default=None, alias="personCount")
    region: str | None
    version: str | None
    registration_code: str | None = Field(default=None, alias="registrationCode")
    """TC609's registration code (登记编码), when the data resource is registered."""
    data_address: dict[str, Any] = Field(alias="dataAddress")
    created_at: str = Field(alias="createdAt")


class PolicyDefinitionView(View):
    id: str
    policy: dict[str, Any]
    """The policy as stored: ODRL 2025-1 compact form."""
    warnings: list[str] = Field(default_factory=list)
    """The linter's warnings (on create and update; a policy with errors is not stored)."""
    created_at: str = Field(alias="createdAt")


class ContractDefinitionView(View):
    id: str
    access_policy_id: str = Field(alias="accessPolicyId")
    contract_policy_id: str = Field(alias="contractPolicyId")
    asset_selector: dict[str, Any] = Field(alias="assetSelector")
    created_at: str = Field(alias="createdAt")


class CallbackView(View):
    """A callback address a negotiation or transfer named when it was started."""

    uri: str
    states: list[str] | None = None
    """The states it hears of; None: every change."""
    secret: str | None = None
    """Its own Standard Webhooks secret (``whsec_…``), which signs what it receives: in the
    answer to the request that named it, and never again."""


class NegotiationView(View):
    id: str
    role: str
    state: str
    consumer_pid: str | None = Field(alias="consumerPid")
    provider_pid: str | None = Field(alias="providerPid")
    counter_party_id: str = Field(alias="counterPartyId")
    asset_id: str | None = Field(alias="assetId")
    purpose: str | None
    on_hold: bool = Field(alias="onHold")
    agreement_id: str | None = Field(alias="agreementId")
    agreement: dict[str, Any] | None
    termination_code: str | None = Field(alias="terminationCode")
    termination_reason: str | None = Field(alias="terminationReason")
    callback_addresses: list[CallbackView] = Field(default_factory=list, alias="callbackAddresses")
    created_at: str = Field(alias="createdAt")
    updated_at: str = Field(alias="updatedAt")


class NegotiationState(View):
    state: str


class AgreementView(View):
    agreement: dict[str, Any] | None
    negotiation_id: str = Field(alias="negotiationId")
    role: str
    counter_party_id: str = Field(alias="counterPartyId")
    agreement_id: str | None = Field(alias="agreementId")
    asset_id: str = Field(alias="assetId")


class AgreementDetail(AgreementView):
    """One agreement with the negotiation that made it."""

    negotiation: NegotiationView


class TransferView(View):
    id: str
    role: str
    state: str
    consumer_pid: str | None = Field(alias="consumerPid")
    provider_pid: str | None = Field(alias="providerPid")
    counter_party_id: str = Field(alias="counterPartyId")
    agreement_id: str = Field(alias="agreementId")
    format: str
    on_hold: bool = Field(alias="onHold")
    data_address: dict[str, Any] | None = Field(alias="dataAddress")
    termination_code: str | None = Field(alias="terminationCode")
    termination_reason: str | None = Field(alias="terminationReason")
    callback_addresses: list[CallbackView] = Field(default_factory=list, alias="callbackAddresses")
    created_at: str = Field(alias="createdAt")
    updated_at: str = Field(alias="updatedAt")


class CatalogView(View):
    catalog: dict[str, Any]
    """The peer's DCAT catalogue as it answered."""
    next: str | None
    """The URL of its next page (its ``Link: rel=next``), or None."""


class DatasetView(View):
    dataset: dict[str, Any]
    """One dataset of the peer's catalogue, with its offers, as it answered."""


class StatusEntry(View):
    status_list_credential: str = Field(alias="statusListCredential")
    status_list_index: int = Field(alias="statusListIndex")


class HeldCredentialView(View):
    id: str
    type: str
    issuer: str
    issued_at: str = Field(alias="issuedAt")
    expires_at: str = Field(alias="expiresAt")
    received_at: str = Field(alias="receivedAt")
    status: str
    status_reason: str | None = Field(alias="statusReason")
    status_entry: StatusEntry | None = Field(alias="statusEntry")
    presented: bool


class BrokerHit(View):
    """A dataset the broker found: who has it (DID, DSP address) and its id there, to negotiate
    with the provider directly."""

    dataset_id: str = Field(alias="datasetId")
    provider: str
    dsp_address: str = Field(alias="dspAddress")
    title: list[str] = Field(default_factory=list)
    """The DCAT titles as the provider gave them (Chinese, English)."""
    description: list[str] = Field(default_factory=list)
    keyword: list[str] = Field(default_factory=list)
    domain: str | None = None
    domain_name: Any = Field(default=None, alias="domainName")
    data_grade: str | None = Field(default=None, alias="dataGrade")
    region: str | None = None
    personal_information: bool | None = Field(default=None, alias="personalInformation")
    version: str | None = None
    registration_code: str | None = Field(default=None, alias="registrationCode")
    offers: list[dict[str, Any]] = Field(default_factory=list)
    changed_at: str | None = Field(default=None, alias="changedAt")
    score: float | None = None


class BrokerSearchView(View):
    """One page of the broker's search: hits, facets with counts, the next page's offset."""

    broker: str
    total: int
    items: list[BrokerHit]
    facets: dict[str, list[dict[str, Any]]]
    offset: int
    next: int | None


class EdrEntryView(View):
    """A started pull transfer of ours (consumer), without its token."""

    transfer_id: str = Field(alias="transferId")
    agreement_id: str = Field(alias="agreementId")
    counter_party_id: str = Field(alias="counterPartyId")
    format: str
    endpoint: str | None
    expires_at: str | None = Field(alias="expiresAt")
    created_at: str = Field(alias="createdAt")


class EdrView(EdrEntryView):
    """The endpoint and its bearer token, valid when answered."""

    authorization: str | None
    auth_type: str = Field(alias="authType")
    refreshed: bool
    """Whether the connector refreshed the token for this answer."""
