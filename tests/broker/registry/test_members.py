"""The members' registry on real loopback servers: a member (DCP-authenticated) lists the active
participants with their public facts and DSP addresses, as their DID documents publish them; a
suspended participant is refused at once and no longer listed; reinstated, it is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from identity.credentials import CredentialType
from tests.e2e.space import Space, call, onboard, start_space
from tests.participants import ADMIN_KEY, BANK_ORG, BUREAU_ORG

OPERATOR = {"X-Api-Key": ADMIN_KEY}


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
