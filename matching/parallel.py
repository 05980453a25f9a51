"""Large runs: chunked messages, worker processes under one key, client and server pipelined.

Each side wraps its pure machine (``matching.machine``) in a *session* that turns frames
(``matching.messages``) into library calls (``matching.psi``) on a pool of worker processes.
Every worker rebuilds the side's cipher from the one key (``CreateFromKey``), so the chunks of
a run may be encrypted on any core and still belong together. Memory stays bounded: no message
is larger than ``max_message_bytes`` (1 MiB by default, 16,384 items a request chunk), the
client keeps at most a window of chunks in flight, and the setup travels in pieces.

The sessions are driven by the caller: :func:`run_local` wires both sides together in one
process (tests, benchmarks); the connector's data plane will drive them over HTTP. What this
does not do: policy decisions, audit, transport.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from matching import psi
from matching.errors import MatchingError, Reason
from matching.machine import (
    ClientRun,
    ClientSetup,
    Mode,
    RequestChunk,
    ResponseChunk,
    RunStart,
    ServerRun,
    SetupChunk,
    SetupOffer,
    State,
    setup_chunks,
)
from matching.messages import DEFAULT_MAX_BYTES, MAX_HEADER_BYTES, decode, encode
from matching.setup import PreparedSetup

DEFAULT_CHUNK_ITEMS: Final = 16_384
MIN_CHUNK_ITEMS: Final = 256
"""A client cuts a small set into chunks of at least this many items (or one chunk)."""
_ELEMENT_BYTES: Final = psi.POINT_BYTES + 3
"""An encrypted element in a request or response: the point and its protobuf tag and length."""
_FRAME_OVERHEAD: Final = 16 + MAX_HEADER_BYTES
_SETUP_HEADER: Final = 1024
"""Room for a setup piece's frame header (about 450 bytes: two digests and seven numbers)."""
FPR_TOLERANCE: Final = 1e-6
"""Relative slack when the client checks the setup's rate (the library rounds its hash range)."""


def check_chunking(max_chunk_items: int, max_message_bytes: int) -> None:
    if max_chunk_items < 1:
        raise MatchingError(Reason.INVALID_PARAMETER, "max_chunk_items is at least 1")
    if max_chunk_items * _ELEMENT_BYTES + _FRAME_OVERHEAD > max_message_bytes:
        raise MatchingError(
            Reason.INVALID_PARAMETER,
            f"{max_chunk_items} items a chunk do not fit in messages of {max_message_bytes} bytes",
        )


PARENT_CHECK_S: Final = 1.0
"""How often a worker looks whether the process that started it is still there."""


