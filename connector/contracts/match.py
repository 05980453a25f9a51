"""Matching for applications, the consumer's side of ``PSI-PULL``: "which of my identifiers
are in this provider's matching set, for this purpose" in one call.

The consumer's connector normalises the application's identifiers (``matching.identifiers``,
the same code as the provider's; invalid ones are reported back, never sent), reuses or
negotiates an agreement and starts a ``PSI-PULL`` transfer (``connector.contracts.service``),
then runs the PSI client against the provider's data plane (``connector.dataplane.matchruns``
describes the calls): the items leave this connector only as ``H(y)^c``, encrypted under a
key of this run. The setup of a data version is cached in memory and reused while the
provider's version is the same. The run is audited here with what only the consumer knows:
the intersection's size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, Field

from connector.audit import AuditRecord, AuditSink, Outcome
from connector.contracts.service import ContractError, DataContracts, DataRequest
from connector.dataplane.matchruns import FRAMES_TYPE, unpack
from connector.dataplane.matchsets import PSI_PULL, SharedWorkers, WorkersUnavailableError
from matching.errors import MatchingError
from matching.identifiers import Kind, normalise
from matching.machine import ClientSetup, Mode, State
from matching.parallel import ClientSession

log = logging.getLogger("kexin.connector")
MAX_INVALID_SHOWN: Final = 1000
MAX_SETUPS_CACHED: Final = 16
MAX_GRANTS_KEPT: Final = 64
GRANT_MARGIN_S: Final = 60.0
"""A kept transfer is used for a new run only while its token lives at least this long."""
STALE_TRANSFER: Final = frozenset(
    {"expired_token", "invalid_token", "revoked_token", "transfer_terminated",
     "transfer_not_started", "wrong_transfer_type"}
)  # fmt: skip
"""The provider's reasons that say the kept transfer is of no use any more."""
RETRY_S: Final = 0.2
"""The first wait before asking again for a run the provider could not open yet (doubling)."""


@dataclass(frozen=True)
class MatchRequest:
    data: DataRequest
    kind: Kind
    mode: Mode
    values: list[str]


