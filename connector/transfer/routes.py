"""DSP 2025-1 transfer process endpoints (Transfer Process HTTPS Binding): provider paths under
``/dsp/transfers`` and consumer callbacks under ``/dsp/callback/transfers``. Every request is
authenticated (DCP); the work is done by ``process.Transfers``, in a worker thread (it reads
and writes the database: the event loop must not wait for a lock)."""

from __future__ import annotations

from typing import Annotated, Any

from anyio.to_thread import run_sync
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from connector.deps import TransfersDep, peer_dependency, read_message
from connector.negotiation.machine import Role
from connector.protocol import DSP_REFUSALS, DspError
from connector.transfer.messages import (
    TransferCompletionMessage,
    TransferRequestMessage,
    TransferStartMessage,
    TransferSuspensionMessage,
    TransferTerminationMessage,
)
from connector.transfer.steps import ERROR_TYPE
from identity.verifier import Peer

provider = APIRouter(prefix="/dsp/transfers", tags=["dsp transfer"], responses=DSP_REFUSALS)
consumer = APIRouter(
    prefix="/dsp/callback/transfers", tags=["dsp transfer callbacks"], responses=DSP_REFUSALS
)
PeerDep = Annotated[Peer, Depends(peer_dependency(ERROR_TYPE))]
Moves = (
    ("start", TransferStartMessage),
    ("completion", TransferCompletionMessage),
    ("termination", TransferTerminationMessage),
    ("suspension", TransferSuspensionMessage),
)


@provider.get("/{provider_pid}")
async def get_provider_transfer(
    provider_pid: str, peer: PeerDep, transfers: TransfersDep
) -> dict[str, Any]:
    return await transfers.show_when_known(Role.PROVIDER, peer.did, provider_pid)


@consumer.get("/{consumer_pid}")
async def get_consumer_transfer(
    consumer_pid: str, peer: PeerDep, transfers: TransfersDep
) -> dict[str, Any]:
    """The consumer's view, for its provider (the DSP TCK reads it, though the binding's
    consumer table does not list this GET)."""
    return await transfers.show_when_known(Role.CONSUMER, peer.did, consumer_pid)


@provider.post("/request", status_code=201)
async def request(http: Request, peer: PeerDep, transfers: TransfersDep) -> JSONResponse:
    message = await read_message(http, TransferRequestMessage, ERROR_TYPE)
    status, body = await run_sync(transfers.receive_request, peer, message)
    return JSONResponse(body, status_code=status)


def _route(router: APIRouter, role: Role, verb: str, model: type[Any]) -> None:
    own = "provider_pid" if role is Role.PROVIDER else "consumer_pid"

    async def move(
        pid: str, http: Request, peer: PeerDep, transfers: TransfersDep
    ) -> dict[str, Any]:
        message = await read_message(http, model, ERROR_TYPE)
        if getattr(message, own) != pid:
            raise DspError(
                400, ERROR_TYPE, "pid_mismatch", "the pid in the path and in the message differ"
            )
        return await run_sync(transfers.receive, peer, role, pid, message)

    move.__name__ = f"{role.value}_{verb}"
    router.add_api_route(
        f"/{{pid}}/{verb}", move, methods=["POST"], name=f"{role.value} transfer {verb}"
    )


for _verb, _model in Moves:
    _route(provider, Role.PROVIDER, _verb, _model)
    _route(consumer, Role.CONSUMER, _verb, _model)
