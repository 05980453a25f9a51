"""Policies and contexts the policy tests share: the issue's example, written once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from policy.operands import Context, CredentialFacts, Grade

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
BANK = "did:web:bank.example.cn"
BUREAU = "did:web:bureau.gz.gov.cn"


def atom(left: str, operator: str, right: object) -> dict[str, Any]:
    return {"leftOperand": left, "operator": operator, "rightOperand": right}


def offer(*permissions: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"@id": "urn:uuid:offer-1", "@type": "Offer", "permission": list(permissions), **extra}


# "This firm list may be used only by licensed banks, for credit assessment, for 30 days, at most
# 3 downloads, and must be deleted afterwards."
FIRM_LIST: dict[str, Any] = offer(
    {
        "action": "use",
        "constraint": [
            atom("kexin:role", "hasPart", "FinancialInstitution"),
            atom("purpose", "isA", "credit-assessment"),
            atom("elapsedTime", "lteq", "P30D"),
            atom("count", "lteq", "3"),
        ],
        "duty": [{"action": "delete", "constraint": [atom("elapsedTime", "lteq", "P31D")]}],
    }
)


def bank_context(**changes: Any) -> Context:
    values: dict[str, Any] = {
        "now": NOW,
        "recipient": BANK,
        "purpose": "credit-assessment",
        "spatial": "440106",
        "agreement_start": NOW - timedelta(days=3),
        "uses_so_far": 0,
        "credentials": CredentialFacts(
            membership=True,
            roles=frozenset({"FinancialInstitution"}),
            data_grade=Grade.IMPORTANT,
            region="440100",
        ),
    }
    values.update(changes)
    return Context(**values)
