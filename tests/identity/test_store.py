"""The held credentials' fingerprint: what decides when an access token (and the presentation a
verifier caches for it) is renewed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from identity.credentials import CredentialType, VerifiedCredential
from identity.store import FINGERPRINT_TTL_S, CredentialStore
from tests.identity.world import engine_for

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def credential(credential_id: str) -> VerifiedCredential:
    return VerifiedCredential(
        id=credential_id, type=CredentialType.MEMBERSHIP, issuer="did:web:authority.example",
        subject="did:web:bank.example", organisation=None,  # type: ignore[arg-type]
        expires_at=NOW + timedelta(days=30), status=None, token="eyJ.x.y",
    )  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_change_through_the_store_shows_at_once(tmp_path: Path) -> None:
    store = CredentialStore(engine_for(f"sqlite:///{tmp_path / 'bank.db'}"), clock=Clock())
    empty = store.fingerprint()
    store.save(credential("urn:uuid:one"), NOW)
    one = store.fingerprint()
    assert one != empty
    store.remove("urn:uuid:one")
    assert store.fingerprint() == empty


def test_a_change_by_another_process_shows_within_the_ttl(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    clock = Clock()
    server, cli = CredentialStore(engine_for(url), clock=clock), CredentialStore(engine_for(url))
    before = server.fingerprint()
    cli.save(credential("urn:uuid:one"), NOW)
    assert server.fingerprint() == before  # read a moment ago: trusted for the TTL
    clock.now += FINGERPRINT_TTL_S
    after = server.fingerprint()
    assert after != before
    assert after == cli.fingerprint()  # the same set gives the same value in every process
