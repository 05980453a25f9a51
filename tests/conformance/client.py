"""The kit's outbound HTTP (the Eclipse DSP TCK's ``HttpFunctions``), with its judging rules:

- a POST that should succeed: a 404 fails at once; any other 4xx is retried, three attempts in
  all (200 ms, then 400 ms between them); then anything but 2xx fails (5xx at once);
- a POST that must be refused: it needs a 4xx other than 404 (no retry);
- a GET must be 2xx (a 404 is named), unless the scenario expects an error, when any answer
  is read.

Every request carries ``Authorization: <the configured value>``. Every JSON body the connector
answers a DSP request with is checked (``checks``) — also the bodies the Java kit does not read
(error bodies, answers to events), which is stricter than the kit. The initiation webhooks and
``/.well-known/dspace-version`` speak plain JSON and are not checked.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from tests.conformance.checks import ScenarioError, parsed

ATTEMPTS: Final = 3
FIRST_BACKOFF_S: Final = 0.2
TIMEOUT_S: Final = 15.0


def _success(response: httpx.Response) -> bool:
    return 200 <= response.status_code < 300


def _shown(response: httpx.Response) -> str:
    request = response.request
    return f"{request.method} {request.url} -> {response.status_code} {response.text[:2000]}"


@dataclass
class KitClient:
    authorization: str
    http: httpx.Client
    sent: list[str] = field(default_factory=list)
    """What the kit sent and was answered in this scenario, for the failure messages."""

    def _headers(self) -> dict[str, str]:
        return {"Authorization": self.authorization, "Content-Type": "application/json"}

    def post(
        self, url: str, message: object, *, expect_error: bool = False, plain: bool = False
    ) -> httpx.Response:
        content = json.dumps(message).encode()
        backoff_s = FIRST_BACKOFF_S
        for attempt in range(ATTEMPTS):
            response = self.http.post(url, content=content, headers=self._headers())
            self.sent.append(f"{content.decode()[:2000]} => {_shown(response)}")
            code = response.status_code
            retry = not expect_error and code != 404 and 400 <= code < 500
            if not (retry and attempt < ATTEMPTS - 1):
                break
            time.sleep(backoff_s)
            backoff_s *= 2
        self._judge(response, url, expect_error)
        if not plain:
            self.message(response)
        return response

    @staticmethod
    def _judge(response: httpx.Response, url: str, expect_error: bool) -> None:
        code = response.status_code
        if code == 404:
            raise ScenarioError(f"Unexpected 404 received for request: {url}\n{_shown(response)}")
        if not _success(response):
            if code < 400 or code >= 500 or not expect_error:
                raise ScenarioError(f"Unexpected response code: {code}\n{_shown(response)}")
        elif expect_error:
            raise ScenarioError(f"Expected to throw an error on request: {url}\n{_shown(response)}")

    def get(self, url: str, *, expect_error: bool = False) -> httpx.Response:
        response = self.http.get(url, headers={"Authorization": self.authorization})
        self.sent.append(_shown(response))
        if not expect_error:
            if response.status_code == 404:
                raise ScenarioError(
                    f"Unexpected 404 received for request: {url}\n{_shown(response)}"
                )
            if not _success(response):
                raise ScenarioError(
                    f"Unexpected response code: {response.status_code}\n{_shown(response)}"
                )
        return response

    @staticmethod
    def message(response: httpx.Response) -> dict[str, Any] | None:
        """The checked DSP body of ``response``, or None when it has none."""
        if not response.content:
            return None
        return parsed(
            response.content,
            f"answer to {response.request.method} {response.request.url} ({response.status_code})",
        )

    @staticmethod
    def required_message(response: httpx.Response) -> dict[str, Any]:
        body = KitClient.message(response)
        if body is None:
            raise ScenarioError(f"no body: {_shown(response)}")
        return body

    @staticmethod
    def plain(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ScenarioError(f"Cannot deserialize json: {_shown(response)}") from None
