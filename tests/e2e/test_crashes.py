"""kill -9 at every step: the bureau (provider) and the bank (consumer) run as real server
processes; each kills itself (SIGKILL) at a named point of a negotiation and a transfer,
between delivery and SENT (``delivered:<message kind>``: the outbox's POST was answered, the
message not yet recorded as sent) and between the state commit and the reply
(``committed:<action>``: the move committed, the answer not sent), and is started again on the
same database. Each side crashes at every step it takes; after each step the test waits until
the planned crashes happened and nothing is left to send, then both sides must show the same
state (never FINALIZED on one side and TERMINATED on the other), the data must arrive intact,
and each database must agree with its audit log (tests.e2e.trail)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from broker.app import create_app as create_broker
from dataspace.servers import bind, serve_in_thread
from identity.credentials import CredentialType
from tests.e2e.dataplane_helpers import data_file, offer_data, terms
from tests.e2e.forked import ConnectorProcess, Crashes
from tests.e2e.space import TTL_S, Space, onboard
from tests.e2e.test_catalog import bank_asks
from tests.e2e.trail import gaps
from tests.participants import (  # fmt: skip
    ADMIN_KEY,
    BANK_ORG,
    BUREAU_ORG,
    authority_settings,
    connector_settings,
    did_for,
)

KEY = {"X-Api-Key": ADMIN_KEY}
STEP_TIMEOUT_S = 40.0
BACKOFF_S = 0.1
"""The first retry's wait: a restarted peer is tried again soon (the default is 0.5 s)."""
DATA_BYTES = 20 << 20
"""More than two of the data plane's 8 MiB progress steps: a cut-off access has bytes."""


@dataclass
class Pair:
    space: Space
    bureau: ConnectorProcess
    bank: ConnectorProcess
    asset: str
    offer: dict[str, Any]
    data_sha256: str

    def sides(self) -> dict[str, ConnectorProcess]:
        return {"bureau": self.bureau, "bank": self.bank}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    folder = tmp_path_factory.mktemp("crashes")
    authority_sock = bind()
    authority = did_for(authority_sock, "authority")
    bureau_sock, bank_sock = bind(), bind()  # their ports; the processes bind them again
    bureau = connector_settings(bureau_sock, folder, "bureau", authority, ttl_s=TTL_S)
    bank = connector_settings(bank_sock, folder, "bank", authority, ttl_s=TTL_S)
    bureau_sock.close()
    bank_sock.close()
    allow = {
        bureau.participant_id: {"types": ["MembershipCredential", "PublicDataHolderCredential"], "organisation": BUREAU_ORG},
        bank.participant_id: {"types": ["MembershipCredential", "FinancialInstitutionCredential"], "organisation": BANK_ORG},
    }  # fmt: skip
    quick = {"CONNECTOR_DELIVERY_BACKOFF_S": str(BACKOFF_S)}
    sides = (
        ConnectorProcess("bureau", bureau, folder / "bureau.log", quick),
        ConnectorProcess("bank", bank, folder / "bank.log", quick),
    )
    with ExitStack() as stack:
        authority_url = stack.enter_context(
            serve_in_thread(create_broker(authority_settings(authority_sock, folder, allow)), authority_sock)
        )  # fmt: skip
        for side in sides:
            stack.callback(side.stop)
            side.start()
        asyncio.run(onboard(bank, authority, [CredentialType.MEMBERSHIP, CredentialType.FINANCIAL_INSTITUTION]))  # fmt: skip
        asyncio.run(onboard(bureau, authority, [CredentialType.MEMBERSHIP, CredentialType.PUBLIC_DATA_HOLDER]))  # fmt: skip
        space = Space(authority, authority_url, bureau, bank, bank.base_url)
        source, digest = data_file(folder, DATA_BYTES)
        asset = offer_data(space, {"type": "file", "path": str(source)}, terms(), onboard=False)
        dataset = next(
            d
            for d in bank_asks(space, "/dsp/catalog/request").json()["dataset"]
            if d["@id"] == asset
        )
        yield Pair(space, sides[0], sides[1], asset, dataset["hasPolicy"][0], digest)


