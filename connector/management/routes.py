"""The data holder's management API (API key from settings, header X-Api-Key): assets, policy
definitions (linted before they are stored), contract definitions. Paginated and filtered
lists. The data address of an asset is shown here, never in the catalogue."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from connector.catalog.domains import Domains
from connector.catalog.store import Asset, ContractDefinition, PolicyDefinition
from connector.dataplane.sources import AddressError, SourceRules
from connector.deps import (
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
from connector.negotiation.machine import Role, State
from connector.negotiation.store import ContractNegotiationRecord
from connector.protocol import DSP_CONTEXT, DspError
from connector.transfer.machine import Event as TransferEvent
from connector.transfer.machine import State as TransferState
from connector.transfer.store import TransferProcessRecord
from identity.presentations import EVERY_SCOPE
from matching.identifiers import Kind
from policy.jsonld import read_policy, write_policy
from policy.lint import Severity, lint
from policy.operands import Grade, check_region
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
    region: str | None = None
    version: str | None = Field(default=None, max_length=50)
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
        "region": asset.region,
        "version": asset.version,
        "dataAddress": json.loads(asset.data_address),
        "createdAt": asset.created_at.isoformat(),
    }


def _conflict(kind: str, identifier: str) -> ManagementError:
    return ManagementError(409, "exists", f"{kind} {identifier} exists already")


def _page(items: list[Any], offset: int, limit: int) -> dict[str, Any]:
    return {
        "items": items[:limit],
        "offset": offset,
        "next": offset + limit if len(items) > limit else None,
    }


Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Limit = Annotated[int, Query(ge=1, le=500)]


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


@router.get("/domains")
def list_domains(settings: SettingsDep) -> dict[str, Any]:
    """The scenario domains an asset may name (the city plan's 14 unless the deployment gave
    its own list), with their Chinese and English names."""
    return {"items": settings.domains.view()}


@router.post("/assets", status_code=201)
def create_asset(
    body: AssetIn,
    engine: EngineDep,
    participant: ParticipantDep,
    settings: SettingsDep,
    rules: SourceRulesDep,
    matching_sets: MatchingSetsDep,
) -> dict[str, Any]:
    """An asset; a matching set (``dataAddress.matching``) has its PSI setup computed now, in
    the background, and again whenever its data changes."""
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
    asset = Asset(
        id=body.id,
        title_zh=body.title_zh,
        title_en=body.title_en,
        description_zh=body.description_zh,
        description_en=body.description_en,
        keywords=json.dumps(body.keywords, ensure_ascii=False),
        domain=body.domain,
        data_grade=body.data_grade.value,
        personal_information=body.personal_information,
        region=body.region,
        version=body.version,
        data_address=body.data_address.model_dump_json(exclude_none=True),
        created_at=participant.clock(),
    )
    with Session(engine) as session:
        session.add(asset)
        try:
            session.commit()
        except IntegrityError:
            raise _conflict("asset", body.id) from None
        session.refresh(asset)
        if body.data_address.matching is not None and matching_sets is not None:
            matching_sets.publish(asset.id, json.loads(asset.data_address))
        return asset_view(asset, domains)


@router.get("/assets")
def list_assets(
    engine: EngineDep,
    settings: SettingsDep,
    offset: Offset = 0,
    limit: Limit = 50,
    domain: str | None = None,
    region: str | None = None,
    data_grade: Annotated[Grade | None, Query(alias="dataGrade")] = None,
) -> dict[str, Any]:
    query = select(Asset).order_by(col(Asset.id))
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


@router.get("/assets/{asset_id:path}")
def get_asset(asset_id: str, engine: EngineDep, settings: SettingsDep) -> dict[str, Any]:
    with Session(engine) as session:
        asset = session.get(Asset, asset_id)
    if asset is None:
        raise ManagementError(404, "not_found", f"no asset {asset_id}")
    return asset_view(asset, settings.domains)


@router.delete("/assets/{asset_id:path}", status_code=204)
def delete_asset(asset_id: str, engine: EngineDep, matching_sets: MatchingSetsDep) -> Response:
    with Session(engine) as session:
        asset = session.get(Asset, asset_id)
        if asset is None:
            raise ManagementError(404, "not_found", f"no asset {asset_id}")
        session.delete(asset)
        session.commit()
    if matching_sets is not None:
        matching_sets.forget(asset_id)
    return Response(status_code=204)


@router.post("/policydefinitions", status_code=201)
def create_policy(
    body: PolicyDefinitionIn, engine: EngineDep, participant: ParticipantDep
) -> dict[str, Any]:
    """Lint first: a policy with errors is refused with the findings; warnings are returned."""
    findings = lint(body.policy, participant.clock())
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:
        raise ManagementError(
            400,
            "policy_rejected",
            "; ".join(str(f) for f in errors),
        )
    written = write_policy(read_policy(body.policy))
    record = PolicyDefinition(
        id=body.id, policy=json.dumps(written, ensure_ascii=False), created_at=participant.clock()
    )
    with Session(engine) as session:
        session.add(record)
        try:
            session.commit()
        except IntegrityError:
            raise _conflict("policy definition", body.id) from None
    return {"id": body.id, "policy": written, "warnings": [str(f) for f in findings]}


@router.get("/policydefinitions")
def list_policies(engine: EngineDep, offset: Offset = 0, limit: Limit = 50) -> dict[str, Any]:
    with Session(engine) as session:
        rows = session.exec(
            select(PolicyDefinition)
            .order_by(col(PolicyDefinition.id))
            .offset(offset)
            .limit(limit + 1)
        ).all()
    return _page([{"id": r.id, "policy": json.loads(r.policy)} for r in rows], offset, limit)


@router.post("/contractdefinitions", status_code=201)
def create_contract_definition(
    body: ContractDefinitionIn, engine: EngineDep, participant: ParticipantDep
) -> dict[str, Any]:
    selector = body.asset_selector.model_dump(by_alias=True, exclude_none=True, mode="json")
    with Session(engine) as session:
        for policy_id in (body.access_policy_id, body.contract_policy_id):
            if session.get(PolicyDefinition, policy_id) is None:
                raise ManagementError(404, "not_found", f"no policy definition {policy_id}")
        session.add(
            ContractDefinition(
                id=body.id,
                access_policy_id=body.access_policy_id,
                contract_policy_id=body.contract_policy_id,
                asset_selector=json.dumps(selector),
                created_at=participant.clock(),
            )
        )
        try:
            session.commit()
        except IntegrityError:
            raise _conflict("contract definition", body.id) from None
    return {
        "id": body.id,
        "accessPolicyId": body.access_policy_id,
        "contractPolicyId": body.contract_policy_id,
        "assetSelector": selector,
    }


@router.get("/contractdefinitions")
def list_contract_definitions(
    engine: EngineDep, offset: Offset = 0, limit: Limit = 50
) -> dict[str, Any]:
    with Session(engine) as session:
        rows = session.exec(
            select(ContractDefinition)
            .order_by(col(ContractDefinition.id))
            .offset(offset)
            .limit(limit + 1)
        ).all()
    return _page(
        [
            {
                "id": r.id,
                "accessPolicyId": r.access_policy_id,
                "contractPolicyId": r.contract_policy_id,
                "assetSelector": json.loads(r.asset_selector),
            }
            for r in rows
        ],
        offset,
        limit,
    )


# --- negotiations ----------------------------------------------------------------------------


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
        "createdAt": record.created_at.isoformat(),
        "updatedAt": record.updated_at.isoformat(),
    }


def _as_management(error: DspError) -> ManagementError:
    # Our own operator's illegal move is a conflict with the negotiation's state (409).
    status = 409 if error.code == "illegal_transition" else error.status
    return ManagementError(status, error.code, error.reason)


@router.post("/negotiations", status_code=201)
def start_negotiation(body: NegotiationIn, negotiations: NegotiationsDep) -> dict[str, Any]:
    try:
        record = negotiations.request(
            body.counter_party_id, body.counter_party_address, body.offer, body.target, body.purpose
        )
    except DspError as error:
        raise _as_management(error) from None
    return negotiation_view(record)


@router.get("/negotiations")
def list_negotiations(
    negotiations: NegotiationsDep,
    offset: Offset = 0,
    limit: Limit = 50,
    role: Role | None = None,
    state: State | None = None,
) -> dict[str, Any]:
    rows = negotiations.list(role=role, state=state, offset=offset, limit=limit + 1)
    return _page([negotiation_view(r) for r in rows], offset, limit)


@router.get("/negotiations/{negotiation_id:path}/state")
def negotiation_state(negotiation_id: str, engine: EngineDep) -> dict[str, Any]:
    return {"state": _negotiation(engine, negotiation_id).state}


@router.get("/negotiations/{negotiation_id:path}")
def get_negotiation(negotiation_id: str, engine: EngineDep) -> dict[str, Any]:
    return negotiation_view(_negotiation(engine, negotiation_id))


def _negotiation(engine: Any, negotiation_id: str) -> ContractNegotiationRecord:
    with Session(engine) as session:
        record = session.get(ContractNegotiationRecord, negotiation_id)
    if record is None:
        raise ManagementError(404, "not_found", f"no negotiation {negotiation_id}")
    return record


@router.post("/negotiations/{negotiation_id:path}/terminate")
def terminate_negotiation(
    negotiation_id: str, body: TerminationIn, negotiations: NegotiationsDep
) -> dict[str, Any]:
    try:
        return negotiation_view(negotiations.terminate(negotiation_id, body.code, body.reason))
    except DspError as error:
        raise _as_management(error) from None


@router.post("/negotiations/{negotiation_id:path}/approve")
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


@router.post("/negotiations/offers", status_code=201)
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


@router.post("/negotiations/{negotiation_id:path}/accept")
def accept_offer(
    negotiation_id: str, negotiations: NegotiationsDep, body: AcceptIn | None = None
) -> dict[str, Any]:
    try:
        return negotiation_view(negotiations.accept(negotiation_id, body.purpose if body else None))
    except DspError as error:
        raise _as_management(error) from None


@router.post("/negotiations/{negotiation_id:path}/counter")
def counter(negotiation_id: str, body: CounterIn, negotiations: NegotiationsDep) -> dict[str, Any]:
    try:
        return negotiation_view(negotiations.counter(negotiation_id, body.offer))
    except DspError as error:
        raise _as_management(error) from None


@router.post("/negotiations/{negotiation_id:path}/finalize")
def finalize_agreement(negotiation_id: str, negotiations: NegotiationsDep) -> dict[str, Any]:
    try:
        return negotiation_view(negotiations.finalize(negotiation_id))
    except DspError as error:
        raise _as_management(error) from None


@router.post("/negotiations/{negotiation_id:path}/verify")
def verify_agreement(negotiation_id: str, negotiations: NegotiationsDep) -> dict[str, Any]:
    try:
        return negotiation_view(negotiations.verify(negotiation_id))
    except DspError as error:
        raise _as_management(error) from None


@router.get("/agreements")
def list_agreements(
    negotiations: NegotiationsDep, offset: Offset = 0, limit: Limit = 50
) -> dict[str, Any]:
    rows = negotiations.list(role=None, state=State.FINALIZED, offset=offset, limit=limit + 1)
    return _page(
        [
            {
                "agreement": json.loads(r.agreement or "null"),
                "negotiationId": r.id,
                "role": r.role,
                "counterPartyId": r.counterparty,
            }
            for r in rows
        ],
        offset,
        limit,
    )


# --- transfers -------------------------------------------------------------------------------


class TransferIn(Model):
    counter_party_id: str = Field(alias="counterPartyId", min_length=1, max_length=2048)
    counter_party_address: HttpUrl = Field(
        alias="counterPartyAddress", min_length=1, max_length=2048
    )
    agreement_id: Identifier = Field(alias="agreementId")
    format: Literal["HttpData-PULL", "HttpData-PUSH", "PSI-PULL"] = "HttpData-PULL"
    data_address: dict[str, Any] | None = Field(default=None, alias="dataAddress")


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
        "createdAt": record.created_at.isoformat(),
        "updatedAt": record.updated_at.isoformat(),
    }


@router.post("/transfers", status_code=201)
def start_transfer(body: TransferIn, transfers: TransfersDep) -> dict[str, Any]:
    try:
        record = transfers.request(
            body.counter_party_id,
            body.counter_party_address,
            body.agreement_id,
            body.format,
            body.data_address,
        )
    except DspError as error:
        raise _as_management(error) from None
    return transfer_view(record)


@router.get("/transfers")
def list_transfers(
    transfers: TransfersDep,
    offset: Offset = 0,
    limit: Limit = 50,
    role: Role | None = None,
    state: TransferState | None = None,
) -> dict[str, Any]:
    return _page(
        [
            transfer_view(r)
            for r in transfers.list(role=role, state=state, offset=offset, limit=limit + 1)
        ],
        offset,
        limit,
    )


@router.get("/transfers/{transfer_id:path}")
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


@router.post("/transfers/{transfer_id:path}/start")
def start_held_transfer(transfer_id: str, body: MoveIn, transfers: TransfersDep) -> dict[str, Any]:
    """Provider, manual mode: start a transfer held for a person (its policy admitted it)."""
    return _transfer_move(transfers, transfer_id, TransferEvent.START, body)


@router.post("/transfers/{transfer_id:path}/suspend")
def suspend_transfer(transfer_id: str, body: MoveIn, transfers: TransfersDep) -> dict[str, Any]:
    return _transfer_move(transfers, transfer_id, TransferEvent.SUSPEND, body)


@router.post("/transfers/{transfer_id:path}/resume")
def resume_transfer(transfer_id: str, body: MoveIn, transfers: TransfersDep) -> dict[str, Any]:
    return _transfer_move(transfers, transfer_id, TransferEvent.START, body)


@router.post("/transfers/{transfer_id:path}/complete")
def complete_transfer(transfer_id: str, body: MoveIn, transfers: TransfersDep) -> dict[str, Any]:
    return _transfer_move(transfers, transfer_id, TransferEvent.COMPLETE, body)


@router.post("/transfers/{transfer_id:path}/terminate")
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


@router.post("/catalog/request")
async def request_catalog(
    body: CatalogRequestIn, participant: ParticipantDep, request: Request
) -> dict[str, Any]:
    """Ask a peer for its catalogue (DCP-authenticated); the answer is returned as received."""
    token = participant.sts.bearer_for(body.counter_party_id, EVERY_SCOPE)
    url = body.counter_party_address.rstrip("/") + "/catalog/request"
    params = {"continuationToken": body.continuation_token} if body.continuation_token else None
    client: httpx.AsyncClient = request.app.state.client
    try:
        response = await client.post(
            url,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            json={"@context": [DSP_CONTEXT], "@type": "CatalogRequestMessage"},
        )
    except httpx.HTTPError as error:
        log.info("catalogue request to %s failed: %r", url, error)
        raise ManagementError(502, "peer_unreachable", f"{url}: unreachable") from None
    if response.status_code != httpx.codes.OK:
        raise ManagementError(
            502, "peer_refused", f"{url} answered {response.status_code}: {response.text[:500]}"
        )
    try:
        catalog: dict[str, Any] = response.json()
    except ValueError:
        raise ManagementError(502, "peer_refused", f"{url} did not answer JSON") from None
    return {"catalog": catalog, "next": response.links.get("next", {}).get("url")}
