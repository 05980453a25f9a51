"""The two parties of the conformance run, one each for the whole session: the connector under
test as a real server process (``dataspace connector serve`` in conformance mode, on SQLite)
and the kit (its callback server and HTTP client), configured from
``connector.conformance.kit.properties`` as the real kit reads its ``.properties`` file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import pytest

from connector.conformance.kit import properties
from tests.conformance.callbacks import CallbackEndpoint
from tests.conformance.client import TIMEOUT_S, KitClient
from tests.conformance.pipelines import Kit
from tests.loopback import free_port

TOKEN: Final = "tck-static-token-0123456789"
PASSPHRASE: Final = "conformance passphrase"
START_TIMEOUT_S: Final = 60.0
LOG_TAIL_LINES: Final = 60


@dataclass
class ConnectorUnderTest:
    root: str
    participant_id: str
    process: subprocess.Popen[bytes]
    log: Path

    def output_tail(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:])


def _environment(port: int, database: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CONNECTOR_PARTICIPANT_ID": f"did:web:127.0.0.1%3A{port}:cut",
        "CONNECTOR_KEY_PASSPHRASE": PASSPHRASE,
        "CONNECTOR_DATABASE_URL": f"sqlite:///{database}",
        "CONNECTOR_CONFORMANCE_TOKEN": TOKEN,
        "CONNECTOR_CONFORMANCE_PARTICIPANT_ID": "TCK_PARTICIPANT",
        # the kit's callbacks are on loopback, which outbound connections may not reach unless
        # allowed (the destination policy)
        "CONNECTOR_OUTBOUND_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
    }


def _await_health(cut: ConnectorUnderTest) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if cut.process.poll() is not None:
            break
        try:
            if httpx.get(f"{cut.root}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    cut.process.terminate()
    cut.process.wait(timeout=30)
    pytest.fail(f"the connector under test did not come up:\n{cut.output_tail()}")


@pytest.fixture(scope="session")
def connector_under_test(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConnectorUnderTest]:
    folder = tmp_path_factory.mktemp("cut")
    port = free_port()
    log = folder / "cut.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "dataspace", "connector", "serve", "--port", str(port)],
            env=_environment(port, folder / "cut.db"),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    cut = ConnectorUnderTest(
        f"http://127.0.0.1:{port}", f"did:web:127.0.0.1%3A{port}:cut", process, log
    )
    _await_health(cut)
    yield cut
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def kit(connector_under_test: ConnectorUnderTest) -> Iterator[Kit]:
    """The kit, configured as the real kit would be with these properties; its Authorization
    header is the configured one (``dataspacetck.dsp.connector.http.headers.authorization``)."""
    endpoint = CallbackEndpoint()
    config = properties(
        connector_under_test.root,
        endpoint.address,
        f"Bearer {TOKEN}",
        connector_under_test.participant_id,
    )
    with endpoint.serving(), httpx.Client(timeout=TIMEOUT_S) as http:
        client = KitClient(config["dataspacetck.dsp.connector.http.headers.authorization"], http)
        yield Kit(endpoint, client, config)
