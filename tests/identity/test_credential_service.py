"""The holder's Credential Service: it presents only what the holder granted, to the verifier it
granted it to, and stores a delivery only when every credential in it verifies."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from identity.credential_service import CredentialService, UnsupportedQueryError
from identity.credentials import CredentialType
from identity.documents import Service
from identity.errors import IdentityError, Reason
from identity.presentations import DCP_CONTEXT, scope_for
from identity.resolver import did_web_url
from identity.store import CredentialStore, SqlReplayCache
from identity.sts import WRITE_SCOPE, SecureTokenService
from identity.verifier import Peer, Verifier
from tests.identity.world import (
    AUTHORITY,
    BANK,
    BUREAU,
    NOW,
    ROGUE,
    World,
    engine_for,
    run,
    trusted,
)

MEMBERSHIP = scope_for(CredentialType.MEMBERSHIP)


@pytest.fixture
def world() -> World:
    world = World()
    for did in (AUTHORITY, BANK, BUREAU, ROGUE):
        world.add(did)
    return world


def service(world: World, store: CredentialStore, client: Any) -> CredentialService:
    resolver = world.resolver(client)
    return CredentialService(
        keyring=world.rings[BANK], store=store, resolver=resolver, replay=SqlReplayCache(engine_for()),
        trusted=trusted(), revocation=world.status(client, resolver), clock=lambda: NOW,
    )  # fmt: skip


def sts(world: World, did: str) -> SecureTokenService:
    return SecureTokenService(world.rings[did], lambda: NOW)


def bearer_from(world: World, caller: str, scopes: list[str]) -> str:
    """``caller`` presents an access token that the bank granted it for ``scopes``."""
    grant = sts(world, BANK).access_token(caller, scopes)
    return "Bearer " + sts(world, caller).id_token(BANK, token=grant)


def delivery(*tokens: str) -> dict[str, Any]:
    return {"type": "CredentialMessage", "credentials": [{"credentialType": "x", "format": "jwt", "payload": t} for t in tokens]}  # fmt: skip


def query(*scopes: str) -> dict[str, Any]:
    return {"type": "PresentationQueryMessage", "scope": list(scopes)}


def test_a_delivery_is_stored_and_presented_to_the_granted_verifier(world: World) -> None:
    store = CredentialStore(world.engines[BANK])
    membership, _ = world.issue(BANK)

    async def flow() -> dict[str, Any]:
        async with world.client() as client:
            cs = service(world, store, client)
            assert (
                await cs.deliver(bearer_from(world, AUTHORITY, [WRITE_SCOPE]), delivery(membership))
                == 1
            )
            return await cs.query(bearer_from(world, BUREAU, [MEMBERSHIP]), query(MEMBERSHIP))

    answer = run(flow())
    assert answer["type"] == "PresentationResponseMessage"
    assert len(answer["presentation"]) == 1


def test_a_delivery_with_one_bad_credential_stores_nothing(world: World) -> None:
    store = CredentialStore(world.engines[BANK])
    good, _ = world.issue(BANK)
    someone_elses, _ = world.issue(BUREAU)

    async def flow() -> None:
        async with world.client() as client:
            await service(world, store, client).deliver(
                bearer_from(world, AUTHORITY, [WRITE_SCOPE]), delivery(good, someone_elses)
            )

    with pytest.raises(IdentityError) as raised:
        run(flow())
    assert raised.value.reason is Reason.SUBJECT_MISMATCH
    assert store.types() == frozenset()


def test_a_delivery_needs_the_write_grant_and_the_issuers_own_credentials(world: World) -> None:
    store = CredentialStore(world.engines[BANK])
    membership, _ = world.issue(BANK)

    async def deliver(caller: str, scopes: list[str]) -> int:
        async with world.client() as client:
            return await service(world, store, client).deliver(
                bearer_from(world, caller, scopes), delivery(membership)
            )

    with pytest.raises(IdentityError) as without_grant:
        run(deliver(AUTHORITY, [MEMBERSHIP]))
    assert without_grant.value.reason is Reason.ACCESS_DENIED
    with pytest.raises(IdentityError) as relayed:
        run(deliver(ROGUE, [WRITE_SCOPE]))  # a valid credential, delivered by someone else
    assert relayed.value.reason is Reason.UNTRUSTED_ISSUER
    assert store.types() == frozenset()


def test_a_query_beyond_the_grant_presents_only_what_was_granted(world: World) -> None:
    store = CredentialStore(world.engines[BANK])
    membership, _ = world.issue(BANK)
    licence, _ = world.issue(BANK, CredentialType.FINANCIAL_INSTITUTION)

    async def flow() -> dict[str, Any]:
        async with world.client() as client:
            cs = service(world, store, client)
            await cs.deliver(
                bearer_from(world, AUTHORITY, [WRITE_SCOPE]), delivery(membership, licence)
            )
            return await cs.query(
                bearer_from(world, BUREAU, [MEMBERSHIP]),
                query(MEMBERSHIP, scope_for(CredentialType.FINANCIAL_INSTITUTION)),
            )

    answer = run(flow())
    import jwt

    vp = jwt.decode(answer["presentation"][0], options={"verify_signature": False})
    assert len(vp["vp"]["verifiableCredential"]) == 1


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        pytest.param(query("org.example:other"), Reason.ACCESS_DENIED, id="unknown-scope"),
        pytest.param({"type": "PresentationQueryMessage"}, Reason.MALFORMED_TOKEN, id="no-scope"),
        pytest.param(
            {"type": "Other", "scope": [MEMBERSHIP]}, Reason.MALFORMED_TOKEN, id="wrong-type"
        ),
    ],
)
def test_bad_queries(world: World, message: dict[str, Any], reason: Reason) -> None:
    async def flow() -> None:
        async with world.client() as client:
            await service(world, CredentialStore(world.engines[BANK]), client).query(
                bearer_from(world, BUREAU, [MEMBERSHIP]), message
            )

    with pytest.raises(IdentityError) as raised:
        run(flow())
    assert raised.value.reason is reason


def test_an_access_token_granted_to_another_verifier_is_refused(world: World) -> None:
    grant = sts(world, BANK).access_token(BUREAU, [MEMBERSHIP])
    stolen = "Bearer " + sts(world, ROGUE).id_token(BANK, token=grant)

    async def flow() -> None:
        async with world.client() as client:
            await service(world, CredentialStore(world.engines[BANK]), client).query(
                stolen, query(MEMBERSHIP)
            )

    with pytest.raises(IdentityError, match=r"not granted to did:web:rogue\.test"):
        run(flow())


def test_presentation_definitions_are_not_supported(world: World) -> None:
    async def flow() -> None:
        async with world.client() as client:
            await service(world, CredentialStore(world.engines[BANK]), client).query(
                None, {"type": "PresentationQueryMessage", "presentationDefinition": {}}
            )

    with pytest.raises(UnsupportedQueryError):
        run(flow())


def test_a_query_for_nothing_granted_is_answered_with_no_presentation(world: World) -> None:
    # DCP 1.0: "If the array contains scopes that a client is not entitled to, the Credential
    # Service MUST return HTTP 2xx with the PresentationResponseMessage's presentation array
    # holding less entries than requested."
    store = CredentialStore(world.engines[BANK])
    membership, _ = world.issue(BANK)

    async def flow() -> dict[str, Any]:
        async with world.client() as client:
            cs = service(world, store, client)
            await cs.deliver(bearer_from(world, AUTHORITY, [WRITE_SCOPE]), delivery(membership))
            return await cs.query(
                bearer_from(world, BUREAU, [MEMBERSHIP]), query(scope_for(CredentialType.REGULATOR))
            )

    answer = run(flow())
    assert answer["type"] == "PresentationResponseMessage"
    assert answer["presentation"] == []


def verifier_meets(
    world: World, answer: dict[str, Any], required: tuple[CredentialType, ...]
) -> Peer:
    """The bureau's verifier authenticates the bank, whose Credential Service answers ``answer``."""
    bank = world.rings[BANK]
    world.documents[did_web_url(BANK, allow_http=True)] = bank.document(
        (Service(f"{BANK}#cs", "CredentialService", "http://bank.test/cs"),)
    ).to_json()

    def handle(request: httpx.Request) -> httpx.Response:
        if str(request.url) == "http://bank.test/cs/presentations/query":
            return httpx.Response(200, json=answer)
        return world.handle(request)

    async def go() -> Peer:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            resolver = world.resolver(client)
            verifier = Verifier(
                sts=sts(world, BUREAU), resolver=resolver, trusted=trusted(),
                revocation=world.status(client, resolver), replay=SqlReplayCache(engine_for()),
                client=client, required=required, cache_ttl=timedelta(seconds=60), clock=lambda: NOW,
            )  # fmt: skip
            return await verifier.authenticate(
                "Bearer " + sts(world, BANK).bearer_for(BUREAU, [MEMBERSHIP])
            )

    return run(go())


