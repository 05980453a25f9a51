"""The verifier against a real holder: the bank's Credential Service (its store, its status
checks) answers the bureau's verifier through a mock network. Each credential is judged on its
own; a revoked one fails only what needed it; a re-issued one counts from the next request."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from identity.credential_service import CredentialService
from identity.credentials import CredentialType, issue_credential
from identity.documents import Service
from identity.errors import IdentityError, Reason
from identity.presentations import DCP_CONTEXT, EVERY_SCOPE, issue_presentation
from identity.status import StatusEntry, StatusListCache
from identity.store import CredentialStore, SqlReplayCache
from identity.sts import WRITE_SCOPE, SecureTokenService
from identity.verifier import Peer, Verifier
from tests.identity.world import AUTHORITY, BANK, BUREAU, NOW, ORG, World, engine_for, run, trusted

QUERY_URL = "http://bank.test/cs/presentations/query"
LOST_LIST = "http://authority.test/status/lost"
"""A status list that is never there."""


@dataclass
class Clock:
    at: datetime = NOW

    def __call__(self) -> datetime:
        return self.at

    def seconds(self) -> float:
        return self.at.timestamp()


@dataclass
class Bank:
    """The bank as a holder (store, STS, Credential Service) and the bureau's verifier of it."""

    world: World
    client: httpx.AsyncClient
    clock: Clock
    required: tuple[CredentialType, ...] = (CredentialType.MEMBERSHIP,)
    answer: dict[str, Any] | None = None
    """A fixed answer of the bank's Credential Service, instead of its own."""
    queries: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = CredentialStore(self.world.engines[BANK])
        self.sts = SecureTokenService(self.world.rings[BANK], self.clock, self.store.fingerprint)
        resolver = self.world.resolver(self.client)
        self.service = CredentialService(
            keyring=self.world.rings[BANK], store=self.store, resolver=resolver,
            replay=SqlReplayCache(engine_for()), trusted=trusted(),
            revocation=self.status_cache(), clock=self.clock,
        )  # fmt: skip
        self.verifier = self.verifier_needing(*self.required)

    def status_cache(self) -> StatusListCache:
        resolver = self.world.resolver(self.client)
        return StatusListCache(
            self.client, resolver, ttl_s=60, clock=self.clock.seconds, now=self.clock
        )

    def verifier_needing(self, *required: CredentialType) -> Verifier:
        bureau = SecureTokenService(self.world.rings[BUREAU], self.clock)
        return Verifier(
            sts=bureau, resolver=self.world.resolver(self.client), trusted=trusted(),
            revocation=self.status_cache(), replay=SqlReplayCache(engine_for()),
            client=self.client, required=required, cache_ttl=timedelta(seconds=60),
            clock=self.clock,
        )  # fmt: skip

    async def deliver(self, *tokens: str) -> None:
        grant = self.sts.access_token(AUTHORITY, [WRITE_SCOPE])
        bearer = SecureTokenService(self.world.rings[AUTHORITY], self.clock).id_token(
            BANK, token=grant
        )
        message = {
            "type": "CredentialMessage",
            "credentials": [{"format": "jwt", "payload": t} for t in tokens],
        }
        await self.service.deliver("Bearer " + bearer, message)

    async def calls(self, verifier: Verifier | None = None) -> Peer:
        """The bank calls the bureau, as its connector does: a fresh ID token each time."""
        bearer = self.sts.bearer_for(BUREAU, EVERY_SCOPE)
        return await (verifier or self.verifier).authenticate("Bearer " + bearer)


def holder_world() -> World:
    world = World()
    for did in (AUTHORITY, BUREAU):
        world.add(did)
    world.add(BANK, (Service(f"{BANK}#cs", "CredentialService", "http://bank.test/cs"),))
    return world


def network(bank: list[Bank]) -> httpx.AsyncClient:
    async def handle(request: httpx.Request) -> httpx.Response:
        if str(request.url) != QUERY_URL:
            return bank[0].world.handle(request)
        bank[0].queries.append(request.headers["authorization"])
        if bank[0].answer is not None:
            return httpx.Response(200, json=bank[0].answer)
        body = json.loads(request.content)
        answer = await bank[0].service.query(request.headers["authorization"], body)
        return httpx.Response(200, json=answer)

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


async def with_bank(world: World, **options: Any) -> tuple[Bank, httpx.AsyncClient]:
    holder: list[Bank] = []
    client = network(holder)
    holder.append(Bank(world, client, Clock(), **options))
    return holder[0], client


def roles(peer: Peer) -> set[str]:
    return set(peer.facts().roles)


def test_a_revoked_credential_fails_only_what_needed_it_and_a_new_one_counts_at_once() -> None:
    world = holder_world()
    membership, _ = world.issue(BANK)
    licence, licence_entry = world.issue(BANK, CredentialType.FINANCIAL_INSTITUTION)

    async def story() -> None:
        bank, client = await with_bank(world)
        async with client:
            await bank.deliver(membership, licence)
            before = await bank.calls()
            assert before.facts().membership
            assert roles(before) == {"FinancialInstitution"}

            world.revoke(licence_entry)
            bank.clock.at += timedelta(seconds=61)  # every cache has expired
            after = await bank.calls()  # a membership-only policy still admits the bank
            assert after.facts().membership
            assert roles(after) == set()  # what needed the licence fails
            with pytest.raises(IdentityError) as refused:
                await bank.calls(bank.verifier_needing(CredentialType.FINANCIAL_INSTITUTION))
            assert refused.value.reason is Reason.MISSING_CREDENTIAL

            renewed, _ = world.issue(BANK, CredentialType.FINANCIAL_INSTITUTION)
            await bank.deliver(renewed)  # no clock moves: the verifier's cache is still warm
            again = await bank.calls()
            assert roles(again) == {"FinancialInstitution"}
            assert {c.id for c in again.presentation.credentials} == {
                "urn:uuid:cred-0",
                "urn:uuid:cred-2",
            }

    run(story())


