"""DSP 2025-1 contract negotiation endpoints (Contract Negotiation HTTPS Binding): the provider
paths under ``/dsp/negotiations`` and the consumer callbacks under ``/dsp/callback/negotiations``.
Every request is authenticated (DCP); the work is done by ``process.Negotiations``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session

from connector.deps import NegotiationsDep, SettingsDep, peer_dependency, read_message
from connector.negotiation.machine import Role
from connector.negotiation.messages import (
    ContractAgreementMessage,
    ContractAgreementVerificationMessage,
    ContractNegotiationEventMessage,
    ContractNegotiationTerminationMessage,
    ContractOfferMessage,
    ContractRequestMessage,
)
from connector.negotiation.process import ERROR_TYPE
from connector.protocol import DspError
from identity.verifier import Peer

provider = APIRouter(prefix="/dsp/negotiations", tags=["dsp negotiation"])
consumer = APIRouter(prefix="/dsp/callback/negotiations", tags=["dsp negotiation callbacks"])
PeerDep = Annotated[Peer, Depends(peer_dependency(ERROR_TYPE))]


def _same(path_pid: str, message_pid: str | None) -> None:
    if message_pid != path_pid:
        raise DspError(
            400, ERROR_TYPE, "pid_mismatch", "the pid in the path and in the message differ"
        )


@provider.get("/{provider_pid}")
def get_negotiation(
    provider_pid: str, peer: PeerDep, negotiations: NegotiationsDep
) -> dict[str, Any]:
    with Session(negotiations.engine) as session:
        return negotiations.ack(negotiations.load(session, Role.PROVIDER, peer.did, provider_pid))


@provider.post("/request", status_code=201)
async def request(
    http: Request, peer: PeerDep, negotiations: NegotiationsDep, settings: SettingsDep
) -> JSONResponse:
    message = await read_message(http, ContractRequestMessage, ERROR_TYPE)
    if message.provider_pid is not None:
        raise DspError(
            400, ERROR_TYPE, "malformed_message", "an initial request has no providerPid"
        )
    status, body = negotiations.receive_request(peer, message)
    return JSONResponse(body, status_code=status)


@provider.post("/{provider_pid}/request")
async def counter_request(
    provider_pid: str,
    http: Request,
    peer: PeerDep,
    negotiations: NegotiationsDep,
    settings: SettingsDep,
) -> JSONResponse:
    message = await read_message(http, ContractRequestMessage, ERROR_TYPE)
    _same(provider_pid, message.provider_pid)
    status, body = negotiations.receive_request(peer, message)
    return JSONResponse(body, status_code=status)


@provider.post("/{provider_pid}/events")
async def provider_event(
    provider_pid: str,
    http: Request,
    peer: PeerDep,
    negotiations: NegotiationsDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    message = await read_message(http, ContractNegotiationEventMessage, ERROR_TYPE)
    _same(provider_pid, message.provider_pid)
    return negotiations.receive_event(peer, Role.PROVIDER, provider_pid, message)


@provider.post("/{provider_pid}/agreement/verification")
async def verification(
    provider_pid: str,
    http: Request,
    peer: PeerDep,
    negotiations: NegotiationsDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    message = await read_message(http, ContractAgreementVerificationMessage, ERROR_TYPE)
    _same(provider_pid, message.provider_pid)
    return negotiations.receive_verification(peer, provider_pid, message)


@provider.post("/{provider_pid}/termination")
async def provider_termination(
    provider_pid: str,
    http: Request,
    peer: PeerDep,
    negotiations: NegotiationsDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    message = await read_message(http, ContractNegotiationTerminationMessage, ERROR_TYPE)
    _same(provider_pid, message.provider_pid)
    return negotiations.receive_termination(peer, Role.PROVIDER, provider_pid, message)


@consumer.post("/offers", status_code=201)
async def initial_offer(
    http: Request, peer: PeerDep, negotiations: NegotiationsDep
) -> JSONResponse:
    """A provider starts a negotiation with us (Contract Negotiation HTTPS Binding)."""
    message = await read_message(http, ContractOfferMessage, ERROR_TYPE)
    status, body = negotiations.receive_initial_offer(peer, message)
    return JSONResponse(body, status_code=status)


@consumer.post("/{consumer_pid}/offers")
async def offer(
    consumer_pid: str,
    http: Request,
    peer: PeerDep,
    negotiations: NegotiationsDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    message = await read_message(http, ContractOfferMessage, ERROR_TYPE)
    _same(consumer_pid, message.consumer_pid)
    return negotiations.receive_offer(peer, consumer_pid, message)


@consumer.post("/{consumer_pid}/agreement")
async def agreement(
    consumer_pid: str,
    http: Request,
    peer: PeerDep,
    negotiations: NegotiationsDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    message = await read_message(http, ContractAgreementMessage, ERROR_TYPE)
    _same(consumer_pid, message.consumer_pid)
    return negotiations.receive_agreement(peer, consumer_pid, message)


@consumer.post("/{consumer_pid}/events")
async def consumer_event(
    consumer_pid: str,
    http: Request,
    peer: PeerDep,
    negotiations: NegotiationsDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    message = await read_message(http, ContractNegotiationEventMessage, ERROR_TYPE)
    _same(consumer_pid, message.consumer_pid)
    return negotiations.receive_event(peer, Role.CONSUMER, consumer_pid, message)


@consumer.post("/{consumer_pid}/termination")
async def consumer_termination(
    consumer_pid: str,
    http: Request,
    peer: PeerDep,
    negotiations: NegotiationsDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    message = await read_message(http, ContractNegotiationTerminationMessage, ERROR_TYPE)
    _same(consumer_pid, message.consumer_pid)
    return negotiations.receive_termination(peer, Role.CONSUMER, consumer_pid, message)