EMPTY = {"@context": [DCP_CONTEXT], "type": "PresentationResponseMessage", "presentation": []}


def test_a_verifier_reads_an_empty_answer_as_no_credentials(world: World) -> None:
    peer = verifier_meets(world, EMPTY, required=())
    assert peer.did == BANK
    assert peer.presentation.credentials == ()


def test_a_verifier_that_needs_a_credential_refuses_an_empty_answer(world: World) -> None:
    with pytest.raises(IdentityError) as raised:
        verifier_meets(world, EMPTY, required=(CredentialType.MEMBERSHIP,))
    assert raised.value.reason is Reason.MISSING_CREDENTIAL


def presented_in(answer: dict[str, Any]) -> list[str]:
    import jwt

    (token,) = answer["presentation"]
    credentials: list[str] = jwt.decode(token, options={"verify_signature": False})["vp"][
        "verifiableCredential"
    ]
    return credentials


EVERYTHING = [scope_for(kind) for kind in CredentialType]


def test_the_holder_presents_only_what_it_still_believes_valid(world: World) -> None:
    store = CredentialStore(world.engines[BANK])
    membership, _ = world.issue(BANK)
    licence, licence_entry = world.issue(BANK, CredentialType.FINANCIAL_INSTITUTION)
    short, _ = world.issue(
        BANK, CredentialType.PUBLIC_DATA_HOLDER, expires_at=NOW + timedelta(hours=1)
    )

    async def flow() -> dict[str, Any]:
        async with world.client() as client:
            delivered = service(world, store, client)
            await delivered.deliver(
                bearer_from(world, AUTHORITY, [WRITE_SCOPE]), delivery(membership, licence, short)
            )
            world.revoke(licence_entry)
            later = NOW + timedelta(hours=2)
            resolver = world.resolver(client)
            holder = CredentialService(
                keyring=world.rings[BANK], store=store, resolver=resolver,
                replay=SqlReplayCache(engine_for()), trusted=trusted(),
                revocation=world.status(client, resolver), clock=lambda: later,
            )  # fmt: skip
            grant = SecureTokenService(world.rings[BANK], lambda: later).access_token(
                BUREAU, EVERYTHING
            )
            bearer = SecureTokenService(world.rings[BUREAU], lambda: later).id_token(
                BANK, token=grant
            )
            return await holder.query("Bearer " + bearer, query(*EVERYTHING))

    assert presented_in(run(flow())) == [membership]  # the licence revoked, `short` expired


