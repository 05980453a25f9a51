"""The data contracts API agrees to the offer it is told to (``offer``: its @id in the
provider's catalogue), not blindly the first; reuses an agreement only under that offer; and
refuses an offer the catalogue does not show, naming those it does."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from connector.contracts.client import ContractsError
from connector.management.client import ManagementClient
from tests.e2e.dataplane_helpers import (
    KEY,
    PURPOSE,
    bank_client,
    data_file,
    fetch,
    offer_data,
    terms,
)
from tests.e2e.space import Space
from tests.participants import ADMIN_KEY
from tests.policy.policies import atom


def shown_offers(space: Space, asset: str) -> list[str]:
    """The offers' ids for ``asset`` in the bureau's catalogue as the bank is shown it."""
    with ManagementClient(space.bank.base_url, ADMIN_KEY) as bank:
        view = bank.catalog(space.bureau.participant_id, f"{space.bureau.base_url}/dsp")
    datasets = view.catalog.get("dataset", [])
    datasets = datasets if isinstance(datasets, list) else [datasets]
    found = [d for d in datasets if d["@id"] == asset]
    assert found, f"{asset} not on the first page"
    policies = found[0]["hasPolicy"]
    return [p["@id"] for p in (policies if isinstance(policies, list) else [policies])]


def test_the_named_offer_is_the_one_agreed(space: Space, tmp_path: Path) -> None:
    source, _ = data_file(tmp_path, 100)
    asset = offer_data(space, {"type": "file", "path": str(source)}, terms())
    # a second offer for the same asset, under other terms (a purpose constraint)
    second = terms(atom("purpose", "eq", PURPOSE))
    base = space.bureau.base_url + "/management/v1"
    for path, body in (
        ("policydefinitions", {"id": "second-terms", "policy": second}),
        ("policydefinitions", {"id": "second-members", "policy": {"@type": "Set", "permission": [
            {"action": "use", "constraint": [atom("kexin:membership", "eq", "active")]}]}}),
        ("contractdefinitions", {"id": "cd-second", "accessPolicyId": "second-members",
                                 "contractPolicyId": "second-terms",
                                 "assetSelector": {"assetIds": [asset]}}),
    ):  # fmt: skip
        created = httpx.post(f"{base}/{path}", headers=KEY, json=body)
        assert created.status_code == 201, created.text
    offers = shown_offers(space, asset)
    assert len(offers) == 2, offers
    provider, address = space.bureau.participant_id, f"{space.bureau.base_url}/dsp"
    with bank_client(space) as client:
        with pytest.raises(ContractsError) as unknown:
            client.request_data(provider, address, asset, PURPOSE, offer="urn:uuid:no-such-offer")
        assert (unknown.value.status, unknown.value.code) == (404, "unknown_offer")
        assert all(o in " ".join(unknown.value.reasons) for o in offers)
        # an offer's id names its contract definition and asset (base64url JSON)
        [last] = [o for o in offers if "cd-second" in _decoded(o)]
        first = next(o for o in offers if o != last)
        grant = client.request_data(provider, address, asset, PURPOSE, offer=last)
        assert not grant.reused_agreement
        assert fetch(grant).status_code == 200
        assert _constrains_purpose(space, grant.agreement_id)  # the second offer's terms
        # asked again under the same offer: reused; under the other: a new agreement
        assert client.request_data(provider, address, asset, PURPOSE, offer=last).reused_agreement
        other = client.request_data(provider, address, asset, PURPOSE, offer=first)
        assert not other.reused_agreement
        assert other.agreement_id != grant.agreement_id
        assert not _constrains_purpose(space, other.agreement_id)


def _decoded(offer_id: str) -> str:
    encoded = offer_id.rsplit(":", 1)[-1]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()


def _constrains_purpose(space: Space, agreement_id: str) -> bool:
    url = f"{space.bank.base_url}/management/v1/agreements/{agreement_id}"
    agreement = httpx.get(url, headers=KEY).json()["agreement"]
    return '"purpose"' in json.dumps(agreement)
