"""DSP 2025-1 contract negotiation endpoints (Contract Negotiation HTTPS Binding): the provider
paths under ``/dsp/negotiations`` and the consumer callbacks under ``/dsp/callback/negotiations``.
Every request is authenticated (DCP); the work is done by ``process.Negotiations``, in a worker
thread (it reads and writes the database: the event loop must not wait for a lock)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from anyio.to_thread import run_sync
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from connector.deps import NegotiationsDep, peer_dependency, read_message
from connector.negotiation.machine import Role
from connector.negotiation.messages import (
    ContractAgreementMessage,
    ContractAgreementVerificationMessage,
    ContractNegotiationEventMessage,
    ContractNegotiationTerminationMessage,
    ContractOfferMessage,
    ContractRequestMessage,
)
from connector.negotiation.process import Negotiations
from connector.negotiation.steps import ERROR_TYPE
from connector.protocol import DSP_REFUSALS, DspError
from identity.verifier import Peer

provider = APIRouter(prefix="/dsp/negotiations", tags=["dsp negotiation"], responses=DSP_REFUSALS)
consumer = APIRouter(
    prefix="/dsp/callback/negotiations", tags=["dsp negotiation callbacks"],
    responses=DSP_REFUSALS,
)  # fmt: skip
PeerDep = Annotated[Peer, Depends(peer_dependency(ERROR_TYPE))]


def _same(path_pid: str, message_pid: str | None) -> None:
    if message_pid != path_pid:
        raise DspError(
            400, ERROR_TYPE, "pid_mismatch", "the pid in the path and in the message differ"
        )


@provider.get("/{provider_pid}")
async def get_negotiation(
    provider_pid: str, peer: PeerDep, negotiations: NegotiationsDep
) -> dict[str, Any]:
    return await negotiations.show_when_known(Role.PROVIDER, peer.did, provider_pid)


@consumer.get("/{consumer_pid}")
async def get_consumer_negotiation(
    consumer_pid: str, peer: PeerDep, negotiations: NegotiationsDep
) -> dict[str, Any]:
    """The consumer's view of a negotiation, for its provider (the DSP TCK reads it here)."""
    return await negotiations.show_when_known(Role.CONSUMER, peer.did, consumer_pid)


@provider.post("/request", status_code=201)
async def request(http: Request, peer: PeerDep, negotiations: NegotiationsDep) -> JSONResponse:
    message = await read_message(http, ContractRequestMessage, ERROR_TYPE)
    if message.provider_pid is not None:
        raise DspError(
            400, ERROR_TYPE, "malformed_message", "an initial request has no providerPid"
        )
    status, body = await run_sync(negotiations.receive_request, peer, message)
    return JSONResponse(body, status_code=status)


@provider.post("/{provider_pid}/request")
async def counter_request(
    provider_pid: str,
    http: Request,
    peer: PeerDep,
    negotiations: NegotiationsDep,
) -> JSONResponse:
    message = await read_message(http, ContractRequestMessage, ERROR_TYPE)
    _same(provider_pid, message.provider_pid)
    status, body = await run_sync(negotiations.receive_request, peer, message)
    return JSONResponse(body, status_code=status)


@consumer.post("/offers", status_code=201)
async def initial_offer(
    http: Request, peer: PeerDep, negotiations: NegotiationsDep
) -> JSONResponse:
    """A provider starts a negotiation with us (Contract Negotiation HTTPS Binding)."""
    message = await read_message(http, ContractOfferMessage, ERROR_TYPE)
    status, body = await run_sync(negotiations.receive_initial_offer, peer, message)
    return JSONResponse(body, status_code=status)


Handle = Callable[[Negotiations, Peer, str, Any], dict[str, Any]]


def _route(router: APIRouter, role: Role, suffix: str, model: type[Any], handle: Handle) -> None:
    """One endpoint of the binding: read the message, check its pid against the path, handle."""
    own = "provider_pid" if role is Role.PROVIDER else "consumer_pid"

    async def move(
        pid: str, http: Request, peer: PeerDep, negotiations: NegotiationsDep
    ) -> dict[str, Any]:
        message = await read_message(http, model, ERROR_TYPE)
        _same(pid, getattr(message, own))
        return await run_sync(handle, negotiations, peer, pid, message)

    move.__name__ = f"{role.value}_{suffix.replace('/', '_')}"
    router.add_api_route(
        f"/{{pid}}/{suffix}", move, methods=["POST"], name=f"{role.value} {suffix}"
    )


def _provider_event(n: Negotiations, peer: Peer, pid: str, m: Any) -> dict[str, Any]:
    return n.receive_event(peer, Role.PROVIDER, pid, m)


def _consumer_event(n: Negotiations, peer: Peer, pid: str, m: Any) -> dict[str, Any]:
    return n.receive_event(peer, Role.CONSUMER, pid, m)


def _provider_termination(n: Negotiations, peer: Peer, pid: str, m: Any) -> dict[str, Any]:
    return n.receive_termination(peer, Role.PROVIDER, pid, m)


def _consumer_termination(n: Negotiations, peer: Peer, pid: str, m: Any) -> dict[str, Any]:
    return n.receive_termination(peer, Role.CONSUMER, pid, m)


MOVES: list[tuple[APIRouter, Role, str, type[Any], Handle]] = [
    (provider, Role.PROVIDER, "events", ContractNegotiationEventMessage, _provider_event),
    (provider, Role.PROVIDER, "agreement/verification", ContractAgreementVerificationMessage,
     Negotiations.receive_verification),
    (provider, Role.PROVIDER, "termination", ContractNegotiationTerminationMessage,
     _provider_termination),
    (consumer, Role.CONSUMER, "offers", ContractOfferMessage, Negotiations.receive_offer),
    (consumer, Role.CONSUMER, "agreement", ContractAgreementMessage,
     Negotiations.receive_agreement),
    (consumer, Role.CONSUMER, "events", ContractNegotiationEventMessage, _consumer_event),
    (consumer, Role.CONSUMER, "termination", ContractNegotiationTerminationMessage,
     _consumer_termination),
]  # fmt: skip
for _move in MOVES:
    _route(*_move)
