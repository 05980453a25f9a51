"""A small data space for identity tests: real key rings, resolver, verifiers and caches; only the
network is replaced, by an httpx.MockTransport that serves DID documents and status lists."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from sqlalchemy.engine import Engine

from identity.credentials import CredentialType, Organisation, TrustedIssuers, issue_credential
from identity.database import migrations
from identity.documents import Service
from identity.keyring import KeyRing
from identity.keys import KeyType, ScryptCost
from identity.resolver import DIDResolver, did_web_url
from identity.status import LIST_BITS, StatusEntry, StatusListCache, issue_status_list, set_bit
from identity.store import SqlReplayCache
from policy.operands import Grade
from service.destinations import Destinations
from storage.engine import create_engine
from storage.migrate import upgrade

T = TypeVar("T")
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
PASSPHRASE = "correct horse battery staple"
COST = ScryptCost(log2_n=10)
"""A cheap scrypt for the hundreds of throw-away rings here (services default to OWASP's)."""
AUTHORITY = "did:web:authority.test"
BANK = "did:web:bank.test"
BUREAU = "did:web:bureau.test"
ROGUE = "did:web:rogue.test"
STATUS_URL = "http://authority.test/status/1"
LOOPBACK = Destinations.of(allow_http=True, allowed_networks=[ipaddress.ip_network("127.0.0.0/8")])
"""For the tests with real servers on 127.0.0.1, which the destination policy must allow."""
ORG = Organisation("广州示例银行股份有限公司", "91440101MA59XKQ72B", "440106", Grade.GENERAL)


def engine_for(url: str = "sqlite://") -> Engine:
    engine = create_engine(url)
    upgrade(engine, migrations())
    return engine


@dataclass
class World:
    documents: dict[str, object] = field(default_factory=dict)
    status_bits: bytearray = field(default_factory=lambda: bytearray(LIST_BITS // 8))
    rings: dict[str, KeyRing] = field(default_factory=dict)
    engines: dict[str, Engine] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    next_index: int = 0
    status_up: bool = True
    destinations: Destinations = field(default_factory=lambda: Destinations(allow_http=True))

    def handle(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.requests.append(url)
        if url == STATUS_URL and self.status_up:
            ring = self.rings[AUTHORITY]
            key = ring.current
            token = issue_status_list(AUTHORITY, key.private_key, key.key_id, STATUS_URL, bytes(self.status_bits), NOW)  # fmt: skip
            return httpx.Response(200, text=token)
        if url in self.documents:
            return httpx.Response(200, content=json.dumps(self.documents[url]).encode())
        return httpx.Response(404)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    def add(
        self, did: str, services: tuple[Service, ...] = (), key_type: KeyType = KeyType.ED25519
    ) -> KeyRing:
        engine = engine_for()
        ring = KeyRing.load_or_create(engine, did, PASSPHRASE, NOW, key_type, COST)
        self.rings[did], self.engines[did] = ring, engine
        self.publish(did, services)
        return ring

    def publish(self, did: str, services: tuple[Service, ...] = ()) -> None:
        self.documents[did_web_url(did, allow_http=True)] = (
            self.rings[did].document(services).to_json()
        )

    def rotate(self, did: str) -> KeyRing:
        ring = KeyRing.rotate(self.engines[did], did, PASSPHRASE, NOW, cost=COST)
        self.rings[did] = ring
        self.publish(did)
        return ring

    def issue(
        self,
        subject: str,
        kind: CredentialType = CredentialType.MEMBERSHIP,
        *,
        issuer: str = AUTHORITY,
        expires_at: datetime = NOW + timedelta(days=365),
    ) -> tuple[str, StatusEntry]:
        key = self.rings[issuer].current
        entry = StatusEntry(STATUS_URL, self.next_index)
        self.next_index += 1
        token = issue_credential(
            issuer=issuer, key=key.private_key, key_id=key.key_id,
            credential_id=f"urn:uuid:cred-{entry.index}", credential_type=kind, subject=subject,
            organisation=ORG, issued_at=NOW - timedelta(days=1), expires_at=expires_at, status=entry,
        )  # fmt: skip
        return token, entry

    def revoke(self, entry: StatusEntry) -> None:
        set_bit(self.status_bits, entry.index)

    def resolver(self, client: httpx.AsyncClient) -> DIDResolver:
        return DIDResolver(client, destinations=self.destinations)

    def status(self, client: httpx.AsyncClient, resolver: DIDResolver) -> StatusListCache:
        return StatusListCache(client, resolver, ttl_s=60, now=lambda: NOW)


def trusted(*issuers: str) -> TrustedIssuers:
    return TrustedIssuers({kind: frozenset(issuers or (AUTHORITY,)) for kind in CredentialType})


def replay_cache(engine: Engine | None = None) -> SqlReplayCache:
    return SqlReplayCache(engine or engine_for())


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine to completion (these tests are synchronous)."""
    return asyncio.run(coroutine)
