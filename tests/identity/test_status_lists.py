"""Status lists are used only while current: a revocation StatusList2021Credential of the issuer,
within its validity period (nbf, exp) and issued at most MAX_LIST_AGE_S ago, cached never past
that; anything else fails closed (a replayed list from before a revocation must not hide it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from identity.errors import IdentityError, Reason
from identity.jwt_sign import sign
from identity.status import (
    LIST_BITS,
    MAX_LIST_AGE_S,
    STATUS_CONTEXT,
    VC_CONTEXT,
    StatusEntry,
    StatusListCache,
    encode_bits,
    issue_status_list,
)
from tests.identity.world import AUTHORITY, NOW, STATUS_URL, World

ENTRY = StatusEntry(STATUS_URL, 7)


def list_claims(issued_at: datetime) -> dict[str, Any]:
    when = int(issued_at.timestamp())
    return {
        "iss": AUTHORITY, "sub": f"{STATUS_URL}#list", "iat": when, "nbf": when, "jti": STATUS_URL,
        "vc": {
            "@context": [VC_CONTEXT, STATUS_CONTEXT],
            "type": ["VerifiableCredential", "StatusList2021Credential"], "issuer": AUTHORITY,
            "issuanceDate": issued_at.isoformat(),
            "credentialSubject": {
                "id": f"{STATUS_URL}#list", "type": "StatusList2021", "statusPurpose": "revocation",
                "encodedList": encode_bits(bytes(LIST_BITS // 8)),
            },
        },
    }  # fmt: skip


class Issuer:
    """The authority's status list endpoint, serving whatever list the test wants."""

    def __init__(self) -> None:
        self.world = World()
        self.world.add(AUTHORITY)
        self.claims = list_claims(NOW)
        self.fetches = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) != STATUS_URL:
            return self.world.handle(request)
        self.fetches += 1
        key = self.world.rings[AUTHORITY].current
        return httpx.Response(200, text=sign(self.claims, key.private_key, key.key_id, "vc+jwt"))


def revoked(issuer: Issuer, now: datetime = NOW) -> bool:
    async def go() -> bool:
        transport = httpx.MockTransport(issuer.handle)
        async with httpx.AsyncClient(transport=transport) as client:
            cache = StatusListCache(client, issuer.world.resolver(client), now=lambda: now)
            return await cache.is_revoked(ENTRY, AUTHORITY)

    return asyncio.run(go())


def stale(issuer: Issuer, now: datetime = NOW) -> None:
    with pytest.raises(IdentityError) as raised:
        revoked(issuer, now)
    assert raised.value.reason is Reason.STATUS_UNAVAILABLE, raised.value


def test_a_fresh_list_is_used() -> None:
    assert revoked(Issuer()) is False


def test_a_list_issued_400_days_ago_without_expiry_is_stale() -> None:
    issuer = Issuer()
    issuer.claims = list_claims(NOW - timedelta(days=400))
    stale(issuer)


def test_a_list_older_than_the_maximum_age_is_stale_and_a_younger_one_is_not() -> None:
    issuer = Issuer()
    issuer.claims = list_claims(NOW - timedelta(seconds=MAX_LIST_AGE_S - 60))
    assert revoked(issuer) is False
    issuer.claims = list_claims(NOW - timedelta(seconds=MAX_LIST_AGE_S + 60))
    stale(issuer)


def test_an_expired_list_is_stale() -> None:
    issuer = Issuer()
    issuer.claims["exp"] = int((NOW - timedelta(minutes=5)).timestamp())
    stale(issuer)


def test_a_list_not_valid_yet_is_refused() -> None:
    issuer = Issuer()
    issuer.claims = list_claims(NOW + timedelta(hours=1))
    stale(issuer)


def change_vc(change: Callable[[dict[str, Any]], object]) -> Issuer:
    issuer = Issuer()
    change(issuer.claims["vc"])
    return issuer


@pytest.mark.parametrize(
    "issuer",
    [
        pytest.param(change_vc(lambda vc: vc.update(type=["VerifiableCredential"])), id="vc-type"),
        pytest.param(
            change_vc(lambda vc: vc["credentialSubject"].update(type="BitstringStatusList")),
            id="subject-type",
        ),
        pytest.param(
            change_vc(lambda vc: vc["credentialSubject"].update(statusPurpose="suspension")),
            id="purpose",
        ),
        pytest.param(change_vc(lambda vc: vc.update(issuer="did:web:rogue.test")), id="vc-issuer"),
        pytest.param(change_vc(lambda vc: vc.pop("credentialSubject")), id="no-subject"),
    ],
)
def test_what_is_not_a_revocation_status_list_2021_credential_is_refused(issuer: Issuer) -> None:
    stale(issuer)


@pytest.mark.parametrize("vc", ["a string", 7, None, ["a", "list"]])
def test_a_vc_claim_that_is_no_object_is_refused(vc: object) -> None:
    issuer = Issuer()
    issuer.claims["vc"] = vc
    stale(issuer)


def test_a_list_without_nbf_is_refused() -> None:
    issuer = Issuer()
    del issuer.claims["nbf"]
    stale(issuer)


class Clocks:
    def __init__(self) -> None:
        self.monotonic_s, self.wall = 0.0, NOW

    def advance(self, seconds: float) -> None:
        self.monotonic_s += seconds
        self.wall += timedelta(seconds=seconds)


def test_the_cache_never_keeps_a_list_past_its_expiry() -> None:
    issuer = Issuer()
    issuer.claims["exp"] = int((NOW + timedelta(seconds=10)).timestamp())
    clock = Clocks()

    async def go() -> None:
        transport = httpx.MockTransport(issuer.handle)
        async with httpx.AsyncClient(transport=transport) as client:
            cache = StatusListCache(
                client, issuer.world.resolver(client), ttl_s=60,
                clock=lambda: clock.monotonic_s, now=lambda: clock.wall,
            )  # fmt: skip
            assert await cache.is_revoked(ENTRY, AUTHORITY) is False
            clock.advance(5)
            assert await cache.is_revoked(ENTRY, AUTHORITY) is False  # cached
            assert issuer.fetches == 1
            clock.advance(45)
            with pytest.raises(IdentityError) as raised:  # within the TTL, but the list expired
                await cache.is_revoked(ENTRY, AUTHORITY)
            assert raised.value.reason is Reason.STATUS_UNAVAILABLE
            assert issuer.fetches == 2

    asyncio.run(go())


def test_what_the_authority_issues_is_current() -> None:
    issuer = Issuer()
    key = issuer.world.rings[AUTHORITY].current
    token = issue_status_list(AUTHORITY, key.private_key, key.key_id, STATUS_URL, bytes(LIST_BITS // 8), NOW)  # fmt: skip
    issuer.claims = jwt.decode(token, options={"verify_signature": False})
    assert revoked(issuer) is False
