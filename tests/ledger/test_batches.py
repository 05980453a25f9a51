"""Signed batches: the root over the events' links, signed with the participant's DID key
(Ed25519 or P-256), checked against its DID document, its events and the batch before."""

from __future__ import annotations

import base64
import json

import pytest

from identity import jwt_sign, keys
from identity.documents import DIDDocument, VerificationMethod
from identity.keyring import SigningKey
from ledger.batches import (
    ZERO_ROOT,
    BatchError,
    BatchFault,
    BatchHeader,
    build_header,
    check_batch,
    sign_header,
    verify_signed_header,
)
from ledger.digests import HashAlgorithm
from ledger.hashchain import GENESIS, Link
from ledger.machine import BatchReady, Closed
from ledger.merkle import leaf_hash, verify_inclusion
from tests.ledger.factories import CONSUMER, PROVIDER, T0, chained, participant_key


def two_batches(
    algorithm: HashAlgorithm = HashAlgorithm.SHA256,
) -> tuple[list[Link], BatchHeader, BatchHeader]:
    _data, links = chained(7, algorithm=algorithm)
    first, _ = build_header(
        PROVIDER, BatchReady(0, 0, 3, Closed.FULL), links[:4], GENESIS, T0, algorithm
    )
    second, _ = build_header(
        PROVIDER, BatchReady(1, 4, 6, Closed.AGED), links[4:], first.root_bytes, T0, algorithm
    )
    return links, first, second


@pytest.mark.parametrize("key_type", list(keys.KeyType))
def test_a_signed_batch_verifies_against_the_did_document(key_type: keys.KeyType) -> None:
    key, document = participant_key(key_type=key_type)
    _links, first, _second = two_batches()
    token = sign_header(first, key.key_id, key.private_key)
    assert verify_signed_header(token, document) == first
    assert jwt_sign.unverified(token)[0]["typ"] == "kexin-ledger-batch+jwt"


@pytest.mark.parametrize("algorithm", list(HashAlgorithm))
def test_the_root_proves_each_event_of_the_batch(algorithm: HashAlgorithm) -> None:
    links, first, second = two_batches(algorithm)
    tree = check_batch(second, links[4:], previous=first)
    for index, link in enumerate(links[4:]):
        proof = tree.inclusion_proof(index)
        assert verify_inclusion(tree.leaf(index), index, 3, proof, second.root_bytes, algorithm)
        assert tree.leaf(index) == leaf_hash(link.entry(), algorithm)


def test_a_changed_signature_or_header_is_refused() -> None:
    key, document = participant_key()
    _links, first, _ = two_batches()
    token = sign_header(first, key.key_id, key.private_key)
    protected, claims, signature = token.split(".")
    forged_claims = json.loads(base64.urlsafe_b64decode(claims + "=="))
    forged_claims["lastSequence"] = 2
    forged = base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).rstrip(b"=").decode()
    with pytest.raises(BatchError) as caught:
        verify_signed_header(f"{protected}.{forged}.{signature}", document)
    assert caught.value.fault is BatchFault.BAD_SIGNATURE
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    with pytest.raises(BatchError) as caught:
        verify_signed_header(f"{protected}.{claims}.{flipped}", document)
    assert caught.value.fault is BatchFault.BAD_SIGNATURE


def test_a_batch_signed_by_another_key_is_refused() -> None:
    _key, document = participant_key()
    impostor, _ = participant_key()
    _links, first, _ = two_batches()
    with pytest.raises(BatchError) as caught:
        verify_signed_header(sign_header(first, impostor.key_id, impostor.private_key), document)
    assert caught.value.fault is BatchFault.BAD_SIGNATURE


def test_a_key_not_listed_for_assertions_is_refused() -> None:
    key, document = participant_key()
    authentication_only = DIDDocument(
        document.id,
        document.verification_methods,
        authentication=document.authentication,
    )
    _links, first, _ = two_batches()
    with pytest.raises(BatchError, match="assertionMethod") as caught:
        verify_signed_header(sign_header(first, key.key_id, key.private_key), authentication_only)
    assert caught.value.fault is BatchFault.BAD_SIGNATURE


