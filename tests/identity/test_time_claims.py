"""Time claims (nbf, iat, exp) that are not NumericDates in a sane range are refused with a typed
IdentityError, in every kind of JWT we read: a validly signed token from any fresh did:key with
exp = 10^18, NaN, a string or a bool must never reach datetime (a 500) or slip past a comparison
(NaN compares false with everything)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from identity.credentials import CredentialType, verify_credential
from identity.documents import did_key_of
from identity.errors import IdentityError, Reason
from identity.jwt_sign import sign
from identity.presentations import VerifiedPresentation, verify_presentation
from identity.store import SqlReplayCache
from identity.tokens import check_access_token, validate_id_token
from identity.validity import LEEWAY_S, MAX_DISTANCE_S
from tests.identity.world import AUTHORITY, BANK, BUREAU, NOW, ORG, World, engine_for, run, trusted

T = int(NOW.timestamp())
BAD_TIMES = [
    pytest.param(10**18, id="1e18"),
    pytest.param(-(10**18), id="minus-1e18"),
    pytest.param(10**400, id="huge-int"),
    pytest.param(1e300, id="1e300"),
    pytest.param(math.nan, id="nan"),
    pytest.param(math.inf, id="inf"),
    pytest.param(-math.inf, id="minus-inf"),
    pytest.param(str(T + 60), id="string"),
    pytest.param(True, id="bool"),
    pytest.param([T + 60], id="list"),
    pytest.param(T + MAX_DISTANCE_S + 60, id="beyond-100-years"),
]
TIME_CLAIMS = ["exp", "iat", "nbf"]


def did_key_token(claims_change: dict[str, Any], *, typ: str = "JWT") -> str:
    """A self-issued ID token, validly signed by a fresh did:key: anyone can make one."""
    key = Ed25519PrivateKey.generate()
    did = did_key_of(key.public_key())
    kid = f"{did}#{did.removeprefix('did:key:')}"
    claims: dict[str, Any] = {"iss": did, "sub": did, "aud": BUREAU, "jti": "j-1", "iat": T, "nbf": T, "exp": T + 300}  # fmt: skip
    claims.update(claims_change)
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid, "typ": typ})


def validate(token: str) -> None:
    async def go() -> None:
        world = World()
        async with world.client() as client:
            await validate_id_token(
                token, audience=BUREAU, resolver=world.resolver(client),
                replay=SqlReplayCache(engine_for()), now=NOW,
            )  # fmt: skip

    run(go())


@pytest.mark.parametrize("claim", TIME_CLAIMS)
@pytest.mark.parametrize("value", BAD_TIMES)
def test_id_tokens_with_bad_time_claims_are_malformed(claim: str, value: object) -> None:
    with pytest.raises(IdentityError) as raised:
        validate(did_key_token({claim: value}))
    assert raised.value.reason is Reason.MALFORMED_TOKEN, raised.value


def test_fractional_numeric_dates_are_numbers_too() -> None:
    validate(did_key_token({"iat": T + 0.5, "nbf": T - 0.25, "exp": T + 60.5}))


@pytest.mark.parametrize("value", BAD_TIMES)
def test_access_tokens_with_bad_expiry_are_refused(value: object) -> None:
    world = World()
    ring = world.add(BANK)
    key = ring.current
    claims = {"iss": BANK, "sub": BANK, "aud": BANK, "jti": "a-1", "iat": T, "exp": value, "verifier": BUREAU, "scope": ""}  # fmt: skip
    token = sign(claims, key.private_key, key.key_id, "kexin-access+jwt")
    with pytest.raises(IdentityError) as raised:
        check_access_token(token, holder_document=ring.document(), verifier=BUREAU, now=NOW)
    assert raised.value.reason is Reason.ACCESS_DENIED


@pytest.fixture
def world() -> World:
    world = World()
    for did in (AUTHORITY, BANK, BUREAU):
        world.add(did)
    return world


def credential(world: World, **changes: object) -> str:
    key = world.rings[AUTHORITY].current
    vc = {
        "@context": ["https://www.w3.org/2018/credentials/v1"], "id": "urn:uuid:c-1",
        "type": ["VerifiableCredential", CredentialType.MEMBERSHIP.value], "issuer": AUTHORITY,
        "credentialSubject": {"id": BANK, **ORG.to_json()},
    }  # fmt: skip
    claims: dict[str, object] = {"iss": AUTHORITY, "sub": BANK, "jti": "urn:uuid:c-1", "iat": T, "nbf": T, "exp": T + 86_400, "vc": vc}  # fmt: skip
    claims.update(changes)
    return sign(claims, key.private_key, key.key_id, "vc+jwt")


async def check_credential(world: World, token: str) -> None:
    async with world.client() as client:
        resolver = world.resolver(client)
        await verify_credential(
            token, resolver=resolver, trusted=trusted(), revocation=world.status(client, resolver),
            now=NOW, expected_subject=BANK,
        )  # fmt: skip


def test_a_well_formed_credential_passes(world: World) -> None:
    run(check_credential(world, credential(world)))


@pytest.mark.parametrize("claim", TIME_CLAIMS)
@pytest.mark.parametrize("value", BAD_TIMES)
def test_credentials_with_bad_time_claims_are_invalid(
    world: World, claim: str, value: object
) -> None:
    with pytest.raises(IdentityError) as raised:
        run(check_credential(world, credential(world, **{claim: value})))
    assert raised.value.reason is Reason.INVALID_CREDENTIAL, raised.value


def presentation(world: World, **changes: object) -> str:
    key = world.rings[BANK].current
    claims: dict[str, object] = {
        "iss": BANK, "sub": BANK, "aud": BUREAU, "jti": "p-1", "iat": T, "nbf": T, "exp": T + 300,
        "vp": {"@context": ["https://www.w3.org/2018/credentials/v1"], "type": ["VerifiablePresentation"], "holder": BANK, "verifiableCredential": [credential(world)]},
    }  # fmt: skip
    claims.update(changes)
    return sign(claims, key.private_key, key.key_id, "JWT")


async def check_presentation(world: World, token: str) -> VerifiedPresentation:
    async with world.client() as client:
        resolver = world.resolver(client)
        return await verify_presentation(
            token, audience=BUREAU, expected_holder=BANK, resolver=resolver, trusted=trusted(),
            revocation=world.status(client, resolver), now=NOW,
        )  # fmt: skip


def test_a_well_formed_presentation_passes(world: World) -> None:
    run(check_presentation(world, presentation(world)))


@pytest.mark.parametrize("value", BAD_TIMES)
def test_presentations_with_a_bad_expiry_are_malformed(world: World, value: object) -> None:
    with pytest.raises(IdentityError) as raised:
        run(check_presentation(world, presentation(world, exp=value)))
    assert raised.value.reason is Reason.MALFORMED_TOKEN, raised.value


def test_a_fractional_presentation_expiry_is_a_number_too(world: World) -> None:
    async def go() -> object:
        async with world.client() as client:
            resolver = world.resolver(client)
            return await verify_presentation(
                presentation(world, exp=T + 300.75), audience=BUREAU, expected_holder=BANK,
                resolver=resolver, trusted=trusted(), revocation=world.status(client, resolver),
                now=NOW,
            )  # fmt: skip

    verified: Any = run(go())
    assert verified.expires_at == NOW + timedelta(seconds=300.75)


# --- validity of presentations and their credentials (with LEEWAY_S for clock skew) ----------


@pytest.mark.parametrize(
    ("claim", "offset_s"),
    [("nbf", 3600), ("nbf", LEEWAY_S + 5), ("iat", 3600), ("iat", LEEWAY_S + 5)],
)
def test_a_presentation_not_valid_yet_is_refused(world: World, claim: str, offset_s: int) -> None:
    with pytest.raises(IdentityError) as raised:
        run(check_presentation(world, presentation(world, **{claim: T + offset_s})))
    assert raised.value.reason is Reason.EXPIRED_TOKEN, raised.value


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_a_presentation_within_the_clock_skew_is_accepted(world: World, claim: str) -> None:
    run(check_presentation(world, presentation(world, **{claim: T + LEEWAY_S - 5})))


def test_an_expired_presentation_is_refused(world: World) -> None:
    token = presentation(world, iat=T - 600, nbf=T - 600, exp=T - LEEWAY_S - 5)
    with pytest.raises(IdentityError) as raised:
        run(check_presentation(world, token))
    assert raised.value.reason is Reason.EXPIRED_TOKEN


def presentation_of(world: World, credential_token: str) -> str:
    key = world.rings[BANK].current
    claims = {
        "iss": BANK, "sub": BANK, "aud": BUREAU, "jti": "p-2", "iat": T, "nbf": T, "exp": T + 300,
        "vp": {"@context": ["https://www.w3.org/2018/credentials/v1"], "type": ["VerifiablePresentation"], "holder": BANK, "verifiableCredential": [credential_token]},
    }  # fmt: skip
    return sign(claims, key.private_key, key.key_id, "JWT")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param({"nbf": T + 3600}, Reason.INVALID_CREDENTIAL, id="nbf-future"),
        pytest.param({"iat": T + 3600}, Reason.INVALID_CREDENTIAL, id="iat-future"),
        pytest.param({"exp": T - 3600}, Reason.EXPIRED_CREDENTIAL, id="expired"),
    ],
)
def test_a_credential_outside_its_validity_does_not_count_in_a_presentation(
    world: World, changes: dict[str, object], reason: Reason
) -> None:
    token = presentation_of(world, credential(world, **changes))
    verified = run(check_presentation(world, token))
    assert verified.credentials == ()
    assert [r.reason for r in verified.refused] == [reason]
