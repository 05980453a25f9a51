"""Matching runs through the data plane (``PSI-PULL``): the provider's side of a private set
intersection with a consumer holding a transfer token of a started ``PSI-PULL`` transfer.

A run over HTTP, each call with ``Authorization: Bearer <token>``::

    POST {endpoint}/runs                {"clientItems": n, "mode": "intersection"}
         -> 201 {"runId", the current setup's version, digest and size, chunking}
            decided by the agreement's policy in the access scope (kexin:matchRuns,
            kexin:matchSetSize, kexin:matchOutput, and everything a download is decided on),
            and reserved as an access under a lock on the grant: runs are counted like downloads
    GET  {endpoint}/runs/{id}/setup     -> the setup's frames (skipped by a consumer that has
                                           this data version's setup cached)
    POST {endpoint}/runs/{id}/messages  one frame (the run's start, then each request chunk)
         -> the response frames ready now; after the last request chunk, the next ones
    GET  {endpoint}/runs/{id}/responses -> the next response frames, waited for (asked until
                                           the consumer has every answer)

Bodies of frames are ``application/vnd.kexin.psi-frames``: each frame (``matching.messages``)
preceded by its length, 4 bytes big-endian. No message is larger than the data plane's frame
limit, and an answer holds at most ``matching_frames_per_answer`` of them (16): a run of a
million items is a few hundred calls, never one large body.

The provider learns the consumer's set size (it decides on it) and nothing of its items; it
does not learn the intersection's size either (only the consumer's audit trail has it). Every
refusal is a typed ``DataPlaneError`` and audited; a refused message ends the run (never a
partial answer after it). A run that ends after answers went out is counted even if it failed
(``aborted``): the consumer may have learned part of the result. Runs live in the memory of
the connector process that admitted them; one idle for ``matching_run_idle_s`` is ended.
"""

from __future__ import annotations

import logging
import secrets
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import Any, Final

import anyio
from sqlmodel import Session

from connector.audit import AuditRecord, Outcome
from connector.dataplane.matchsets import MatchingSets, SharedWorkers, WorkersUnavailableError
from connector.dataplane.plane import Admitted, DataPlane, DataPlaneError, RunRequest
from connector.dataplane.sources import SourceError
from connector.dataplane.store import DataAccess
from matching.errors import MatchingError, Reason
from matching.machine import Mode, RunStart
from matching.parallel import ServerSession, setup_frames
from matching.setup import PreparedSetup

log = logging.getLogger("kexin.dataplane")
FRAMES_TYPE: Final = "application/vnd.kexin.psi-frames"
_LENGTH: Final = struct.Struct(">I")


def pack(frames: Iterator[bytes] | list[bytes]) -> Iterator[bytes]:
    """Frames as a body: each preceded by its length."""
    for frame in frames:
        yield _LENGTH.pack(len(frame)) + frame


def unpack(body: bytes, max_frame_bytes: int) -> list[bytes]:
    """A body of frames back into frames; a truncated or oversized one is refused."""
    frames: list[bytes] = []
    offset = 0
    while offset < len(body):
        if offset + _LENGTH.size > len(body):
            raise ValueError("a frame's length is cut off")
        (length,) = _LENGTH.unpack_from(body, offset)
        offset += _LENGTH.size
        if length > max_frame_bytes:
            raise ValueError(f"a frame of {length} bytes is over the limit of {max_frame_bytes}")
        if offset + length > len(body):
            raise ValueError("a frame is cut off")
        frames.append(body[offset : offset + length])
        offset += length
    return frames


@dataclass
class _Run:
    id: str
    transfer_id: str
    agreement_id: str
    consumer: str
    access_id: int
    mode: Mode
    client_items: int
    prepared: PreparedSetup
    session: ServerSession
    touched: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent_bytes: int = 0
    answered: bool = False


