"""The data contracts API behind one call: "this dataset from this provider, for this purpose".

It reuses a finalized agreement for the same provider, dataset and purpose, or reads the
provider's offer for the dataset and negotiates; then starts a pull transfer and returns the
data address (endpoint and token). A refusal by either side's policy comes back typed, with the
policy's reasons. The protocol is not the application's business.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import quote

import anyio
import httpx
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from connector.audit import AuditRecord, AuditSink, Outcome
from connector.inbox import answered, digest, remember
from connector.negotiation.machine import Role
from connector.negotiation.machine import State as NegotiationState
from connector.negotiation.process import Negotiations
from connector.negotiation.store import ContractNegotiationRecord
from connector.protocol import DspError
from connector.transfer.machine import State as TransferState
from connector.transfer.process import Transfers
from connector.transfer.store import TransferProcessRecord
from identity.participant import Participant
from identity.presentations import EVERY_SCOPE
from service.http import error_body

log = logging.getLogger("kexin.connector")
POLL_S: Final = 0.05
R = TypeVar("R", ContractNegotiationRecord, TransferProcessRecord)


class ContractError(Exception):
    def __init__(
        self, status: int, code: str, message: str, reasons: list[str] | None = None, **ids: str
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.reasons = reasons or []
        self.ids = ids

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = error_body("ContractError", self.code, self.message)
        if self.reasons:
            body["reasons"] = self.reasons
        body.update(self.ids)
        return body


@dataclass(frozen=True)
class Received:
    """What the application says arrived under one of our transfers."""

    transfer_id: str
    bytes: int
    rows: int | None
    sha256: str | None
    complete: bool
    receipt_id: str | None = None
    """The application's id for this report: the same report sent again (a retry) is
    recorded once."""

    def content(self) -> dict[str, Any]:
        return {"bytes": self.bytes, "rows": self.rows, "sha256": self.sha256,
                "complete": self.complete}  # fmt: skip


@dataclass(frozen=True)
class DataRequest:
    provider: str
    provider_address: str
    dataset: str
    purpose: str
    offer: str | None = None
    """The offer (its ``@id`` in the provider's catalogue) to agree to; default: the first the
    catalogue shows us (it shows only those whose access policies admit us)."""


def _offer_id(offer_json: str) -> str | None:
    try:
        offer = json.loads(offer_json)
    except ValueError:
        return None
    found = offer.get("@id") if isinstance(offer, dict) else None
    return found if isinstance(found, str) else None


def _lines(text: str | None) -> list[str]:
    return [line for line in (text or "").splitlines() if line]


class DataContracts:
    def __init__(
        self,
        *,
        engine: Engine,
        participant: Participant,
        client: httpx.AsyncClient,
        negotiations: Negotiations,
        transfers: Transfers,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        audit: AuditSink | None = None,
    ) -> None:
        self.engine, self.participant, self.client = engine, participant, client
        self.negotiations, self.transfers = negotiations, transfers
        self.timeout_s, self.clock = timeout_s, clock
        self.audit = audit

    def received(self, receipt: Received) -> None:
        """The application's account of what reached it under one of our pull transfers:
        audited (``data received``) for the ledger, where the regulator sets it beside what
        the provider's data plane says it sent. A report with a ``receipt_id`` seen before is
        a repeat: recorded once (409 if it now says something else)."""
        try:
            self._received(receipt)
        except IntegrityError:  # the same report, recorded at the same time by another call
            self._received(receipt)

    def _received(self, receipt: Received) -> None:
        with Session(self.engine) as session:
            transfer = session.get(TransferProcessRecord, receipt.transfer_id)
            if transfer is None or transfer.role != Role.CONSUMER.value:
                raise ContractError(
                    404, "not_found", f"no transfer {receipt.transfer_id} of ours as the consumer"
                )
            if self.audit is None:
                raise ContractError(503, "not_ready", "the connector is starting")
            if receipt.receipt_id is not None:
                key = digest({"receiptId": receipt.receipt_id})
                seen = answered(session, transfer.id, key)
                if seen is not None:
                    if seen[1] != receipt.content():
                        raise ContractError(
                            409, "receipt_conflict",
                            f"receipt {receipt.receipt_id} was recorded with other figures",
                        )  # fmt: skip
                    return
                remember(
                    session, process_id=transfer.id, body_digest=key, kind="data received",
                    status=201, answer=receipt.content(), now=self.participant.clock(),
                )  # fmt: skip
            self.audit.add(
                session,
                AuditRecord(
                    actor=self.participant.did, action="data received",
                    outcome=Outcome.ACCEPTED, occurred_at=self.participant.clock(),
                    counterparty=transfer.counterparty, subject=transfer.id,
                    reason=(
                        f"{'complete' if receipt.complete else 'interrupted'}"
                        + (f", sha256 {receipt.sha256}" if receipt.sha256 else "")
                    ),
                    bytes_sent=receipt.bytes, rows_sent=receipt.rows,
                    access_outcome="completed" if receipt.complete else "interrupted",
                    process="transfer", provider_pid=transfer.provider_pid,
                    consumer_pid=transfer.consumer_pid, agreement_id=transfer.agreement_id,
                ),
            )  # fmt: skip
            session.commit()

    async def request_data(
        self, request: DataRequest, transfer_type: str = "HttpData-PULL"
    ) -> dict[str, Any]:
        """An agreement (reused or negotiated) and a started pull transfer of
        ``transfer_type`` (``PSI-PULL`` for a matching set): its endpoint and token."""
        deadline = self.clock() + self.timeout_s
        agreement_id = await anyio.to_thread.run_sync(self._reusable, request)
        reused = agreement_id is not None
        if agreement_id is None:
            offer = await self._offer(request)
            agreement_id = await self._negotiate(request, offer, deadline)
        transfer = await self._transfer(request, agreement_id, deadline, transfer_type)
        address = json.loads(transfer.data_address or "{}")
        properties = {p["name"]: p["value"] for p in address.get("endpointProperties", [])}
        return {
            "agreementId": agreement_id,
            "transferId": transfer.id,
            "reusedAgreement": reused,
            "endpoint": address.get("endpoint"),
            "authorization": properties.get("authorization"),
            "authType": properties.get("authType", "bearer"),
            "expiresAt": properties.get("expiresAt"),
            "refreshToken": properties.get("refreshToken"),
            "refreshEndpoint": properties.get("refreshEndpoint"),
        }

    def _reusable(self, request: DataRequest) -> str | None:
        """The newest finalized agreement for this dataset and purpose (under the named offer,
        when one is named)."""
        with Session(self.engine) as session:
            found = session.exec(
                select(ContractNegotiationRecord)
                .where(
                    ContractNegotiationRecord.role == Role.CONSUMER.value,
                    ContractNegotiationRecord.counterparty == request.provider,
                    ContractNegotiationRecord.asset_id == request.dataset,
                    ContractNegotiationRecord.purpose == request.purpose,
                    ContractNegotiationRecord.state == NegotiationState.FINALIZED.value,
                )
                .order_by(col(ContractNegotiationRecord.updated_at).desc())
            ).all()
        for record in found:
            if request.offer is None or _offer_id(record.offer) == request.offer:
                return record.agreement_id
        return None

    async def _offer(self, request: DataRequest) -> dict[str, Any]:
        """The provider's offer for the dataset, as its catalogue shows it to us: the named
        one, or the first (the catalogue shows only offers whose access policies admit us)."""
        url = (
            request.provider_address.rstrip("/")
            + "/catalog/datasets/"
            + quote(request.dataset, safe=":")
        )
        try:
            response = await self._get_once_more(url, request.provider)
        except httpx.HTTPError as error:
            log.info("catalogue request to %s failed: %r", url, error)
            raise ContractError(502, "provider_unreachable", f"{url}: unreachable") from None
        if response.status_code == httpx.codes.NOT_FOUND:
            raise ContractError(
                404, "unknown_dataset", f"{request.provider} offers us no dataset {request.dataset}"
            )
        if response.status_code != httpx.codes.OK:
            raise ContractError(
                502, "provider_refused", f"the catalogue answered {response.status_code}",
                _lines(response.text[:2000]),
            )  # fmt: skip
        try:
            dataset: Any = response.json()
            offers = dataset.get("hasPolicy") if isinstance(dataset, dict) else None
        except ValueError:
            offers = None
        if not isinstance(offers, list) or not offers or not isinstance(offers[0], dict):
            raise ContractError(502, "no_offer", f"dataset {request.dataset} comes with no offer")
        if request.offer is None:
            offer: dict[str, Any] = offers[0]
            return offer
        for candidate in offers:
            if isinstance(candidate, dict) and candidate.get("@id") == request.offer:
                return candidate
        shown = [str(o.get("@id")) for o in offers if isinstance(o, dict)]
        raise ContractError(
            404, "unknown_offer",
            f"{request.provider} shows us no offer {request.offer} for {request.dataset}",
            [f"offers shown to us: {', '.join(shown)}"],
        )  # fmt: skip

    async def _get_once_more(self, url: str, audience: str) -> httpx.Response:
        """A GET (idempotent) tried once more, with a fresh token, when the connection broke
        under it: a kept-alive connection the provider closed just as we reused it is no
        reason to fail a call."""
        for attempt in (1, 2):
            token = self.participant.sts.bearer_for(audience, EVERY_SCOPE)
            try:
                return await self.client.get(url, headers={"Authorization": f"Bearer {token}"})
            except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _negotiate(self, request: DataRequest, offer: dict[str, Any], deadline: float) -> str:
        try:
            record = await anyio.to_thread.run_sync(
                self.negotiations.request,
                request.provider, request.provider_address, offer, request.dataset,
                request.purpose,
            )  # fmt: skip
        except DspError as error:
            raise ContractError(400, error.code, error.reason) from None
        ended = await self._wait(
            ContractNegotiationRecord, record.id, deadline,
            {NegotiationState.FINALIZED.value, NegotiationState.TERMINATED.value},
        )  # fmt: skip
        if ended is None:
            raise ContractError(
                504, "timeout", "the provider has not agreed yet", negotiationId=record.id
            )
        if ended.state != NegotiationState.FINALIZED.value or ended.agreement_id is None:
            raise ContractError(
                403, "negotiation_refused",
                f"the provider refused: {ended.termination_code or 'terminated'}",
                _lines(ended.termination_reason), negotiationId=record.id,
            )  # fmt: skip
        return ended.agreement_id

    async def _transfer(
        self, request: DataRequest, agreement_id: str, deadline: float, transfer_type: str
    ) -> TransferProcessRecord:
        try:
            record = await anyio.to_thread.run_sync(
                self.transfers.request,
                request.provider, request.provider_address, agreement_id, transfer_type, None,
            )  # fmt: skip
        except DspError as error:
            raise ContractError(400, error.code, error.reason) from None
        ended = await self._wait(
            TransferProcessRecord, record.id, deadline,
            {TransferState.STARTED.value, TransferState.TERMINATED.value,
             TransferState.COMPLETED.value},
        )  # fmt: skip
        if ended is None:
            raise ContractError(
                504, "timeout", "the provider has not started the transfer yet",
                agreementId=agreement_id, transferId=record.id,
            )  # fmt: skip
        if ended.state != TransferState.STARTED.value or not ended.data_address:
            raise ContractError(
                403, "transfer_refused",
                f"the provider refused: {ended.termination_code or ended.state.lower()}",
                _lines(ended.termination_reason), agreementId=agreement_id, transferId=record.id,
            )  # fmt: skip
        return ended

    async def _wait(
        self, kind: type[R], identifier: str, deadline: float, states: set[str]
    ) -> R | None:
        while True:
            record = await anyio.to_thread.run_sync(self._get, kind, identifier)
            if record is not None and record.state in states:
                return record
            if self.clock() >= deadline:
                return None
            await asyncio.sleep(POLL_S)

    def _get(self, kind: type[R], identifier: str) -> R | None:
        with Session(self.engine) as session:
            return session.get(kind, identifier)
