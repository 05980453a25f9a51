"""The data plane's HTTP endpoints: the data itself (bearer token from the transfer's data
address), token refresh, and duty receipts from consumers (DCP-authenticated). Duties are
listed and fulfilled through the management API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from connector.dataplane.duties import Duties, DutyRequestError
from connector.dataplane.grants import PSI_PATH, RECEIPT_PATH, TOKEN_PATH
from connector.dataplane.matchruns import FRAMES_TYPE, MatchingRuns, pack
from connector.dataplane.plane import DataPlane, DataPlaneError
from connector.dataplane.response import AccessResponse
from connector.dataplane.store import DutyRecord
from connector.deps import ParticipantDep, peer_dependency, require_manager
from connector.negotiation.machine import Role
from connector.protocol import DspErrorBody
from identity.errors import IdentityError
from identity.verifier import Peer
from matching.machine import Mode
from service.http import BadRequestError, read_json
from service.refusals import ErrorBody, refusals

public = APIRouter(
    tags=["data plane"],
    responses=refusals(400, 401, 403, 404, 409, 410, 413, 416, 422, 502, 503),
)  # fmt: skip
management = APIRouter(
    prefix="/management/v1", tags=["management"], dependencies=[Depends(require_manager)],
    responses=refusals(400, 401, 404, 409, 413, 422, 503),
)  # fmt: skip
PeerDep = Annotated[Peer, Depends(peer_dependency("DataPlaneError"))]


async def get_dataplane(request: Request) -> DataPlane:
    dataplane: DataPlane = request.app.state.dataplane
    return dataplane


async def get_duties(request: Request) -> Duties:
    duties: Duties = request.app.state.duties
    return duties


def get_matching_runs(request: Request) -> MatchingRuns:
    runs: MatchingRuns = request.app.state.matching_runs
    return runs


DataPlaneDep = Annotated[DataPlane, Depends(get_dataplane)]
MatchingRunsDep = Annotated[MatchingRuns, Depends(get_matching_runs)]
RunId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
DutiesDep = Annotated[Duties, Depends(get_duties)]


def problem(error: DataPlaneError) -> JSONResponse:
    headers = {"WWW-Authenticate": f'Bearer error="{error.code}"'} if error.status == 401 else None
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


@public.get(
    "/dataplane/v1/data",
    responses={200: {"description": "the data"}, 206: {"description": "one byte range"}},
)
async def data(
    dataplane: DataPlaneDep,
    authorization: Annotated[str | None, Header()] = None,
    range: Annotated[str | None, Header()] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    """The data of a started transfer (Authorization: Bearer <token of its data address>),
    streamed; one HTTP byte range for files and HTTP backends. Every request is decided by the
    agreement's policy; refusals are typed ``DataPlaneError`` bodies."""
    try:
        admitted, body, access_id = await dataplane.open(authorization, range, accept)
    except DataPlaneError as error:
        return problem(error)

    def finish(outcome: str, sent: int, rows: int | None, reason: str | None) -> None:
        dataplane.finish(access_id, outcome, sent, rows, reason)

    def progress(sent: int) -> None:
        dataplane.progress(access_id, sent)

    del admitted
    return AccessResponse(body, finish, progress)


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    client_items: int = Field(alias="clientItems", ge=1, le=1 << 24)
    mode: Mode


FRAMES = {"description": "PSI frames, each after its length (4 bytes, big-endian)",
          "content": {FRAMES_TYPE: {}}}  # fmt: skip


@public.post(PSI_PATH + "/runs", status_code=201, responses={503: {"description": "busy"}})
async def start_run(
    request: Request,
    runs: MatchingRunsDep,
    authorization: Annotated[str | None, Header()] = None,
) -> Any:
    """A matching run of a started PSI-PULL transfer (Authorization: Bearer <token of its data
    address>), for ``clientItems`` identifiers and the ``mode`` asked: decided by the
    agreement's policy (runs, set size, output) and counted like a download."""
    try:
        raw = await read_json(request, 4096)
        body = RunIn.model_validate(raw)
    except BadRequestError as error:
        return problem(DataPlaneError(error.status, error.reason, error.message))
    except ValueError as error:
        return problem(DataPlaneError(400, "malformed_request", str(error)[:500]))
    try:
        return JSONResponse(
            await runs.start(authorization, body.client_items, body.mode), status_code=201
        )
    except DataPlaneError as error:
        return problem(error)


@public.get(PSI_PATH + "/runs/{run_id}/setup", responses={200: FRAMES})
async def run_setup(
    run_id: RunId, runs: MatchingRunsDep, authorization: Annotated[str | None, Header()] = None
) -> Any:
    """The server setup of the run's data version, in frames (a consumer that holds this
    version's setup need not fetch it)."""
    try:
        frames = await runs.setup(authorization, run_id)
    except DataPlaneError as error:
        return problem(error)
    return StreamingResponse(pack(frames), media_type=FRAMES_TYPE)


