"""The data contracts API for applications (X-Api-Key, like the management API)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from connector.contracts.match import Matching, MatchRequest
from connector.contracts.service import ContractError, DataContracts, DataRequest, Received
from connector.deps import require_manager
from matching.identifiers import Kind
from matching.machine import Mode
from service.http import HttpUrl
from service.refusals import refusal, refusals

router = APIRouter(
    prefix="/contracts/v1", tags=["data contracts"], dependencies=[Depends(require_manager)],
    responses=refusals(400, 401, 413, 422, 503),
)  # fmt: skip


async def get_contracts(request: Request) -> DataContracts:
    contracts: DataContracts = request.app.state.contracts
    return contracts


class DataRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    provider: str = Field(min_length=1, max_length=2048, description="the provider's DID")
    provider_address: HttpUrl = Field(
        alias="providerAddress", pattern=r"^https?://", max_length=2048,
        description="the provider's DSP base URL",
    )  # fmt: skip
    dataset: str = Field(min_length=1, max_length=300)
    purpose: str = Field(min_length=1, max_length=200)
    offer: str | None = Field(
        default=None, min_length=1, max_length=300,
        description="the offer's @id to agree to; default: the first the catalogue shows us",
    )  # fmt: skip


def get_matching(request: Request) -> Matching:
    matching: Matching = request.app.state.matching
    return matching


class MatchRequestIn(DataRequestIn):
    kind: Kind = Field(description="what the items are: uscc, id_number or mobile")
    mode: Mode = Field(default=Mode.INTERSECTION, description="intersection or cardinality")
    items: list[Annotated[str, Field(max_length=200)]] = Field(
        min_length=1, max_length=1 << 24,
        description="the identifiers to match (normalised here; invalid ones are reported)",
    )  # fmt: skip


class MatchedOut(BaseModel):
    row: int = Field(description="the item's position in ``items``, from 1")
    item: str = Field(description="the identifier as normalised")


class InvalidOut(BaseModel):
    row: int
    value: str
    reason: str


class MatchOut(BaseModel):
    agreement_id: str = Field(alias="agreementId")
    transfer_id: str = Field(alias="transferId")
    run_id: str = Field(alias="runId")
    mode: Mode
    data_version: str = Field(alias="dataVersion")
    setup_cached: bool = Field(alias="setupCached")
    client_items: int = Field(alias="clientItems")
    server_items: int = Field(alias="serverItems")
    cardinality: int
    matches: list[MatchedOut] | None
    invalid_count: int = Field(alias="invalidCount")
    invalid: list[InvalidOut]
    duplicates: int


class DataGrantOut(BaseModel):
    agreement_id: str = Field(alias="agreementId")
    transfer_id: str = Field(alias="transferId")
    reused_agreement: bool = Field(alias="reusedAgreement")
    endpoint: str
    authorization: str
    auth_type: str = Field(alias="authType")
    expires_at: str | None = Field(alias="expiresAt")
    refresh_token: str | None = Field(alias="refreshToken")
    refresh_endpoint: str | None = Field(alias="refreshEndpoint")


@router.post(
    "/data",
    response_model=DataGrantOut,
    responses={
        403: refusal("refused by the provider's policy (reasons included)"),
        404: refusal("the provider offers no such dataset to us"),
        502: refusal("the provider cannot be reached or answered badly"),
        504: refusal("the provider has not decided in time (ids included)"),
    },
)
async def request_data(
    body: DataRequestIn, contracts: Annotated[DataContracts, Depends(get_contracts)]
) -> Any:
    """This dataset from this provider, for this purpose: reuse or negotiate an agreement,
    start a pull transfer, and return its endpoint and token."""
    try:
        return await contracts.request_data(
            DataRequest(
                body.provider, body.provider_address, body.dataset, body.purpose, body.offer
            )
        )
    except ContractError as error:
        return JSONResponse(error.body(), status_code=error.status)


class ReceivedIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    transfer_id: str = Field(alias="transferId", min_length=1, max_length=100)
    bytes: int = Field(ge=0, le=2**53 - 1, description="bytes that arrived, in all")
    rows: int | None = Field(default=None, ge=0, le=2**53 - 1, description="rows, if tabular")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    complete: bool = Field(default=True, description="false: the download broke off")
    receipt_id: str | None = Field(
        default=None, alias="receiptId", min_length=1, max_length=100,
        pattern=r"^[A-Za-z0-9:._-]+$",
        description="the application's id for this report: sent again, it is recorded once",
    )  # fmt: skip


@router.post(
    "/received",
    status_code=201,
    responses={
        404: refusal("no pull transfer of ours with this id"),
        409: refusal("this receiptId was recorded with other figures"),
    },
)
async def received(
    body: ReceivedIn, contracts: Annotated[DataContracts, Depends(get_contracts)]
) -> Any:
    """What reached the application under one of our transfers (the SDK's ``download``
    reports it): recorded for the regulator's ledger, which sets it beside the bytes and
    rows the provider's data plane says it sent (reconciliation)."""
    receipt = Received(
        body.transfer_id, body.bytes, body.rows, body.sha256, body.complete, body.receipt_id
    )
    try:
        await run_in_threadpool(contracts.received, receipt)
    except ContractError as error:
        return JSONResponse(error.body(), status_code=error.status)
    return {"transferId": body.transfer_id, "recorded": True}


@router.post(
    "/match",
    response_model=MatchOut,
    responses={
        400: refusal("no valid item, or a run the provider cannot take"),
        403: refusal("refused by the provider's policy (reasons included)"),
        404: refusal("the provider offers no such dataset to us"),
        502: refusal("the provider cannot be reached or answered badly"),
        503: refusal("the provider has too many runs open"),
        504: refusal("the provider has not decided in time (ids included)"),
    },
)
async def match(body: MatchRequestIn, matching: Annotated[Matching, Depends(get_matching)]) -> Any:
    """Which of these identifiers are in the provider's matching set, for this purpose: reuse
    or negotiate an agreement, start a PSI-PULL transfer, run the private set intersection.
    The provider never sees the items; the answer holds the matches (or only their number,
    as the mode and the agreement allow) and the items that were not valid identifiers."""
    request = DataRequest(
        body.provider, body.provider_address, body.dataset, body.purpose, body.offer
    )
    try:
        return await matching.match(MatchRequest(request, body.kind, body.mode, body.items))
    except ContractError as error:
        return JSONResponse(error.body(), status_code=error.status)
