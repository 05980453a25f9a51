"""The unverified read of a token (identity/jwt_sign.unverified) against pyjwt's: the same
compact forms accepted, with the same header and claims, and the same refused."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity.errors import IdentityError, Reason
from identity.jwt_sign import unverified


def pyjwt_read(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """What the former unverified read gave: pyjwt's header and claims, or None if refused."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except (jwt.PyJWTError, UnicodeError):
        return None
    return (header, claims) if isinstance(claims, dict) else None


def ours(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    try:
        return unverified(token)
    except IdentityError as error:
        if error.reason is not Reason.MALFORMED_TOKEN:
            raise
        return None


def b64(data: bytes, padded: bool = False) -> str:
    text = base64.urlsafe_b64encode(data).decode()
    return text if padded else text.rstrip("=")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
segments = st.one_of(
    json_values.map(lambda value: b64(json.dumps(value).encode())),
    json_values.map(lambda value: b64(json.dumps(value).encode(), padded=True)),
    st.binary(max_size=12).map(b64),
    st.text(alphabet="AZaz09-_=.!+/ \u00e9", max_size=12),
)
header_values = json_values | st.sampled_from(
    [["b64"], ["b64", "x"], ["x"], [], "b64", [1], True, False]
)  # crit and b64 as a header may carry them, which random values almost never are
headers = st.dictionaries(
    st.sampled_from(["alg", "kid", "typ", "b64", "crit"]), header_values, max_size=3
).map(lambda header: b64(json.dumps(header).encode()))


@settings(max_examples=600, deadline=None)
@given(st.lists(segments | headers, min_size=1, max_size=4).map(".".join))
def test_any_text_is_read_as_pyjwt_reads_it(token: str) -> None:
    assert ours(token) == pyjwt_read(token)


@settings(max_examples=300, deadline=None)
@given(headers, json_values, st.binary(max_size=70))
def test_three_segments_are_read_as_pyjwt_reads_them(
    header: str, claims: Any, signature: bytes
) -> None:
    token = f"{header}.{b64(json.dumps(claims).encode())}.{b64(signature)}"
    assert ours(token) == pyjwt_read(token)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        f"{b64(b'{}')}.{b64(b'{}')}.!!!!",  # not base64url (GHSA-hxm8-2xgr-2p9m)
        f"{b64(b'{}')}.{b64(b'{}')}.AB",  # stray bits: a second form of the same byte
        f"{b64(b'{}')}.{b64(b'[1]')}.",  # claims not an object
        f"{b64(b'{}')}===.{b64(b'{}')}.",  # too much padding
        f"{b64(json.dumps({'kid': 7}).encode())}.{b64(b'{}')}.",  # kid not a string
        f"{b64(json.dumps({'b64': False}).encode())}..",  # a detached payload
        "\ud800.a.b",  # not encodable
    ],
)
def test_malformed_tokens_are_refused_as_malformed(token: str) -> None:
    with pytest.raises(IdentityError) as refused:
        unverified(token)
    assert refused.value.reason is Reason.MALFORMED_TOKEN


def test_a_signed_token_reads_as_signed() -> None:
    token = jwt.encode({"iss": "did:web:a", "n": "数据"}, "k" * 32, algorithm="HS256",
                       headers={"kid": "did:web:a#k"})  # fmt: skip
    header, claims = unverified(token)
    assert header == {"alg": "HS256", "kid": "did:web:a#k", "typ": "JWT"}
    assert claims == {"iss": "did:web:a", "n": "数据"}


@pytest.mark.parametrize(
    "header",
    [{"crit": ["b64"], "b64": True}, {"alg": "none", "b64": True}, {"kid": "did:web:a#k"}],
)
def test_headers_pyjwt_accepts_are_accepted(header: dict[str, Any]) -> None:
    token = f"{b64(json.dumps(header).encode())}.{b64(b'{}')}."
    assert pyjwt_read(token) is not None
    assert ours(token) == (header, {})