class MatchingRuns:
    def __init__(
        self,
        *,
        plane: DataPlane,
        sets: MatchingSets,
        workers: SharedWorkers,
        max_runs: int,
        idle_s: float,
        chunk_items: int,
        max_message_bytes: int,
        frames_per_answer: int = 16,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plane, self.sets, self.workers = plane, sets, workers
        self.max_runs, self.idle_s = max_runs, idle_s
        self.chunk_items, self.max_message_bytes = chunk_items, max_message_bytes
        self.frames_per_answer = frames_per_answer
        """Response frames in one HTTP answer: the consumer asks again for the rest."""
        self.monotonic = monotonic
        self._runs: dict[str, _Run] = {}
        self._opening = 0
        self._lock = threading.Lock()

    # --- the calls ----------------------------------------------------------------------------

    async def start(
        self, authorization: str | None, client_items: int, mode: Mode
    ) -> dict[str, Any]:
        """Admit a run: token, transfer, the consumer's credentials now, the policy with this
        run's facts; the current setup; the access reserved (counted)."""
        plane = self.plane
        consumer: str | None = None
        transfer_id: str | None = None
        try:
            await anyio.to_thread.run_sync(self._sweep)
            token = plane.check_token(plane.read_token(authorization))
            consumer, transfer_id = token.consumer, token.transfer_id
            grant = await anyio.to_thread.run_sync(plane.grant_for, token)
            request = RunRequest(client_items, mode.value)
            admitted = await plane.admit_grant(grant, request)
            with self._lock:
                if len(self._runs) + self._opening >= self.max_runs:
                    raise DataPlaneError(
                        503, "busy", f"{self.max_runs} matching runs are open; try again soon"
                    )
                self._opening += 1  # this run's place, held while it opens
        except DataPlaneError as error:
            await anyio.to_thread.run_sync(plane.refused, error, consumer, transfer_id)
            raise
        try:
            return await self._open(admitted, client_items, mode, request)
        except DataPlaneError as error:
            await anyio.to_thread.run_sync(plane.refused, error, consumer, transfer_id)
            raise
        finally:
            with self._lock:
                self._opening -= 1

    async def _open(
        self, admitted: Admitted, client_items: int, mode: Mode, request: RunRequest
    ) -> dict[str, Any]:
        try:
            prepared = await anyio.to_thread.run_sync(
                partial(self.sets.current, admitted.asset_id, admitted.address, wait=False)
            )
        except SourceError as error:
            raise DataPlaneError(error.status, error.code, error.message) from None
        if client_items > prepared.offer.max_client_items:
            raise DataPlaneError(
                400, "too_many_items",
                f"{client_items} items; this matching set takes at most "
                f"{prepared.offer.max_client_items} a run",
            )  # fmt: skip
        try:
            workers = await anyio.to_thread.run_sync(self.workers)
        except (WorkersUnavailableError, BrokenExecutor):
            raise DataPlaneError(
                503, "matching_unavailable", "matching is unavailable here now"
            ) from None
        access_id = await anyio.to_thread.run_sync(self.plane.reserve, admitted, None, request)
        run_id = secrets.token_hex(16)
        session = ServerSession(
            prepared, workers, max_chunk_items=self.chunk_items,
            max_message_bytes=self.max_message_bytes,
        )  # fmt: skip
        with self._lock:
            self._runs[run_id] = _Run(
                run_id, admitted.transfer_id, admitted.agreement_id, admitted.consumer,
                access_id, mode, client_items, prepared, session, self.monotonic(),
            )  # fmt: skip
        offer = prepared.offer
        return {
            "runId": run_id,
            "mode": mode.value,
            "clientItems": client_items,
            "dataVersion": offer.data_version,
            "setupDigest": offer.setup_digest,
            "setupBytes": offer.total_bytes,
            "serverItems": offer.server_items,
            "maxClientItems": offer.max_client_items,
            "fpr": offer.fpr,
            "maxChunkItems": self.chunk_items,
            "maxMessageBytes": self.max_message_bytes,
        }

    async def setup(self, authorization: str | None, run_id: str) -> list[bytes]:
        """The setup of the run's data version, as frames."""
        run = await self._run(authorization, run_id)
        return await anyio.to_thread.run_sync(setup_frames, run.prepared, self.max_message_bytes)

    async def exchange(
        self, authorization: str | None, run_id: str, frame: bytes | None
    ) -> list[bytes]:
        """One frame from the consumer (or None: only the answers); the response frames ready
        now, or after the last request chunk the next ones. A refused frame ends the run."""
        run = await self._run(authorization, run_id)
        return await anyio.to_thread.run_sync(self._exchange, run, frame)

    # --- inside -------------------------------------------------------------------------------

    async def _run(self, authorization: str | None, run_id: str) -> _Run:
        """The run this bearer opened. The token may have expired since the run was admitted
        (a large run outlasts it), but not been revoked: a transfer terminated, suspended or
        refreshed since ends the run's calls at once."""
        plane = self.plane
        try:
            await anyio.to_thread.run_sync(self._sweep)
            token = plane.check_token(plane.read_token(authorization), allow_expired=True)
            with self._lock:
                run = self._runs.get(run_id)
            if run is None or run.transfer_id != token.transfer_id:
                raise DataPlaneError(404, "unknown_run", "no such matching run of this transfer")
            try:
                await anyio.to_thread.run_sync(plane.grant_for, token)
            except DataPlaneError as error:  # the transfer stopped: so does its run
                await anyio.to_thread.run_sync(self._end_now, run, f"{error.code}: {error.message}")
                raise
        except DataPlaneError as error:
            await anyio.to_thread.run_sync(plane.refused, error, None, None)
            raise
        run.touched = self.monotonic()
        return run

    def _exchange(self, run: _Run, frame: bytes | None) -> list[bytes]:
        """Admit ``frame`` (None: only collect answers) and hand out at most
        ``frames_per_answer`` response frames: those ready now while requests still
        come, and once every request is in, the next ones, waited for."""
        with run.lock:
            if self._runs.get(run.id) is not run:
                raise DataPlaneError(404, "unknown_run", "the matching run has ended")
            session = run.session
            try:
                if frame is not None:
                    message = session.receive(frame)
                    if isinstance(message, RunStart):
                        _check_start(run, message)
                elif session.run.start_message is None:
                    raise MatchingError(Reason.OUT_OF_ORDER, "no run started")
                last = session.run.state.value == "RESPONDING"
                out = list(islice(session.responses(wait=last), self.frames_per_answer))
            except MatchingError as error:
                self._end(run, "aborted" if run.answered else "failed", f"{error}")
                raise DataPlaneError(400, error.reason.value, error.message) from None
            except BrokenExecutor:
                self._end(run, "aborted" if run.answered else "failed", "a PSI worker died")
                self.workers.close()  # the next run starts a new pool
                raise DataPlaneError(
                    503, "matching_unavailable", "the run broke off on our side; start another"
                ) from None
            if out:
                run.answered = True
                run.sent_bytes += sum(len(f) for f in out)
                # recorded as it goes: a run cut off by a crash is known to have answered
                self.plane.progress(run.access_id, run.sent_bytes)
            if session.done:
                self._end(run, "completed", None)
            run.touched = self.monotonic()
            return out

    def _end(self, run: _Run, outcome: str, reason: str | None) -> None:
        with self._lock:
            if self._runs.pop(run.id, None) is None:
                return
        offer = run.prepared.offer
        consumer_learned = "the intersection" if run.mode is Mode.INTERSECTION else "its size"
        what = (
            f"{run.mode.value} run {run.id}: consumer set {run.client_items}, provider set "
            f"{offer.server_items} (data version {offer.data_version}); the consumer learned "
            f"{consumer_learned}, the provider the consumer's set size ({run.client_items})"
        )
        with Session(self.plane.engine) as db:
            access = db.get(DataAccess, run.access_id)
            if access is not None:
                self.plane.end(db, access, outcome, run.sent_bytes, None, reason)
            self.plane.audit.add(
                db,
                AuditRecord(
                    actor=self.plane.me, action="matching run",
                    outcome=Outcome.ACCEPTED if outcome == "completed" else Outcome.REFUSED,
                    occurred_at=self.plane.clock(), counterparty=run.consumer,
                    subject=run.transfer_id,
                    reason=what if reason is None else f"{what}; {outcome}: {reason}",
                    bytes_sent=run.sent_bytes, rows_sent=run.client_items,
                    psi_mode=run.mode.value if outcome == "completed" else None,
                    psi_own_items=offer.server_items, psi_peer_items=run.client_items,
                ),
            )  # fmt: skip
            db.commit()

    def _end_now(self, run: _Run, reason: str) -> None:
        with run.lock:
            self._end(run, "aborted" if run.answered else "failed", reason)

    def _sweep(self) -> None:
        """End the runs idle for too long (their consumer went away)."""
        now = self.monotonic()
        with self._lock:
            idle = [r for r in self._runs.values() if now - r.touched > self.idle_s]
        for run in idle:
            if not run.lock.acquire(blocking=False):
                continue  # a message of it is being answered: not idle
            try:
                self._end(
                    run, "aborted" if run.answered else "interrupted",
                    f"no message for {self.idle_s:g} s",
                )  # fmt: skip
            finally:
                run.lock.release()

    def close(self) -> None:
        """The app stops: every open run ends as interrupted."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            self._end(run, "aborted" if run.answered else "interrupted", "the connector stopped")


def _check_start(run: _Run, message: RunStart) -> None:
    """The run's start must be the run that was admitted: its id, size and mode."""
    if message.run_id != run.id:
        raise MatchingError(Reason.WRONG_RUN, "the start names another run")
    if message.client_items != run.client_items:
        raise MatchingError(
            Reason.SIZE_MISMATCH,
            f"the run was admitted for {run.client_items} items, not {message.client_items}",
        )
    if message.mode is not run.mode:
        raise MatchingError(Reason.WRONG_MODE, f"the run was admitted for {run.mode.value}")
