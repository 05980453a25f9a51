"""did:web identifiers are checked part by part (did:web method specification 3.1: host, a
percent-encoded port, colon-delimited path segments) before a URL is built from them; resolving
any DID, however malformed, fails only with an IdentityError (never httpx.InvalidURL: a 500)."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from identity.did import DIDSyntaxError, check_did
from identity.errors import IdentityError, Reason
from identity.resolver import DIDResolver, did_web_url

MALFORMED = [
    pytest.param("did:web:example.com%3Aabc", id="port-not-numeric"),
    pytest.param("did:web:example.com%3A99999", id="port-out-of-range"),
    pytest.param("did:web:example.com%3A65536", id="port-65536"),
    pytest.param("did:web:example.com%3A0", id="port-0"),
    pytest.param("did:web:example.com%3A", id="port-empty"),
    pytest.param("did:web:example.com%3A80%3A81", id="two-ports"),
    pytest.param("did:web:example.com%3A-1", id="port-negative"),
    pytest.param("did:web:%3A8080", id="host-empty"),
    pytest.param("did:web:exa%00mple.com", id="host-nul"),
    pytest.param("did:web:example%2Ecom", id="host-percent-encoded"),
    pytest.param("did:web:-example.com", id="host-label-hyphen"),
    pytest.param("did:web:example..com", id="host-empty-label"),
    pytest.param("did:web:example.com.", id="host-trailing-dot"),
    pytest.param("did:web:" + "a" * 64 + ".com", id="host-label-too-long"),
    pytest.param("did:web:" + ".".join(["a" * 60] * 5), id="host-too-long"),
    pytest.param("did:web:example.com:%00", id="path-nul"),
    pytest.param("did:web:example.com:a%0Ab", id="path-newline"),
    pytest.param("did:web:example.com:a%7Fb", id="path-del"),
    pytest.param("did:web:example.com:a%C2%85b", id="path-c1-control"),
    pytest.param("did:web:example.com:%E2%80%AEfdp", id="path-bidi-override"),
    pytest.param("did:web:example.com:a%20b", id="path-space"),
    pytest.param("did:web:example.com:%FF", id="path-not-utf8"),
    pytest.param("did:web:example.com:%2e%2e", id="path-encoded-dot-dot"),
    pytest.param("did:web:example.com:%25", id="path-percent"),
    pytest.param("did:web:example.com:a%5Cb", id="path-backslash"),
    pytest.param("did:web:example.com:a%3Fb", id="path-question-mark"),
    pytest.param("did:web:example.com::x", id="path-empty-segment"),
    pytest.param("did:web:example.com:", id="path-trailing-colon"),
]


@pytest.mark.parametrize("did", MALFORMED)
def test_malformed_did_web_identifiers_are_refused(did: str) -> None:
    with pytest.raises(IdentityError) as raised:
        did_web_url(did, allow_http=True)
    assert raised.value.reason is Reason.MALFORMED_DID


def resolve(did: str) -> None:
    async def go() -> None:
        transport = httpx.MockTransport(lambda request: httpx.Response(404))
        async with httpx.AsyncClient(transport=transport) as client:
            await DIDResolver(client, allow_http=True).resolve(did)

    asyncio.run(go())


@pytest.mark.parametrize("did", MALFORMED)
def test_resolving_a_malformed_did_web_is_a_typed_refusal(did: str) -> None:
    with pytest.raises(IdentityError) as raised:
        resolve(did)
    assert raised.value.reason is Reason.MALFORMED_DID


@pytest.mark.parametrize(
    ("did", "url"),
    [
        ("did:web:example.com%3A1", "https://example.com:1/.well-known/did.json"),
        ("did:web:example.com%3a65535", "https://example.com:65535/.well-known/did.json"),
        ("did:web:Example-1.cn:user:alice", "https://Example-1.cn/user/alice/did.json"),
        ("did:web:example.cn:%E9%93%B6%E8%A1%8C", "https://example.cn/%E9%93%B6%E8%A1%8C/did.json"),
        ("did:web:example.cn:a%3Ab:c.d_e-f", "https://example.cn/a%3Ab/c.d_e-f/did.json"),
    ],
)
def test_well_formed_did_web_identifiers(did: str, url: str) -> None:
    assert did_web_url(did) == url


def random_did_web(rng: random.Random) -> str:
    pieces = [*"abcXYZ019.-_", "%3A", "%3a", "%00", "%2F", "%25", "%FF", "%20", "%41", ":"]
    return "did:web:" + "".join(rng.choice(pieces) for _ in range(rng.randint(1, 24)))


def test_no_did_web_string_makes_resolution_raise_anything_but_identity_errors() -> None:
    rng = random.Random(13)  # noqa: S311 - a reproducible fuzz, not a secret
    tried = 0
    for _ in range(3000):
        did = random_did_web(rng)
        try:
            check_did(did)
        except DIDSyntaxError:
            continue
        tried += 1
        with pytest.raises(IdentityError):
            resolve(did)
    assert tried > 1000
