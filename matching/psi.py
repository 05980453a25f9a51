"""The adapter to OpenMined PSI (ECDH over P-256, a GCS server setup): the only module that
imports ``private_set_intersection``. Bytes in, bytes out: every message is the library's
serialised protobuf (``ServerSetup``, ``Request``, ``Response``).

The protocol (semi-honest, the library's): the server hashes its items to the curve and raises
them to its key ``s``; the setup is a Golomb-compressed set (GCS) of those points' hashes. The
client sends ``H(y)^c``; the server answers ``H(y)^(cs)`` (sorted, in cardinality mode, so that
the order says nothing); the client strips ``c`` and looks ``H(y)^s`` up in the setup.

What it does *not* do: no Bloom filter and no raw container, ever. OpenMined's
``BLOOM_FILTER`` measured a per-element false-positive rate of 2-7.5e-6 instead of the
configured 1e-13 and once returned a wrong cardinality (issue 15); a setup in any container
but GCS is refused on both sides. Chunking, workers and the run's rules live in
``matching.parallel`` and ``matching.machine``; this module only wraps single library calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from google.protobuf.message import DecodeError
from private_set_intersection.proto.psi_python_proto_pb.private_set_intersection.proto import (
    psi_pb2,
)
from private_set_intersection.python import _openmined_psi as _psi

from matching.errors import MatchingError, Reason
from matching.machine import Mode

KEY_BYTES: Final = 32
"""A P-256 private key (a scalar), as the library writes it."""
POINT_BYTES: Final = 33
"""A compressed P-256 point: 0x02 or 0x03, then x."""
_FAILURES: Final = (RuntimeError, ValueError, TypeError)
MAX_HASH_RANGE: Final = 2**63


@dataclass(frozen=True)
class SetupFacts:
    """What a GCS setup says about itself, read without the key."""

    hash_range: int
    div: int
    bits_bytes: int

    def false_positive_rate(self, server_items: int, client_items: int) -> float:
        """The probability that a query of ``client_items`` finds any false positive: each
        item collides with one of the server's with probability server items / hash range
        (the library sizes the range as max(server, client items) x client items / rate)."""
        return server_items * client_items / self.hash_range


def check_key(key: bytes) -> bytes:
    # The library accepts a key of any length; a short one would be a weak key, not an error.
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise MatchingError(Reason.INVALID_PARAMETER, f"a PSI key is {KEY_BYTES} bytes")
    return key


def check_fpr(fpr: float) -> float:
    if not 0.0 < fpr < 1.0:
        raise MatchingError(Reason.INVALID_PARAMETER, f"a false-positive rate is in (0, 1): {fpr}")
    return fpr


def new_key() -> bytes:
    """A fresh private key from the library's CSPRNG (for a data version, or a client run)."""
    return bytes(_psi.cpp_server.CreateWithNewKey(True).GetPrivateKeyBytes())


def _server(key: bytes, mode: Mode) -> object:
    return _psi.cpp_server.CreateFromKey(check_key(key), mode is Mode.INTERSECTION)


def _client(key: bytes, mode: Mode) -> object:
    return _psi.cpp_client.CreateFromKey(check_key(key), mode is Mode.INTERSECTION)


def create_setup(key: bytes, items: Sequence[str], *, fpr: float, max_client_items: int) -> bytes:
    """The server setup of ``items`` under ``key``, sized so that a query of up to
    ``max_client_items`` finds a false positive with probability at most ``fpr``. The same key
    and items give the same bytes (the setup does not depend on the mode)."""
    check_fpr(fpr)
    if max_client_items < 1:
        raise MatchingError(Reason.INVALID_PARAMETER, "max_client_items is at least 1")
    # The library's GCS hash range, max(server items, client items) x client items / rate, is
    # a signed 64-bit integer: past it, the setup it writes is broken.
    least = max(len(items), max_client_items) * max_client_items / MAX_HASH_RANGE
    if fpr <= least:
        raise MatchingError(
            Reason.INVALID_PARAMETER,
            f"a rate of {fpr:g} for {len(items):,} server and {max_client_items:,} client items "
            f"overflows the GCS; the rate must be above {least:.3g}",
        )
    server: object = _server(key, Mode.INTERSECTION)
    message = server.CreateSetupMessage(  # type: ignore[attr-defined]
        fpr, max_client_items, list(items), _psi.data_structure.GCS
    )
    return bytes(message.save())


