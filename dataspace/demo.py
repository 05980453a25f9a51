"""The end-to-end demo on embedded defaults.

What exists so far: the three services start on loopback with SQLite files in a temporary folder,
migrate their databases and answer ``GET /health``. The demo says plainly which parts of the
scenario are not built yet instead of pretending to run them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx

from broker.app import create_app as create_broker_app
from broker.settings import BrokerSettings
from connector.app import create_app as create_connector_app
from connector.settings import ConnectorSettings
from dataspace.servers import serve_in_thread
from ledger.app import create_app as create_ledger_app
from ledger.settings import LedgerSettings

NOT_BUILT_YET = (
    "identity: DIDs, verifiable credentials, onboarding by the data-space authority",
    "policy: ODRL usage policies and their evaluation",
    "connector: DSP catalog, contract negotiation and transfer between two participants",
    "data plane: policy-enforcing transfers and the data contracts API",
    "ledger: anchoring audit events on an EVM chain, inclusion proofs",
    "matching: private set intersection between two connectors",
)


def run(say: Callable[[str], object]) -> int:
    """Run the demo, reporting through ``say``; return the exit code."""
    with tempfile.TemporaryDirectory(prefix="kexin-demo-") as scratch, ExitStack() as servers:
        folder = Path(scratch)
        apps = {
            "broker": create_broker_app(
                BrokerSettings(database_url=f"sqlite:///{folder / 'broker.db'}")
            ),
            "ledger": create_ledger_app(
                LedgerSettings(database_url=f"sqlite:///{folder / 'ledger.db'}")
            ),
            "connector (city bureau)": create_connector_app(
                ConnectorSettings(
                    participant_id="did:web:127.0.0.1:bureau",
                    database_url=f"sqlite:///{folder / 'bureau.db'}",
                )
            ),
            "connector (bank)": create_connector_app(
                ConnectorSettings(
                    participant_id="did:web:127.0.0.1:bank",
                    database_url=f"sqlite:///{folder / 'bank.db'}",
                )
            ),
        }
        failures = 0
        say("Kexin demo: starting the services on loopback (SQLite in a temporary folder)")
        for name, service in apps.items():
            base_url = servers.enter_context(serve_in_thread(service))
            response = httpx.get(f"{base_url}/health", timeout=10)
            body = response.json()
            healthy = response.status_code == 200
            failures += not healthy
            say(
                f"  {name:<24} {base_url}  health: {body['status']} "
                f"(database {body['database']}, schema {body['schema']})"
            )
    say("Not built yet, so not part of this run:")
    for part in NOT_BUILT_YET:
        say(f"  - {part}")
    if failures:
        say(f"{failures} service(s) unhealthy")
        return 1
    say("All services started and answered their health checks.")
    return 0