def _follow_parent(parent: int) -> None:
    """In each worker: end with the process that started the pool. A parent killed with
    SIGKILL cannot stop its pool, and an idle worker would wait for tasks for ever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="follow-parent", daemon=True).start()


class Workers:
    """A pool of worker processes (default: one per core). Tasks carry their key; a worker
    holds no state between tasks, and ends when the process that started it is gone."""

    def __init__(self, processes: int | None = None) -> None:
        self.processes = processes or os.cpu_count() or 1
        # spawn: a connector is multi-threaded, and forking one is unsafe
        self._pool = ProcessPoolExecutor(
            self.processes, mp_context=multiprocessing.get_context("spawn"),
            initializer=_follow_parent, initargs=(os.getpid(),),
        )  # fmt: skip
        # start every worker now (a spawned pool grows on demand) and load the library there,
        # so that the first run does not pay for it
        for started in [self._pool.submit(psi.new_key) for _ in range(self.processes)]:
            started.result()

    def __enter__(self) -> Workers:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def pids(self) -> list[int]:
        """The worker processes running now (for measurements such as their memory)."""
        return sorted(self._pool._processes or ())

    def request(self, key: bytes, items: Sequence[str], mode: Mode) -> Future[bytes]:
        return self._pool.submit(psi.create_request, key, list(items), mode)

    def process(self, key: bytes, request: bytes, mode: Mode) -> Future[bytes]:
        return self._pool.submit(psi.process_request, key, request, mode)

    def intersection(self, key: bytes, setup: bytes, response: bytes) -> Future[list[int]]:
        return self._pool.submit(psi.intersection, key, setup, response)

    def cardinality(self, key: bytes, setup: bytes, response: bytes) -> Future[int]:
        return self._pool.submit(psi.cardinality, key, setup, response)


def setup_frames(
    prepared: PreparedSetup, max_message_bytes: int = DEFAULT_MAX_BYTES
) -> list[bytes]:
    """The setup as frames of at most ``max_message_bytes`` (what a client fetches once per
    data version)."""
    frames = [
        encode(c)
        for c in setup_chunks(prepared.offer, prepared.setup, max_message_bytes - _SETUP_HEADER)
    ]
    if max(map(len, frames)) > max_message_bytes:  # pragma: no cover - the header is smaller
        raise MatchingError(Reason.INVALID_PARAMETER, "setup frames do not fit the limit")
    return frames


# --- server ------------------------------------------------------------------------------------


class ServerSession:
    """The server's side of one run: admits frames, processes chunks on the workers, hands out
    response frames in order."""

    def __init__(
        self,
        prepared: PreparedSetup,
        workers: Workers,
        *,
        max_chunk_items: int = DEFAULT_CHUNK_ITEMS,
        max_message_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        check_chunking(max_chunk_items, max_message_bytes)
        self._key = prepared.key
        self._workers = workers
        self._max_bytes = max_message_bytes
        self.run = ServerRun(prepared.offer, max_chunk_items=max_chunk_items)
        self._pending: deque[tuple[int, Future[bytes]]] = deque()
        self._answers: list[bytes] = []
        self._shuffled: deque[bytes] | None = None

    @property
    def client_items(self) -> int | None:
        """What the server learns: the size of the client's set (known at the start)."""
        start = self.run.start_message
        return None if start is None else start.client_items

    @property
    def done(self) -> bool:
        return self.run.state is State.DONE

    def _refuse(self, error: MatchingError) -> MatchingError:
        self.run.state = State.FAILED
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()
        self._answers.clear()
        return error

    def receive(self, frame: bytes) -> RunStart | RequestChunk:
        """Admit one frame from the client: the run's start, or its next request chunk."""
        if self.run.state is State.FAILED:
            raise MatchingError(Reason.RUN_FAILED, "this run was refused earlier")
        try:
            message = decode(frame, max_bytes=self._max_bytes)
            if isinstance(message, RunStart):
                self.run.start(message)
                return message
            if not isinstance(message, RequestChunk):
                raise MatchingError(Reason.OUT_OF_ORDER, "a server receives starts and requests")
            start = self.run.start_message
            if start is None:
                raise MatchingError(Reason.OUT_OF_ORDER, "a request chunk before the run's start")
            mode = start.mode
            if psi.request_items(message.payload, mode) != message.items:
                raise MatchingError(Reason.SIZE_MISMATCH, "the chunk holds another item count")
            self.run.request(message)
        except MatchingError as error:
            raise self._refuse(error) from None
        self._pending.append(
            (message.items, self._workers.process(self._key, message.payload, mode))
        )
        return message

    def responses(self, *, wait: bool) -> Iterator[bytes]:
        """Response frames ready now (``wait=False``) or, with ``wait``, every one still to
        come for the requests received so far."""
        start = self.run.start_message
        if self.run.state is State.FAILED:
            raise MatchingError(Reason.RUN_FAILED, "this run was refused earlier")
        if start is None:
            return
        try:
            if start.mode is Mode.INTERSECTION:
                while self._pending and (wait or self._pending[0][1].done()):
                    items, future = self._pending.popleft()
                    yield encode(self.run.respond(items, future.result()))
                return
            while self._pending and (wait or self._pending[0][1].done()):
                self._answers.append(self._pending.popleft()[1].result())
            if self._shuffled is None and self.run.state is State.RESPONDING and not self._pending:
                self._shuffled = deque(
                    psi.shuffle_responses(self._answers, self.run.max_chunk_items)
                )
                self._answers.clear()
            while self._shuffled:
                payload = self._shuffled.popleft()
                yield encode(self.run.respond(psi.response_items(payload), payload))
        except MatchingError as error:
            raise self._refuse(error) from None


# --- client ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatchResult:
    mode: Mode
    client_items: int
    server_items: int
    cardinality: int
    positions: tuple[int, ...] | None
    """Positions of the matching items in the client's list (intersection mode only)."""