def test_the_verifier_asks_again_only_when_the_holder_grants_anew() -> None:
    world = holder_world()
    membership, _ = world.issue(BANK)

    async def story() -> list[int]:
        bank, client = await with_bank(world)
        async with client:
            await bank.deliver(membership)
            counts = []
            for _ in range(3):
                await bank.calls()
                counts.append(len(bank.queries))
            licence, _ = world.issue(BANK, CredentialType.FINANCIAL_INSTITUTION)
            await bank.deliver(licence)
            await bank.calls()
            counts.append(len(bank.queries))
            return counts

    assert run(story()) == [1, 1, 1, 2]


def fixed_answer(world: World, credentials: Sequence[str]) -> dict[str, Any]:
    """What a holder that presents everything it has (as Kexin's did) answers."""
    key = world.rings[BANK].current
    token = issue_presentation(
        holder=BANK, key=key.private_key, key_id=key.key_id, credentials=list(credentials),
        audience=BUREAU, now=NOW,
    )  # fmt: skip
    return {"@context": [DCP_CONTEXT], "type": "PresentationResponseMessage", "presentation": [token]}  # fmt: skip


def test_a_revoked_credential_presented_anyway_counts_as_not_held(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = holder_world()
    membership, _ = world.issue(BANK)
    licence, entry = world.issue(BANK, CredentialType.FINANCIAL_INSTITUTION)
    world.revoke(entry)

    async def story() -> tuple[Peer, IdentityError]:
        bank, client = await with_bank(world, answer=fixed_answer(world, [membership, licence]))
        async with client:
            peer = await bank.calls()
            with pytest.raises(IdentityError) as refused:
                await bank.calls(bank.verifier_needing(CredentialType.FINANCIAL_INSTITUTION))
            return peer, refused.value

    with caplog.at_level(logging.WARNING, logger="kexin.identity"):
        peer, error = run(story())
    assert peer.facts().membership
    assert roles(peer) == set()
    (refused,) = peer.presentation.refused
    assert (refused.id, refused.type, refused.reason) == (
        "urn:uuid:cred-1",
        "FinancialInstitutionCredential",
        Reason.REVOKED_CREDENTIAL,
    )
    assert error.reason is Reason.REVOKED_CREDENTIAL
    assert error.message == (
        f"{BANK} lacks a valid FinancialInstitutionCredential: "
        f"FinancialInstitutionCredential of {BANK} is revoked"
    )
    assert any(
        "'urn:uuid:cred-1'" in r.getMessage() and "revoked_credential" in r.getMessage()
        for r in caplog.records
    )


def unchecked_licence(world: World) -> str:
    """A licence whose status list cannot be fetched."""
    key = world.rings[AUTHORITY].current
    return issue_credential(
        issuer=AUTHORITY, key=key.private_key, key_id=key.key_id, credential_id="urn:uuid:lost",
        credential_type=CredentialType.FINANCIAL_INSTITUTION, subject=BANK, organisation=ORG,
        issued_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=30),
        status=StatusEntry(LOST_LIST, 3),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("unchecked", "pulls"),
    [pytest.param(True, 2, id="one-unchecked"), pytest.param(False, 1, id="all-checked")],
)
def test_a_credential_that_cannot_be_checked_counts_as_not_held_and_nothing_is_kept(
    unchecked: bool, pulls: int
) -> None:
    world = holder_world()
    membership, _ = world.issue(BANK)
    licence = unchecked_licence(world) if unchecked else world.issue(BANK, CredentialType.FINANCIAL_INSTITUTION)[0]  # fmt: skip

    async def story() -> tuple[Peer, int]:
        bank, client = await with_bank(world, answer=fixed_answer(world, [membership, licence]))
        async with client:
            await bank.calls()
            peer = await bank.calls()  # the same grant: served from the cache unless unchecked
            return peer, len(bank.queries)

    peer, queries = run(story())
    assert peer.facts().membership
    assert roles(peer) == (set() if unchecked else {"FinancialInstitution"})
    assert [r.reason for r in peer.presentation.refused] == (
        [Reason.STATUS_UNAVAILABLE] if unchecked else []
    )
    assert queries == pulls


def test_a_bad_presentation_still_fails_whole() -> None:
    world = holder_world()
    membership, _ = world.issue(BANK)
    key = world.rings[BANK].current
    elsewhere = issue_presentation(
        holder=BANK, key=key.private_key, key_id=key.key_id, credentials=[membership],
        audience="did:web:elsewhere.test", now=NOW,
    )  # fmt: skip
    answer = {"@context": [DCP_CONTEXT], "type": "PresentationResponseMessage", "presentation": [elsewhere]}  # fmt: skip

    async def story() -> None:
        bank, client = await with_bank(world, answer=answer)
        async with client:
            await bank.calls()

    with pytest.raises(IdentityError) as raised:
        run(story())
    assert raised.value.reason is Reason.WRONG_AUDIENCE
