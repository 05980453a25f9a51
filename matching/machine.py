"""A matching run as two pure state machines, one per side (h11 style): messages in, messages
out, no I/O, no clock, no cryptography. The crypto work between the messages is done by the
caller (``matching.parallel``); the machines say which message is legal now, check that every
count adds up, and bind every message to one run and one setup.

A run, for a server set published as a *setup* of one data version::

    client                                 server
      <-- SetupChunk 0..n-1 (version, digest)      (fetched once per data version, cacheable)
      --> RunStart (run, version, digest, mode, client items, chunks)
      --> RequestChunk 0..k-1                      H(y)^c, at most max_chunk_items each
      <-- ResponseChunk 0..k'-1                    H(y)^cs: per request chunk (intersection),
                                                   or all of them sorted once (cardinality)
    the client's result: positions, or only a count; the server learns the client's set size.

Every refusal is a :class:`MatchingError`; after one, the machine is FAILED and refuses
everything (never a partial answer). Limits (the policy's floor and ceiling on the client's set
size, runs so far) are decided in ``policy`` by the caller before :meth:`ServerRun.start`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from matching.errors import MatchingError, Reason


class Mode(StrEnum):
    """What the client learns: the matching items themselves, or only how many there are."""

    INTERSECTION = "intersection"
    CARDINALITY = "cardinality"


class State(StrEnum):
    FETCHING_SETUP = "FETCHING_SETUP"
    READY = "READY"
    REQUESTING = "REQUESTING"
    RECEIVING = "RECEIVING"
    RESPONDING = "RESPONDING"
    DONE = "DONE"
    FAILED = "FAILED"


class Event(StrEnum):
    SETUP_CHUNK = "SETUP_CHUNK"
    SETUP_COMPLETE = "SETUP_COMPLETE"
    START = "START"
    REQUEST = "REQUEST"
    LAST_REQUEST = "LAST_REQUEST"
    RESPONSE = "RESPONSE"
    LAST_RESPONSE = "LAST_RESPONSE"


class Role(StrEnum):
    CLIENT = "client"
    SERVER = "server"


TRANSITIONS: Final[dict[tuple[Role, State, Event], State]] = {
    # the client fetches the setup (or starts READY with a cached one), then asks and listens
    (Role.CLIENT, State.FETCHING_SETUP, Event.SETUP_CHUNK): State.FETCHING_SETUP,
    (Role.CLIENT, State.FETCHING_SETUP, Event.SETUP_COMPLETE): State.READY,
    (Role.CLIENT, State.READY, Event.START): State.REQUESTING,
    (Role.CLIENT, State.REQUESTING, Event.REQUEST): State.REQUESTING,
    (Role.CLIENT, State.REQUESTING, Event.LAST_REQUEST): State.RECEIVING,
    (Role.CLIENT, State.REQUESTING, Event.RESPONSE): State.REQUESTING,
    (Role.CLIENT, State.RECEIVING, Event.RESPONSE): State.RECEIVING,
    (Role.CLIENT, State.RECEIVING, Event.LAST_RESPONSE): State.DONE,
    # the server is READY with a prepared setup; it answers while it still receives
    (Role.SERVER, State.READY, Event.START): State.RECEIVING,
    (Role.SERVER, State.RECEIVING, Event.REQUEST): State.RECEIVING,
    (Role.SERVER, State.RECEIVING, Event.LAST_REQUEST): State.RESPONDING,
    (Role.SERVER, State.RECEIVING, Event.RESPONSE): State.RECEIVING,
    (Role.SERVER, State.RESPONDING, Event.RESPONSE): State.RESPONDING,
    (Role.SERVER, State.RESPONDING, Event.LAST_RESPONSE): State.DONE,
}


def next_state(role: Role, current: State, event: Event) -> State:
    try:
        return TRANSITIONS[role, current, event]
    except KeyError:
        if current is State.FAILED:
            raise MatchingError(Reason.RUN_FAILED, "this run was refused earlier") from None
        raise MatchingError(
            Reason.OUT_OF_ORDER, f"the {role} cannot take {event.name} in state {current}"
        ) from None


def digest(payload: bytes) -> str:
    return "sha256:" + hashlib.sha256(payload).hexdigest()


# --- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetupChunk:
    """One piece of a server setup. Every piece repeats what the whole is."""

    data_version: str
    setup_digest: str
    index: int
    chunks: int
    total_bytes: int
    server_items: int
    max_client_items: int
    fpr: float
    payload: bytes = field(repr=False)


@dataclass(frozen=True)
class RunStart:
    run_id: str
    data_version: str
    setup_digest: str
    mode: Mode
    client_items: int
    chunks: int


@dataclass(frozen=True)
class RequestChunk:
    run_id: str
    index: int
    items: int
    """Encrypted items in ``payload``; the decoder has counted them."""
    payload: bytes = field(repr=False)


@dataclass(frozen=True)
class ResponseChunk:
    run_id: str
    index: int
    items: int
    payload: bytes = field(repr=False)


Message = SetupChunk | RunStart | RequestChunk | ResponseChunk


@dataclass(frozen=True)
class SetupOffer:
    """What a server publishes about one setup: it names the data version and the setup bytes
    (by digest), so that a run can never mix two versions."""

    data_version: str
    setup_digest: str
    server_items: int
    max_client_items: int
    fpr: float
    total_bytes: int


def setup_chunks(offer: SetupOffer, setup: bytes, max_chunk_bytes: int) -> list[SetupChunk]:
    if digest(setup) != offer.setup_digest or len(setup) != offer.total_bytes:
        raise MatchingError(Reason.STALE_SETUP, "these setup bytes are not the offered setup")
    if max_chunk_bytes < 1:
        raise MatchingError(Reason.INVALID_PARAMETER, "max_chunk_bytes is at least 1")
    pieces = [setup[i : i + max_chunk_bytes] for i in range(0, len(setup), max_chunk_bytes)]
    pieces = pieces or [b""]
    return [
        SetupChunk(
            offer.data_version, offer.setup_digest, index, len(pieces), offer.total_bytes,
            offer.server_items, offer.max_client_items, offer.fpr, piece,
        )
        for index, piece in enumerate(pieces)
    ]  # fmt: skip


def _fail(machine: _Run, reason: Reason, message: str) -> MatchingError:
    machine.state = State.FAILED
    return MatchingError(reason, message)


class _Run:
    role: Role
    state: State

    def _alive(self) -> None:
        if self.state is State.FAILED:
            raise MatchingError(Reason.RUN_FAILED, "this run was refused earlier")

    def _move(self, event: Event) -> None:
        try:
            self.state = next_state(self.role, self.state, event)
        except MatchingError:
            self.state = State.FAILED
            raise


class ServerRun(_Run):
    """The server's side of one run, against one prepared setup."""

    role = Role.SERVER

    def __init__(self, offer: SetupOffer, *, max_chunk_items: int) -> None:
        if max_chunk_items < 1:
            raise MatchingError(Reason.INVALID_PARAMETER, "max_chunk_items is at least 1")
        self.offer = offer
        self.max_chunk_items = max_chunk_items
        self.state = State.READY
        self.start_message: RunStart | None = None
        self._request_items: list[int] = []
        self._responses = 0
        self._response_items = 0

    @property
    def requests_received(self) -> int:
        return len(self._request_items)

    def start(self, message: RunStart) -> None:
        """Check a run's opening against the current setup and the server's limits."""
        self._alive()
        self._move(Event.START)
        offer = self.offer
        if (message.data_version, message.setup_digest) != (
            offer.data_version,
            offer.setup_digest,
        ):
            raise _fail(
                self, Reason.STALE_SETUP,
                f"the run was built against setup {message.setup_digest} of data version "
                f"{message.data_version}; the current one is {offer.setup_digest} of "
                f"{offer.data_version}: fetch the setup again",
            )  # fmt: skip
        if message.client_items < 1:
            raise _fail(self, Reason.SIZE_MISMATCH, "a run has at least one client item")
        if message.client_items > offer.max_client_items:
            raise _fail(
                self, Reason.TOO_MANY_ITEMS,
                f"{message.client_items} client items; this setup holds its false-positive "
                f"rate for at most {offer.max_client_items}",
            )  # fmt: skip
        least = -(-message.client_items // self.max_chunk_items)
        if not least <= message.chunks <= message.client_items:
            raise _fail(
                self, Reason.SIZE_MISMATCH,
                f"{message.client_items} items in {message.chunks} chunks of at most "
                f"{self.max_chunk_items} cannot add up",
            )  # fmt: skip
        self.start_message = message

    def request(self, message: RequestChunk) -> None:
        """Admit the next request chunk (the caller then processes it)."""
        self._alive()
        start = self.start_message
        if start is None:
            raise _fail(self, Reason.OUT_OF_ORDER, "no run started")
        event = Event.LAST_REQUEST if message.index == start.chunks - 1 else Event.REQUEST
        self._move(event)
        if message.run_id != start.run_id:
            raise _fail(self, Reason.WRONG_RUN, f"chunk of run {message.run_id}, not this run")
        if message.index != self.requests_received:
            raise _fail(
                self, Reason.OUT_OF_ORDER,
                f"request chunk {message.index}; expected {self.requests_received}",
            )  # fmt: skip
        if not 1 <= message.items <= self.max_chunk_items:
            raise _fail(
                self, Reason.SIZE_MISMATCH,
                f"a request chunk holds 1 to {self.max_chunk_items} items, not {message.items}",
            )  # fmt: skip
        received = sum(self._request_items) + message.items
        remaining_chunks = start.chunks - self.requests_received - 1
        if received + remaining_chunks > start.client_items or (
            event is Event.LAST_REQUEST and received != start.client_items
        ):
            raise _fail(
                self, Reason.SIZE_MISMATCH,
                f"the chunks do not add up to the {start.client_items} items declared",
            )  # fmt: skip
        self._request_items.append(message.items)

    def respond(self, items: int, payload: bytes) -> ResponseChunk:
        """The next response chunk, after checking that it answers what was asked: chunk by
        chunk in the intersection mode, only once everything was asked in the cardinality mode
        (the answers are then sorted as one)."""
        self._alive()
        start = self.start_message
        if start is None:
            raise _fail(self, Reason.OUT_OF_ORDER, "no run started")
        expected_total = start.client_items
        last = self._response_items + items == expected_total
        if start.mode is Mode.CARDINALITY and self.state is State.RECEIVING:
            raise _fail(self, Reason.OUT_OF_ORDER, "cardinality answers wait for every request")
        if start.mode is Mode.INTERSECTION:
            if self._responses >= self.requests_received:
                raise _fail(self, Reason.OUT_OF_ORDER, "no request chunk to answer")
            if items != self._request_items[self._responses]:
                raise _fail(self, Reason.SIZE_MISMATCH, "the answer does not match its request")
        elif items < 1 or self._response_items + items > expected_total:
            raise _fail(self, Reason.SIZE_MISMATCH, "the answers do not add up to the request")
        self._move(Event.LAST_RESPONSE if last else Event.RESPONSE)
        chunk = ResponseChunk(start.run_id, self._responses, items, payload)
        self._responses += 1
        self._response_items += items
        return chunk


@dataclass(frozen=True)
class ClientSetup:
    """A complete, verified setup as the client holds it (and may cache per data version)."""

    offer: SetupOffer
    setup: bytes = field(repr=False)


class ClientRun(_Run):
    """The client's side: fetch (or reuse) the setup, ask in chunks, collect the answers."""

    role = Role.CLIENT

    def __init__(
        self, run_id: str, mode: Mode, *, max_chunk_items: int, setup: ClientSetup | None = None
    ) -> None:
        if max_chunk_items < 1:
            raise MatchingError(Reason.INVALID_PARAMETER, "max_chunk_items is at least 1")
        self.run_id = run_id
        self.mode = mode
        self.max_chunk_items = max_chunk_items
        self.setup = setup
        self.state = State.FETCHING_SETUP if setup is None else State.READY
        self._pieces: list[bytes] = []
        self._first: SetupChunk | None = None
        self._start: RunStart | None = None
        self._request_items: list[int] = []
        self._responses = 0
        self._response_items = 0

    # -- setup

    def setup_chunk(self, chunk: SetupChunk) -> ClientSetup | None:
        """Take the next setup piece; the complete setup once the last one is in."""
        self._alive()
        self._move(Event.SETUP_CHUNK)
        first = self._first or chunk
        same = (
            chunk.data_version, chunk.setup_digest, chunk.chunks, chunk.total_bytes,
            chunk.server_items, chunk.max_client_items, chunk.fpr,
        ) == (
            first.data_version, first.setup_digest, first.chunks, first.total_bytes,
            first.server_items, first.max_client_items, first.fpr,
        )  # fmt: skip
        if not same:
            raise _fail(self, Reason.STALE_SETUP, "setup pieces of two different setups")
        if chunk.index != len(self._pieces) or chunk.index >= chunk.chunks:
            raise _fail(
                self, Reason.OUT_OF_ORDER,
                f"setup piece {chunk.index}; expected {len(self._pieces)} of {chunk.chunks}",
            )  # fmt: skip
        self._first = first
        self._pieces.append(chunk.payload)
        if sum(map(len, self._pieces)) > chunk.total_bytes:
            raise _fail(self, Reason.SIZE_MISMATCH, "the setup is longer than it says")
        if len(self._pieces) < chunk.chunks:
            return None
        whole = b"".join(self._pieces)
        self._pieces = []
        if len(whole) != chunk.total_bytes or digest(whole) != chunk.setup_digest:
            raise _fail(self, Reason.TAMPERED_MESSAGE, "the setup does not match its digest")
        offer = SetupOffer(
            chunk.data_version, chunk.setup_digest, chunk.server_items, chunk.max_client_items,
            chunk.fpr, chunk.total_bytes,
        )  # fmt: skip
        self._move(Event.SETUP_COMPLETE)
        self.setup = ClientSetup(offer, whole)
        return self.setup

    # -- the run

    def start(self, client_items: int) -> RunStart:
        self._alive()
        self._move(Event.START)
        if self.setup is None:  # pragma: no cover - READY means a setup is held
            raise _fail(self, Reason.OUT_OF_ORDER, "no setup held")
        offer = self.setup.offer
        if not 1 <= client_items <= offer.max_client_items:
            raise _fail(
                self, Reason.TOO_MANY_ITEMS,
                f"{client_items} items; the setup allows 1 to {offer.max_client_items}",
            )  # fmt: skip
        chunks = -(-client_items // self.max_chunk_items)
        self._start = RunStart(
            self.run_id, offer.data_version, offer.setup_digest, self.mode, client_items, chunks
        )
        return self._start

    def request(self, items: int, payload: bytes) -> RequestChunk:
        """The next request chunk of ``items`` encrypted items."""
        self._alive()
        start = self._start
        if start is None:
            raise _fail(self, Reason.OUT_OF_ORDER, "no run started")
        index = len(self._request_items)
        self._move(Event.LAST_REQUEST if index == start.chunks - 1 else Event.REQUEST)
        expected = min(self.max_chunk_items, start.client_items - index * self.max_chunk_items)
        if items != expected:
            raise _fail(self, Reason.SIZE_MISMATCH, f"request chunk {index} holds {expected}")
        self._request_items.append(items)
        return RequestChunk(self.run_id, index, items, payload)

    def response(self, message: ResponseChunk) -> int:
        """Admit the next response chunk; returns the offset of its first item among the
        client's items (intersection mode) or among the answers (cardinality mode)."""
        self._alive()
        start = self._start
        if start is None:
            raise _fail(self, Reason.OUT_OF_ORDER, "no run started")
        if self.mode is Mode.CARDINALITY and self.state is State.REQUESTING:
            raise _fail(self, Reason.OUT_OF_ORDER, "cardinality answers come after every request")
        last = self._response_items + message.items == start.client_items
        self._move(Event.LAST_RESPONSE if last else Event.RESPONSE)
        if message.run_id != self.run_id:
            raise _fail(self, Reason.WRONG_RUN, f"answer of run {message.run_id}, not this run")
        if message.index != self._responses:
            raise _fail(
                self, Reason.OUT_OF_ORDER,
                f"response chunk {message.index}; expected {self._responses}",
            )  # fmt: skip
        if self.mode is Mode.INTERSECTION:
            if message.index >= len(self._request_items):
                raise _fail(self, Reason.OUT_OF_ORDER, "an answer to a chunk not asked")
            if message.items != self._request_items[message.index]:
                raise _fail(
                    self, Reason.SIZE_MISMATCH,
                    f"answer {message.index} holds {message.items} items, the request "
                    f"{self._request_items[message.index]}",
                )  # fmt: skip
        elif message.items < 1 or self._response_items + message.items > start.client_items:
            raise _fail(self, Reason.SIZE_MISMATCH, "more answers than items asked")
        offset = self._response_items
        self._responses += 1
        self._response_items += message.items
        return offset
