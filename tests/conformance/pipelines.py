"""The kit's pipeline (the Eclipse DSP TCK's ``AbstractAsyncPipeline`` and
``AbstractDspPipeline``; ``negotiation`` and ``transfer`` build on it): a scenario is a list of
stages run in order. An ``expect…`` stage registers a callback handler at its place in the
list (so a message that arrives earlier gets the endpoint's 404) and puts a latch on a queue;
the next ``then_wait…`` takes the oldest latch, waits for the handler to have run, then polls
its condition — each for at most the kit's default wait of 15 s. ``pause`` is the kit's fixed
100 ms sleep, kept exactly where the kit sleeps (before its negotiation terminations,
verifications and negotiation state checks, and its ``thenPause``).

Where the kit would only time out, a wait here fails at once with the reason when a handler
found the connector's message invalid (no ``@type``, schema, compact form, a property the kit
reads missing). A message the kit's own state machine refuses is answered 400, as the kit does,
and only noted: the connector may retry it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Self

from tests.conformance.callbacks import CallbackEndpoint, Reply
from tests.conformance.checks import ScenarioError, parsed, required
from tests.conformance.client import KitClient
from tests.conformance.machines import KitStateError
from tests.conformance.messages import Message

PAUSE_S: Final = 0.1
POLL_S: Final = 0.005
HTTP_POLL_S: Final = 0.02
DEFAULT_WAIT_S: Final = 15.0


@dataclass
class Kit:
    """The kit's side of a run: its callback endpoint, its HTTP client, its configuration (the
    kit's property names, as its ``.properties`` file holds them)."""

    endpoint: CallbackEndpoint
    client: KitClient
    config: Mapping[str, str]
    wait_s: float = DEFAULT_WAIT_S

    def setting(self, name: str) -> str:
        try:
            return self.config[name]
        except KeyError:
            raise ScenarioError(f"the kit's configuration has no {name}") from None

    @property
    def dsp(self) -> str:
        return self.setting("dataspacetck.dsp.connector.http.url").rstrip("/")

    @property
    def root(self) -> str:
        return self.setting("dataspacetck.dsp.connector.http.base.url").rstrip("/")

    @property
    def callback(self) -> str:
        return self.setting("dataspacetck.callback.address")

    @property
    def agent_id(self) -> str:
        return self.setting("dataspacetck.dsp.connector.agent.id")


def pause() -> None:
    time.sleep(PAUSE_S)


class Pipeline:
    def __init__(self, kit: Kit, scenario: str) -> None:
        self.kit = kit
        self.scenario = scenario
        self._stages: list[tuple[str, Callable[[], None]]] = []
        self._latches: deque[threading.Event] = deque()
        self._violations: list[str] = []
        self._refusals: list[str] = []

    def then(self, name: str, run: Callable[[], None]) -> Self:
        self._stages.append((name, run))
        return self

    def then_pause(self) -> Self:
        return self.then("pause", pause)

    def execute(self) -> None:
        for index, (name, run) in enumerate(self._stages, 1):
            try:
                run()
            except Exception as error:
                raise ScenarioError(self._report(index, name, error)) from error

    def _report(self, index: int, name: str, error: Exception) -> str:
        lines = [f"{self.scenario}, step {index} ({name}): {type(error).__name__}: {error}"]
        lines += [f"  invalid message from the connector: {v}" for v in self._violations]
        lines += [f"  refused by the kit (400): {r}" for r in self._refusals]
        lines += ["  sent by the kit:"]
        lines += [f"    {line}" for line in self.kit.client.sent] or ["    nothing"]
        lines += ["  callbacks received:"]
        lines += [f"    {exchange}" for exchange in self.kit.endpoint.exchanges()] or ["    none"]
        return "\n".join(lines)

    def _check_violations(self) -> None:
        if self._violations:
            raise ScenarioError(self._violations[0])

    def then_wait(
        self, description: str, condition: Callable[[], bool], *, poll_s: float = POLL_S
    ) -> Self:
        latch = self._latches.popleft() if self._latches else None

        def run() -> None:
            deadline = time.monotonic() + self.kit.wait_s
            while latch is not None and not latch.wait(POLL_S):
                self._check_violations()
                if time.monotonic() > deadline:
                    raise ScenarioError(f"Timeout waiting for {description}")
            deadline = time.monotonic() + self.kit.wait_s
            while not condition():
                if time.monotonic() > deadline:
                    raise ScenarioError(f"Timeout waiting for {description}")
                time.sleep(poll_s)

        return self.then(f"wait for {description}", run)

    def expect(
        self,
        path: str,
        name: str,
        action: Callable[[Message], Message | None],
        *,
        status: int = 200,
        fallible: bool = False,
    ) -> Self:
        """Register, at this place, a handler for ``path`` that runs ``action`` on the checked
        message and answers its result; ``fallible`` handlers answer 500 to an invalid message
        (the kit's ``FallibleDspHandler``), the others 400."""
        latch = threading.Event()
        self._latches.append(latch)

        def handle(raw: bytes) -> Reply:
            try:
                answer = action(parsed(raw, f"{name} at {path}"))
            except ScenarioError as failure:
                self._violations.append(f"{name}: {failure}")
                return Reply(500 if fallible else 400, str(failure))
            except KitStateError as refusal:
                self._refusals.append(f"{name}: {refusal}; message: {raw.decode(errors='replace')}")
                return Reply(400, str(refusal))
            self.kit.endpoint.deregister(path)
            latch.set()
            return Reply(status, answer)

        return self.then(f"expect {name}", lambda: self.kit.endpoint.register(path, handle))

    def _state_of(self, url: str) -> str:
        body = self.kit.client.required_message(self.kit.client.get(url))
        required(body, "providerPid")
        return str(required(body, "state"))

    def _verify_state(self, url: str, state: str) -> None:
        actual = self._state_of(url)
        if actual != state:
            raise ScenarioError(f"expected state {state}, the connector says {actual} ({url})")