def read_setup(setup: bytes) -> SetupFacts:
    """Check that ``setup`` is a well-formed GCS setup; refuse every other container."""
    message = psi_pb2.ServerSetup()
    try:
        message.ParseFromString(setup)
    except DecodeError:
        raise MatchingError(Reason.TAMPERED_MESSAGE, "the setup is not a PSI ServerSetup") from None
    container = message.WhichOneof("data_structure")
    if container != "gcs":
        raise MatchingError(
            Reason.UNSAFE_SETUP, f"the setup's container is {container or 'missing'}, not GCS"
        )
    gcs = message.gcs
    if gcs.div < 0 or gcs.div > 62 or gcs.hash_range < 1:
        raise MatchingError(Reason.TAMPERED_MESSAGE, "the GCS setup's parameters are out of range")
    return SetupFacts(int(gcs.hash_range), int(gcs.div), len(gcs.bits))


def create_request(key: bytes, items: Sequence[str], mode: Mode) -> bytes:
    """The client's encrypted items ``H(y)^c``, in the order given."""
    client: object = _client(key, mode)
    return bytes(client.CreateRequest(list(items)).save())  # type: ignore[attr-defined]


def _points(message: psi_pb2.Request | psi_pb2.Response, what: str) -> int:
    for element in message.encrypted_elements:
        if len(element) != POINT_BYTES or element[0] not in (2, 3):
            raise MatchingError(Reason.TAMPERED_MESSAGE, f"the {what} holds a malformed point")
    return len(message.encrypted_elements)


def request_items(request: bytes, mode: Mode) -> int:
    """How many items a request holds, after checking that it is one, for ``mode``."""
    message = psi_pb2.Request()
    try:
        message.ParseFromString(request)
    except DecodeError:
        raise MatchingError(Reason.TAMPERED_MESSAGE, "the payload is not a PSI Request") from None
    if message.reveal_intersection != (mode is Mode.INTERSECTION):
        raise MatchingError(
            Reason.WRONG_MODE, f"the request was built for another mode than {mode}"
        )
    return _points(message, "request")


def response_items(response: bytes) -> int:
    message = psi_pb2.Response()
    try:
        message.ParseFromString(response)
    except DecodeError:
        raise MatchingError(Reason.TAMPERED_MESSAGE, "the payload is not a PSI Response") from None
    return _points(message, "response")


def process_request(key: bytes, request: bytes, mode: Mode) -> bytes:
    """The server's answer ``H(y)^(cs)``: in request order for the intersection mode, sorted
    for the cardinality mode."""
    request_items(request, mode)
    server: object = _server(key, mode)
    try:
        loaded = _psi.cpp_proto_request.Load(request)
        return bytes(server.ProcessRequest(loaded).save())  # type: ignore[attr-defined]
    except _FAILURES as error:
        raise MatchingError(Reason.TAMPERED_MESSAGE, f"the request was refused: {error}") from None


def _load(setup: bytes, response: bytes) -> tuple[object, object]:
    read_setup(setup)
    response_items(response)
    try:
        return _psi.cpp_proto_server_setup.Load(setup), _psi.cpp_proto_response.Load(response)
    except _FAILURES as error:
        raise MatchingError(Reason.TAMPERED_MESSAGE, f"unreadable PSI message: {error}") from None


def intersection(key: bytes, setup: bytes, response: bytes) -> list[int]:
    """Positions, within ``response``, of the client items that are in the server's set."""
    loaded_setup, loaded_response = _load(setup, response)
    client: object = _client(key, Mode.INTERSECTION)
    try:
        found = client.GetIntersection(loaded_setup, loaded_response)  # type: ignore[attr-defined]
    except _FAILURES as error:
        raise MatchingError(Reason.TAMPERED_MESSAGE, f"the response was refused: {error}") from None
    return sorted(int(position) for position in found)


def cardinality(key: bytes, setup: bytes, response: bytes) -> int:
    """How many of the items in ``response`` are in the server's set."""
    loaded_setup, loaded_response = _load(setup, response)
    client: object = _client(key, Mode.CARDINALITY)
    try:
        return int(client.GetIntersectionSize(loaded_setup, loaded_response))  # type: ignore[attr-defined]
    except _FAILURES as error:
        raise MatchingError(Reason.TAMPERED_MESSAGE, f"the response was refused: {error}") from None


def shuffle_responses(responses: Sequence[bytes], chunk_items: int) -> list[bytes]:
    """Cardinality mode across chunks: all answers of a run, sorted as one and cut again into
    chunks of ``chunk_items``, so that no chunk tells which request chunk its matches came from
    (the library sorts within one response only)."""
    elements: list[bytes] = []
    for response in responses:
        message = psi_pb2.Response()
        message.ParseFromString(response)
        elements.extend(message.encrypted_elements)
    elements.sort()
    out: list[bytes] = []
    for start in range(0, len(elements), chunk_items):
        message = psi_pb2.Response()
        message.encrypted_elements.extend(elements[start : start + chunk_items])
        out.append(message.SerializeToString())
    return out
