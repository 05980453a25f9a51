"""Endpoint data references (EDRs), as EDC calls them: for each pull transfer this connector
started as the consumer, the provider's data endpoint and the bearer token for it. Reading one
refreshes its token first when it has expired or expires within the margin (settings), with
the refresh token and endpoint the provider sent (``connector.dataplane.tokens``); the new pair
replaces the old in the transfer's data address, so the connector stays the one holder of the
refresh token (it is never shown). Refreshes of one transfer happen one after the other: a
refresh token is good once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio
import httpx
from sqlalchemy import Engine, update
from sqlmodel import Session, col

from connector.transfer.machine import State
from connector.transfer.store import TransferProcessRecord

CONSUMER = "consumer"
PULL_SUFFIX = "-PULL"


class EdrError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def is_edr(record: TransferProcessRecord) -> bool:
    """A started pull transfer of ours, as the consumer, with the provider's data address."""
    return (
        record.role == CONSUMER
        and record.state == State.STARTED.value
        and record.format.endswith(PULL_SUFFIX)
        and bool(record.data_address)
    )


def properties(address: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in address.get("endpointProperties", [])}


def entry(record: TransferProcessRecord) -> dict[str, Any]:
    """What a list shows of an EDR: no token."""
    address = json.loads(record.data_address or "{}")
    return {
        "transferId": record.id,
        "agreementId": record.agreement_id,
        "counterPartyId": record.counterparty,
        "format": record.format,
        "endpoint": address.get("endpoint"),
        "expiresAt": properties(address).get("expiresAt"),
        "createdAt": record.created_at.isoformat(),
    }


def _expires(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None  # unreadable: treated as expired


@dataclass
class Edrs:
    engine: Engine
    client: httpx.AsyncClient
    clock: Callable[[], datetime]
    margin: timedelta
    _locks: dict[str, tuple[asyncio.Lock, int]] = field(default_factory=dict)
    """Per transfer being read: its lock and how many readers hold or wait for it."""

    def _load(self, transfer_id: str) -> TransferProcessRecord:
        with Session(self.engine) as session:
            record = session.get(TransferProcessRecord, transfer_id)
        if record is None or not is_edr(record):
            raise EdrError(404, "not_found", f"no started pull transfer {transfer_id} of ours")
        return record

    async def read(self, transfer_id: str) -> dict[str, Any]:
        lock, users = self._locks.get(transfer_id, (asyncio.Lock(), 0))
        self._locks[transfer_id] = (lock, users + 1)
        try:
            async with lock:
                return await self._read(transfer_id)
        finally:
            lock, users = self._locks[transfer_id]
            if users == 1:
                del self._locks[transfer_id]
            else:
                self._locks[transfer_id] = (lock, users - 1)

    async def _read(self, transfer_id: str) -> dict[str, Any]:
        record = await anyio.to_thread.run_sync(self._load, transfer_id)
        address = json.loads(record.data_address or "{}")
        props = properties(address)
        expires = _expires(props.get("expiresAt"))
        refreshed = False
        if "expiresAt" in props and (expires is None or expires - self.clock() <= self.margin):
            props = await self._refresh(props)
            address["endpointProperties"] = [
                p | {"value": props[p["name"]]} if p["name"] in props else p
                for p in address.get("endpointProperties", [])
            ]
            await anyio.to_thread.run_sync(self._save, transfer_id, address)
            refreshed = True
        return entry(record) | {
            "expiresAt": props.get("expiresAt"),
            "authorization": props.get("authorization"),
            "authType": props.get("authType", "bearer"),
            "refreshed": refreshed,
        }

    async def _refresh(self, props: dict[str, str]) -> dict[str, str]:
        endpoint, token = props.get("refreshEndpoint"), props.get("authorization")
        refresh_token = props.get("refreshToken")
        if not (endpoint and token and refresh_token):
            raise EdrError(409, "not_refreshable", "the token has expired and cannot be refreshed")
        try:
            response = await self.client.post(
                endpoint,
                headers={"Authorization": f"Bearer {token}"},
                json={"refreshToken": refresh_token},
            )
        except httpx.HTTPError as error:
            raise EdrError(502, "provider_unreachable", f"{endpoint}: {error!r}"[:500]) from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != httpx.codes.OK:
            why = body.get("message") or body.get("reason") if isinstance(body, dict) else None
            said = why or response.text[:200]
            raise EdrError(
                502, "refresh_refused",
                f"the provider refused the refresh ({response.status_code}): {said}",
            )  # fmt: skip
        fields = ("authorization", "refreshToken", "expiresAt")
        if not isinstance(body, dict) or not all(isinstance(body.get(f), str) for f in fields):
            raise EdrError(502, "refresh_refused", "the provider's refresh answer is malformed")
        return props | {f: body[f] for f in fields}

    def _save(self, transfer_id: str, address: dict[str, Any]) -> None:
        """Only the data address, and only while the transfer is still started."""
        with Session(self.engine) as session:
            session.execute(
                update(TransferProcessRecord)
                .where(
                    col(TransferProcessRecord.id) == transfer_id,
                    col(TransferProcessRecord.state) == State.STARTED.value,
                )
                .values(data_address=json.dumps(address, ensure_ascii=False)),
                execution_options={"synchronize_session": False},
            )
            session.commit()
