"""Canonical form and hash of a policy, and the check that an agreement is the offer accepted.

The canonical form is the 2025-1 compact JSON with keys sorted, no insignificant white space,
right operands normalised by type (date-times in UTC), and the members of unordered collections
(the rules of a kind, a rule's constraints, the operands of ``and`` / ``or`` / ``xone``, duties)
sorted. ``andSequence`` keeps its order: it is the one ordered constraint.

An agreement matches an offer when their terms are identical. As in EDC, ``@id``, ``@type``,
``target`` and ``assignee`` may differ (the agreement names the consumer and the dataset), and
so may the agreement's ``timestamp``; the assigner may be added but not changed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

from policy.jsonld import write_policy
from policy.model import Policy

NOT_TERMS: Final = frozenset({"@id", "@type", "target", "assignee", "assigner", "timestamp"})
UNORDERED: Final = frozenset(
    {"permission", "prohibition", "obligation", "constraint", "duty", "and", "or", "xone"}
)


def _dump(node: object) -> str:
    return json.dumps(node, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sorted(node: Any, key: str | None = None) -> Any:
    if isinstance(node, dict):
        return {k: _sorted(v, k) for k, v in node.items()}
    if isinstance(node, list):
        items = [_sorted(item) for item in node]
        return sorted(items, key=_dump) if key in UNORDERED else items
    return node


def canonical(policy: Policy) -> bytes:
    """The whole policy, canonical: equal bytes for equal policies however they were written."""
    return _dump(_sorted(write_policy(policy))).encode()


def canonical_terms(policy: Policy) -> bytes:
    """Only the terms: what offer and agreement must share."""
    written = {k: v for k, v in write_policy(policy).items() if k not in NOT_TERMS}
    return _dump(_sorted(written)).encode()


def policy_hash(policy: Policy) -> str:
    return "sha256:" + hashlib.sha256(canonical(policy)).hexdigest()


def terms_hash(policy: Policy) -> str:
    return "sha256:" + hashlib.sha256(canonical_terms(policy)).hexdigest()


def agreement_differences(offer: Policy, agreement: Policy) -> list[str]:
    """Why ``agreement`` is not the ``offer`` that was accepted; empty when it is."""
    differences: list[str] = []
    ours, theirs = json.loads(canonical_terms(offer)), json.loads(canonical_terms(agreement))
    for key in sorted(ours.keys() | theirs.keys()):
        if ours.get(key) != theirs.get(key):
            differences.append(f"{key} differs from the offer")
    if offer.assigner is not None and agreement.assigner != offer.assigner:
        differences.append(f"assigner {agreement.assigner} is not the offer's {offer.assigner}")
    return differences
