"""The test-only fault injection port: off by default, refused when malformed, and a real
SIGKILL of the process at exactly the named point."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from pydantic import ValidationError

from connector.faults import NO_FAULTS, CrashAt, FaultPoint, faults_for, parse_fault
from connector.settings import ConnectorSettings

DID = "did:web:127.0.0.1%3A8181:bank"
PASSPHRASE = "correct horse battery staple"


def test_no_fault_is_set_by_default() -> None:
    settings = ConnectorSettings(participant_id=DID, key_passphrase=PASSPHRASE)  # type: ignore[arg-type]
    assert settings.fault is None
    assert faults_for(settings.fault) is NO_FAULTS


def test_a_fault_names_its_point_and_what_reaches_it() -> None:
    assert parse_fault("committed:ContractNegotiationEventMessage:FINALIZED") == CrashAt(
        FaultPoint.COMMITTED, "ContractNegotiationEventMessage:FINALIZED"
    )
    assert faults_for("delivered:transfer.start") == CrashAt(FaultPoint.DELIVERED, "transfer.start")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("delivered", id="no-name"),
        pytest.param("delivered:", id="empty-name"),
        pytest.param("replied:transfer.start", id="unknown-point"),
    ],
)
def test_a_malformed_fault_is_refused_by_the_settings(value: str) -> None:
    with pytest.raises(ValidationError, match="fault"):
        ConnectorSettings(participant_id=DID, key_passphrase=PASSPHRASE, fault=value)  # type: ignore[arg-type]


def _run(fault: str, reached: str) -> subprocess.CompletedProcess[str]:
    code = (
        "from connector.faults import FaultPoint, faults_for\n"
        f"faults_for({fault!r}).reached(FaultPoint.DELIVERED, {reached!r})\n"
        "print('still alive')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_process_is_killed_at_its_point_and_nowhere_else() -> None:
    elsewhere = _run("delivered:negotiation.request", "negotiation.agreement")
    assert (elsewhere.returncode, elsewhere.stdout) == (0, "still alive\n")
    there = _run("delivered:negotiation.request", "negotiation.request")
    assert there.returncode == -signal.SIGKILL
    assert there.stdout == ""
    assert "killing this connector at delivered:negotiation.request" in there.stderr
