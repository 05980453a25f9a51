"""The secure token service: a fresh ID token for every call, and the access token in it kept
for the same verifier and scopes until the held credentials change or half its life is gone."""

from __future__ import annotations

from datetime import datetime, timedelta

import jwt

from identity.keyring import KeyRing
from identity.sts import SecureTokenService
from tests.identity.world import BANK, BUREAU, NOW, PASSPHRASE, ROGUE, engine_for

MEMBERSHIP = "org.eclipse.dspace.dcp.vc.type:MembershipCredential"


def claims(token: str) -> dict[str, object]:
    decoded: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def grant_of(bearer: str) -> str:
    token = claims(bearer)["token"]
    assert isinstance(token, str)
    return token


def test_the_grant_is_kept_until_the_held_credentials_change_or_it_ages() -> None:
    ring = KeyRing.load_or_create(engine_for(), BANK, PASSPHRASE, NOW)
    clock, held = [NOW], ["one credential"]
    sts = SecureTokenService(ring, lambda: clock[0], lambda: held[0])

    def now_plus(seconds: float) -> datetime:
        return NOW + timedelta(seconds=seconds)

    first, second = sts.bearer_for(BUREAU, [MEMBERSHIP]), sts.bearer_for(BUREAU, [MEMBERSHIP])
    assert claims(first)["jti"] != claims(second)["jti"]  # every call its own ID token
    assert grant_of(first) == grant_of(second)
    assert grant_of(sts.bearer_for(ROGUE, [MEMBERSHIP])) != grant_of(first)  # per verifier
    assert grant_of(sts.bearer_for(BUREAU, [])) != grant_of(first)  # per scopes
    assert claims(grant_of(first))["verifier"] == BUREAU

    held[0] = "two credentials"  # one delivered
    renewed = grant_of(sts.bearer_for(BUREAU, [MEMBERSHIP]))
    assert renewed != grant_of(first)

    clock[0] = now_plus(149)
    assert grant_of(sts.bearer_for(BUREAU, [MEMBERSHIP])) == renewed
    clock[0] = now_plus(150)  # half of its five minutes
    aged = grant_of(sts.bearer_for(BUREAU, [MEMBERSHIP]))
    assert aged != renewed
    assert claims(aged)["exp"] == int(now_plus(150 + 300).timestamp())