class Matching:
    def __init__(
        self,
        *,
        contracts: DataContracts,
        client: httpx.AsyncClient,
        workers: SharedWorkers,
        audit: AuditSink,
        me: str,
        clock: Callable[[], datetime],
        max_fpr: float,
    ) -> None:
        self.contracts, self.client, self.workers = contracts, client, workers
        self.audit, self.me, self.clock = audit, me, clock
        self.max_fpr = max_fpr
        self._setups: dict[tuple[str, str, str], ClientSetup] = {}
        self._grants: dict[tuple[str, str, str], dict[str, Any]] = {}

    async def match(self, request: MatchRequest) -> dict[str, Any]:
        normalised = await anyio.to_thread.run_sync(normalise, request.values, request.kind)
        invalid = [
            {"row": i.row, "value": i.value, "reason": i.reason}
            for i in normalised.invalid[:MAX_INVALID_SHOWN]
        ]
        if not normalised.items:
            raise ContractError(
                400, "no_valid_items", f"none of the {len(request.values)} values is a valid "
                f"{request.kind.value}", [f"row {i['row']}: {i['reason']}" for i in invalid[:20]],
            )  # fmt: skip
        grant_key = (request.data.provider, request.data.dataset, request.data.purpose)
        grant = self._grant(grant_key)
        reused = grant is not None
        if grant is None:
            grant = await self.contracts.request_data(request.data, PSI_PULL)
        ids = {"agreementId": grant["agreementId"], "transferId": grant["transferId"]}
        try:  # before the run opens: the provider's idle clock runs from then
            workers = await anyio.to_thread.run_sync(self.workers)
        except (WorkersUnavailableError, BrokenExecutor):
            raise ContractError(
                503, "matching_unavailable", "matching is unavailable here now", None, **ids
            ) from None
        run = PsiCall(self.client, str(grant["endpoint"]), str(grant["authorization"]), ids)
        try:
            info = await self._start(run, len(normalised.items), request.mode)
        except ContractError:
            self._grants.pop(grant_key, None)
            if not reused or run.refused not in STALE_TRANSFER:
                raise
            # the transfer we kept has ended (terminated, its token expired or replaced):
            # a new one, once; the policy's refusals are not retried
            grant = await self.contracts.request_data(request.data, PSI_PULL)
            ids = {"agreementId": grant["agreementId"], "transferId": grant["transferId"]}
            run = PsiCall(self.client, str(grant["endpoint"]), str(grant["authorization"]), ids)
            info = await self._start(run, len(normalised.items), request.mode)
        self._keep(grant_key, grant)
        key = (request.data.provider, info.data_version, info.setup_digest)
        cached = self._setups.get(key)
        try:
            session = ClientSession(
                normalised.items, request.mode, workers, setup=cached, max_fpr=self.max_fpr,
                max_chunk_items=info.max_chunk_items, max_message_bytes=info.max_message_bytes,
                run_id=info.run_id,
            )  # fmt: skip
            if cached is None:
                for piece in await run.setup():
                    setup = await anyio.to_thread.run_sync(session.setup_frame, piece)
                    if setup is not None:
                        self._remember(key, setup)
            for response in await run.send(session.start_frame()):
                await anyio.to_thread.run_sync(session.receive, response)
            frames = session.request_frames()
            while True:
                frame: bytes | None = await anyio.to_thread.run_sync(_next, frames)
                if frame is None:
                    break
                for response in await run.send(frame):
                    await anyio.to_thread.run_sync(session.receive, response)
            while session.run.state is not State.DONE:
                answers = await run.more()
                if not answers:
                    raise ContractError(
                        502, "match_failed", "the provider stopped answering", None, **ids
                    )
                for response in answers:
                    await anyio.to_thread.run_sync(session.receive, response)
            result = await anyio.to_thread.run_sync(session.result)
        except MatchingError as error:
            self._audited(request, ids, Outcome.REFUSED, f"{error}")
            raise ContractError(
                502, "match_failed", f"the provider's answer was refused: {error}", None, **ids
            ) from None
        except ContractError as error:
            self._audited(request, ids, Outcome.REFUSED, f"{error.code}: {error.message}")
            raise
        except BrokenExecutor:
            self.workers.close()  # the next run starts a new pool
            self._audited(request, ids, Outcome.REFUSED, "a PSI worker died")
            raise ContractError(
                503, "matching_unavailable", "a PSI worker died; try again", None, **ids
            ) from None
        learned = "the intersection" if request.mode is Mode.INTERSECTION else "its size"
        self._audited(
            request, ids, Outcome.ACCEPTED,
            f"{request.mode.value} run {info.run_id}: own set {result.client_items}, "
            f"provider set {result.server_items}, intersection {result.cardinality} "
            f"(data version {info.data_version}); we learned {learned}, the provider our set "
            f"size ({result.client_items})",
            (result.client_items, result.server_items, result.cardinality),
            run.received_bytes,
        )  # fmt: skip
        matches = None
        if result.positions is not None:
            matches = [
                {"row": normalised.rows[p], "item": normalised.items[p]} for p in result.positions
            ]
        return {
            **ids,
            "runId": info.run_id,
            "mode": request.mode.value,
            "dataVersion": info.data_version,
            "setupCached": cached is not None,
            "clientItems": result.client_items,
            "serverItems": result.server_items,
            "cardinality": result.cardinality,
            "matches": matches,
            "invalidCount": len(normalised.invalid),
            "invalid": invalid,
            "duplicates": normalised.duplicates,
        }

    async def _start(self, run: PsiCall, client_items: int, mode: Mode) -> RunOffer:
        """Open the run; while the provider computes its setup or has too many runs open,
        ask again, until the data contracts timeout."""
        deadline = self.contracts.clock() + self.contracts.timeout_s
        wait_s = RETRY_S
        while True:
            try:
                return await run.start(client_items, mode)
            except ContractError as error:
                if error.status != 503 or self.contracts.clock() + wait_s > deadline:
                    raise
            await anyio.sleep(wait_s)
            wait_s = min(2 * wait_s, 5.0)

    def _grant(self, key: tuple[str, str, str]) -> dict[str, Any] | None:
        """The started PSI-PULL transfer kept for this provider, dataset and purpose, while
        its token has at least ``GRANT_MARGIN_S`` to live: a run then costs no transfer
        request (every run is still decided and counted by the provider)."""
        grant = self._grants.get(key)
        if grant is None:
            return None
        try:
            expires = datetime.fromisoformat(str(grant.get("expiresAt")))
        except ValueError:
            expires = None
        if expires is None or expires.tzinfo is None:
            self._grants.pop(key, None)
            return None
        if (expires - self.clock()).total_seconds() < GRANT_MARGIN_S:
            self._grants.pop(key, None)
            return None
        return grant

    def _keep(self, key: tuple[str, str, str], grant: dict[str, Any]) -> None:
        if key not in self._grants and len(self._grants) >= MAX_GRANTS_KEPT:
            self._grants.pop(next(iter(self._grants)))
        self._grants[key] = grant

    def _remember(self, key: tuple[str, str, str], setup: ClientSetup) -> None:
        if len(self._setups) >= MAX_SETUPS_CACHED:
            self._setups.pop(next(iter(self._setups)))
        self._setups[key] = setup

    def _audited(
        self,
        request: MatchRequest,
        ids: dict[str, str],
        outcome: Outcome,
        reason: str,
        sizes: tuple[int, int, int] | None = None,
        received: int | None = None,
    ) -> None:
        """``sizes``: of a completed run, our set, the provider's and the intersection (the
        ledger's ``psi.run``); ``received``: the bytes of its answers."""
        own, peer, intersection = sizes or (None, None, None)
        self.audit.record(
            AuditRecord(
                actor=self.me, action="matching run", outcome=outcome, occurred_at=self.clock(),
                counterparty=request.data.provider, subject=ids["transferId"], reason=reason,
                agreement_id=ids["agreementId"],
                psi_mode=None if sizes is None else request.mode.value,
                psi_own_items=own, psi_peer_items=peer, psi_intersection=intersection,
                bytes_sent=received,
            )
        )  # fmt: skip


