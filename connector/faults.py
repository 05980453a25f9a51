"""Test-only fault injection: the crash tests kill a connector (SIGKILL, as ``kill -9`` does) at
a named point of its work, so that they can cut it at every step of a negotiation and a
transfer deterministically. Off unless ``CONNECTOR_FAULT`` is set (never in production; the
app logs it loudly); with it unset, every point is a call that does nothing.

The points are the two moments at which at-least-once delivery could split a process:
``delivered:<outbox message kind>`` (the outbox's POST was answered 2xx, and it has not yet
recorded the message as sent) and ``committed:<audited action>`` (a process move is committed,
and the HTTP answer, to the peer or the operator, is not sent yet). This module does not
choose when to restart: the test does.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Final, Protocol

from pydantic import AfterValidator

log = logging.getLogger("kexin.connector.faults")


class FaultPoint(StrEnum):
    DELIVERED = "delivered"
    """The outbox's POST was answered 2xx; the message is not yet recorded as sent."""
    COMMITTED = "committed"
    """A process move committed (its audit event and messages with it); no answer sent yet."""


class Faults(Protocol):
    def reached(self, point: FaultPoint, name: str) -> None:
        """The connector is at ``point`` for ``name`` (a message kind or an action)."""


class NoFaults:
    """Production: nothing happens at any point."""

    def reached(self, point: FaultPoint, name: str) -> None:
        return None


NO_FAULTS: Final = NoFaults()


@dataclass(frozen=True)
class CrashAt:
    """Kill this very process, without any clean-up, the first time ``point`` is reached for
    ``name``."""

    point: FaultPoint
    name: str

    def reached(self, point: FaultPoint, name: str) -> None:
        if (point, name) == (self.point, self.name):
            log.critical("fault injection: killing this connector at %s:%s", point.value, name)
            for handler in logging.getLogger().handlers:
                handler.flush()
            os.kill(os.getpid(), signal.SIGKILL)


def parse_fault(value: str) -> CrashAt:
    """``delivered:<kind>`` or ``committed:<action>``; a ValueError names what is wrong."""
    point, separator, name = value.partition(":")
    if not separator or not name:
        raise ValueError("a fault is <point>:<name>, e.g. delivered:negotiation.verification")
    try:
        return CrashAt(FaultPoint(point), name)
    except ValueError:
        points = ", ".join(p.value for p in FaultPoint)
        raise ValueError(f"unknown fault point {point!r}; one of {points}") from None


def _check_fault(value: str) -> str:
    parse_fault(value)
    return value


FaultSpec = Annotated[str, AfterValidator(_check_fault)]
"""A settings field type: a string that :func:`parse_fault` accepts."""


def faults_for(spec: str | None) -> Faults:
    return NO_FAULTS if spec is None else parse_fault(spec)
