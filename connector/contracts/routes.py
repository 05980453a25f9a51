"""The data contracts API for applications (X-Api-Key, like the management API)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from connector.contracts.service import ContractError, DataContracts, DataRequest
from connector.deps import require_manager
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
            DataRequest(body.provider, body.provider_address, body.dataset, body.purpose)
        )
    except ContractError as error:
        return JSONResponse(error.body(), status_code=error.status)