def _next(frames: Iterator[bytes]) -> bytes | None:
    return next(frames, None)


class RunOffer(BaseModel):
    """What the provider says of a run it admitted (checked: it comes from the other party)."""

    model_config = ConfigDict(populate_by_name=True)

    run_id: str = Field(alias="runId", pattern=r"^[0-9a-f]{32}$")
    data_version: str = Field(alias="dataVersion", pattern=r"^sha256:[0-9a-f]{64}$")
    setup_digest: str = Field(alias="setupDigest", pattern=r"^sha256:[0-9a-f]{64}$")
    server_items: int = Field(alias="serverItems", ge=0)
    max_chunk_items: int = Field(alias="maxChunkItems", ge=1, le=1 << 16)
    max_message_bytes: int = Field(alias="maxMessageBytes", ge=1024, le=16 << 20)


class PsiCall:
    """The calls of one run against a provider's data plane; any refusal is a typed
    :class:`ContractError` (403 ``match_refused`` with the policy's reasons)."""

    def __init__(
        self, client: httpx.AsyncClient, endpoint: str, token: str, ids: dict[str, str]
    ) -> None:
        self.client, self.endpoint, self.ids = client, endpoint.rstrip("/"), ids
        self.headers = {"Authorization": f"Bearer {token}"}
        self.run_id: str | None = None
        self.max_frame_bytes = 0
        self.refused: str | None = None
        """The provider's reason of its last refusal."""
        self.received_bytes = 0
        """The bytes of the run's answer frames (what the provider's data plane counts as
        sent for the run; the setup is not part of it)."""

    async def start(self, client_items: int, mode: Mode) -> RunOffer:
        response = await self._call(
            "POST", "/runs", json={"clientItems": client_items, "mode": mode.value}
        )
        if response.status_code != httpx.codes.CREATED:
            raise self._refusal(response)
        try:
            offer = RunOffer.model_validate(response.json())
        except ValueError as error:
            raise ContractError(
                502, "match_failed", f"the provider's run is unreadable: {str(error)[:300]}",
                None, **self.ids,
            ) from None  # fmt: skip
        self.run_id = offer.run_id
        self.max_frame_bytes = offer.max_message_bytes
        return offer

    async def setup(self) -> list[bytes]:
        return await self._frames("GET", f"/runs/{self.run_id}/setup")

    async def more(self) -> list[bytes]:
        return self._counted(await self._frames("GET", f"/runs/{self.run_id}/responses"))

    async def send(self, frame: bytes) -> list[bytes]:
        return self._counted(
            await self._frames(
                "POST", f"/runs/{self.run_id}/messages", content=frame,
                headers={"Content-Type": "application/octet-stream"},
            )
        )  # fmt: skip

    def _counted(self, frames: list[bytes]) -> list[bytes]:
        self.received_bytes += sum(len(f) for f in frames)
        return frames

    async def _frames(self, method: str, path: str, **extra: Any) -> list[bytes]:
        response = await self._call(method, path, **extra)
        if response.status_code != httpx.codes.OK:
            raise self._refusal(response)
        if not response.headers.get("content-type", "").startswith(FRAMES_TYPE):
            raise ContractError(502, "match_failed", "the provider did not answer PSI frames")
        try:
            return unpack(response.content, self.max_frame_bytes)
        except ValueError as error:
            raise ContractError(502, "match_failed", f"the provider's answer: {error}") from None

    async def _call(
        self, method: str, path: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> httpx.Response:
        try:
            return await self.client.request(
                method, self.endpoint + path, headers={**self.headers, **(headers or {})}, **extra
            )
        except httpx.HTTPError as error:
            log.info("PSI call %s %s failed: %r", method, path, error)
            raise ContractError(
                502, "provider_unreachable", f"{self.endpoint}: unreachable", None, **self.ids
            ) from None

    def _refusal(self, response: httpx.Response) -> ContractError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        reason = str(body.get("reason", f"http_{response.status_code}"))
        self.refused = reason
        message = str(body.get("message", ""))[:500]
        reasons = [str(r) for r in body.get("reasons", [])][:20]
        if response.status_code in (400, 403, 503):
            # the policy's refusal (403), a run it cannot take (400), too many runs (503)
            return ContractError(
                response.status_code, "match_refused",
                f"the provider refused the run: {reason}: {message}", reasons, **self.ids,
            )  # fmt: skip
        return ContractError(
            502, "match_failed", f"the provider answered {response.status_code}: {reason}: "
            f"{message}", reasons, **self.ids,
        )  # fmt: skip
