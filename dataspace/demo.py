"""The end-to-end demo on embedded defaults.

What exists so far: the three services start on loopback with SQLite files in a temporary folder,
migrate their databases and answer ``GET /health``; the policy library lints the city bureau's
offer and decides for the bank (allowed three times, refused the fourth). The demo says plainly
which parts of the scenario are not built yet instead of pretending to run them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from broker.app import create_app as create_broker_app
from broker.settings import BrokerSettings
from connector.app import create_app as create_connector_app
from connector.settings import ConnectorSettings
from dataspace.servers import serve_in_thread
from ledger.app import create_app as create_ledger_app
from ledger.settings import LedgerSettings
from policy.evaluate import evaluate
from policy.jsonld import read_policy
from policy.lint import lint
from policy.operands import Context, CredentialFacts, Scope

BANK = "did:web:127.0.0.1:bank"
FIRM_LIST_OFFER = {
    "@id": "urn:kexin:demo:firm-list-offer",
    "@type": "Offer",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {
                    "leftOperand": "kexin:role",
                    "operator": "hasPart",
                    "rightOperand": "FinancialInstitution",
                },
                {"leftOperand": "purpose", "operator": "isA", "rightOperand": "credit-assessment"},
                {"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": "P30D"},
                {"leftOperand": "count", "operator": "lteq", "rightOperand": "3"},
            ],
            "duty": [
                {
                    "action": "delete",
                    "constraint": [
                        {"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": "P31D"}
                    ],
                }
            ],
        }
    ],
}

NOT_BUILT_YET = (
    "identity: DIDs, verifiable credentials, onboarding by the data-space authority",
    "policy enforcement inside the connectors (the policy library runs on its own above)",
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
                    participant_id=BANK,
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
    failures += not run_policy(say)
    say("Not built yet, so not part of this run:")
    for part in NOT_BUILT_YET:
        say(f"  - {part}")
    if failures:
        say(f"{failures} check(s) failed")
        return 1
    say("Everything built so far ran as expected.")
    return 0


def run_policy(say: Callable[[str], object]) -> bool:
    """The bureau's offer of its firm list, decided for the bank; True when it behaves."""
    now = datetime.now(UTC)
    say("Policy: the city bureau offers its firm list to licensed banks, for credit assessment,")
    say("        30 days, at most 3 downloads, deleted within 31 days")
    findings = lint(FIRM_LIST_OFFER, now)
    say(f"  lint: {len(findings)} finding(s)" + "".join(f"\n    {f}" for f in findings))
    policy = read_policy(FIRM_LIST_OFFER)
    bank = CredentialFacts(membership=True, roles=frozenset({"FinancialInstitution"}))
    outcomes = []
    for uses_so_far in range(4):
        context = Context(
            now=now,
            recipient=BANK,
            purpose="credit-assessment",
            agreement_start=now - timedelta(days=2),
            uses_so_far=uses_so_far,
            credentials=bank,
        )
        decision = evaluate(policy, context, Scope.ACCESS, "read")
        outcomes.append(decision.allowed)
        verdict = "allowed" if decision.allowed else "refused"
        say(f"  download {uses_so_far + 1} by the bank: {verdict}: {decision.reasons[-1]}")
    return not findings and outcomes == [True, True, True, False]
