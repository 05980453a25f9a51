"""Which offers a party sees: one per (contract definition, asset) whose access policy admits
the party in the catalog scope, carrying the contract policy as its terms.

Offers are derived, not stored: their ids encode the contract definition and the asset, so that
a contract request can be traced back to exactly what was offered.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy.engine import Engine

from connector.catalog.store import (
    Asset,
    ContractDefinition,
    PolicyDefinition,
    contract_definitions,
)
from policy.evaluate import evaluate
from policy.jsonld import read_policy
from policy.operands import Context, CredentialFacts, Scope

OFFER_PREFIX: Final = "urn:kexin:offer:"


def offer_id(definition_id: str, asset_id: str) -> str:
    packed = json.dumps([definition_id, asset_id], separators=(",", ":")).encode()
    return OFFER_PREFIX + base64.urlsafe_b64encode(packed).rstrip(b"=").decode()


def parse_offer_id(value: str) -> tuple[str, str] | None:
    if not value.startswith(OFFER_PREFIX):
        return None
    encoded = value.removeprefix(OFFER_PREFIX)
    try:
        parts = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, binascii.Error):
        return None
    if not (isinstance(parts, list) and len(parts) == 2 and all(isinstance(p, str) for p in parts)):
        return None
    return parts[0], parts[1]


def offer_document(
    definition: ContractDefinition, contract: PolicyDefinition, asset_id: str, assigner: str
) -> dict[str, Any]:
    """The offer as the catalogue shows it: the contract policy, our id, no target."""
    terms: dict[str, Any] = json.loads(contract.policy)
    terms = {
        k: v
        for k, v in terms.items()
        if k not in ("@context", "@id", "@type", "target", "assignee")
    }
    return {
        "@id": offer_id(definition.id, asset_id),
        "@type": "Offer",
        **terms,
        "assigner": assigner,
    }


@dataclass(frozen=True)
class Admitted:
    definition: ContractDefinition
    contract: PolicyDefinition


def admitted_definitions(
    engine: Engine, peer: str, facts: CredentialFacts, now: datetime
) -> list[Admitted]:
    """The contract definitions whose access policy admits ``peer`` (decided once a request)."""
    context = Context(now=now, recipient=peer, credentials=facts)
    return [
        Admitted(definition, contract)
        for definition, access, contract in contract_definitions(engine)
        if evaluate(read_policy(json.loads(access.policy)), context, Scope.CATALOG).allowed
    ]


def admits(access: PolicyDefinition, peer: str, facts: CredentialFacts, now: datetime) -> bool:
    """Whether a contract definition's access policy admits ``peer``: the one judgement of
    :func:`admitted_definitions`, for a request that names its definition."""
    context = Context(now=now, recipient=peer, credentials=facts)
    return evaluate(read_policy(json.loads(access.policy)), context, Scope.CATALOG).allowed


def offers_for(asset: Asset, admitted: Sequence[Admitted], assigner: str) -> list[dict[str, Any]]:
    return [
        offer_document(item.definition, item.contract, asset.id, assigner)
        for item in admitted
        if item.definition.selects(asset)
    ]
