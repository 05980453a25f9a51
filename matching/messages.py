"""The wire form of a matching run's messages (``matching.machine``): one binary frame each.

    b"KXPSI1" | kind (1 byte) | header length (4 bytes, big-endian) | header (JSON) | payload

The header names the run, the setup (data version and digest) and the chunk, and carries the
payload's SHA-256, so that a truncated or altered payload is refused before the library sees
it. :func:`decode` refuses, with a typed :class:`MatchingError`, anything over ``max_bytes``
(before reading it), any unknown kind or field, a field of the wrong type or out of range, and a
payload that does not match its digest. It does not count the PSI elements in a payload: the
session that knows the run's mode does that (``matching.psi``).
"""

from __future__ import annotations

import json
import math
import re
import struct
from typing import Any, Final

from matching.errors import MatchingError, Reason
from matching.machine import (
    Message,
    Mode,
    RequestChunk,
    ResponseChunk,
    RunStart,
    SetupChunk,
    digest,
)

MAGIC: Final = b"KXPSI1"
MAX_HEADER_BYTES: Final = 4096
DEFAULT_MAX_BYTES: Final = 1 << 20
"""A frame is at most 1 MiB unless the caller says otherwise."""
_PREFIX: Final = struct.Struct(">6sBI")
_DIGEST: Final = re.compile(r"sha256:[0-9a-f]{64}")
_RUN_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_MAX_COUNT: Final = 1 << 40

_KINDS: Final[dict[type, int]] = {SetupChunk: 1, RunStart: 2, RequestChunk: 3, ResponseChunk: 4}
_FIELDS: Final[dict[int, dict[str, str]]] = {
    1: {
        "dataVersion": "digest", "setupDigest": "digest", "index": "count", "chunks": "positive",
        "totalBytes": "count", "serverItems": "count", "maxClientItems": "positive",
        "fpr": "rate", "payloadDigest": "digest",
    },
    2: {
        "runId": "run", "dataVersion": "digest", "setupDigest": "digest", "mode": "mode",
        "clientItems": "positive", "chunks": "positive",
    },
    3: {"runId": "run", "index": "count", "items": "count", "payloadDigest": "digest"},
    4: {"runId": "run", "index": "count", "items": "count", "payloadDigest": "digest"},
}  # fmt: skip


def encode(message: Message) -> bytes:
    payload = b""
    header: dict[str, Any]
    match message:
        case SetupChunk():
            payload = message.payload
            header = {
                "dataVersion": message.data_version, "setupDigest": message.setup_digest,
                "index": message.index, "chunks": message.chunks,
                "totalBytes": message.total_bytes, "serverItems": message.server_items,
                "maxClientItems": message.max_client_items, "fpr": message.fpr,
            }  # fmt: skip
        case RunStart():
            header = {
                "runId": message.run_id, "dataVersion": message.data_version,
                "setupDigest": message.setup_digest, "mode": message.mode.value,
                "clientItems": message.client_items, "chunks": message.chunks,
            }  # fmt: skip
        case RequestChunk() | ResponseChunk():
            payload = message.payload
            header = {"runId": message.run_id, "index": message.index, "items": message.items}
    if not isinstance(message, RunStart):
        header["payloadDigest"] = digest(payload)
    body = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    return _PREFIX.pack(MAGIC, _KINDS[type(message)], len(body)) + body + payload


def _field(kind: str, name: str, value: object) -> object:
    if kind in ("count", "positive"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise MatchingError(Reason.MALFORMED_MESSAGE, f"{name} is not a whole number")
        if not (1 if kind == "positive" else 0) <= value <= _MAX_COUNT:
            raise MatchingError(Reason.MALFORMED_MESSAGE, f"{name} is out of range: {value}")
        return value
    if kind == "rate":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MatchingError(Reason.MALFORMED_MESSAGE, f"{name} is not a number")
        if not math.isfinite(value) or not 0 < value < 1:
            raise MatchingError(Reason.MALFORMED_MESSAGE, f"{name} is not in (0, 1)")
        return float(value)
    if not isinstance(value, str):
        raise MatchingError(Reason.MALFORMED_MESSAGE, f"{name} is not a string")
    if kind == "mode":
        try:
            return Mode(value)
        except ValueError:
            raise MatchingError(Reason.MALFORMED_MESSAGE, f"unknown mode {value[:40]!r}") from None
    pattern = _DIGEST if kind == "digest" else _RUN_ID
    if not pattern.fullmatch(value):
        raise MatchingError(Reason.MALFORMED_MESSAGE, f"{name} is malformed")
    return value


def decode(frame: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Message:
    """Read one frame; refuse anything that is not exactly one well-formed message."""
    if len(frame) > max_bytes:
        raise MatchingError(
            Reason.OVERSIZED_MESSAGE, f"a message is at most {max_bytes} bytes, not {len(frame)}"
        )
    if len(frame) < _PREFIX.size:
        raise MatchingError(Reason.MALFORMED_MESSAGE, "too short to be a matching message")
    magic, kind, header_bytes = _PREFIX.unpack_from(frame)
    if magic != MAGIC or kind not in _FIELDS:
        raise MatchingError(Reason.MALFORMED_MESSAGE, "not a matching message")
    if header_bytes > MAX_HEADER_BYTES or _PREFIX.size + header_bytes > len(frame):
        raise MatchingError(Reason.MALFORMED_MESSAGE, "the header's length is wrong")
    raw = frame[_PREFIX.size : _PREFIX.size + header_bytes]
    payload = frame[_PREFIX.size + header_bytes :]
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise MatchingError(Reason.MALFORMED_MESSAGE, "the header is not JSON") from None
    if not isinstance(header, dict):
        raise MatchingError(Reason.MALFORMED_MESSAGE, "the header is not a JSON object")
    expected = _FIELDS[kind]
    if kind == 2 and payload:
        raise MatchingError(Reason.MALFORMED_MESSAGE, "a run's start carries no payload")
    if set(header) != set(expected):
        missing, extra = set(expected) - set(header), set(header) - set(expected)
        raise MatchingError(
            Reason.MALFORMED_MESSAGE,
            f"header fields: missing {sorted(missing)}, unknown {sorted(extra)[:5]}",
        )
    values = {name: _field(expected[name], name, header[name]) for name in expected}
    if "payloadDigest" in values and values["payloadDigest"] != digest(payload):
        raise MatchingError(Reason.TAMPERED_MESSAGE, "the payload does not match its digest")
    v: dict[str, Any] = values
    match kind:
        case 1:
            return SetupChunk(
                v["dataVersion"], v["setupDigest"], v["index"], v["chunks"], v["totalBytes"],
                v["serverItems"], v["maxClientItems"], v["fpr"], payload,
            )  # fmt: skip
        case 2:
            return RunStart(
                v["runId"], v["dataVersion"], v["setupDigest"], v["mode"], v["clientItems"],
                v["chunks"],
            )  # fmt: skip
        case 3:
            return RequestChunk(v["runId"], v["index"], v["items"], payload)
        case _:
            return ResponseChunk(v["runId"], v["index"], v["items"], payload)
