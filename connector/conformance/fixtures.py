"""What the kit's scenarios expect to find in the connector under test, loaded at start in
conformance mode (and again after a restart: loading twice changes nothing).

- the datasets of the catalogue and provider negotiation scenarios (CAT01…, ACN…), offered
  by one contract definition (``CD123``) with a use-only policy (``P123``), as in EDC's test
  extension; ``CAT0103`` is never created;
- FINALIZED agreements with the kit's fixed ids: ``ATP…`` with the kit as consumer (this
  connector provides ``CAT0101`` under them), ``ATPC…`` with the kit as provider.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Final

from sqlalchemy.engine import Engine
from sqlmodel import Session

from connector.catalog.offers import offer_id
from connector.catalog.store import Asset, ContractDefinition, PolicyDefinition
from connector.conformance.scenarios import (
    CONSUMER_AGREEMENTS,
    PROVIDED_DATASETS,
    PROVIDER_AGREEMENTS,
)
from connector.negotiation.machine import Role, State
from connector.negotiation.store import ContractNegotiationRecord

POLICY_ID: Final = "P123"
DEFINITION_ID: Final = "CD123"
USE_ONLY: Final[dict[str, Any]] = {"@type": "Set", "permission": [{"action": "use"}]}
AGREED_DATASET: Final = "CAT0101"
DATA_ADDRESS: Final = {"type": "http", "baseUrl": "https://conformance.invalid/data"}
"""Conformance scenarios exchange no data: a backend that does not exist."""


def dataset_offer_id(dataset: str) -> str:
    """The id of the one offer of a fixture dataset (what the kit's ``…_OFFERID`` names)."""
    return offer_id(DEFINITION_ID, dataset)


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _agreement(
    agreement_id: str, role: Role, me: str, kit: str, now: datetime
) -> ContractNegotiationRecord:
    """A FINALIZED negotiation with the kit holding agreement ``agreement_id``, ours in
    ``role``."""
    provider = role is Role.PROVIDER
    assigner, assignee = (me, kit) if provider else (kit, me)
    agreement = {
        "@id": agreement_id,
        "@type": "Agreement",
        **_rules(),
        "target": AGREED_DATASET,
        "assigner": assigner,
        "assignee": assignee,
        "timestamp": _stamp(now),
    }
    offer = {
        "@id": dataset_offer_id(AGREED_DATASET),
        "@type": "Offer",
        **_rules(),
        "target": AGREED_DATASET,
        "assigner": assigner,
    }
    own = f"urn:kexin:conformance:{agreement_id}:{role.value}"
    other = f"urn:kexin:conformance:{agreement_id}:kit"
    return ContractNegotiationRecord(
        id=own,
        role=role.value,
        state=State.FINALIZED.value,
        provider_pid=own if provider else other,
        consumer_pid=other if provider else own,
        counterparty=kit,
        counterparty_address="",
        offer=json.dumps(offer),
        asset_id=AGREED_DATASET,
        contract_definition_id=DEFINITION_ID if provider else None,
        agreement=json.dumps(agreement),
        agreement_id=agreement_id,
        created_at=now,
        updated_at=now,
    )


def _rules() -> dict[str, Any]:
    return {"permission": [{"action": "use"}]}


def load(engine: Engine, me: str, kit: str, now: datetime) -> None:
    """Create what is missing; what exists is left as it is."""
    with Session(engine) as session:

        def missing(model: type[Any], key: str) -> bool:
            return session.get(model, key) is None

        if missing(PolicyDefinition, POLICY_ID):
            session.add(PolicyDefinition(id=POLICY_ID, policy=json.dumps(USE_ONLY), created_at=now))
        for dataset in PROVIDED_DATASETS:
            if missing(Asset, dataset):
                session.add(
                    Asset(
                        id=dataset,
                        title_en=f"Conformance dataset {dataset}",
                        data_grade="general",
                        data_address=json.dumps(DATA_ADDRESS),
                        created_at=now,
                    )
                )
        session.flush()
        if missing(ContractDefinition, DEFINITION_ID):
            session.add(
                ContractDefinition(
                    id=DEFINITION_ID,
                    access_policy_id=POLICY_ID,
                    contract_policy_id=POLICY_ID,
                    asset_selector=json.dumps({"assetIds": list(PROVIDED_DATASETS)}),
                    created_at=now,
                )
            )
        held = [(a, Role.PROVIDER) for a in PROVIDER_AGREEMENTS]
        held += [(a, Role.CONSUMER) for a in CONSUMER_AGREEMENTS]
        for agreement_id, role in held:
            record = _agreement(agreement_id, role, me, kit, now)
            if missing(ContractNegotiationRecord, record.id):
                session.add(record)
        session.commit()