@public.post(PSI_PATH + "/runs/{run_id}/messages", responses={200: FRAMES})
async def run_message(
    run_id: RunId,
    request: Request,
    runs: MatchingRunsDep,
    authorization: Annotated[str | None, Header()] = None,
) -> Any:
    """One frame of the run (its start, then each request chunk, in order); the answer holds
    the response frames ready now, and after the last request chunk all the others. A frame
    that is refused ends the run."""
    try:
        frame = await request.body()
        frames = await runs.exchange(authorization, run_id, frame)
    except DataPlaneError as error:
        return problem(error)
    return StreamingResponse(pack(frames), media_type=FRAMES_TYPE)


@public.get(PSI_PATH + "/runs/{run_id}/responses", responses={200: FRAMES})
async def run_responses(
    run_id: RunId, runs: MatchingRunsDep, authorization: Annotated[str | None, Header()] = None
) -> Any:
    """The run's next response frames (at most 16 an answer), once every request chunk is
    in; asked for until the consumer has every answer."""
    try:
        frames = await runs.exchange(authorization, run_id, None)
    except DataPlaneError as error:
        return problem(error)
    return StreamingResponse(pack(frames), media_type=FRAMES_TYPE)


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    refresh_token: str = Field(alias="refreshToken", min_length=1, max_length=200)


@public.post(TOKEN_PATH)
async def refresh(
    request: Request,
    dataplane: DataPlaneDep,
    authorization: Annotated[str | None, Header()] = None,
) -> Any:
    """A new token pair for a running transfer: Authorization carries the current (possibly
    expired) access token, the body its refresh token. Both old ones stop working."""
    try:
        raw = await read_json(request, 4096)
        body = RefreshIn.model_validate(raw)
    except BadRequestError as error:
        return problem(DataPlaneError(error.status, error.reason, error.message))
    except ValueError as error:
        return problem(DataPlaneError(400, "malformed_request", str(error)[:500]))
    try:
        return await anyio.to_thread.run_sync(dataplane.refresh, authorization, body.refresh_token)
    except DataPlaneError as error:
        await anyio.to_thread.run_sync(dataplane.refused, error, None, None)
        return problem(error)


class ReceiptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    receipt: str = Field(min_length=1, max_length=16_384)


@public.post(
    RECEIPT_PATH,
    # the caller is authenticated the DCP way: its refusal is a typed DSP error
    responses=refusals(401, 403, model=ErrorBody | DspErrorBody),
)
async def receipt(
    request: Request, peer: PeerDep, participant: ParticipantDep, duties: DutiesDep
) -> Any:
    """A consumer's signed receipt that it did a duty (e.g. deleted the data)."""
    try:
        body = ReceiptIn.model_validate(await read_json(request, 32 * 1024))
    except BadRequestError as error:
        return problem(DataPlaneError(error.status, error.reason, error.message))
    except ValueError as error:
        return problem(DataPlaneError(400, "malformed_request", str(error)[:500]))
    try:
        document = await participant.resolver.resolve(peer.did)
    except IdentityError as error:
        return problem(DataPlaneError(400, "unresolvable_did", error.message))
    try:
        record = await anyio.to_thread.run_sync(duties.receipt, peer.did, body.receipt, document)
    except DutyRequestError as error:
        return problem(DataPlaneError(error.status, error.code, error.message))
    return duty_view(record)


def duty_view(record: DutyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "role": record.role,
        "agreementId": record.agreement_id,
        "counterPartyId": record.counterparty,
        "action": record.action,
        "party": record.party,
        "deadline": record.deadline.isoformat() if record.deadline else None,
        "state": record.state,
        "receipt": record.evidence,
        "settledAt": record.settled_at.isoformat() if record.settled_at else None,
    }


class PerformedIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    performed_at: datetime | None = Field(default=None, alias="performedAt")


@management.get("/duties")
def list_duties(
    duties: DutiesDep,
    role: Role | None = None,
    agreement_id: Annotated[str | None, Query(alias="agreementId", max_length=300)] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The duties of our agreements, as consumer or provider, with their state."""
    records = duties.list(role=role, agreement_id=agreement_id, offset=offset, limit=limit + 1)
    return {
        "items": [duty_view(r) for r in records[:limit]],
        "offset": offset,
        "limit": limit,
        "next": offset + limit if len(records) > limit else None,
    }


@management.post("/duties/{duty_id:path}/performed")
def performed(duty_id: str, body: PerformedIn, duties: DutiesDep) -> Any:
    """The application did the duty (e.g. deleted the data): a signed receipt goes to the
    provider and the duty is fulfilled on both sides."""
    if body.performed_at is not None and body.performed_at.tzinfo is None:
        return problem(DataPlaneError(400, "malformed_request", "performedAt needs a time zone"))
    try:
        return duty_view(duties.performed(duty_id, body.performed_at))
    except DutyRequestError as error:
        return problem(DataPlaneError(error.status, error.code, error.message))
