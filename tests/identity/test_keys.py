from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from identity import keys
from identity.database import KeyRecord, migrations
from identity.keyring import KeyRing
from identity.status import decode_bits, encode_bits, is_set, set_bit
from storage.migrate import upgrade
from tests.identity.world import NOW, PASSPHRASE


@pytest.mark.parametrize("key_type", list(keys.KeyType))
def test_keys_round_trip_through_jwk_and_encryption(key_type: keys.KeyType) -> None:
    private_key = keys.generate(key_type)
    public = keys.public_key_from_jwk(keys.public_jwk(private_key))
    assert keys.public_jwk(public) == keys.public_jwk(private_key)
    pem = keys.encrypt(private_key, PASSPHRASE)
    assert b"ENCRYPTED PRIVATE KEY" in pem
    assert keys.public_jwk(keys.decrypt(pem, PASSPHRASE)) == keys.public_jwk(private_key)
    with pytest.raises(keys.KeyMaterialError, match="wrong passphrase"):
        keys.decrypt(pem, "another passphrase entirely")


def test_short_passphrases_and_foreign_jwks_are_refused() -> None:
    with pytest.raises(keys.KeyMaterialError, match="at least"):
        keys.encrypt(keys.generate(keys.KeyType.ED25519), "short")
    for jwk in (
        {"kty": "RSA"},
        {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"},
        {"kty": "EC", "crv": "P-256", "x": "A" * 43, "y": "A" * 43},
        "x",
    ):
        with pytest.raises(keys.KeyMaterialError):
            keys.public_key_from_jwk(jwk)


def test_the_key_ring_is_stored_encrypted_and_rotates(engine: Engine) -> None:
    upgrade(engine, migrations())
    ring = KeyRing.load_or_create(engine, "did:web:bank.test", PASSPHRASE, NOW)
    again = KeyRing.load_or_create(engine, "did:web:bank.test", PASSPHRASE, NOW)
    assert again.current.key_id == ring.current.key_id == "did:web:bank.test#key-1"
    with Session(engine) as session:
        (record,) = session.exec(select(KeyRecord)).all()
        assert b"ENCRYPTED" in record.encrypted_pem
    rotated = KeyRing.rotate(engine, "did:web:bank.test", PASSPHRASE, NOW)
    document = rotated.document()
    assert rotated.current.key_id == "did:web:bank.test#key-2"
    assert [m.id for m in document.verification_methods] == [
        "did:web:bank.test#key-1",
        "did:web:bank.test#key-2",
    ]
    assert document.assertion_method == ("did:web:bank.test#key-1", "did:web:bank.test#key-2")
    assert document.capability_invocation == ("did:web:bank.test#key-2",)


def test_status_list_bits() -> None:
    bits = bytearray(16)
    set_bit(bits, 0)
    set_bit(bits, 9)
    decoded = decode_bits(encode_bits(bytes(bits)))
    assert [i for i in range(128) if is_set(decoded, i)] == [0, 9]
    assert decoded[0] == 0x80
