"""DCP self-issued ID tokens: minted and validated as the DCP specification says; every bad
input refused with its own reason, and a refused token is not recorded as seen."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session, select

from identity.database import SeenToken
from identity.errors import IdentityError, Reason
from identity.keys import KeyType
from identity.store import SqlReplayCache
from identity.tokens import IdToken, mint_id_token, validate_id_token
from tests.identity.world import BANK, BUREAU, NOW, World, engine_for, run


@pytest.fixture
def world() -> World:
    world = World()
    world.add(BANK)
    world.add(BUREAU)
    return world


def mint(world: World, **changes: Any) -> str:
    key = world.rings[BANK].current
    arguments: dict[str, Any] = {"issuer": BANK, "key": key.private_key, "key_id": key.key_id, "audience": BUREAU, "now": NOW}  # fmt: skip
    arguments.update(changes)
    return mint_id_token(**arguments)


async def validate(world: World, token: str, replay: SqlReplayCache, **changes: Any) -> IdToken:
    async with world.client() as client:
        arguments: dict[str, Any] = {"audience": BUREAU, "resolver": world.resolver(client), "replay": replay, "now": NOW}  # fmt: skip
        arguments.update(changes)
        return await validate_id_token(token, **arguments)


def refused(world: World, token: str, reason: Reason, **changes: Any) -> None:
    engine = engine_for()
    with pytest.raises(IdentityError) as raised:
        run(validate(world, token, SqlReplayCache(engine), **changes))
    assert raised.value.reason is reason, raised.value
    with Session(engine) as session:
        assert session.exec(select(SeenToken)).all() == [], "a refused token was recorded"


def test_a_valid_token_is_accepted_with_its_token_claim(world: World) -> None:
    token = mint(world, token="opaque-access-token")
    validated = run(validate(world, token, SqlReplayCache(engine_for())))
    assert validated.issuer == BANK
    assert validated.token == "opaque-access-token"
    assert validated.expires_at == NOW + timedelta(minutes=5)


def test_forged_signature(world: World) -> None:
    stranger = Ed25519PrivateKey.generate()
    refused(world, mint(world, key=stranger), Reason.FORGED_SIGNATURE)


def test_wrong_audience(world: World) -> None:
    refused(world, mint(world, audience="did:web:someone-else.test"), Reason.WRONG_AUDIENCE)


def test_replayed_jti(world: World) -> None:
    replay = SqlReplayCache(engine_for())
    token = mint(world)
    run(validate(world, token, replay))
    with pytest.raises(IdentityError) as raised:
        run(validate(world, token, replay))
    assert raised.value.reason is Reason.REPLAYED_TOKEN


def test_the_replay_cache_survives_a_restart(world: World, tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    token = mint(world)
    run(validate(world, token, SqlReplayCache(engine_for(url))))
    after_restart = SqlReplayCache(engine_for(url))
    with pytest.raises(IdentityError) as raised:
        run(validate(world, token, after_restart))
    assert raised.value.reason is Reason.REPLAYED_TOKEN


def test_expired_token(world: World) -> None:
    refused(world, mint(world, now=NOW - timedelta(minutes=10)), Reason.EXPIRED_TOKEN)


def test_small_clock_skew_is_tolerated(world: World) -> None:
    token = mint(world, now=NOW + timedelta(seconds=20))
    assert run(validate(world, token, SqlReplayCache(engine_for()))).issuer == BANK


def test_kid_of_another_did(world: World) -> None:
    key = world.rings[BANK].current
    refused(world, mint(world, key_id=f"{BUREAU}#key-1", key=key.private_key), Reason.FOREIGN_KEY)


def test_key_not_in_capability_invocation(world: World) -> None:
    old = world.rings[BANK].current
    world.rotate(BANK)  # the old key stays published, but not under capabilityInvocation
    refused(world, mint(world, key=old.private_key, key_id=old.key_id), Reason.KEY_NOT_AUTHORIZED)


def test_a_key_the_document_does_not_list(world: World) -> None:
    key = world.rings[BANK].current
    refused(world, mint(world, key=key.private_key, key_id=f"{BANK}#key-9"), Reason.FOREIGN_KEY)


def test_iss_and_sub_must_be_equal(world: World) -> None:
    key = world.rings[BANK].current
    token = jwt.encode({"iss": BANK, "sub": BUREAU, "aud": BUREAU, "jti": "x", "iat": int(NOW.timestamp()), "exp": int(NOW.timestamp()) + 60}, key.private_key, algorithm="EdDSA", headers={"kid": key.key_id})  # fmt: skip
    refused(world, token, Reason.WRONG_SUBJECT)


def test_unresolvable_did(world: World) -> None:
    ring = world.rings[BANK]
    key = ring.current
    token = mint_id_token(issuer="did:web:nowhere.test", key=key.private_key, key_id="did:web:nowhere.test#key-1", audience=BUREAU, now=NOW)  # fmt: skip
    refused(world, token, Reason.UNRESOLVABLE_DID)


def test_malformed_did(world: World) -> None:
    key = world.rings[BANK].current
    token = mint_id_token(issuer="did:web:bad host", key=key.private_key, key_id="did:web:bad host#k", audience=BUREAU, now=NOW)  # fmt: skip
    refused(world, token, Reason.MALFORMED_DID)


def test_oversized_token(world: World) -> None:
    refused(world, mint(world, token="x" * 10_000), Reason.OVERSIZED_TOKEN)


def test_garbage_and_unsigned_tokens(world: World) -> None:
    refused(world, "not.a.jwt", Reason.MALFORMED_TOKEN)
    unsigned = jwt.encode({"iss": BANK, "sub": BANK, "aud": BUREAU}, key="", algorithm="none", headers={"kid": f"{BANK}#key-1"})  # fmt: skip
    refused(world, unsigned, Reason.FORGED_SIGNATURE)


def test_without_kid_only_a_single_key_document_is_accepted(world: World) -> None:
    key = world.rings[BANK].current
    claims = {"iss": BANK, "sub": BANK, "aud": BUREAU, "jti": "no-kid", "iat": int(NOW.timestamp()), "exp": int(NOW.timestamp()) + 60}  # fmt: skip
    token = jwt.encode(claims, key.private_key, algorithm="EdDSA")
    assert run(validate(world, token, SqlReplayCache(engine_for()))).issuer == BANK
    world.rotate(BANK)
    claims["jti"] = "no-kid-2"
    refused(
        world,
        jwt.encode(claims, world.rings[BANK].current.private_key, algorithm="EdDSA"),
        Reason.MALFORMED_TOKEN,
    )


def test_p256_participants_mint_and_validate_es256_tokens() -> None:
    world = World()
    world.add("did:web:p256.test", key_type=KeyType.P256)
    world.add(BUREAU)
    key = world.rings["did:web:p256.test"].current
    token = mint_id_token(
        issuer="did:web:p256.test", key=key.private_key, key_id=key.key_id, audience=BUREAU, now=NOW
    )
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    assert run(validate(world, token, SqlReplayCache(engine_for()))).issuer == "did:web:p256.test"


def test_the_replay_cache_on_each_database(engine: Any) -> None:
    from identity.database import migrations
    from storage.migrate import upgrade

    upgrade(engine, migrations())
    cache = SqlReplayCache(engine)
    assert cache.first_use(BANK, "jti-1", NOW + timedelta(minutes=5))
    assert not cache.first_use(BANK, "jti-1", NOW + timedelta(minutes=5))
    assert cache.first_use(BUREAU, "jti-1", NOW + timedelta(minutes=5))  # per issuer
    cache.purge(NOW + timedelta(minutes=10))
    assert cache.first_use(BANK, "jti-1", NOW + timedelta(minutes=15))


class CountingResolver:
    """The world's resolver, counting what it is asked to resolve."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.asked = inner, 0

    async def resolve(self, did: str) -> Any:
        self.asked += 1
        return await self.inner.resolve(did)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", Reason.EXPIRED_TOKEN),
        ("far future exp", Reason.MALFORMED_TOKEN),
        ("issued an hour ago and more", Reason.EXPIRED_TOKEN),
        ("wrong audience", Reason.WRONG_AUDIENCE),
        ("HMAC", Reason.FORGED_SIGNATURE),
        ("none", Reason.FORGED_SIGNATURE),
    ],
)
def test_cheap_checks_come_before_the_signers_did_is_resolved(
    world: World, case: str, reason: Reason
) -> None:
    """An unknown caller makes the verifier fetch nothing with a token that fails on its face
    (attackers' DID documents drip-fed one byte at a time held the verifier's pool before)."""
    key = world.rings[BANK].current
    at = int(NOW.timestamp())
    claims = {"iss": BANK, "sub": BANK, "aud": BUREAU, "jti": "j", "iat": at, "exp": at + 60}
    token = {
        "expired": lambda: mint(world, now=NOW - timedelta(minutes=10)),
        "far future exp": lambda: jwt.encode(
            {**claims, "exp": 10**18},
            key.private_key,
            algorithm="EdDSA",
            headers={"kid": key.key_id},
        ),
        "issued an hour ago and more": lambda: jwt.encode(
            {**claims, "iat": at - 7200},
            key.private_key,
            algorithm="EdDSA",
            headers={"kid": key.key_id},
        ),
        "wrong audience": lambda: mint(world, audience="did:web:someone-else.test"),
        "HMAC": lambda: jwt.encode(
            claims,
            "a shared secret of thirty-two bytes!",
            algorithm="HS256",
            headers={"kid": key.key_id},
        ),
        "none": lambda: jwt.encode(claims, key="", algorithm="none", headers={"kid": key.key_id}),
    }[case]()

    async def check() -> CountingResolver:
        async with world.client() as client:
            resolver = CountingResolver(world.resolver(client))
            with pytest.raises(IdentityError) as raised:
                await validate_id_token(token, audience=BUREAU, resolver=resolver, replay=SqlReplayCache(engine_for()), now=NOW)  # type: ignore[arg-type]  # fmt: skip
            assert raised.value.reason is reason, raised.value
            return resolver

    assert run(check()).asked == 0
