"""``dataspace connector onboard``'s wait: after the credential request is sent, ask the
authority how it stands (DCP ``GET /requests/{id}``, with a fresh self-issued ID token each
time) until its operator has decided, and say what happens next.

The credentials themselves are delivered by the authority to the connector's Credential
Service: the connector must be running to receive them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

import httpx

from identity.participant import Participant

WAITING: Final = "RECEIVED"


class StatusError(Exception):
    """The authority's answer about the request could not be had."""


async def request_status(
    participant: Participant, client: httpx.AsyncClient, authority: str, request_id: str
) -> str:
    """The request's DCP status: ``RECEIVED``, ``ISSUED`` or ``REJECTED``."""
    document = await participant.resolver.resolve(authority)
    service = document.service("IssuerService")
    if service is None:
        raise StatusError(f"{authority} publishes no IssuerService")
    url = f"{service.endpoint.rstrip('/')}/requests/{request_id}"
    headers = {"Authorization": "Bearer " + participant.sts.id_token(authority)}
    try:
        response = await client.get(url, headers=headers)
    except httpx.HTTPError as error:
        raise StatusError(f"{url}: unreachable ({type(error).__name__})") from None
    if response.status_code != httpx.codes.OK:
        raise StatusError(f"{url} answered {response.status_code}: {response.text[:300]}")
    try:
        status = response.json()["status"]
    except (ValueError, KeyError, TypeError):
        raise StatusError(f"{url} did not answer a CredentialStatus") from None
    return str(status)


async def wait_for_decision(
    participant: Participant,
    client: httpx.AsyncClient,
    authority: str,
    request_id: str,
    *,
    timeout_s: float,
    interval_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Poll until the status is no longer ``RECEIVED`` or ``timeout_s`` has passed; the last
    status seen."""
    deadline = clock() + timeout_s
    status = await request_status(participant, client, authority, request_id)
    while status == WAITING and clock() < deadline:
        await asyncio.sleep(min(interval_s, max(deadline - clock(), 0.0)))
        status = await request_status(participant, client, authority, request_id)
    return status
