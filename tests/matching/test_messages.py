"""Frames: what is encoded is decoded, and anything else is refused with a typed error."""

from __future__ import annotations

import json
import struct

import pytest

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
from matching.messages import MAGIC, decode, encode

VERSION = "sha256:" + "1" * 64
SETUP_DIGEST = "sha256:" + "2" * 64
MESSAGES: list[Message] = [
    SetupChunk(VERSION, SETUP_DIGEST, 0, 2, 10, 1000, 100, 1e-9, b"12345"),
    RunStart("run-1", VERSION, SETUP_DIGEST, Mode.CARDINALITY, 25, 3),
    RequestChunk("run-1", 0, 10, b"\x12\x21" + b"\x02" * 33),
    ResponseChunk("run-1", 2, 5, b"payload"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_what_is_encoded_is_decoded(message: Message) -> None:
    assert decode(encode(message)) == message


def frame(kind: int, header: dict[str, object], payload: bytes = b"") -> bytes:
    body = json.dumps(header).encode()
    return struct.pack(">6sBI", MAGIC, kind, len(body)) + body + payload


REQUEST_HEADER = {"runId": "run-1", "index": 0, "items": 1, "payloadDigest": digest(b"p")}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"", Reason.MALFORMED_MESSAGE, id="empty"),
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", Reason.MALFORMED_MESSAGE, id="not-ours"),
        pytest.param(encode(MESSAGES[2])[:-1], Reason.TAMPERED_MESSAGE, id="truncated-payload"),
        pytest.param(encode(MESSAGES[2])[:20], Reason.MALFORMED_MESSAGE, id="truncated-header"),
        pytest.param(encode(MESSAGES[2])[:-1] + b"\x03", Reason.TAMPERED_MESSAGE, id="tampered-payload"),
        pytest.param(encode(MESSAGES[1]) + b"x", Reason.MALFORMED_MESSAGE, id="start-with-payload"),
        pytest.param(frame(9, REQUEST_HEADER, b"p"), Reason.MALFORMED_MESSAGE, id="unknown-kind"),
        pytest.param(frame(3, {**REQUEST_HEADER, "extra": 1}, b"p"), Reason.MALFORMED_MESSAGE, id="unknown-field"),
        pytest.param(frame(3, {k: v for k, v in REQUEST_HEADER.items() if k != "items"}, b"p"), Reason.MALFORMED_MESSAGE, id="missing-field"),
        pytest.param(frame(3, {**REQUEST_HEADER, "items": True}, b"p"), Reason.MALFORMED_MESSAGE, id="bool-count"),
        pytest.param(frame(3, {**REQUEST_HEADER, "items": -1}, b"p"), Reason.MALFORMED_MESSAGE, id="negative-count"),
        pytest.param(frame(3, {**REQUEST_HEADER, "items": 2**60}, b"p"), Reason.MALFORMED_MESSAGE, id="huge-count"),
        pytest.param(frame(3, {**REQUEST_HEADER, "index": "0"}, b"p"), Reason.MALFORMED_MESSAGE, id="string-index"),
        pytest.param(frame(3, {**REQUEST_HEADER, "runId": "a b"}, b"p"), Reason.MALFORMED_MESSAGE, id="bad-run-id"),
        pytest.param(frame(3, {**REQUEST_HEADER, "payloadDigest": "md5:00"}, b"p"), Reason.MALFORMED_MESSAGE, id="bad-digest"),
        pytest.param(frame(3, REQUEST_HEADER, b"q"), Reason.TAMPERED_MESSAGE, id="digest-mismatch"),
        pytest.param(frame(3, [1, 2], b"p"), Reason.MALFORMED_MESSAGE, id="header-not-object"),  # type: ignore[arg-type]
        pytest.param(struct.pack(">6sBI", MAGIC, 3, 5) + b"{nope", Reason.MALFORMED_MESSAGE, id="header-not-json"),
        pytest.param(struct.pack(">6sBI", MAGIC, 3, 10**6) + b"{}", Reason.MALFORMED_MESSAGE, id="header-length-lies"),
        pytest.param(frame(2, {"runId": "r", "dataVersion": VERSION, "setupDigest": SETUP_DIGEST, "mode": "everything", "clientItems": 1, "chunks": 1}), Reason.MALFORMED_MESSAGE, id="unknown-mode"),
        pytest.param(frame(1, {"dataVersion": VERSION, "setupDigest": SETUP_DIGEST, "index": 0, "chunks": 1, "totalBytes": 1, "serverItems": 1, "maxClientItems": 1, "fpr": float("nan"), "payloadDigest": digest(b"")}), Reason.MALFORMED_MESSAGE, id="nan-rate"),
    ],
)  # fmt: skip
def test_a_bad_frame_is_refused(data: bytes, reason: Reason) -> None:
    with pytest.raises(MatchingError) as error:
        decode(data)
    assert error.value.reason is reason


def test_an_oversized_frame_is_refused_before_it_is_read() -> None:
    big = encode(ResponseChunk("run-1", 0, 1, b"x" * 2000))
    assert decode(big, max_bytes=len(big)) == ResponseChunk("run-1", 0, 1, b"x" * 2000)
    with pytest.raises(MatchingError) as error:
        decode(big, max_bytes=len(big) - 1)
    assert error.value.reason is Reason.OVERSIZED_MESSAGE
