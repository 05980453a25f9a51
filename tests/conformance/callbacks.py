"""The kit's callback endpoint (the Eclipse DSP TCK's ``DefaultCallbackEndpoint`` behind its
HTTP server): a real HTTP server on 127.0.0.1 where the connector under test sends its
messages. Each POST goes to the first registered handler whose path pattern matches the whole
request path (a trailing slash stripped); with none registered the answer is 404, as the kit
gives a message that arrives before its handler.

Two of the kit's quirks are kept on purpose: a pattern is registered without its trailing slash
but deregistered as written, so ``/negotiations/[^/]+/offers/`` and
``/negotiations/[^/]+/termination/`` stay registered until the scenario ends (``clear``); and a
handler that raises answers 400 (500 for the kit's "fallible" transfer handlers) and stays
registered. Every exchange is kept for the failure messages.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final
from urllib.parse import urlsplit

MAX_BODY_BYTES: Final = 1 << 20
SHUTDOWN_POLL_S: Final = 0.02


@dataclass(frozen=True)
class Reply:
    status: int
    body: object | None = None


Handler = Callable[[bytes], Reply]


@dataclass(frozen=True)
class Exchange:
    path: str
    request: str
    status: int
    reply: str

    def __str__(self) -> str:
        return f"POST {self.path} {self.request} -> {self.status} {self.reply}"


def _strip(path: str) -> str:
    return path[:-1] if path.endswith("/") else path


class CallbackEndpoint:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        self._server = _Server(("127.0.0.1", 0), _Request)
        self._server.endpoint = self

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def register(self, path: str, handler: Handler) -> None:
        path = path if path.startswith("/") else "/" + path
        with self._lock:
            self._handlers[_strip(path)] = handler

    def deregister(self, path: str) -> None:
        with self._lock:
            self._handlers.pop(path, None)

    def clear(self) -> None:
        """The end of a scenario: the kit closes its endpoint with the test."""
        with self._lock:
            self._handlers.clear()
            self._exchanges.clear()

    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)

    def dispatch(self, path: str, body: bytes) -> Reply:
        stripped = _strip(path)
        with self._lock:
            handler = next(
                (h for pattern, h in self._handlers.items() if re.fullmatch(pattern, stripped)),
                None,
            )
        reply = Reply(404, None) if handler is None else handler(body)
        shown = "" if reply.body is None else json.dumps(reply.body, ensure_ascii=False)
        with self._lock:
            self._exchanges.append(
                Exchange(path, body.decode(errors="replace")[:4000], reply.status, shown[:2000])
            )
        return reply

    @contextmanager
    def serving(self) -> Iterator[CallbackEndpoint]:
        thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_S},
            daemon=True,
        )
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    endpoint: CallbackEndpoint


class _Request(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_BODY_BYTES))
        reply = self.server.endpoint.dispatch(urlsplit(self.path).path, body)
        self._answer(reply)

    def do_GET(self) -> None:
        self._answer(Reply(404, None))

    def _answer(self, reply: Reply) -> None:
        content = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        if content:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the exchanges are kept for failure messages instead."""