class ClientSession:
    """The client's side of one run over ``items`` (normalised, distinct)."""

    def __init__(
        self,
        items: Sequence[str],
        mode: Mode,
        workers: Workers,
        *,
        setup: ClientSetup | None = None,
        max_fpr: float | None = None,
        max_chunk_items: int = DEFAULT_CHUNK_ITEMS,
        max_message_bytes: int = DEFAULT_MAX_BYTES,
        window: int | None = None,
        run_id: str | None = None,
    ) -> None:
        check_chunking(max_chunk_items, max_message_bytes)
        if len(set(items)) != len(items):
            raise MatchingError(Reason.INVALID_PARAMETER, "the client's items are not distinct")
        self.items = items
        self.mode = mode
        self._workers = workers
        self._max_fpr = max_fpr
        self._max_bytes = max_message_bytes
        # small sets are cut finer, so that every worker has a share and the sides overlap
        share = -(-len(items) // (4 * workers.processes))
        self._chunk = min(max_chunk_items, max(MIN_CHUNK_ITEMS, share))
        self._window = window or 2 * workers.processes
        self._key = psi.new_key()
        if setup is not None:
            self._check_setup(setup)
        self.run = ClientRun(
            run_id or uuid.uuid4().hex, mode, max_chunk_items=self._chunk, setup=setup
        )
        self._results: list[tuple[int, Future[list[int]] | Future[int]]] = []

    def _check_setup(self, setup: ClientSetup) -> None:
        offer: SetupOffer = setup.offer
        facts = psi.read_setup(setup.setup)
        rate = facts.false_positive_rate(offer.server_items, offer.max_client_items)
        if rate > offer.fpr * (1 + FPR_TOLERANCE):
            raise MatchingError(
                Reason.UNSAFE_SETUP,
                f"the setup's false-positive rate is {rate:.3g}, not the {offer.fpr:.3g} it says",
            )
        if self._max_fpr is not None and offer.fpr > self._max_fpr:
            raise MatchingError(
                Reason.UNSAFE_SETUP,
                f"the setup's false-positive rate {offer.fpr:.3g} is above {self._max_fpr:.3g}",
            )

    def _refuse(self, error: MatchingError) -> MatchingError:
        self.run.state = State.FAILED
        for _, future in self._results:
            future.cancel()
        return error

    def setup_frame(self, frame: bytes) -> ClientSetup | None:
        """Take one frame of the setup fetch; the verified setup once complete (cache it by
        its data version)."""
        try:
            message = decode(frame, max_bytes=self._max_bytes)
            if not isinstance(message, SetupChunk):
                raise MatchingError(Reason.OUT_OF_ORDER, "expected a piece of the setup")
            setup = self.run.setup_chunk(message)
            if setup is not None:
                self._check_setup(setup)
        except MatchingError as error:
            raise self._refuse(error) from None
        return setup

    def start_frame(self) -> bytes:
        try:
            return encode(self.run.start(len(self.items)))
        except MatchingError as error:
            raise self._refuse(error) from None

    def request_frames(self) -> Iterator[bytes]:
        """The request chunks in order, encrypted on the workers a window ahead."""
        starts = range(0, len(self.items), self._chunk)
        in_flight: deque[tuple[int, Future[bytes]]] = deque()
        upcoming = iter(starts)
        for begin in upcoming:
            in_flight.append((begin, self._request(begin)))
            if len(in_flight) >= self._window:
                break
        while in_flight:
            begin, future = in_flight.popleft()
            following = next(upcoming, None)
            if following is not None:
                in_flight.append((following, self._request(following)))
            items = min(self._chunk, len(self.items) - begin)
            try:
                yield encode(self.run.request(items, future.result()))
            except MatchingError as error:
                raise self._refuse(error) from None

    def _request(self, begin: int) -> Future[bytes]:
        return self._workers.request(self._key, self.items[begin : begin + self._chunk], self.mode)

    def receive(self, frame: bytes) -> None:
        """Admit one response frame and decrypt it on the workers."""
        try:
            message = decode(frame, max_bytes=self._max_bytes)
            if not isinstance(message, ResponseChunk):
                raise MatchingError(Reason.OUT_OF_ORDER, "a client receives responses")
            if psi.response_items(message.payload) != message.items:
                raise MatchingError(Reason.SIZE_MISMATCH, "the chunk holds another item count")
            offset = self.run.response(message)
        except MatchingError as error:
            raise self._refuse(error) from None
        setup = self.run.setup
        if setup is None:  # pragma: no cover - a run starts only with a setup
            raise self._refuse(MatchingError(Reason.OUT_OF_ORDER, "no setup held"))
        future: Future[list[int]] | Future[int]
        if self.mode is Mode.INTERSECTION:
            future = self._workers.intersection(self._key, setup.setup, message.payload)
        else:
            future = self._workers.cardinality(self._key, setup.setup, message.payload)
        self._results.append((offset, future))

    def result(self) -> MatchResult:
        """The run's outcome, once every response was received (never a partial one)."""
        if self.run.state is not State.DONE or self.run.setup is None:
            raise self._refuse(MatchingError(Reason.OUT_OF_ORDER, "the run is not complete"))
        positions: list[int] = []
        count = 0
        try:
            for offset, future in self._results:
                found = future.result()
                if isinstance(found, int):
                    count += found
                else:
                    positions.extend(offset + position for position in found)
        except MatchingError as error:
            raise self._refuse(error) from None
        offer = self.run.setup.offer
        if self.mode is Mode.INTERSECTION:
            return MatchResult(
                self.mode, len(self.items), offer.server_items, len(positions), tuple(positions)
            )
        return MatchResult(self.mode, len(self.items), offer.server_items, count, None)


def run_local(
    items: Sequence[str],
    prepared: PreparedSetup,
    mode: Mode,
    workers: Workers,
    *,
    setup: ClientSetup | None = None,
    max_chunk_items: int = DEFAULT_CHUNK_ITEMS,
    max_message_bytes: int = DEFAULT_MAX_BYTES,
) -> MatchResult:
    """Both sides in one process, pipelined: the server processes chunk k while the client
    encrypts chunk k+1 and decrypts chunk k-1, all on ``workers``."""
    server = ServerSession(
        prepared, workers, max_chunk_items=max_chunk_items, max_message_bytes=max_message_bytes
    )
    client = ClientSession(
        items, mode, workers, setup=setup, max_chunk_items=max_chunk_items,
        max_message_bytes=max_message_bytes,
    )  # fmt: skip
    if setup is None:
        for frame in setup_frames(prepared, max_message_bytes):
            client.setup_frame(frame)
    server.receive(client.start_frame())
    for frame in client.request_frames():
        server.receive(frame)
        for response in server.responses(wait=False):
            client.receive(response)
    for response in server.responses(wait=True):
        client.receive(response)
    return client.result()