def _get(side: ConnectorProcess, path: str, **params: str) -> Any:
    answer = httpx.get(f"{side.url}/management/v1{path}", headers=KEY, params=params, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _post(side: ConnectorProcess, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(f"{side.url}/management/v1{path}", headers=KEY, json=body, timeout=10)
    assert answer.status_code in (200, 201), answer.text
    found: dict[str, Any] = answer.json()
    return found


def _theirs(side: ConnectorProcess, kind: str, **pids: str) -> dict[str, Any] | None:
    """The other side's record of a process, found by its pids."""
    for item in _get(side, f"/{kind}", limit="200")["items"]:
        if all(item[key] == value for key, value in pids.items()):
            found: dict[str, Any] = item
            return found
    return None


class Flow:
    """Processes on both sides, seen through both management APIs, while they crash."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.crashes = Crashes(pair.sides())

    def states(self, kind: str, bank_id: str) -> dict[str, str | None]:
        ours = _get(self.pair.bank, f"/{kind}/{bank_id}")
        theirs = _theirs(self.pair.bureau, kind, consumerPid=bank_id)
        return {
            "bank": ours["state"],
            "bureau": None if theirs is None else theirs["state"],
            "bank terminationCode": ours.get("terminationCode"),
            "bureau terminationCode": None if theirs is None else theirs.get("terminationCode"),
        }

    def idle(self) -> bool:
        """Nothing left to send on either side."""
        return all(
            not _get(side, "/outbox", status="pending")["items"]
            for side in self.pair.sides().values()
        )

    def reach(
        self, kind: str, bank_id: str, state: str, after: dict[str, list[str]] | None = None
    ) -> None:
        """Wait until both sides are in ``state``, have crashed at the faults ``after`` and
        have nothing left to send; the assertion shows both sides' states."""

        def there() -> bool:
            if not self.crashes.happened(after or {}):
                return False
            seen = self.states(kind, bank_id)
            return seen["bank"] == seen["bureau"] == state and self.idle()

        self.crashes.until(there, lambda: self.states(kind, bank_id), STEP_TIMEOUT_S)


def _failed(pair: Pair) -> dict[str, Any]:
    return {n: _get(s, "/outbox", status="failed")["items"] for n, s in pair.sides().items()}


def _agreement(pair: Pair, negotiation_id: str) -> str:
    """The agreement both sides hold."""
    view = _get(pair.bank, f"/negotiations/{negotiation_id}")
    theirs = _theirs(pair.bureau, "negotiations", consumerPid=negotiation_id)
    assert theirs is not None
    assert view["agreementId"] == theirs["agreementId"] is not None
    agreement: str = view["agreementId"]
    return agreement


def _request_transfer(pair: Pair, agreement: str) -> str:
    started = _post(
        pair.bank,
        "/transfers",
        {"counterPartyId": pair.bureau.settings.participant_id,
         "counterPartyAddress": f"{pair.bureau.url}/dsp", "agreementId": agreement,
         "format": "HttpData-PULL"},
    )  # fmt: skip
    transfer: str = started["id"]
    return transfer


def _address(pair: Pair, transfer: str) -> tuple[str, str]:
    address = _get(pair.bank, f"/transfers/{transfer}")["dataAddress"]
    token = next(p["value"] for p in address["endpointProperties"] if p["name"] == "authorization")
    return address["endpoint"], token


def _download(pair: Pair, transfer: str) -> str:
    endpoint, token = _address(pair, transfer)
    answer = httpx.get(endpoint, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 200, answer.text[:300]
    return hashlib.sha256(answer.content).hexdigest()


def _cut_download(pair: Pair, transfer: str) -> None:
    """The provider is killed (-9, from outside) while it streams the data, and restarted."""
    endpoint, token = _address(pair, transfer)
    got = 0
    with httpx.stream("GET", endpoint, headers={"Authorization": f"Bearer {token}"}) as stream:
        for chunk in stream.iter_raw(1 << 20):
            got += len(chunk)
            if got >= 12 << 20:
                break
        pair.bureau.kill()
    pair.bureau.start(pair.bureau.fault)


def _check_trails(pair: Pair) -> None:
    for name, side in pair.sides().items():
        assert gaps(side.settings.database_url) == [], name


BANK_NEGOTIATION = [
    "delivered:negotiation.request",
    "committed:ContractAgreementMessage",
    "delivered:negotiation.verification",
    "committed:ContractNegotiationEventMessage:FINALIZED",
]
BANK_TRANSFER = [
    "delivered:transfer.request",
    "committed:TransferStartMessage",
    "delivered:transfer.completion",
]
BUREAU_NEGOTIATION = [
    "committed:ContractRequestMessage",
    "delivered:negotiation.agreement",
    "committed:ContractAgreementVerificationMessage",
    "delivered:negotiation.finalized",
]
BUREAU_TRANSFER = [
    "committed:TransferRequestMessage",
    "delivered:transfer.start",
    "committed:TransferCompletionMessage",
]


def _negotiate(pair: Pair) -> str:
    negotiation: str = _post(pair.bank, "/negotiations", {
        "counterPartyId": pair.bureau.settings.participant_id,
        "counterPartyAddress": f"{pair.bureau.url}/dsp", "offer": pair.offer,
        "target": pair.asset, "purpose": "credit-assessment",
    })["id"]  # fmt: skip
    return negotiation


def _request_and_complete(
    pair: Pair,
    flow: Flow,
    agreement: str,
    started: dict[str, list[str]],
    completed: dict[str, list[str]],
    *,
    cut: bool = False,
) -> None:
    transfer = _request_transfer(pair, agreement)
    flow.reach("transfers", transfer, "STARTED", after=started)
    if cut:
        _cut_download(pair, transfer)
    assert _download(pair, transfer) == pair.data_sha256
    _post(pair.bank, f"/transfers/{transfer}/complete", {})
    flow.reach("transfers", transfer, "COMPLETED", after=completed)


@pytest.mark.parametrize(
    ("bank", "bureau"),
    [
        pytest.param(BANK_NEGOTIATION, BUREAU_TRANSFER, id="consumer-negotiating-provider-transferring"),
        pytest.param(BANK_TRANSFER, BUREAU_NEGOTIATION, id="provider-negotiating-consumer-transferring"),
    ],
)  # fmt: skip
def test_either_side_killed_at_every_step_of_a_request(
    pair: Pair, bank: list[str], bureau: list[str]
) -> None:
    """One side dies at every step of the negotiation (after each delivery, before SENT, and
    after each move it commits, before its answer), the other at every step of the transfer
    (and the provider once from outside, while it streams the data): request, agreement,
    verification, finalized; transfer request, start, completion."""
    flow = Flow(pair)
    flow.crashes.arm(bank=bank, bureau=bureau)
    negotiating = {"bank": bank} if bank is BANK_NEGOTIATION else {"bureau": bureau}
    transferring = {"bureau": bureau} if bank is BANK_NEGOTIATION else {"bank": bank}
    negotiation = _negotiate(pair)
    flow.reach("negotiations", negotiation, "FINALIZED", after=negotiating)
    agreement = _agreement(pair, negotiation)
    side, faults = next(iter(transferring.items()))
    _request_and_complete(
        pair, flow, agreement, {side: faults[:2]}, transferring, cut=side == "bureau"
    )

    assert flow.crashes.done() == {"bank": bank, "bureau": bureau}
    assert _failed(pair) == {"bureau": [], "bank": []}
    _check_trails(pair)


BUREAU_OFFER = [
    "delivered:negotiation.initial_offer",
    "committed:ContractNegotiationEventMessage:ACCEPTED",
    "delivered:transfer.suspension",
    "committed:TransferTerminationMessage",
]
BANK_OFFER = [
    "committed:ContractOfferMessage",
    "delivered:negotiation.accepted",
    "committed:TransferSuspensionMessage",
    "delivered:transfer.termination",
]


def test_both_sides_killed_at_every_step_of_an_offer_suspended_and_terminated(pair: Pair) -> None:
    """The provider offers, the consumer accepts; the provider suspends the transfer, the
    consumer terminates it. Each side dies at each of its steps (offered, accepted;
    suspended, terminated), one after the other."""
    flow = Flow(pair)
    flow.crashes.arm(bank=BANK_OFFER, bureau=BUREAU_OFFER)
    offered = _post(pair.bureau, "/negotiations/offers", {
        "counterPartyId": pair.bank.settings.participant_id,
        "counterPartyAddress": f"{pair.bank.url}/dsp/callback", "offerId": pair.offer["@id"],
    })["id"]  # fmt: skip

    def offered_to_bank() -> str | None:
        found = _theirs(pair.bank, "negotiations", providerPid=offered)
        return None if found is None else str(found["id"])

    flow.crashes.until(
        lambda: (
            offered_to_bank() is not None
            and flow.crashes.happened({"bank": BANK_OFFER[:1], "bureau": BUREAU_OFFER[:1]})
            and flow.idle()
        ),
        lambda: _theirs(pair.bureau, "negotiations", providerPid=offered),
        STEP_TIMEOUT_S,
    )
    negotiation = offered_to_bank()
    assert negotiation is not None
    flow.reach("negotiations", negotiation, "OFFERED")
    _post(pair.bank, f"/negotiations/{negotiation}/accept", {"purpose": "credit-assessment"})
    flow.reach(
        "negotiations", negotiation, "FINALIZED",
        after={"bank": BANK_OFFER[:2], "bureau": BUREAU_OFFER[:2]},
    )  # fmt: skip
    transfer = _request_transfer(pair, _agreement(pair, negotiation))
    flow.reach("transfers", transfer, "STARTED")
    theirs = _theirs(pair.bureau, "transfers", consumerPid=transfer)
    assert theirs is not None
    _post(pair.bureau, f"/transfers/{theirs['id']}/suspend", {"reason": "maintenance"})
    flow.reach(
        "transfers", transfer, "SUSPENDED",
        after={"bank": BANK_OFFER[:3], "bureau": BUREAU_OFFER[:3]},
    )  # fmt: skip
    _post(pair.bank, f"/transfers/{transfer}/terminate", {"reason": "no longer needed"})
    flow.reach(
        "transfers", transfer, "TERMINATED", after={"bank": BANK_OFFER, "bureau": BUREAU_OFFER}
    )

    assert flow.crashes.done() == {"bank": BANK_OFFER, "bureau": BUREAU_OFFER}
    assert _failed(pair) == {"bureau": [], "bank": []}
    _check_trails(pair)
