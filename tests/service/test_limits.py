"""Limits before work, against a real server: a body declared or streamed past the limit is
refused (413, typed) before any route reads it, without an API key and without the server
waiting for the rest of it."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from connector.app import create_app
from dataspace.servers import bind, serve_in_thread
from tests.connector.test_conformance import settings

LIMIT = 1 << 20


def answer_of(sock: socket.socket) -> tuple[int, dict[str, object]]:
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 60:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    status = int(head.split(b" ")[1])
    return status, json.loads(body[: body.rindex(b"}") + 1])


def test_a_body_declared_too_large_is_refused_at_once(tmp_path: Path) -> None:
    listening = bind()
    with serve_in_thread(create_app(settings(tmp_path)), listening) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            started = time.monotonic()
            sock.sendall(
                b"POST /management/v1/policydefinitions HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 67108864\r\n\r\n{"
            )
            status, body = answer_of(sock)
            waited = time.monotonic() - started
    assert status == 413
    assert body["reason"] == "body_too_large"
    assert waited < 5  # not waiting for 64 MiB that never come


def test_a_chunked_body_is_cut_off_at_the_limit(tmp_path: Path) -> None:
    listening = bind()
    with serve_in_thread(create_app(settings(tmp_path)), listening) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                b"POST /contracts/v1/data HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            sent = 0
            chunk = b"x" * 65536
            try:
                while sent < 8 * LIMIT:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
            except OSError:  # the server closed the connection on us: refused
                pass
            status, body = answer_of(sock)
    assert status == 413
    assert body["reason"] == "body_too_large"
