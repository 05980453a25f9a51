"""Data-plane tokens whose time claims are not NumericDates within 100 years of now are refused
as invalid_token (a TokenError, the data plane's typed 401), never with an exception from
datetime and never let through by NaN."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from connector.dataplane import tokens
from identity.jwt_sign import sign
from identity.validity import MAX_DISTANCE_S
from tests.connector.dataplane.test_tokens import ME, NOW, grant, key_and_document

T = int(NOW.timestamp())
BAD_TIMES = [
    pytest.param(10**18, id="1e18"),
    pytest.param(10**400, id="huge-int"),
    pytest.param(1e300, id="1e300"),
    pytest.param(math.nan, id="nan"),
    pytest.param(math.inf, id="inf"),
    pytest.param(str(T + 60), id="string"),
    pytest.param(True, id="bool"),
    pytest.param(T + MAX_DISTANCE_S + 60, id="beyond-100-years"),
]


def read(**changes: object) -> tokens.AccessToken:
    key, document = key_and_document(ME)
    claims: dict[str, object] = {
        "iss": ME, "sub": "did:web:bank.example", "aud": tokens.audience(ME), "jti": "t-1",
        "iat": T, "nbf": T, "exp": T + 300, "agreementId": "urn:uuid:a-1",
        "transferId": "urn:uuid:t-1", "gen": 3,
    }  # fmt: skip
    claims.update(changes)
    token = sign(claims, key.private_key, key.key_id, tokens.TYP)
    return tokens.read(token, ME, document, NOW)


def test_a_well_formed_token_is_read() -> None:
    assert read() == grant()


def test_a_fractional_expiry_is_a_number_too() -> None:
    later = datetime.fromtimestamp(T + 300.5, UTC)
    assert read(exp=T + 300.5).expires_at == later == NOW + timedelta(seconds=300.5)


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", BAD_TIMES)
def test_bad_time_claims_are_invalid_tokens(claim: str, value: object) -> None:
    with pytest.raises(tokens.TokenError) as refused:
        read(**{claim: value})
    assert refused.value.code == "invalid_token", refused.value.message


@pytest.mark.parametrize("allow_expired", [False, True])
def test_bad_expiry_is_refused_on_refresh_too(allow_expired: bool) -> None:
    key, document = key_and_document(ME)
    claims = {"iss": ME, "sub": "did:web:bank.example", "aud": tokens.audience(ME), "exp": math.nan, "agreementId": "a", "transferId": "t", "gen": 1}  # fmt: skip
    token = sign(claims, key.private_key, key.key_id, tokens.TYP)
    with pytest.raises(tokens.TokenError) as refused:
        tokens.read(token, ME, document, NOW, allow_expired=allow_expired)
    assert refused.value.code == "invalid_token"


def test_a_bool_generation_is_not_a_generation() -> None:
    with pytest.raises(tokens.TokenError) as refused:
        read(gen=True)
    assert refused.value.code == "invalid_token"
