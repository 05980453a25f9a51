"""Data-plane tokens: what they bind, and what they refuse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.dataplane import tokens
from identity.documents import DIDDocument, VerificationMethod
from identity.keyring import SigningKey
from identity.keys import KeyType, generate

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
ME = "did:web:bureau.example"


def key_and_document(did: str) -> tuple[SigningKey, DIDDocument]:
    private = generate(KeyType.ED25519)
    key_id = f"{did}#key-1"
    method = VerificationMethod(key_id, did, private.public_key())
    document = DIDDocument(
        id=did, verification_methods=(method,), authentication=(key_id,),
        assertion_method=(key_id,), capability_invocation=(key_id,), services=(),
    )  # fmt: skip
    return SigningKey(key_id, private), document


def grant(**changes: object) -> tokens.AccessToken:
    values: dict[str, object] = {
        "transfer_id": "urn:uuid:t-1", "agreement_id": "urn:uuid:a-1",
        "consumer": "did:web:bank.example", "generation": 3,
        "expires_at": NOW + timedelta(minutes=5),
    }  # fmt: skip
    values.update(changes)
    return tokens.AccessToken(**values)  # type: ignore[arg-type]


def test_a_token_carries_its_grant() -> None:
    key, document = key_and_document(ME)
    token = tokens.issue(key, ME, grant(), NOW)
    assert tokens.read(token, ME, document, NOW + timedelta(minutes=4)) == grant()


def test_expired_tokens_are_refused_unless_refreshing() -> None:
    key, document = key_and_document(ME)
    token = tokens.issue(key, ME, grant(), NOW)
    later = NOW + timedelta(minutes=5)
    with pytest.raises(tokens.TokenError) as refused:
        tokens.read(token, ME, document, later)
    assert refused.value.code == "expired_token"
    assert tokens.read(token, ME, document, later, allow_expired=True) == grant()


def test_tokens_of_other_signers_or_tampered_ones_are_refused() -> None:
    key, document = key_and_document(ME)
    other_key, _ = key_and_document("did:web:bank.example")
    foreign = tokens.issue(other_key, "did:web:bank.example", grant(), NOW)
    with pytest.raises(tokens.TokenError) as refused:
        tokens.read(foreign, ME, document, NOW)
    assert refused.value.code == "foreign_token"
    # signed by another key but claiming to be ours
    impostor = tokens.issue(SigningKey(f"{ME}#key-1", other_key.private_key), ME, grant(), NOW)
    with pytest.raises(tokens.TokenError) as refused:
        tokens.read(impostor, ME, document, NOW)
    assert refused.value.code == "invalid_token"
    token = tokens.issue(key, ME, grant(), NOW)
    head, claims, signature = token.split(".")
    with pytest.raises(tokens.TokenError):
        tokens.read(f"{head}.{claims[:-2]}xx.{signature}", ME, document, NOW)
    with pytest.raises(tokens.TokenError):
        tokens.read("x" * 10_000, ME, document, NOW)


def test_refresh_tokens_are_random_and_only_their_hash_is_kept() -> None:
    first, digest = tokens.new_refresh_token()
    second, _ = tokens.new_refresh_token()
    assert first != second
    assert tokens.refresh_hash(first) == digest
    assert first not in digest