def test_the_holder_lists_its_credentials_with_what_it_believes_and_removes_them(
    world: World,
) -> None:
    store = CredentialStore(world.engines[BANK])
    membership, _ = world.issue(BANK)
    licence, licence_entry = world.issue(BANK, CredentialType.FINANCIAL_INSTITUTION)

    async def flow() -> tuple[list[tuple[str, str, str]], list[str], list[str]]:
        async with world.client() as client:
            cs = service(world, store, client)
            await cs.deliver(
                bearer_from(world, AUTHORITY, [WRITE_SCOPE]), delivery(membership, licence)
            )
            world.revoke(licence_entry)
            cs = service(world, store, client)  # its status cache is empty
            held = [(h.id, h.type.value, h.belief.value) for h in await cs.holdings()]
            assert cs.remove("urn:uuid:cred-1") is True
            assert cs.remove("urn:uuid:cred-1") is False
            assert cs.remove("urn:uuid:no-such") is False
            left = [h.id for h in await cs.holdings()]
            world.status_up = False
            unknown = [h.belief.value for h in await service(world, store, client).holdings()]
            return held, left, unknown

    held, left, unknown = run(flow())
    assert sorted(held) == [
        ("urn:uuid:cred-0", "MembershipCredential", "valid"),
        ("urn:uuid:cred-1", "FinancialInstitutionCredential", "revoked"),
    ]
    assert left == ["urn:uuid:cred-0"]
    assert unknown == ["unknown"]


def test_a_holding_says_when_it_was_issued_and_expires(world: World) -> None:
    store = CredentialStore(world.engines[BANK])
    membership, _ = world.issue(BANK, expires_at=NOW + timedelta(days=30))

    async def flow() -> Any:
        async with world.client() as client:
            cs = service(world, store, client)
            await cs.deliver(bearer_from(world, AUTHORITY, [WRITE_SCOPE]), delivery(membership))
            return await cs.holdings()

    (held,) = run(flow())
    assert (held.issuer, held.issued_at, held.expires_at) == (
        AUTHORITY,
        NOW - timedelta(days=1),
        NOW + timedelta(days=30),
    )
    assert held.status is not None
    assert (held.status.list_url, held.why) == ("http://authority.test/status/1", None)


@pytest.mark.parametrize("status_up", [pytest.param(True, id="up"), pytest.param(False, id="down")])
def test_status_lists_are_not_fetched_for_every_credential_or_presentation(
    world: World, status_up: bool
) -> None:
    store = CredentialStore(world.engines[BANK])
    tokens = [world.issue(BANK, kind)[0] for kind in CredentialType]

    async def flow() -> list[int]:
        async with world.client() as client:
            await service(world, store, client).deliver(
                bearer_from(world, AUTHORITY, [WRITE_SCOPE]), delivery(*tokens)
            )
            cs = service(world, store, client)  # its status cache is empty
            world.requests.clear()
            world.status_up = status_up
            fetches = []
            for _ in range(3):
                answer = await cs.query(bearer_from(world, BUREAU, EVERYTHING), query(*EVERYTHING))
                assert len(presented_in(answer)) == len(tokens)  # unknown status: presented
                fetches.append(world.requests.count("http://authority.test/status/1"))
            return fetches

    # four credentials on one list: fetched once, then cached; a list that is down is asked
    # once a presentation, not once a credential
    assert run(flow()) == ([1, 1, 1] if status_up else [1, 2, 3])
