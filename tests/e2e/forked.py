"""Connectors as real server processes, for the crash tests: each runs what ``dataspace
connector serve`` runs (settings read from ``CONNECTOR_*`` variables, uvicorn on its own port)
in a process of its own, which a test kills with SIGKILL, or which kills itself at a named
point (``CONNECTOR_FAULT``, connector.faults), and starts again on the same port and database.

The processes are forked from a multiprocessing fork server that imported the code once: a
restart then takes a fraction of a second instead of an interpreter's start and imports
(about 2 s on the CI machine), so that a test can crash a connector at every step. Nothing of
a connector is built at import time, so a forked process starts as fresh as a new one.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Final

import httpx
from pydantic import SecretStr

from connector.settings import ConnectorSettings

START_TIMEOUT_S: Final = 30.0
KILLED: Final = -signal.SIGKILL
PRELOAD: Final = [
    "dataspace.cli",
    "tests.e2e.forked",
    # what a server imports only once it runs
    "anyio._backends._asyncio",
    "httpcore",
    "h11",
    "sqlalchemy.dialects.sqlite",
    "uvicorn.lifespan.on",
    "uvicorn.loops.asyncio",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.protocols.websockets.auto",
]


@cache
def _context() -> ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def environment(settings: ConnectorSettings) -> dict[str, str]:
    """The ``CONNECTOR_*`` variables that give ``settings`` (those set and not None)."""
    variables: dict[str, str] = {}
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, dict | list):
            text = json.dumps(value, default=str)  # paths, networks: their text
        elif isinstance(value, Enum):
            text = str(value.value)
        else:
            text = str(value)
        variables[f"CONNECTOR_{name.upper()}"] = text
    return variables


def _serve(variables: dict[str, str], log: str) -> None:
    """In the forked process: log to ``log``, read the settings from the environment only,
    and serve as the CLI does."""
    # the test's handle on this process is daemonic (it dies with the test); the connector
    # itself, as under the CLI, starts processes of its own (its PSI workers)
    multiprocessing.current_process().daemon = False
    output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(output, 1)
    os.dup2(output, 2)
    for name in [n for n in os.environ if n.startswith("CONNECTOR_")]:
        del os.environ[name]
    os.environ.update(variables)
    from dataspace.cli import connector_serve

    connector_serve(host=None, port=None)


@dataclass
class ConnectorProcess:
    """One connector, started, killed and started again as a process."""

    name: str
    settings: ConnectorSettings
    log: Path
    variables: dict[str, str] = field(default_factory=dict)
    """More ``CONNECTOR_*`` variables, for the process only."""
    fault: str | None = None
    """The fault it was started with (None: none)."""
    process: BaseProcess | None = None
    crashes: list[str] = field(default_factory=list)
    """The faults it died at, in order."""

    @property
    def url(self) -> str:
        return self.settings.base_url

    def start(self, fault: str | None = None) -> None:
        variables = {**environment(self.settings), **self.variables}
        variables["CONNECTOR_PORT"] = str(httpx.URL(self.url).port)  # where others reach it
        if fault is not None:
            variables["CONNECTOR_FAULT"] = fault
        self.fault = fault
        with self.log.open("a") as out:
            out.write(f"--- start ({fault or 'no fault'})\n")
        self.process = _context().Process(
            target=_serve, args=(variables, str(self.log)), name=self.name, daemon=True
        )
        self.process.start()
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.alive:
                if self.died_at_fault():  # at once: what it had pending took it there
                    return
                break
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise AssertionError(f"{self.name} did not come up:\n{self.tail()}")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def died_at_fault(self) -> bool:
        """Whether it killed itself at its fault (SIGKILL, and its log says where)."""
        if self.process is None or self.fault is None or self.process.exitcode is None:
            return False
        said = f"killing this connector at {self.fault}" in self.log.read_text(errors="replace")
        return self.process.exitcode == KILLED and said

    def kill(self) -> None:
        """kill -9, from outside."""
        if self.process is not None:
            self.process.kill()
            self.process.join(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=10)
            if self.process.is_alive():
                self.kill()

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Crashes:
    """Faults for each side, in the order a flow reaches them: a side that killed itself at
    its fault is started again with its next one (with none once its list is used up)."""

    sides: dict[str, ConnectorProcess]
    plan: dict[str, list[str]] = field(default_factory=dict)

    def arm(self, **plan: list[str]) -> None:
        """Restart each side named with the first of its faults; its crashes count anew."""
        for name, faults in plan.items():
            self.plan[name] = list(faults)
            side = self.sides[name]
            side.stop()
            side.crashes = []
            side.start(self.plan[name].pop(0) if self.plan[name] else None)

    def watch(self) -> None:
        """Restart whoever died at its fault; a death at anything else fails the test."""
        for name, side in self.sides.items():
            if side.alive:
                continue
            if not side.died_at_fault():
                code = side.process.exitcode if side.process else None
                raise AssertionError(f"{name} died (exit {code}), not at a fault:\n{side.tail()}")
            assert side.fault is not None
            side.crashes.append(side.fault)
            faults = self.plan.get(name, [])
            side.start(faults.pop(0) if faults else None)

    def happened(self, expected: dict[str, list[str]]) -> bool:
        """Whether each side has crashed at these faults, and is up again."""
        return all(
            self.sides[name].alive and set(faults) <= set(self.sides[name].crashes)
            for name, faults in expected.items()
        )

    def until(
        self, check: Callable[[], bool], seen: Callable[[], object], timeout_s: float
    ) -> None:
        """Poll ``check`` while restarting crashed sides; on timeout show ``seen``."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.watch()
            try:
                if check():
                    return
            except httpx.TransportError:
                pass  # a side is down this moment
            if time.monotonic() > deadline:
                try:
                    shown = seen()
                except httpx.TransportError as error:
                    shown = f"a side is down ({error!r})"
                raise AssertionError(f"timed out; seen: {shown!r}; crashes: {self.done()}")
            time.sleep(0.03)

    def done(self) -> dict[str, list[str]]:
        return {name: side.crashes for name, side in self.sides.items()}
