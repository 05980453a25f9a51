"""Everything one participant's identity needs at run time, built once by the hosting service."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy.engine import Engine

from identity.credential_service import CredentialService
from identity.credentials import CredentialType, TrustedIssuers
from identity.keyring import KeyRing
from identity.keys import OWASP_SCRYPT, KeyType, ScryptCost
from identity.resolver import DIDResolver
from identity.status import StatusListCache
from identity.store import CredentialStore, SqlReplayCache
from identity.sts import SecureTokenService
from identity.verifier import Verifier
from service.destinations import Destinations


@dataclass(frozen=True)
class Participant:
    did: str
    keyring: KeyRing
    sts: SecureTokenService
    resolver: DIDResolver
    replay: SqlReplayCache
    trusted: TrustedIssuers
    status: StatusListCache
    credentials: CredentialStore
    credential_service: CredentialService
    verifier: Verifier
    clock: Callable[[], datetime]


def build_participant(
    *,
    did: str,
    engine: Engine,
    passphrase: str,
    client: httpx.AsyncClient,
    trusted: TrustedIssuers,
    required: Collection[CredentialType],
    destinations: Destinations,
    status_ttl: timedelta,
    clock: Callable[[], datetime],
    key_type: KeyType = KeyType.ED25519,
    key_cost: ScryptCost = OWASP_SCRYPT,
) -> Participant:
    keyring = KeyRing.load_or_create(engine, did, passphrase, clock(), key_type, key_cost)
    store = CredentialStore(engine)
    sts = SecureTokenService(keyring, clock, held=store.fingerprint)
    resolver = DIDResolver(client, destinations=destinations)
    replay = SqlReplayCache(engine)
    status = StatusListCache(client, resolver, ttl_s=status_ttl.total_seconds(), now=clock)
    return Participant(
        did=did,
        keyring=keyring,
        sts=sts,
        resolver=resolver,
        replay=replay,
        trusted=trusted,
        status=status,
        credentials=store,
        credential_service=CredentialService(
            keyring=keyring, store=store, resolver=resolver, replay=replay,
            trusted=trusted, revocation=status, clock=clock,
        ),
        verifier=Verifier(
            sts=sts, resolver=resolver, trusted=trusted, revocation=status, replay=replay,
            client=client, required=required, cache_ttl=status_ttl, clock=clock,
        ),
        clock=clock,
    )  # fmt: skip
