"""Helpers for the data-plane tests: the bureau offers one asset under one policy, and the
bank's application asks for it through the data contracts API."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any

import httpx

from connector.contracts.client import ContractsClient, DataGrant
from tests.e2e.space import Space
from tests.e2e.test_catalog import onboard_both
from tests.participants import ADMIN_KEY
from tests.policy.policies import atom

KEY = {"X-Api-Key": ADMIN_KEY}
PURPOSE = "credit-assessment"
_ids = itertools.count()


def terms(*constraints: dict[str, Any], duty: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    permission: dict[str, Any] = {
        "action": "use",
        "constraint": [atom("kexin:role", "hasPart", "FinancialInstitution"), *constraints],
    }
    if duty:
        permission["duty"] = duty
    return {"@id": f"urn:uuid:offer-{next(_ids)}", "@type": "Offer", "permission": [permission]}


def offer_data(
    space: Space, address: dict[str, Any], policy: dict[str, Any], *, onboard: bool = True
) -> str:
    """The bureau offers an asset at ``address`` to members under ``policy``; its id."""
    if onboard:
        onboard_both(space)
    n = next(_ids)
    base = space.bureau.base_url + "/management/v1"
    asset = f"urn:kexin:asset:data-{n}"
    for path, body in (
        ("assets", {"id": asset, "titleEn": f"data {n}", "dataGrade": "general",
                    "dataAddress": address}),
        ("policydefinitions", {"id": f"members-{n}", "policy": {
            "@type": "Set", "permission": [{"action": "use", "constraint": [
                atom("kexin:membership", "eq", "active")]}]}}),
        ("policydefinitions", {"id": f"terms-{n}", "policy": policy}),
        ("contractdefinitions", {"id": f"cd-{n}", "accessPolicyId": f"members-{n}",
                                 "contractPolicyId": f"terms-{n}",
                                 "assetSelector": {"assetIds": [asset]}}),
    ):  # fmt: skip
        created = httpx.post(f"{base}/{path}", headers=KEY, json=body)
        assert created.status_code == 201, created.text
    return asset


def bank_client(space: Space) -> ContractsClient:
    return ContractsClient(space.bank.base_url, ADMIN_KEY, timeout_s=30)


def grant_for(space: Space, asset: str, purpose: str = PURPOSE) -> DataGrant:
    with bank_client(space) as client:
        return client.request_data(
            space.bureau.participant_id, f"{space.bureau.base_url}/dsp", asset, purpose
        )


def data_file(folder: Path, size: int, name: str = "data.bin") -> tuple[Path, str]:
    path = folder / name
    block = hashlib.sha256(name.encode()).digest() * 4096  # 128 KiB, not all the same byte
    with path.open("wb") as out:
        left = size
        while left > 0:
            out.write(block[: min(left, len(block))])
            left -= len(block)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(grant: DataGrant, **headers: str) -> httpx.Response:
    return httpx.get(
        grant.endpoint, headers={"Authorization": f"Bearer {grant.token}", **headers}, timeout=30
    )


def audit(space: Space, settings_name: str = "bureau") -> list[dict[str, Any]]:
    settings = space.bureau if settings_name == "bureau" else space.bank
    from connector.audit import SqlAuditSink
    from storage.engine import create_engine

    engine = create_engine(settings.database_url)
    try:
        return [vars(r) for r in SqlAuditSink(engine).recent(500)]
    finally:
        engine.dispose()
