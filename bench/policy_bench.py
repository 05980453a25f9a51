"""Policy benchmarks (issue: >= 20,000 decisions/s on one core for a policy of 5 constraints
including one logical constraint; linting a 100-rule policy < 50 ms).

Run: ``make bench`` (or ``.venv/bin/python -m bench.policy_bench``). The process pins itself to
one CPU. Each figure is the median of several timed rounds after a warm-up round. Exits 1 if a
target is missed.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from policy.evaluate import evaluate
from policy.jsonld import read_policy
from policy.lint import lint
from policy.operands import Context, CredentialFacts, Grade, Scope

DECISIONS_PER_S_TARGET = 20_000
LINT_MS_TARGET = 50.0
NOW = datetime(2026, 11, 24, tzinfo=UTC)


def atom(left: str, operator: str, right: object) -> dict[str, Any]:
    return {"leftOperand": left, "operator": operator, "rightOperand": right}


FIVE_CONSTRAINTS = {
    "@id": "urn:bench:offer",
    "@type": "Offer",
    "permission": [
        {
            "action": "use",
            "constraint": [
                atom("purpose", "isA", "financial-services"),
                atom("count", "lteq", "3"),
                atom("elapsedTime", "lteq", "P30D"),
                atom("kexin:role", "hasPart", "FinancialInstitution"),
                {
                    "or": [
                        atom("spatial", "isPartOf", "440000"),
                        atom("kexin:dataGrade", "gteq", "important"),
                    ]
                },
            ],
            "duty": [{"action": "delete", "constraint": [atom("elapsedTime", "lteq", "P31D")]}],
        }
    ],
}

CONTEXT = Context(
    now=NOW,
    recipient="did:web:bank",
    purpose="credit-assessment",
    spatial="440106",
    agreement_start=NOW - timedelta(days=3),
    uses_so_far=2,
    credentials=CredentialFacts(
        membership=True, roles=frozenset({"FinancialInstitution"}), data_grade=Grade.GENERAL
    ),
)


def hundred_rules() -> dict[str, Any]:
    permissions = [
        {
            "action": ["use", "read", "display", "aggregate"][i % 4],
            "target": f"urn:dataset:{i % 10}",
            "constraint": [
                atom("purpose", "isA", "financial-services"),
                atom("count", "lteq", str(i + 1)),
                atom("dateTime", "lt", "2027-12-31T00:00:00Z"),
                {"and": [atom("count", "gt", "0"), atom("elapsedTime", "lteq", f"P{i + 1}D")]},
            ],
            "duty": [{"action": "delete", "constraint": [atom("elapsedTime", "lteq", "P90D")]}],
        }
        for i in range(80)
    ]
    prohibitions = [
        {
            "action": "distribute",
            "target": f"urn:dataset:{i % 10}",
            "constraint": [atom("spatial", "isNoneOf", ["440000", "310000"])],
        }
        for i in range(20)
    ]
    return {"@type": "Set", "permission": permissions, "prohibition": prohibitions}


def rounds(work: Callable[[], object], repeat: int, count: int) -> list[float]:
    """Seconds per call, one figure per round."""
    work()
    figures = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(count):
            work()
        figures.append((time.perf_counter() - start) / count)
    return figures


def main() -> int:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    policy = read_policy(FIVE_CONSTRAINTS)
    decision = evaluate(policy, CONTEXT, Scope.ACCESS, "read")
    if not decision.allowed:
        print("benchmark policy denied; the benchmark is wrong", decision.reasons)
        return 1
    per_decision = statistics.median(
        rounds(lambda: evaluate(policy, CONTEXT, Scope.ACCESS, "read"), repeat=7, count=20_000)
    )
    decisions_per_s = 1 / per_decision
    document = hundred_rules()
    rules = len(document["permission"]) + len(document["prohibition"])
    lint_s = statistics.median(rounds(lambda: lint(document, NOW), repeat=7, count=20))
    read_s = statistics.median(rounds(lambda: read_policy(document), repeat=7, count=20))
    findings = lint(document, NOW)

    print(
        f"evaluate, 5 constraints (1 logical), access scope: {decisions_per_s:,.0f} decisions/s "
        f"on one core ({per_decision * 1e6:.1f} µs each; target >= {DECISIONS_PER_S_TARGET:,})"
    )
    print(f"lint, {rules} rules (read included): {lint_s * 1e3:.2f} ms "
          f"(of which reading {read_s * 1e3:.2f} ms; target < {LINT_MS_TARGET:.0f} ms); "
          f"{len(findings)} findings")  # fmt: skip
    ok = decisions_per_s >= DECISIONS_PER_S_TARGET and lint_s * 1e3 < LINT_MS_TARGET
    print("policy targets met" if ok else "policy targets MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
