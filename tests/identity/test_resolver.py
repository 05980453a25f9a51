from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from identity.documents import DIDDocument, did_jwk_of, did_key_of
from identity.errors import IdentityError, Reason
from identity.keys import public_jwk
from identity.resolver import (
    MAX_DOCUMENT_BYTES,
    MAX_RESOLUTIONS_PER_HOST,
    DIDResolver,
    did_web_url,
)
from tests.identity.world import BANK, World


@pytest.mark.parametrize(
    ("did", "url"),
    [
        ("did:web:example.cn", "https://example.cn/.well-known/did.json"),
        ("did:web:127.0.0.1%3A8101:bank", "https://127.0.0.1:8101/bank/did.json"),
        ("did:web:example.cn:user:alice", "https://example.cn/user/alice/did.json"),
    ],
)
def test_did_web_addresses(did: str, url: str) -> None:
    assert did_web_url(did) == url
    assert did_web_url(did, allow_http=True) == url.replace("https:", "http:")


@pytest.mark.parametrize("did", ["did:web:a@b", "did:web:host:..", "did:web:%2Fetc"])
def test_hostile_did_web_addresses_are_refused(did: str) -> None:
    with pytest.raises(IdentityError) as raised:
        did_web_url(did)
    assert raised.value.reason is Reason.MALFORMED_DID


def resolve(did: str, handler: httpx.MockTransport | None = None, **options: object) -> DIDDocument:
    async def go() -> DIDDocument:
        async with httpx.AsyncClient(
            transport=handler or httpx.MockTransport(lambda r: httpx.Response(404))
        ) as client:
            return await DIDResolver(client, **options).resolve(did)  # type: ignore[arg-type]

    return asyncio.run(go())


@pytest.mark.parametrize(
    "key", [Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())]
)
def test_did_key_and_did_jwk_resolve_without_network(
    key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
) -> None:
    for did in (did_key_of(key.public_key()), did_jwk_of(key.public_key())):
        document = resolve(did)
        (method,) = document.verification_methods
        assert public_jwk(method.public_key) == public_jwk(key)
        assert document.capability_invocation == (method.id,)


def test_a_known_did_key_vector() -> None:
    # did:key test vector of the did:key method specification (Ed25519)
    did = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
    document = resolve(did)
    assert (
        document.verification_methods[0].id
        == f"{did}#z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
    )


@pytest.mark.parametrize(
    ("did", "reason"),
    [
        ("did:key:zNotBase58!", Reason.MALFORMED_DID),
        ("did:jwk:bm90LWpzb24", Reason.MALFORMED_DID),
        ("did:example:123", Reason.UNRESOLVABLE_DID),
        ("not-a-did", Reason.MALFORMED_DID),
        ("did:web:missing.test", Reason.UNRESOLVABLE_DID),
    ],
)
def test_unresolvable_and_malformed_dids(did: str, reason: Reason) -> None:
    with pytest.raises(IdentityError) as raised:
        resolve(did, allow_http=True)
    assert raised.value.reason is reason


def test_did_web_documents_are_cached() -> None:
    world = World()
    world.add(BANK)
    resolver_requests = world.requests

    async def go() -> None:
        async with world.client() as client:
            resolver = DIDResolver(client, allow_http=True)
            await resolver.resolve(BANK)
            await resolver.resolve(BANK)

    asyncio.run(go())
    assert resolver_requests == ["http://bank.test/.well-known/did.json"]


