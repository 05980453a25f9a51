"""Every manual move through the CLI, a person deciding on both sides: the bureau approves
and finalizes, the bank verifies; the bureau starts a held transfer, the bank suspends,
resumes and terminates it; a request the bureau does not want is terminated with a reason."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from identity.credentials import CredentialType
from tests.dataspace.test_holder_cli import FIRMS, as_json, eventually, ok, publish
from tests.e2e.space import Space, onboard, start_space
from tests.participants import ADMIN_KEY


@pytest.fixture
def manual(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Space]:
    with start_space(tmp_path, allow_list=True, approval="manual",
                     bank_verification="manual") as started:  # fmt: skip
        asyncio.run(onboard(started.bank, started.authority,
                            [CredentialType.MEMBERSHIP, CredentialType.FINANCIAL_INSTITUTION]))  # fmt: skip
        asyncio.run(onboard(started.bureau, started.authority, [CredentialType.MEMBERSHIP]))
        monkeypatch.setenv("CONNECTOR_PUBLIC_URL", started.bureau.base_url)
        monkeypatch.setenv("CONNECTOR_MANAGEMENT_API_KEY", ADMIN_KEY)
        yield started


def held_request(state: str) -> str:
    """The bureau's negotiation waiting in ``state`` for a person."""
    found = eventually(lambda: [n for n in as_json("negotiations", "list", "--role", "provider",
                                                   "--state", state)["items"] if n["onHold"]])  # fmt: skip
    negotiation_id: str = found[0]["id"]
    return negotiation_id


def test_a_person_makes_every_move(manual: Space, tmp_path: Path) -> None:
    publish(manual, tmp_path)
    bank = ("--url", manual.bank_url)
    dsp = manual.bureau.base_url + "/dsp"
    provider = manual.bureau.participant_id
    request = ("negotiations", "request", "--provider", provider, "--address", dsp,
               "--dataset", FIRMS, "--purpose", "credit-assessment", *bank)  # fmt: skip
    consumer_id = ok(*request).stdout.rsplit(": ", 1)[0]

    provider_id = held_request("REQUESTED")
    assert ok("negotiations", "approve", provider_id).stdout == f"{provider_id}: AGREED\n"
    eventually(lambda: as_json("negotiations", "show", consumer_id, *bank)["state"] == "AGREED")
    assert ok("negotiations", "verify", consumer_id, *bank).stdout == f"{consumer_id}: VERIFIED\n"
    eventually(lambda: as_json("negotiations", "show", provider_id)["state"] == "VERIFIED")
    assert ok("negotiations", "finalize", provider_id).stdout == f"{provider_id}: FINALIZED\n"
    finalized = eventually(lambda: (n := as_json("negotiations", "show", consumer_id, *bank))
                           ["state"] == "FINALIZED" and n)  # fmt: skip

    asked = ok("transfers", "request", "--provider", provider, "--address", dsp,
               "--agreement", finalized["agreementId"], *bank)  # fmt: skip
    transfer_id = asked.stdout.rsplit(": ", 1)[0]
    [held] = eventually(lambda: [t for t in as_json("transfers", "list", "--role", "provider")["items"]
                                 if t["onHold"]])  # fmt: skip
    listed = ok("transfers", "list", "--role", "provider").stdout.splitlines()
    assert listed[1].split()[2:4] == ["REQUESTED", "(on"]
    assert ok("transfers", "start", held["id"]).stdout == f"{held['id']}: STARTED\n"
    eventually(lambda: as_json("transfers", "show", transfer_id, *bank)["state"] == "STARTED")
    suspended = ok("transfers", "suspend", transfer_id, "--reason", "a pause", *bank)
    assert suspended.stdout == f"{transfer_id}: SUSPENDED\n"
    eventually(lambda: as_json("transfers", "show", held["id"])["state"] == "SUSPENDED")
    resumed = ok("transfers", "resume", held["id"])
    assert resumed.stdout == f"{held['id']}: STARTED\n"
    eventually(lambda: as_json("transfers", "show", transfer_id, *bank)["state"] == "STARTED")
    ended = ok("transfers", "terminate", transfer_id, "--code", "done", "--reason", "enough",
               *bank)  # fmt: skip
    assert ended.stdout == f"{transfer_id}: TERMINATED\n"
    bureau_side = eventually(lambda: (t := as_json("transfers", "show", held["id"]))
                             ["state"] == "TERMINATED" and t)  # fmt: skip
    assert (bureau_side["terminationCode"], bureau_side["terminationReason"]) == ("done", "enough")

    again = ok(*request).stdout.rsplit(": ", 1)[0]
    unwanted = eventually(lambda: [n["id"] for n in as_json("negotiations", "list", "--role",
                                   "provider", "--state", "REQUESTED")["items"] if n["onHold"]])  # fmt: skip
    stopped = ok("negotiations", "terminate", unwanted[0], "--reason", "not this month")
    assert stopped.stdout == f"{unwanted[0]}: TERMINATED\n"
    told = eventually(lambda: (n := as_json("negotiations", "show", again, *bank))["state"]
                      == "TERMINATED" and n)  # fmt: skip
    assert told["terminationReason"] == "not this month"