def test_a_batch_of_another_participant_is_refused() -> None:
    key, _document = participant_key()
    _other_key, other_document = participant_key(CONSUMER)
    _links, first, _ = two_batches()
    with pytest.raises(BatchError) as caught:
        verify_signed_header(sign_header(first, key.key_id, key.private_key), other_document)
    assert caught.value.fault is BatchFault.WRONG_PARTICIPANT
    foreign = SigningKey(f"{CONSUMER}#key-1", key.private_key)
    with pytest.raises(BatchError):
        sign_header(first, foreign.key_id, foreign.private_key)


def test_a_token_naming_a_key_of_another_did_is_refused() -> None:
    key, document = participant_key()
    _links, first, _ = two_batches()
    token = jwt_sign.sign(
        first.to_json(), key.private_key, f"{CONSUMER}#key-1", "kexin-ledger-batch+jwt"
    )
    with pytest.raises(BatchError) as caught:
        verify_signed_header(token, document)
    assert caught.value.fault is BatchFault.BAD_SIGNATURE


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("a.b.c", id="not-base64-json"),
        pytest.param("x" * 70_000, id="oversized"),
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    _key, document = participant_key()
    with pytest.raises(BatchError) as caught:
        verify_signed_header(token, document)
    assert caught.value.fault is BatchFault.MALFORMED


def test_claims_that_are_not_a_header_are_refused() -> None:
    key, document = participant_key()
    _links, first, _ = two_batches()
    claims = first.to_json() | {"batchSequence": "0"}
    token = jwt_sign.sign(claims, key.private_key, key.key_id, "kexin-ledger-batch+jwt")
    with pytest.raises(BatchError, match="batchSequence") as caught:
        verify_signed_header(token, document)
    assert caught.value.fault is BatchFault.MALFORMED
    other_typ = jwt_sign.sign(first.to_json(), key.private_key, key.key_id, "JWT+other")
    with pytest.raises(BatchError, match="typ"):
        verify_signed_header(other_typ, document)


def test_events_that_do_not_give_the_root_are_refused() -> None:
    links, first, _second = two_batches()
    tampered = [*links[:4]]
    tampered[2] = tampered[2]._replace(event_hash=bytes(32))
    with pytest.raises(BatchError) as caught:
        check_batch(first, tampered, previous=None)
    assert caught.value.fault is BatchFault.ROOT_MISMATCH


def test_missing_or_reordered_events_are_refused() -> None:
    links, first, _ = two_batches()
    for wrong in (links[:3], [links[1], links[0], *links[2:4]], links[1:5]):
        with pytest.raises(BatchError) as caught:
            check_batch(first, wrong, previous=None)
        assert caught.value.fault is BatchFault.WRONG_RANGE


def test_a_batch_must_follow_the_one_before() -> None:
    links, first, second = two_batches()
    check_batch(second, links[4:], previous=first)
    with pytest.raises(BatchError) as caught:
        check_batch(second, links[4:], previous=None)
    assert caught.value.fault is BatchFault.BROKEN_CHAIN
    forked = second.model_copy(update={"previous_root": "11" * 32})
    with pytest.raises(BatchError) as caught:
        check_batch(forked, links[4:], previous=first)
    assert caught.value.fault is BatchFault.BROKEN_CHAIN


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"previousRoot": "11" * 32}, id="first-batch-with-previous-root"),
        pytest.param({"batchSequence": 1}, id="later-batch-without-previous-root"),
        pytest.param({"firstSequence": 5, "lastSequence": 4}, id="empty-range"),
        pytest.param({"hashAlgorithm": "md5"}, id="unknown-hash"),
    ],
)
def test_inconsistent_headers_are_refused(changes: dict[str, object]) -> None:
    _links, first, _ = two_batches()
    document = first.to_json() | changes
    assert ZERO_ROOT == "00" * 32
    with pytest.raises(ValueError, match="validation error"):
        BatchHeader.model_validate_json(json.dumps(document))


def test_a_verification_method_of_another_controller_is_still_the_documents() -> None:
    """The key that signs must be the document's own; a listed id that is absent fails."""
    key, document = participant_key()
    stranger = VerificationMethod(
        f"{PROVIDER}#key-9", PROVIDER, keys.generate(keys.KeyType.ED25519).public_key()
    )
    missing = DIDDocument(document.id, (stranger,), assertion_method=(key.key_id,))
    _links, first, _ = two_batches()
    with pytest.raises(BatchError) as caught:
        verify_signed_header(sign_header(first, key.key_id, key.private_key), missing)
    assert caught.value.fault is BatchFault.BAD_SIGNATURE