def test_a_document_for_another_did_is_refused() -> None:
    world = World()
    world.add(BANK)
    world.documents["http://other.test/.well-known/did.json"] = world.documents[
        "http://bank.test/.well-known/did.json"
    ]
    with pytest.raises(IdentityError) as raised:
        resolve("did:web:other.test", httpx.MockTransport(world.handle), allow_http=True)
    assert raised.value.reason is Reason.MALFORMED_DOCUMENT


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{" * 10, id="not-json"),
        pytest.param(b"x" * (MAX_DOCUMENT_BYTES + 1), id="oversized"),
        pytest.param(
            json.dumps(
                {
                    "id": "did:web:bad.test",
                    "verificationMethod": [{"id": "#k", "publicKeyJwk": {"kty": "RSA"}}],
                }
            ).encode(),
            id="rsa-key",
        ),
    ],
)
def test_malformed_documents(body: bytes) -> None:
    with pytest.raises(IdentityError) as raised:
        resolve(
            "did:web:bad.test",
            httpx.MockTransport(lambda r: httpx.Response(200, content=body)),
            allow_http=True,
        )
    assert raised.value.reason is Reason.MALFORMED_DOCUMENT


def test_network_errors_and_timeouts_are_unresolvable() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(IdentityError) as raised:
        resolve("did:web:slow.test", httpx.MockTransport(fail), allow_http=True)
    assert raised.value.reason is Reason.UNRESOLVABLE_DID


def test_https_is_the_default() -> None:
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(404)

    with pytest.raises(IdentityError):
        resolve("did:web:secure.test", httpx.MockTransport(record))
    assert seen == ["https://secure.test/.well-known/did.json"]


def test_a_burst_of_resolutions_of_one_did_fetches_it_once() -> None:
    world = World()
    world.add(BANK)

    async def go() -> list[DIDDocument]:
        async with world.client() as client:
            resolver = DIDResolver(client, allow_http=True)
            return await asyncio.gather(*(resolver.resolve(BANK) for _ in range(50)))

    documents = asyncio.run(go())
    assert len(documents) == 50
    assert world.requests == ["http://bank.test/.well-known/did.json"]


def test_one_host_gets_only_a_few_resolutions_at_once_and_other_hosts_are_not_held_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unknown caller names DIDs on a host it controls, whose documents drip in: at most
    MAX_RESOLUTIONS_PER_HOST of them are fetched at once (hold a connection), the others wait
    their turn, too many waiting are refused at once, and a DID on another host resolves
    meanwhile."""
    import identity.resolver as resolver_module

    monkeypatch.setattr(resolver_module, "MAX_WAITING_PER_HOST", MAX_RESOLUTIONS_PER_HOST + 2)
    release = asyncio.Event()
    key = Ed25519PrivateKey.generate().public_key()
    fetching = {"now": 0, "most": 0}

    def document(did: str) -> dict[str, object]:
        method = {"id": f"{did}#k", "type": "JsonWebKey2020", "controller": did,
                  "publicKeyJwk": public_jwk(key)}  # fmt: skip
        return {"id": did, "verificationMethod": [method]}

    async def answer(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        path = request.url.path.removesuffix("/did.json").removeprefix("/.well-known")
        path = path.strip("/").replace("/", ":")
        did = f"did:web:{host}:{path}" if path else f"did:web:{host}"
        if host == "attacker.example":
            fetching["now"] += 1
            fetching["most"] = max(fetching["most"], fetching["now"])
            await release.wait()  # dripping
            fetching["now"] -= 1
        return httpx.Response(200, json=document(did))

    async def go() -> tuple[list[DIDDocument], DIDDocument]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            resolver = DIDResolver(client)
            held = [
                asyncio.create_task(resolver.resolve(f"did:web:attacker.example:u{n}"))
                for n in range(MAX_RESOLUTIONS_PER_HOST + 2)
            ]
            await asyncio.sleep(0.05)
            with pytest.raises(IdentityError) as refused:
                await asyncio.wait_for(resolver.resolve("did:web:attacker.example:one-more"), 1)
            assert refused.value.reason is Reason.UNRESOLVABLE_DID
            other = await asyncio.wait_for(resolver.resolve("did:web:member.example"), 1)
            release.set()
            return await asyncio.gather(*held), other

    documents, other = asyncio.run(go())
    assert len(documents) == MAX_RESOLUTIONS_PER_HOST + 2  # the waiting ones got their turn
    assert fetching["most"] == MAX_RESOLUTIONS_PER_HOST
    assert other.id == "did:web:member.example"
