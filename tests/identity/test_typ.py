"""The JOSE typ header: a self-issued ID token is typ JWT or untyped (DCP 1.0 names no typ; RFC
7519 5.1 recommends JWT) and carries no vp or vc claim; a presentation is typ JWT (VC Data Model
1.1, 6.3.1), untyped, or the vp+jwt of earlier Kexin holders. Other kinds of JWT that the same
keys sign are refused, first of all the access token a holder mints for a verifier: addressed to
the holder itself, it would otherwise pass as the holder's own ID token."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
import pytest

from identity.errors import IdentityError, Reason
from identity.jwt_sign import self_issued_claims
from identity.keys import algorithm_of
from identity.presentations import verify_presentation
from identity.store import SqlReplayCache
from identity.sts import SecureTokenService
from identity.tokens import validate_id_token
from tests.identity.world import AUTHORITY, BANK, BUREAU, NOW, World, engine_for, run, trusted


@pytest.fixture
def world() -> World:
    world = World()
    for did in (AUTHORITY, BANK, BUREAU):
        world.add(did)
    return world


def validate(world: World, token: str, audience: str) -> str:
    async def go() -> str:
        async with world.client() as client:
            validated = await validate_id_token(
                token, audience=audience, resolver=world.resolver(client),
                replay=SqlReplayCache(engine_for()), now=NOW,
            )  # fmt: skip
            return validated.issuer

    return run(go())


def test_an_access_token_is_not_the_holders_id_token(world: World) -> None:
    # the bank grants the bureau an access token (iss = sub = aud = the bank, signed with the
    # bank's capabilityInvocation key); the bureau must not be able to use it as the bank
    access_token = SecureTokenService(world.rings[BANK], lambda: NOW).access_token(BUREAU, [])
    with pytest.raises(IdentityError) as raised:
        validate(world, access_token, audience=BANK)
    assert raised.value.reason is Reason.MALFORMED_TOKEN


def signed_by_bank(world: World, typ: str | None, **extra: Any) -> str:
    """A token the bank signs for the bureau; ``typ`` None: no typ header at all."""
    key = world.rings[BANK].current
    claims = {**self_issued_claims(BANK, BUREAU, NOW, timedelta(minutes=5)), **extra}
    headers = {"kid": key.key_id, "typ": typ}  # PyJWT leaves out a typ of None
    return jwt.encode(
        claims, key.private_key, algorithm=algorithm_of(key.private_key), headers=headers
    )


@pytest.mark.parametrize(
    "typ",
    ["kexin-access+jwt", "vp+jwt", "vc+jwt", "kexin-edr+jwt", "at+jwt", "JOSE"],
)
def test_id_tokens_of_another_type_are_refused(world: World, typ: str) -> None:
    with pytest.raises(IdentityError) as raised:
        validate(world, signed_by_bank(world, typ), audience=BUREAU)
    assert raised.value.reason is Reason.MALFORMED_TOKEN


@pytest.mark.parametrize("typ", ["JWT", "jwt", "application/jwt", None])
def test_id_tokens_typed_jwt_or_untyped_are_accepted(world: World, typ: str | None) -> None:
    assert validate(world, signed_by_bank(world, typ), audience=BUREAU) == BANK


@pytest.mark.parametrize("claim", ["vp", "vc"])
def test_a_presentation_or_credential_is_not_an_id_token(world: World, claim: str) -> None:
    token = signed_by_bank(world, "JWT", **{claim: {"type": ["VerifiablePresentation"]}})
    with pytest.raises(IdentityError) as raised:
        validate(world, token, audience=BUREAU)
    assert raised.value.reason is Reason.MALFORMED_TOKEN


def present(world: World, typ: str | None) -> str:
    vp = {"@context": ["https://www.w3.org/2018/credentials/v1"], "type": ["VerifiablePresentation"], "holder": BANK, "verifiableCredential": []}  # fmt: skip
    return signed_by_bank(world, typ, vp=vp)


def check_presentation(world: World, token: str) -> None:
    async def go() -> None:
        async with world.client() as client:
            resolver = world.resolver(client)
            await verify_presentation(
                token, audience=BUREAU, expected_holder=BANK, resolver=resolver,
                trusted=trusted(), revocation=world.status(client, resolver), now=NOW,
            )  # fmt: skip

    run(go())


@pytest.mark.parametrize("typ", ["kexin-access+jwt", "kexin-edr+jwt", "vc+jwt", "at+jwt"])
def test_presentations_of_another_type_are_refused(world: World, typ: str) -> None:
    with pytest.raises(IdentityError) as raised:
        check_presentation(world, present(world, typ))
    assert raised.value.reason is Reason.MALFORMED_TOKEN


@pytest.mark.parametrize("typ", ["JWT", "vp+jwt", "application/JWT", None])
def test_presentations_typed_jwt_or_vp_jwt_or_untyped_are_accepted(
    world: World, typ: str | None
) -> None:
    check_presentation(world, present(world, typ))
