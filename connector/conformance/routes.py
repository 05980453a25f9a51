"""The DSP TCK's two initiation webhooks (conformance mode only; without it these paths do not
exist and answer 404): the kit asks this connector, as consumer, to start a negotiation or a
transfer with the kit as provider. Authenticated with the kit's static token.

- ``POST /conformance/negotiations/initiate`` ``{datasetId, offerId, providerId,
  connectorAddress}``: a ContractRequestMessage to ``<connectorAddress>/negotiations/request``
  whose offer is ``offerId`` for ``datasetId``;
- ``POST /conformance/transfers/initiate`` ``{agreementId, format, providerId,
  connectorAddress}``: a TransferRequestMessage to ``<connectorAddress>/transfers/request``.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from anyio.to_thread import run_sync
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connector.deps import NegotiationsDep, SettingsDep, TransfersDep, conformance_peer
from identity.verifier import Peer
from service.http import BadRequestError, error_body, read_json
from service.refusals import refusals

router = APIRouter(
    prefix="/conformance", tags=["conformance testing"],
    responses=refusals(400, 401, 409, 413, 422, 503),
)  # fmt: skip


class ConformanceError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message

    def response(self) -> JSONResponse:
        return JSONResponse(error_body("ConformanceError", self.reason, self.message), self.status)


async def _kit(request: Request, authorization: Annotated[str | None, Header()] = None) -> Peer:
    peer = conformance_peer(request, authorization)
    if peer is None:
        raise ConformanceError(
            401, "not_authorized", "the initiation webhooks need the kit's token"
        )
    return peer


KitDep = Annotated[Peer, Depends(_kit)]


class Initiation(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    provider_id: str = Field(alias="providerId", min_length=1, max_length=2048)
    connector_address: str = Field(alias="connectorAddress", min_length=1, max_length=2048)

    @field_validator("connector_address")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("connectorAddress must be an http(s) URL")
        return value.rstrip("/")


AnyInitiation = TypeVar("AnyInitiation", bound=Initiation)


class NegotiationInitiation(Initiation):
    dataset_id: str = Field(alias="datasetId", min_length=1, max_length=300)
    offer_id: str = Field(alias="offerId", min_length=1, max_length=500)


class TransferInitiation(Initiation):
    agreement_id: str = Field(alias="agreementId", min_length=1, max_length=300)
    format: str = Field(min_length=1, max_length=100)


async def _read(http: Request, model: type[AnyInitiation], kit: Peer, limit: int) -> AnyInitiation:
    try:
        initiation = model.model_validate(await read_json(http, limit))
    except BadRequestError as error:
        raise ConformanceError(error.status, error.reason, error.message) from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(body)"
        raise ConformanceError(400, "malformed_request", f"{where}: {first['msg']}") from None
    if initiation.provider_id != kit.did:
        raise ConformanceError(
            400, "unknown_provider", f"only the test kit ({kit.did}) can be named as provider"
        )
    return initiation


@router.post("/negotiations/initiate")
async def initiate_negotiation(
    http: Request, kit: KitDep, settings: SettingsDep, negotiations: NegotiationsDep
) -> dict[str, Any]:
    initiation = await _read(http, NegotiationInitiation, kit, settings.max_body_bytes)
    offer = {
        "@id": initiation.offer_id,
        "@type": "Offer",
        "permission": [{"action": "use"}],
        "assigner": initiation.provider_id,
    }
    record = await run_sync(
        negotiations.request,
        initiation.provider_id,
        initiation.connector_address,
        offer,
        initiation.dataset_id,
        None,
    )
    return {"@id": record.id, "state": record.state}


@router.post("/transfers/initiate")
async def initiate_transfer(
    http: Request, kit: KitDep, settings: SettingsDep, transfers: TransfersDep
) -> dict[str, Any]:
    initiation = await _read(http, TransferInitiation, kit, settings.max_body_bytes)
    record = await run_sync(
        transfers.request,
        initiation.provider_id,
        initiation.connector_address,
        initiation.agreement_id,
        initiation.format,
        None,
    )
    return {"@id": record.id, "state": record.state}
