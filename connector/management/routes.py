"""The data holder's management API (API key from settings, header X-Api-Key): assets, policy
definitions (linted before they are stored), contract definitions. Paginated and filtered
lists. The data address of an asset is shown here, never in the catalogue."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

import httpx
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from connector.audit import AuditRecord, AuditSink, Outcome
from connector.catalog.domains import Domains
from connector.catalog.store import Asset, ContractDefinition, PolicyDefinition
from connector.dataplane.sources import AddressError, SourceRules
from connector.deps import (
    AuditDep,
    EngineDep,
    ManagementError,
    MatchingSetsDep,
    NegotiationsDep,
    ParticipantDep,
    SettingsDep,
    SourceRulesDep,
    TransfersDep,
    require_manager,
)
from connector.management.query import Filter, Limit, Offset, Sort, ordered, page
from connector.management.views import (
    AgreementDetail,
    AgreementView,
    AssetView,
    CatalogView,
    ContractDefinitionView,
    DatasetView,
    DomainList,
    NegotiationState,
    NegotiationView,
    Page,
    PolicyDefinitionView,
    TransferView,
)
from connector.negotiation.machine import Role, State
from connector.negotiation.store import ContractNegotiationRecord
from connector.protocol import DSP_CONTEXT, DspError
from connector.settings import ConnectorSettings
from connector.transfer.machine import Event as TransferEvent
from connector.transfer.machine import State as TransferState
from connector.transfer.store import TransferProcessRecord
from connector.webhooks import (
    MAX_CALLBACKS,
    Callback,
    callback_key,
    callback_secret,
    read_callbacks,
)
from identity.participant import Participant
from identity.presentations import EVERY_SCOPE
from ledger.canonical import canonicalise
from ledger.events import MAX_SAFE_INTEGER, LegalBasis
from matching.identifiers import Kind
from policy.jsonld import read_policy, write_policy
from policy.lint import Severity, lint
from policy.operands import Grade, check_region
from service.client import segment
from service.destinations import DestinationError, Purpose
from service.http import HttpUrl
from service.refusals import refusals

log = logging.getLogger("kexin.connector")
router = APIRouter(
    prefix="/management/v1", tags=["management"], dependencies=[Depends(require_manager)],
    responses=refusals(400, 401, 404, 409, 413, 422, 502, 503),
)  # fmt: skip
Identifier = Annotated[str, Field(min_length=1, max_length=300)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class MatchingIn(Model):
    """A matching set: which column of the file (CSV with a header) or of the query's result
    holds the identifiers, and what kind they are (normalised and validated as such)."""

    column: str = Field(min_length=1, max_length=100)
    kind: Kind


class DataAddressIn(Model):
    """Where the data is: a local file, an HTTP backend, or a SQL query on a configured database.
    With ``matching``, a file or query is a matching set: offered for PSI (``PSI-PULL``) only."""

    type: Literal["file", "http", "sql"]
    path: str | None = None
    url: str | None = None
    query: str | None = Field(default=None, max_length=10_000)
    database: str | None = Field(default=None, max_length=100)
    matching: MatchingIn | None = None

    @model_validator(mode="after")
    def _complete(self) -> DataAddressIn:
        needed = {"file": ("path",), "http": ("url",), "sql": ("query", "database")}[self.type]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.type} data address needs {', '.join(missing)}")
        if self.type == "file" and not str(self.path).startswith("/"):
            raise ValueError("a file path must be absolute")
        if self.type == "http" and not str(self.url).startswith(("http://", "https://")):
            raise ValueError("an HTTP data address needs an http(s) URL")
        if self.type == "http" and self.matching is not None:
            raise ValueError("a matching set is a file or a SQL query")
        return self


class AssetIn(Model):
    id: Identifier
    title_zh: str | None = Field(default=None, alias="titleZh", max_length=300)
    title_en: str | None = Field(default=None, alias="titleEn", max_length=300)
    description_zh: str | None = Field(default=None, alias="descriptionZh", max_length=10_000)
    description_en: str | None = Field(default=None, alias="descriptionEn", max_length=10_000)
    keywords: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=50
    )
    domain: str | None = Field(default=None, max_length=100)
    data_grade: Grade = Field(alias="dataGrade")
    personal_information: bool = Field(default=False, alias="personalInformation")
    legal_basis: LegalBasis | None = Field(default=None, alias="legalBasis")
    """PIPL article 13: the basis for handling the personal information (needed with it)."""
    person_count: int | None = Field(default=None, alias="personCount", ge=0, le=MAX_SAFE_INTEGER)
    """How many natural persons' information the data holds (the regulator's thresholds)."""
    region: str | None = None
    version: str | None = Field(default=None, max_length=50)
    registration_code: str | None = Field(
        default=None, alias="registrationCode", min_length=1, max_length=100, pattern=r"^\S+$"
    )
    """TC609's registration code (登记编码) of the data resource, when it is registered: one
    word of at most 100 characters, as the registration authority gave it."""
    data_address: DataAddressIn = Field(alias="dataAddress")

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return None if value is None else check_region(value)

    @model_validator(mode="after")
    def _titled(self) -> AssetIn:
        if not (self.title_zh or self.title_en):
            raise ValueError("an asset needs a title in Chinese or English")
        return self

    @model_validator(mode="after")
    def _personal_information(self) -> AssetIn:
        if self.personal_information and self.legal_basis is None:
            raise ValueError(
                "personal information needs its legal basis (PIPL article 13): give legalBasis"
            )
        if not self.personal_information and (
            self.legal_basis is not None or self.person_count is not None
        ):
            raise ValueError("legalBasis and personCount describe personal information only")
        return self


class PolicyDefinitionIn(Model):
    id: Identifier
    policy: dict[str, Any]


class AssetSelector(Model):
    asset_ids: list[Identifier] | None = Field(default=None, alias="assetIds", max_length=1000)
    domain: str | None = None
    region: str | None = None
    data_grade: Grade | None = Field(default=None, alias="dataGrade")


class ContractDefinitionIn(Model):
    id: Identifier
    access_policy_id: Identifier = Field(alias="accessPolicyId")
    contract_policy_id: Identifier = Field(alias="contractPolicyId")
    asset_selector: AssetSelector = Field(default_factory=AssetSelector, alias="assetSelector")


def asset_view(asset: Asset, domains: Domains) -> dict[str, Any]:
    """An asset as the management API shows it: its scenario domain by id and by name."""
    domain = domains.get(asset.domain)
    return {
        "id": asset.id,
        "titleZh": asset.title_zh,
        "titleEn": asset.title_en,
        "descriptionZh": asset.description_zh,
        "descriptionEn": asset.description_en,
        "keywords": json.loads(asset.keywords),
        "domain": asset.domain,
        "domainName": None if domain is None else domain.names(),
        "dataGrade": asset.data_grade,
        "personalInformation": asset.personal_information,
        "legalBasis": asset.legal_basis,
        "personCount": asset.person_count,
        "region": asset.region,
        "version": asset.version,
        "registrationCode": asset.registration_code,
        "dataAddress": json.loads(asset.data_address),
        "createdAt": asset.created_at.isoformat(),
    }


def description_hash(asset: Asset) -> str:
    """SHA-256 (hex) of the asset's description as offered, in its canonical form (RFC 8785):
    what the catalogue shows of it, without where its data is."""
    shown = {
        "id": asset.id, "titleZh": asset.title_zh, "titleEn": asset.title_en,
        "descriptionZh": asset.description_zh, "descriptionEn": asset.description_en,
        "keywords": json.loads(asset.keywords), "domain": asset.domain,
        "dataGrade": asset.data_grade, "personalInformation": asset.personal_information,
        "legalBasis": asset.legal_basis, "personCount": asset.person_count,
        "region": asset.region, "version": asset.version,
    }  # fmt: skip
    if asset.registration_code is not None:  # absent before it existed: earlier hashes hold
        shown["registrationCode"] = asset.registration_code
    return hashlib.sha256(canonicalise(shown)).hexdigest()


def _asset_event(
    session: Session, audit: AuditSink, participant: Participant, action: str, asset: Asset
) -> None:
    """The ledger's ``asset.offered``/``changed``/``withdrawn``, in the change's transaction."""
    audit.add(
        session,
        AuditRecord(
            actor=participant.did, action=action, outcome=Outcome.ACCEPTED,
            occurred_at=participant.clock(), subject=asset.id,
            evidence_hash=description_hash(asset),
        ),
    )  # fmt: skip


def _conflict(kind: str, identifier: str) -> ManagementError:
    return ManagementError(409, "exists", f"{kind} {identifier} exists already")


_page = page
USED_BY_SHOWN: Final = 20
"""At most this many of each kind are named in an ``in_use`` refusal."""
ASSET_SORTS: Final = {
    "id": col(Asset.id), "createdAt": col(Asset.created_at), "dataGrade": col(Asset.data_grade),
    "region": col(Asset.region), "domain": col(Asset.domain),
}  # fmt: skip
POLICY_SORTS: Final = {
    "id": col(PolicyDefinition.id),
    "createdAt": col(PolicyDefinition.created_at),
}
DEFINITION_SORTS: Final = {
    "id": col(ContractDefinition.id), "createdAt": col(ContractDefinition.created_at)
}  # fmt: skip
NEGOTIATION_SORTS: Final = {
    "createdAt": col(ContractNegotiationRecord.created_at),
    "updatedAt": col(ContractNegotiationRecord.updated_at),
    "state": col(ContractNegotiationRecord.state),
    "counterPartyId": col(ContractNegotiationRecord.counterparty),
    "assetId": col(ContractNegotiationRecord.asset_id),
}
TRANSFER_SORTS: Final = {
    "createdAt": col(TransferProcessRecord.created_at),
    "updatedAt": col(TransferProcessRecord.updated_at),
    "state": col(TransferProcessRecord.state),
    "counterPartyId": col(TransferProcessRecord.counterparty),
    "agreementId": col(TransferProcessRecord.agreement_id),
}


def check_address(address: DataAddressIn, rules: SourceRules) -> None:
    """A file inside a data root (and, if it exists already, a regular file that is none of
    the connector's own), an HTTP backend on a source host: checked again at every access."""
    try:
        if address.type == "file" and address.path is not None:
            if rules.file_path(address.path).exists():
                rules.open_file(address.path).close()
        elif address.type == "http" and address.url is not None:
            rules.http_url(address.url)
    except AddressError as error:
        raise ManagementError(400, "data_address_refused", str(error)) from None


@router.get("/domains", response_model=DomainList)
def list_domains(settings: SettingsDep) -> dict[str, Any]:
    """The scenario domains an asset may name (the city plan's 14 unless the deployment gave
    its own list), with their Chinese and English names."""
    return {"items": settings.domains.view()}


def _checked_asset(
    body: AssetIn, settings: ConnectorSettings, rules: SourceRules, created_at: datetime
) -> Asset:
    """The asset row for ``body``, once its domain, data address and SQL source are checked."""
    domains = settings.domains
    if body.domain is not None and body.domain not in domains:
        raise ManagementError(
            400, "unknown_domain", f"domain must be one of {', '.join(domains.ids())}"
        )
    check_address(body.data_address, rules)
    database = body.data_address.database
    if body.data_address.type == "sql" and database not in settings.sql_sources:
        known = ", ".join(sorted(settings.sql_sources)) or "none (set CONNECTOR_SQL_SOURCES)"
        raise ManagementError(
            400, "unknown_database", f"no SQL source {database!r}; configured: {known}"
        )
    return Asset(
        id=body.id,
        title_zh=body.title_zh,
        title_en=body.title_en,
        description_zh=body.description_zh,
        description_en=body.description_en,
        keywords=json.dumps(body.keywords, ensure_ascii=False),
        domain=body.domain,
        data_grade=body.data_grade.value,
        personal_information=body.personal_information,
        legal_basis=None if body.legal_basis is None else body.legal_basis.value,
        person_count=body.person_count,
        region=body.region,
        version=body.version,
        registration_code=body.registration_code,
        data_address=body.data_address.model_dump_json(exclude_none=True),
        created_at=created_at,
    )


@router.post("/assets", status_code=201, response_model=AssetView)
def create_asset(
    body: AssetIn,
    engine: EngineDep,
    participant: ParticipantDep,
    settings: SettingsDep,
    rules: SourceRulesDep,
    matching_sets: MatchingSetsDep,
    audit: AuditDep,
) -> dict[str, Any]:
    """An asset; a matching set (``dataAddress.matching``) has its PSI setup computed now, in
    the background, and again whenever its data changes."""
    asset = _checked_asset(body, settings, rules, participant.clock())
    with Session(engine) as session:
        session.add(asset)
        _asset_event(session, audit, participant, "asset offered", asset)
        try:
            session.commit()
        except IntegrityError:
            raise _conflict("asset", body.id) from None
        session.refresh(asset)
        if body.data_address.matching is not None and matching_sets is not None:
            matching_sets.publish(asset.id, json.loads(asset.data_address))
        return asset_view(asset, settings.domains)


@router.get("/assets", response_model=Page[AssetView])
def list_assets(
    engine: EngineDep,
    settings: SettingsDep,
    offset: Offset = 0,
    limit: Limit = 50,
    sort: Sort = None,
    domain: str | None = None,
    region: str | None = None,
    data_grade: Annotated[Grade | None, Query(alias="dataGrade")] = None,
) -> dict[str, Any]:
    """Sorted by ``id`` (default), ``createdAt``, ``dataGrade``, ``region`` or ``domain``."""
    query = ordered(select(Asset), sort, ASSET_SORTS, "id", col(Asset.id))
    if domain is not None:
        query = query.where(Asset.domain == domain)
    if region is not None:
        query = query.where(Asset.region == region)
    if data_grade is not None:
        query = query.where(Asset.data_grade == data_grade.value)
    with Session(engine) as session:
        rows = session.exec(query.offset(offset).limit(limit + 1)).all()
    domains = settings.domains  # built once, not once per asset
    return _page([asset_view(a, domains) for a in rows], offset, limit)


@router.get("/assets/{asset_id:path}", response_model=AssetView)
def get_asset(asset_id: str, engine: EngineDep, settings: SettingsDep) -> dict[str, Any]:
    with Session(engine) as session:
        asset = session.get(Asset, asset_id)
    if asset is None:
        raise ManagementError(404, "not_found", f"no asset {asset_id}")
    return asset_view(asset, settings.domains)


@router.put("/assets/{asset_id:path}", response_model=AssetView)
def update_asset(
    asset_id: str,
    body: AssetIn,
    engine: EngineDep,
    settings: SettingsDep,
    rules: SourceRulesDep,
    matching_sets: MatchingSetsDep,
    participant: ParticipantDep,
    audit: AuditDep,
) -> dict[str, Any]:
    """Replace an asset's description and data address (checked as on create); its id and
    creation time stay. Agreements already made keep the terms they were made on. A matching
    set's setup follows its new data address."""
    if body.id != asset_id:
        raise ManagementError(400, "id_mismatch", f"the body is for {body.id}, not {asset_id}")
    with Session(engine) as session:
        asset = session.get(Asset, asset_id)
        if asset is None:
            raise ManagementError(404, "not_found", f"no asset {asset_id}")
        checked = _checked_asset(body, settings, rules, asset.created_at)
        for name in Asset.model_fields:
            if name not in ("id", "created_at"):
                setattr(asset, name, getattr(checked, name))
        session.add(asset)
        _asset_event(session, audit, participant, "asset changed", asset)
        session.commit()
        session.refresh(asset)
    if matching_sets is not None:
        if body.data_address.matching is not None:
            matching_sets.publish(asset.id, json.loads(asset.data_address))
        else:
            matching_sets.forget(asset.id)
    return asset_view(asset, settings.domains)


def _in_use(kind: str, identifier: str, used_by: dict[str, list[str]]) -> ManagementError:
    """409 naming what still uses the resource (at most ``USED_BY_SHOWN`` of each kind)."""
    named = "; ".join(f"{what}: {', '.join(ids)}" for what, ids in used_by.items() if ids)
    return ManagementError(
        409, "in_use", f"{kind} {identifier} is in use ({named})", {"usedBy": used_by}
    )


def _processes_of(session: Session, condition: Any) -> dict[str, list[str]]:
    """Our provider-side negotiations matching ``condition`` that are not terminated: the
    agreements made and the negotiations still going."""
    rows = session.exec(
        select(ContractNegotiationRecord)
        .where(ContractNegotiationRecord.role == Role.PROVIDER.value)
        .where(ContractNegotiationRecord.state != State.TERMINATED.value)
        .where(condition)
        .order_by(col(ContractNegotiationRecord.created_at))
        .limit(10 * USED_BY_SHOWN)
    ).all()
    agreements = [r.agreement_id for r in rows if r.state == State.FINALIZED and r.agreement_id]
    going = [r.id for r in rows if r.state != State.FINALIZED]
    return {"agreements": agreements[:USED_BY_SHOWN], "negotiations": going[:USED_BY_SHOWN]}


@router.delete("/assets/{asset_id:path}", status_code=204)
def delete_asset(
    asset_id: str,
    engine: EngineDep,
    matching_sets: MatchingSetsDep,
    participant: ParticipantDep,
    audit: AuditDep,
) -> Response:
    """Refused (409, ``usedBy``) while an offer names the asset or an agreement or a running
    negotiation is for it."""
    with Session(engine) as session:
        asset = session.get(Asset, asset_id)
        if asset is None:
            raise ManagementError(404, "not_found", f"no asset {asset_id}")
        naming = [
            d.id
            for d in session.exec(select(ContractDefinition).order_by(col(ContractDefinition.id)))
            if asset_id in (json.loads(d.asset_selector).get("assetIds") or [])
        ]
        used_by = {
            "contractDefinitions": naming[:USED_BY_SHOWN],
            **_processes_of(session, ContractNegotiationRecord.asset_id == asset_id),
        }
        if any(used_by.values()):
            raise _in_use("asset", asset_id, used_by)
        _asset_event(session, audit, participant, "asset withdrawn", asset)
        session.delete(asset)
        session.commit()
    if matching_sets is not None:
        matching_sets.forget(asset_id)
    return Response(status_code=204)


def _linted(
    policy: dict[str, Any], now: datetime, settings: ConnectorSettings
) -> tuple[dict[str, Any], list[str]]:
    """The policy as stored (written back in the compact form) and the linter's warnings (its
    purposes judged by the deployment's), a policy with errors is refused with them."""
    findings = lint(policy, now, settings.vocabulary)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:
        raise ManagementError(400, "policy_rejected", "; ".join(str(f) for f in errors))
    return write_policy(read_policy(policy)), [str(f) for f in findings]


def policy_view(record: PolicyDefinition, warnings: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": record.id,
        "policy": json.loads(record.policy),
        "warnings": warnings or [],
        "createdAt": record.created_at.isoformat(),
    }


@router.post("/policydefinitions", status_code=201, response_model=PolicyDefinitionView)
def create_policy(
    body: PolicyDefinitionIn, engine: EngineDep, participant: ParticipantDep, settings: SettingsDep
) -> dict[str, Any]:
    """Lint first: a policy with errors is refused with the findings; warnings are returned."""
    written, warnings = _linted(body.policy, participant.clock(), settings)
    record = PolicyDefinition(
        id=body.id, policy=json.dumps(written, ensure_ascii=False), created_at=participant.clock()
    )
    with Session(engine) as session:
        session.add(record)
        try:
            session.commit()
        except IntegrityError:
            raise _conflict("policy definition", body.id) from None
        session.refresh(record)
        return policy_view(record, warnings)


@router.get("/policydefinitions", response_model=Page[PolicyDefinitionView])
def list_policies(
    engine: EngineDep, offset: Offset = 0, limit: Limit = 50, sort: Sort = None
) -> dict[str, Any]:
    """Sorted by ``id`` (default) or ``createdAt``."""
    query = ordered(select(PolicyDefinition), sort, POLICY_SORTS, "id", col(PolicyDefinition.id))
    with Session(engine) as session:
        rows = session.exec(query.offset(offset).limit(limit + 1)).all()
    return _page([policy_view(r) for r in rows], offset, limit)


def _policy(session: Session, policy_id: str) -> PolicyDefinition:
    record = session.get(PolicyDefinition, policy_id)
    if record is None:
        raise ManagementError(404, "not_found", f"no policy definition {policy_id}")
    return record


@router.get("/policydefinitions/{policy_id:path}", response_model=PolicyDefinitionView)
def get_policy(policy_id: str, engine: EngineDep) -> dict[str, Any]:
    with Session(engine) as session:
        return policy_view(_policy(session, policy_id))


@router.put("/policydefinitions/{policy_id:path}", response_model=PolicyDefinitionView)
def update_policy(
    policy_id: str,
    body: PolicyDefinitionIn,
    engine: EngineDep,
    participant: ParticipantDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Replace the policy (linted as on create). Offers made from now on carry it; agreements
    already made keep the policy they were made on."""
    if body.id != policy_id:
        raise ManagementError(400, "id_mismatch", f"the body is for {body.id}, not {policy_id}")
    written, warnings = _linted(body.policy, participant.clock(), settings)
    with Session(engine) as session:
        record = _policy(session, policy_id)
        record.policy = json.dumps(written, ensure_ascii=False)
        session.add(record)
        session.commit()
        session.refresh(record)
        return policy_view(record, warnings)


@router.delete("/policydefinitions/{policy_id:path}", status_code=204)
def delete_policy(policy_id: str, engine: EngineDep) -> Response:
    """Refused (409, ``usedBy``) while a contract definition uses it."""
    with Session(engine) as session:
        record = _policy(session, policy_id)
        using = session.exec(
            select(ContractDefinition)
            .where(
                (ContractDefinition.access_policy_id == policy_id)
                | (ContractDefinition.contract_policy_id == policy_id)
            )
            .order_by(col(ContractDefinition.id))
            .limit(USED_BY_SHOWN)
        ).all()
        if using:
            raise _in_use(
                "policy definition", policy_id, {"contractDefinitions": [d.id for d in using]}
            )
        session.delete(record)
        session.commit()
    return Response(status_code=204)


def definition_view(record: ContractDefinition) -> dict[str, Any]:
    return {
        "id": record.id,
        "accessPolicyId": record.access_policy_id,
        "contractPolicyId": record.contract_policy_id,
        "assetSelector": json.loads(record.asset_selector),
        "createdAt": record.created_at.isoformat(),
    }


def _policies_exist(session: Session, body: ContractDefinitionIn) -> None:
    for policy_id in (body.access_policy_id, body.contract_policy_id):
        if session.get(PolicyDefinition, policy_id) is None:
            raise ManagementError(404, "not_found", f"no policy definition {policy_id}")


def _selector(body: ContractDefinitionIn) -> str:
    return json.dumps(body.asset_selector.model_dump(by_alias=True, exclude_none=True, mode="json"))


@router.post("/contractdefinitions", status_code=201, response_model=ContractDefinitionView)
def create_contract_definition(
    body: ContractDefinitionIn, engine: EngineDep, participant: ParticipantDep
) -> dict[str, Any]:
    with Session(engine) as session:
        _policies_exist(session, body)
        record = ContractDefinition(
            id=body.id,
            access_policy_id=body.access_policy_id,
            contract_policy_id=body.contract_policy_id,
            asset_selector=_selector(body),
            created_at=participant.clock(),
        )
        session.add(record)
        try:
            session.commit()
        except IntegrityError:
            raise _conflict("contract definition", body.id) from None
        session.refresh(record)
        return definition_view(record)


@router.get("/contractdefinitions", response_model=Page[ContractDefinitionView])
def list_contract_definitions(
    engine: EngineDep,
    offset: Offset = 0,
    limit: Limit = 50,
    sort: Sort = None,
    access_policy_id: Annotated[Filter, Query(alias="accessPolicyId")] = None,
    contract_policy_id: Annotated[Filter, Query(alias="contractPolicyId")] = None,
) -> dict[str, Any]:
    """Sorted by ``id`` (default) or ``createdAt``; filtered by either policy."""
    query = ordered(
        select(ContractDefinition), sort, DEFINITION_SORTS, "id", col(ContractDefinition.id)
    )
    if access_policy_id is not None:
        query = query.where(ContractDefinition.access_policy_id == access_policy_id)
    if contract_policy_id is not None:
        query = query.where(ContractDefinition.contract_policy_id == contract_policy_id)
    with Session(engine) as session:
        rows = session.exec(query.offset(offset).limit(limit + 1)).all()
    return _page([definition_view(r) for r in rows], offset, limit)


def _definition(session: Session, definition_id: str) -> ContractDefinition:
    record = session.get(ContractDefinition, definition_id)
    if record is None:
        raise ManagementError(404, "not_found", f"no contract definition {definition_id}")
    return record


@router.get("/contractdefinitions/{definition_id:path}", response_model=ContractDefinitionView)
def get_contract_definition(definition_id: str, engine: EngineDep) -> dict[str, Any]:
    with Session(engine) as session:
        return definition_view(_definition(session, definition_id))


@router.put("/contractdefinitions/{definition_id:path}", response_model=ContractDefinitionView)
def update_contract_definition(
    definition_id: str, body: ContractDefinitionIn, engine: EngineDep
) -> dict[str, Any]:
    """Replace the policies and the asset selector; agreements already made keep their terms."""
    if body.id != definition_id:
        raise ManagementError(400, "id_mismatch", f"the body is for {body.id}, not {definition_id}")
    with Session(engine) as session:
        record = _definition(session, definition_id)
        _policies_exist(session, body)
        record.access_policy_id = body.access_policy_id
        record.contract_policy_id = body.contract_policy_id
        record.asset_selector = _selector(body)
        session.add(record)
        session.commit()
        session.refresh(record)
        return definition_view(record)


@router.delete("/contractdefinitions/{definition_id:path}", status_code=204)
def delete_contract_definition(definition_id: str, engine: EngineDep) -> Response:
    """Refused (409, ``usedBy``) while an agreement or a running negotiation came from it."""
    with Session(engine) as session:
        record = _definition(session, definition_id)
        used_by = _processes_of(
            session, ContractNegotiationRecord.contract_definition_id == definition_id
        )
        if any(used_by.values()):
            raise _in_use("contract definition", definition_id, used_by)
        session.delete(record)
        session.commit()
    return Response(status_code=204)


# --- negotiations ----------------------------------------------------------------------------


class CallbackAddressIn(Model):
    """One of the caller's own receivers of a process's state changes (besides the connector's
    webhook), signed the Standard Webhooks way with ``CONNECTOR_WEBHOOK_SECRET``."""

    uri: HttpUrl = Field(min_length=1, max_length=2048)
    states: list[Annotated[str, Field(min_length=1, max_length=20)]] | None = Field(
        default=None, min_length=1, max_length=20
    )
    """Only these states (e.g. ``["FINALIZED", "TERMINATED"]``); absent: every change."""


CallbackAddresses = Annotated[
    list[CallbackAddressIn], Field(alias="callbackAddresses", max_length=MAX_CALLBACKS)
]


def _callbacks(
    given: list[CallbackAddressIn], states: type[StrEnum], settings: ConnectorSettings
) -> list[Callback]:
    """The callback addresses of a request, checked: a secret to sign them, states the process
    has, and destinations the connector may call."""
    if not given:
        return []
    if settings.webhook_secret is None:
        raise ManagementError(
            409,
            "no_webhook_secret",
            "callback addresses need CONNECTOR_WEBHOOK_SECRET to sign them",
        )
    known = {state.value for state in states}
    found = []
    for callback in given:
        unknown = sorted(set(callback.states or ()) - known)
        if unknown:
            raise ManagementError(
                400, "bad_callback", f"no state {unknown[0]!r}; one of {', '.join(sorted(known))}"
            )
        try:
            settings.destinations.check(callback.uri, Purpose.CALLBACK)
        except DestinationError as error:
            raise ManagementError(400, "bad_callback", f"{callback.uri}: {error}") from None
        found.append(
            Callback(callback.uri, None if callback.states is None else frozenset(callback.states))
        )
    return found


def callback_views(
    record: ContractNegotiationRecord | TransferProcessRecord,
    settings: ConnectorSettings | None = None,
) -> list[dict[str, Any]]:
    """A process's callback addresses; with ``settings`` (the answer to the request that named
    them, and only it) each with its own signing secret."""
    views = []
    for number, callback in enumerate(read_callbacks(record.callbacks), start=1):
        view: dict[str, Any] = {
            "uri": callback.uri,
            "states": None if callback.states is None else sorted(callback.states),
        }
        if settings is not None and settings.webhook_secret is not None:
            view["secret"] = callback_secret(
                settings.webhook_secret.get_secret_value(), callback_key(record.id, number),
                callback.uri,
            )  # fmt: skip
        views.append(view)
    return views


class NegotiationIn(Model):
    counter_party_id: str = Field(alias="counterPartyId", min_length=1, max_length=2048)
    """The provider's DID."""
    counter_party_address: HttpUrl = Field(
        alias="counterPartyAddress", min_length=1, max_length=2048
    )
    """The provider's DSP base URL (the catalogue's DataService endpointURL)."""
    offer: dict[str, Any]
    """The offer as the provider's catalogue showed it."""
    target: Identifier
    """The dataset the offer is for."""
    purpose: str | None = Field(default=None, max_length=200)
    callback_addresses: CallbackAddresses = Field(default_factory=list)


class TerminationIn(Model):
    code: str = Field(default="terminated", min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000)


def negotiation_view(record: ContractNegotiationRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "role": record.role,
        "state": record.state,
        "consumerPid": record.consumer_pid,
        "providerPid": record.provider_pid,
        "counterPartyId": record.counterparty,
        "assetId": record.asset_id,
        "purpose": record.purpose,
        "onHold": record.on_hold,
        "agreementId": record.agreement_id,
        "agreement": json.loads(record.agreement) if record.agreement else None,
        "terminationCode": record.termination_code,
        "terminationReason": record.termination_reason,
        "callbackAddresses": callback_views(record),
        "createdAt": record.created_at.isoformat(),
        "updatedAt": record.updated_at.isoformat(),
    }


def _as_management(error: DspError) -> ManagementError:
    # Our own operator's illegal move is a conflict with the negotiation's state (409).
    status = 409 if error.code == "illegal_transition" else error.status
    return ManagementError(status, error.code, error.reason)


@router.post("/negotiations", status_code=201, response_model=NegotiationView)
def start_negotiation(
    body: NegotiationIn, negotiations: NegotiationsDep, settings: SettingsDep
) -> dict[str, Any]:
    callbacks = _callbacks(body.callback_addresses, State, settings)
    try:
        record = negotiations.request(
            body.counter_party_id, body.counter_party_address, body.offer, body.target,
            body.purpose, callbacks,
        )  # fmt: skip
    except DspError as error:
        raise _as_management(error) from None
    return {**negotiation_view(record), "callbackAddresses": callback_views(record, settings)}


@router.get("/negotiations", response_model=Page[NegotiationView])
def list_negotiations(
    engine: EngineDep,
    offset: Offset = 0,
    limit: Limit = 50,
    sort: Sort = None,
    role: Role | None = None,
    state: State | None = None,
    counter_party_id: Annotated[Filter, Query(alias="counterPartyId")] = None,
    asset_id: Annotated[Filter, Query(alias="assetId")] = None,
) -> dict[str, Any]:
    """Oldest first unless ``sort`` (``createdAt``, ``updatedAt``, ``state``,
    ``counterPartyId``, ``assetId``) says otherwise."""
    query = _negotiations(sort, role, state, counter_party_id, asset_id)
    with Session(engine) as session:
        rows = session.exec(query.offset(offset).limit(limit + 1)).all()
    return _page([negotiation_view(r) for r in rows], offset, limit)


def _negotiations(
    sort: str | None,
    role: Role | None,
    state: State | None,
    counter_party_id: str | None,
    asset_id: str | None,
) -> SelectOfScalar[ContractNegotiationRecord]:
    query = ordered(
        select(ContractNegotiationRecord), sort, NEGOTIATION_SORTS, "createdAt",
        col(ContractNegotiationRecord.id),
    )  # fmt: skip
    for column, value in (
        (ContractNegotiationRecord.role, None if role is None else role.value),
        (ContractNegotiationRecord.state, None if state is None else state.value),
        (ContractNegotiationRecord.counterparty, counter_party_id),
        (ContractNegotiationRecord.asset_id, asset_id),
    ):
        if value is not None:
            query = query.where(column == value)
    return query


@router.get("/negotiations/{negotiation_id:path}/state", response_model=NegotiationState)
def negotiation_state(negotiation_id: str, engine: EngineDep) -> dict[str, Any]:
    return {"state": _negotiation(engine, negotiation_id).state}


@router.get("/negotiations/{negotiation_id:path}", response_model=NegotiationView)
def get_negotiation(negotiation_id: str, engine: EngineDep) -> dict[str, Any]:
    return negotiation_view(_negotiation(engine, negotiation_id))


def _negotiation(engine: Any, negotiation_id: str) -> ContractNegotiationRecord:
    with Session(engine) as session:
        record = session.get(ContractNegotiationRecord, negotiation_id)
    if record is None:
        raise ManagementError(404, "not_found", f"no negotiation {negotiation_id}")
    return record


@router.post("/negotiations/{negotiation_id:path}/terminate", response_model=NegotiationView)
def terminate_negotiation(
    negotiation_id: str, body: TerminationIn, negotiations: NegotiationsDep
) -> dict[str, Any]:
    try:
        return negotiation_view(negotiations.terminate(negotiation_id, body.code, body.reason))
    except DspError as error:
        raise _as_management(error) from None


@router.post("/negotiations/{negotiation_id:path}/approve", response_model=NegotiationView)
def approve_negotiation(negotiation_id: str, negotiations: NegotiationsDep) -> dict[str, Any]:
    try:
        return negotiation_view(negotiations.approve(negotiation_id))
    except DspError as error:
        raise _as_management(error) from None


class OfferIn(Model):
    counter_party_id: str = Field(alias="counterPartyId", min_length=1, max_length=2048)
    """The consumer's DID."""
    counter_party_address: HttpUrl = Field(
        alias="counterPartyAddress", min_length=1, max_length=2048
    )
    """The consumer's DSP callback base URL."""
    offer_id: str = Field(alias="offerId", min_length=1, max_length=1000)
    """One of our offers, as the catalogue shows it."""


@router.post("/negotiations/offers", status_code=201, response_model=NegotiationView)
def offer_to(body: OfferIn, negotiations: NegotiationsDep) -> dict[str, Any]:
    """Provider: start a negotiation by offering to a participant."""
    try:
        record = negotiations.offer(
            body.counter_party_id, body.counter_party_address, body.offer_id
        )
    except DspError as error:
        raise _as_management(error) from None
    return negotiation_view(record)


class CounterIn(Model):
    offer: dict[str, Any]
    """The new terms (the target stays the negotiation's)."""


class AcceptIn(Model):
    purpose: str | None = Field(default=None, max_length=200)
    """The purpose the consumer declares (the offer's policy may require one)."""


@router.post("/negotiations/{negotiation_id:path}/accept", response_model=NegotiationView)
def accept_offer(
    negotiation_id: str, negotiations: NegotiationsDep, body: AcceptIn | None = None
) -> dict[str, Any]:
    try:
        return negotiation_view(negotiations.accept(negotiation_id, body.purpose if body else None))
    except DspError as error:
        raise _as_management(error) from None


@router.post("/negotiations/{negotiation_id:path}/counter", response_model=NegotiationView)
def counter(negotiation_id: str, body: CounterIn, negotiations: NegotiationsDep) -> dict[str, Any]:
    try:
        return negotiation_view(negotiations.counter(negotiation_id, body.offer))
    except DspError as error:
        raise _as_management(error) from None


@router.post("/negotiations/{negotiation_id:path}/finalize", response_model=NegotiationView)
def finalize_agreement(negotiation_id: str, negotiations: NegotiationsDep) -> dict[str, Any]:
    try:
        return negotiation_view(negotiations.finalize(negotiation_id))
    except DspError as error:
        raise _as_management(error) from None


@router.post("/negotiations/{negotiation_id:path}/verify", response_model=NegotiationView)
def verify_agreement(negotiation_id: str, negotiations: NegotiationsDep) -> dict[str, Any]:
    try:
        return negotiation_view(negotiations.verify(negotiation_id))
    except DspError as error:
        raise _as_management(error) from None


def agreement_view(record: ContractNegotiationRecord) -> dict[str, Any]:
    return {
        "agreement": json.loads(record.agreement or "null"),
        "agreementId": record.agreement_id,
        "assetId": record.asset_id,
        "negotiationId": record.id,
        "role": record.role,
        "counterPartyId": record.counterparty,
    }


@router.get("/agreements", response_model=Page[AgreementView])
def list_agreements(
    engine: EngineDep,
    offset: Offset = 0,
    limit: Limit = 50,
    sort: Sort = None,
    role: Role | None = None,
    counter_party_id: Annotated[Filter, Query(alias="counterPartyId")] = None,
    asset_id: Annotated[Filter, Query(alias="assetId")] = None,
) -> dict[str, Any]:
    """The agreements of finalized negotiations, in both roles (sorted as negotiations)."""
    query = _negotiations(sort, role, State.FINALIZED, counter_party_id, asset_id)
    with Session(engine) as session:
        rows = session.exec(query.offset(offset).limit(limit + 1)).all()
    return _page([agreement_view(r) for r in rows], offset, limit)


@router.get("/agreements/{agreement_id:path}", response_model=AgreementDetail)
def get_agreement(agreement_id: str, engine: EngineDep) -> dict[str, Any]:
    """One agreement (of a finalized negotiation) with the negotiation that made it."""
    with Session(engine) as session:
        record = session.exec(
            select(ContractNegotiationRecord)
            .where(ContractNegotiationRecord.agreement_id == agreement_id)
            .where(ContractNegotiationRecord.state == State.FINALIZED.value)
        ).first()
    if record is None:
        raise ManagementError(404, "not_found", f"no agreement {agreement_id}")
    return {**agreement_view(record), "negotiation": negotiation_view(record)}


# --- transfers -------------------------------------------------------------------------------


class TransferIn(Model):
    counter_party_id: str = Field(alias="counterPartyId", min_length=1, max_length=2048)
    counter_party_address: HttpUrl = Field(
        alias="counterPartyAddress", min_length=1, max_length=2048
    )
    agreement_id: Identifier = Field(alias="agreementId")
    format: Literal["HttpData-PULL", "HttpData-PUSH", "PSI-PULL"] = "HttpData-PULL"
    data_address: dict[str, Any] | None = Field(default=None, alias="dataAddress")
    callback_addresses: CallbackAddresses = Field(default_factory=list)


class MoveIn(Model):
    code: str | None = Field(default=None, max_length=200)
    reason: str | None = Field(default=None, max_length=2000)


def transfer_view(record: TransferProcessRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "role": record.role,
        "state": record.state,
        "consumerPid": record.consumer_pid,
        "providerPid": record.provider_pid,
        "counterPartyId": record.counterparty,
        "agreementId": record.agreement_id,
        "format": record.format,
        "onHold": record.on_hold,
        "dataAddress": json.loads(record.data_address) if record.data_address else None,
        "terminationCode": record.termination_code,
        "terminationReason": record.termination_reason,
        "callbackAddresses": callback_views(record),
        "createdAt": record.created_at.isoformat(),
        "updatedAt": record.updated_at.isoformat(),
    }


@router.post("/transfers", status_code=201, response_model=TransferView)
def start_transfer(
    body: TransferIn, transfers: TransfersDep, settings: SettingsDep
) -> dict[str, Any]:
    callbacks = _callbacks(body.callback_addresses, TransferState, settings)
    try:
        record = transfers.request(
            body.counter_party_id,
            body.counter_party_address,
            body.agreement_id,
            body.format,
            body.data_address,
            callbacks,
        )
    except DspError as error:
        raise _as_management(error) from None
    return {**transfer_view(record), "callbackAddresses": callback_views(record, settings)}


@router.get("/transfers", response_model=Page[TransferView])
def list_transfers(
    engine: EngineDep,
    offset: Offset = 0,
    limit: Limit = 50,
    sort: Sort = None,
    role: Role | None = None,
    state: TransferState | None = None,
    counter_party_id: Annotated[Filter, Query(alias="counterPartyId")] = None,
    agreement_id: Annotated[Filter, Query(alias="agreementId")] = None,
) -> dict[str, Any]:
    """Oldest first unless ``sort`` (``createdAt``, ``updatedAt``, ``state``,
    ``counterPartyId``, ``agreementId``) says otherwise."""
    query = ordered(
        select(TransferProcessRecord), sort, TRANSFER_SORTS, "createdAt",
        col(TransferProcessRecord.id),
    )  # fmt: skip
    for column, value in (
        (TransferProcessRecord.role, None if role is None else role.value),
        (TransferProcessRecord.state, None if state is None else state.value),
        (TransferProcessRecord.counterparty, counter_party_id),
        (TransferProcessRecord.agreement_id, agreement_id),
    ):
        if value is not None:
            query = query.where(column == value)
    with Session(engine) as session:
        rows = session.exec(query.offset(offset).limit(limit + 1)).all()
    return _page([transfer_view(r) for r in rows], offset, limit)


@router.get("/transfers/{transfer_id:path}", response_model=TransferView)
def get_transfer(transfer_id: str, engine: EngineDep) -> dict[str, Any]:
    with Session(engine) as session:
        record = session.get(TransferProcessRecord, transfer_id)
    if record is None:
        raise ManagementError(404, "not_found", f"no transfer {transfer_id}")
    return transfer_view(record)


def _transfer_move(
    transfers: Any, transfer_id: str, event: TransferEvent, body: MoveIn
) -> dict[str, Any]:
    try:
        return transfer_view(transfers.act(transfer_id, event, body.code, body.reason))
    except DspError as error:
        raise _as_management(error) from None


@router.post("/transfers/{transfer_id:path}/start", response_model=TransferView)
def start_held_transfer(transfer_id: str, body: MoveIn, transfers: TransfersDep) -> dict[str, Any]:
    """Provider, manual mode: start a transfer held for a person (its policy admitted it)."""
    return _transfer_move(transfers, transfer_id, TransferEvent.START, body)


@router.post("/transfers/{transfer_id:path}/suspend", response_model=TransferView)
def suspend_transfer(transfer_id: str, body: MoveIn, transfers: TransfersDep) -> dict[str, Any]:
    return _transfer_move(transfers, transfer_id, TransferEvent.SUSPEND, body)


@router.post("/transfers/{transfer_id:path}/resume", response_model=TransferView)
def resume_transfer(transfer_id: str, body: MoveIn, transfers: TransfersDep) -> dict[str, Any]:
    return _transfer_move(transfers, transfer_id, TransferEvent.START, body)


@router.post("/transfers/{transfer_id:path}/complete", response_model=TransferView)
def complete_transfer(transfer_id: str, body: MoveIn, transfers: TransfersDep) -> dict[str, Any]:
    return _transfer_move(transfers, transfer_id, TransferEvent.COMPLETE, body)


@router.post("/transfers/{transfer_id:path}/terminate", response_model=TransferView)
def terminate_transfer(transfer_id: str, body: MoveIn, transfers: TransfersDep) -> dict[str, Any]:
    return _transfer_move(transfers, transfer_id, TransferEvent.TERMINATE, body)


# --- the catalogue of a peer -----------------------------------------------------------------


class CatalogRequestIn(Model):
    counter_party_id: str = Field(alias="counterPartyId", min_length=1, max_length=2048)
    counter_party_address: HttpUrl = Field(
        alias="counterPartyAddress", min_length=1, max_length=2048
    )
    """The peer's DSP base URL."""
    continuation_token: str | None = Field(default=None, alias="continuationToken", max_length=100)


def peer_refusal(response: httpx.Response) -> tuple[str | None, list[str]]:
    """A peer's DSP error as text: its ``code`` and its ``reason`` entries (strings, or the
    values of language-tagged ones), never its raw JSON; its start when it is not one."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return None, [response.text[:300]] if response.text else []
    code = body.get("code")
    raw = body.get("reason", [])
    entries = raw if isinstance(raw, list) else [raw]
    reasons = [
        str(e.get("@value", e.get("message", ""))) if isinstance(e, dict) else str(e)
        for e in entries[:20]
    ]
    return (str(code)[:200] if code is not None else None), [r[:500] for r in reasons if r]


async def _ask_peer(
    request: Request, participant: Participant, peer: str, method: str, url: str, **given: Any
) -> tuple[httpx.Response, dict[str, Any]]:
    """One DSP catalogue call to a peer (DCP-authenticated): its answer and its JSON object;
    unreachable, refusing or not answering a JSON object: a typed 502 with its reasons."""
    token = participant.sts.bearer_for(peer, EVERY_SCOPE)
    client: httpx.AsyncClient = request.app.state.client
    try:
        response = await client.request(
            method, url, headers={"Authorization": f"Bearer {token}"}, **given
        )
    except httpx.HTTPError as error:
        log.info("catalogue request to %s failed: %r", url, error)
        raise ManagementError(502, "peer_unreachable", f"{url}: unreachable") from None
    if response.status_code != httpx.codes.OK:
        code, reasons = peer_refusal(response)
        raise ManagementError(
            502,
            "peer_refused",
            f"{url} answered {response.status_code}" + (f" ({code})" if code else ""),
            {"peerStatus": response.status_code, "peerCode": code, "reasons": reasons},
        )
    try:
        answered = response.json()
    except ValueError:
        raise ManagementError(502, "peer_refused", f"{url} did not answer JSON") from None
    if not isinstance(answered, dict):
        raise ManagementError(502, "peer_refused", f"{url} did not answer a JSON object")
    return response, answered


@router.post("/catalog/request", response_model=CatalogView)
async def request_catalog(
    body: CatalogRequestIn, participant: ParticipantDep, request: Request
) -> dict[str, Any]:
    """Ask a peer for its catalogue (DCP-authenticated); the answer is returned as received."""
    url = body.counter_party_address.rstrip("/") + "/catalog/request"
    params = {"continuationToken": body.continuation_token} if body.continuation_token else None
    response, catalog = await _ask_peer(
        request, participant, body.counter_party_id, "POST", url, params=params,
        json={"@context": [DSP_CONTEXT], "@type": "CatalogRequestMessage"},
    )  # fmt: skip
    return {"catalog": catalog, "next": response.links.get("next", {}).get("url")}


class DatasetRequestIn(Model):
    counter_party_id: str = Field(alias="counterPartyId", min_length=1, max_length=2048)
    counter_party_address: HttpUrl = Field(
        alias="counterPartyAddress", min_length=1, max_length=2048
    )
    """The peer's DSP base URL."""
    dataset_id: Identifier = Field(alias="datasetId")
    """The dataset's ``@id`` in the peer's catalogue (an asset id there)."""


@router.post("/catalog/dataset/request", response_model=DatasetView)
async def request_dataset(
    body: DatasetRequestIn, participant: ParticipantDep, request: Request
) -> dict[str, Any]:
    """Ask a peer for one dataset of its catalogue, with its offers (DSP's ``GET
    /catalog/datasets/{id}``, DCP-authenticated; as the peer's access policies admit this
    connector): the dataset as received. One the peer does not show: its 404 as a typed 502
    (``peer_refused``, ``peerStatus`` 404)."""
    url = f"{body.counter_party_address.rstrip('/')}/catalog/datasets/{segment(body.dataset_id)}"
    _response, dataset = await _ask_peer(request, participant, body.counter_party_id, "GET", url)
    if dataset.get("@id") != body.dataset_id:  # another dataset than the one asked for
        raise ManagementError(
            502, "peer_refused", f"{url} answered another dataset ({str(dataset.get('@id'))[:300]})"
        )
    return {"dataset": dataset}
