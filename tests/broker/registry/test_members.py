"""The members' registry on real loopback servers: a member (DCP-authenticated) lists the active
participants with their public facts and DSP addresses, as their DID documents publish them; a
suspended participant is refused at once and no longer listed; reinstated, it is back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from identity.credentials import CredentialType
from tests.e2e.space import TTL_S, Space, call, onboard, start_space
from tests.participants import ADMIN_KEY, BANK_ORG, BUREAU_ORG

OPERATOR = {"X-Api-Key": ADMIN_KEY}
DSP_CONTEXT = "https://w3id.org/dspace/2025/1/context.jsonld"


def onboard_both(space: Space) -> None:
    for settings, role in (
        (space.bureau, CredentialType.PUBLIC_DATA_HOLDER),
        (space.bank, CredentialType.FINANCIAL_INSTITUTION),
    ):
        status = asyncio.run(onboard(settings, space.authority, [CredentialType.MEMBERSHIP, role]))
        assert status["status"] == "ISSUED", status


def members_list(space: Space, caller: str) -> httpx.Response:
    settings = space.bank if caller == "bank" else space.bureau
    return asyncio.run(
        call(settings, space.authority, f"{space.authority_url}/registry/v1/participants")
    )


def test_members_see_the_active_participants_and_not_a_suspended_one(tmp_path: Path) -> None:
    with start_space(tmp_path, allow_list=True) as space:
        onboard_both(space)
        answer = members_list(space, "bank")
        assert answer.status_code == 200, answer.text
        listed = {p["participant"]: p for p in answer.json()["items"]}
        assert listed[space.bureau.participant_id] == {
            "participant": space.bureau.participant_id,
            "organisation": {
                "name": BUREAU_ORG["name"], "creditCode": BUREAU_ORG["creditCode"],
                "region": "440100",
            },
            "roles": ["PublicDataHolder"],
            "dataGrade": "important",
            "dspAddress": f"{space.bureau.base_url}/dsp",
        }  # fmt: skip
        assert listed[space.bank.participant_id]["organisation"]["name"] == BANK_ORG["name"]
        assert "state" not in listed[space.bank.participant_id]  # the operator's view only

        suspended = httpx.post(
            f"{space.authority_url}/admin/participants/suspend",
            json={"participant": space.bureau.participant_id, "reason": "inquiry"},
            headers=OPERATOR,
        )
        assert suspended.status_code == 200, suspended.text
        refused = members_list(space, "bureau")
        assert refused.status_code == 403
        assert refused.json()["type"] == "IdentityError"
        remaining = members_list(space, "bank").json()["items"]
        assert [p["participant"] for p in remaining] == [space.bank.participant_id]

        reinstated = httpx.post(
            f"{space.authority_url}/admin/participants/reinstate",
            json={"participant": space.bureau.participant_id},
            headers=OPERATOR,
        )
        assert reinstated.status_code == 200
        assert len(members_list(space, "bank").json()["items"]) == 2


def test_a_caller_without_credentials_is_refused(tmp_path: Path) -> None:
    with start_space(tmp_path, allow_list=True) as space:
        refused = members_list(space, "bank")
        assert refused.status_code == 403
        assert refused.json()["reason"] == "missing_credential"


def test_a_connector_refuses_a_suspended_participant_once_its_status_list_refreshes(
    tmp_path: Path,
) -> None:
    """Not only the broker: a suspension sets the bits of the participant's credentials on the
    authority's status list, and every connector that verifies them refuses it once its copy
    of the list is older than its TTL (the bureau's: 0.3 s). The bank keeps its own copy for an
    hour, so it still presents its membership: the refusal is the bureau's. Reinstated, the
    bank is admitted again once the bureau reads the list anew."""
    with start_space(tmp_path, allow_list=True, bank_extra={"status_list_ttl_s": 3600.0}) as space:
        onboard_both(space)
        url = f"{space.bureau.base_url}/dsp/catalog/request"
        request = {"@context": [DSP_CONTEXT], "@type": "CatalogRequestMessage"}

        def ask() -> httpx.Response:
            return asyncio.run(
                call(space.bank, space.bureau.participant_id, url, method="POST", body=request)
            )

        assert ask().status_code == 200
        change = {"participant": space.bank.participant_id, "reason": "inquiry"}
        suspended = httpx.post(
            f"{space.authority_url}/admin/participants/suspend", json=change, headers=OPERATOR
        )
        assert suspended.status_code == 200, suspended.text
        time.sleep(TTL_S * 2)
        refused = ask()
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "revoked_credential"
        assert (
            "MembershipCredential of " + space.bank.participant_id + " is revoked"
            in (refused.json()["reason"][0])
        )
        reinstated = httpx.post(
            f"{space.authority_url}/admin/participants/reinstate",
            json={"participant": space.bank.participant_id}, headers=OPERATOR,
        )  # fmt: skip
        assert reinstated.status_code == 200, reinstated.text
        time.sleep(TTL_S * 2)
        assert ask().status_code == 200
