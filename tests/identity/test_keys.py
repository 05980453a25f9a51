from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from identity import keys
from identity.database import KeyRecord, migrations
from identity.keyring import KeyRing
from identity.status import decode_bits, encode_bits, is_set, set_bit
from storage.migrate import downgrade, upgrade
from tests.identity.world import COST, NOW, PASSPHRASE

FIRST_REVISION: Final = "2cc58d6b67b7"
"""The identity schema before the KDF was recorded beside each key."""


@pytest.mark.parametrize("key_type", list(keys.KeyType))
def test_keys_round_trip_through_jwk_and_wrapping(key_type: keys.KeyType) -> None:
    private_key = keys.generate(key_type)
    public = keys.public_key_from_jwk(keys.public_jwk(private_key))
    assert keys.public_jwk(public) == keys.public_jwk(private_key)
    wrapping = keys.derive(PASSPHRASE, COST)
    wrapped = keys.wrap(private_key, wrapping, b"key-1 Ed25519")
    unwrapped = keys.unwrap(wrapped, keys.derive(PASSPHRASE, COST, wrapping.salt), b"key-1 Ed25519")
    assert keys.public_jwk(unwrapped) == keys.public_jwk(private_key)
    wrong = keys.derive("another passphrase entirely", COST, wrapping.salt)
    with pytest.raises(keys.KeyMaterialError, match="wrong passphrase"):
        keys.unwrap(wrapped, wrong, b"key-1 Ed25519")
    with pytest.raises(keys.KeyMaterialError, match="wrong passphrase"):  # moved to another row
        keys.unwrap(wrapped, wrapping, b"key-2 Ed25519")


def test_short_passphrases_and_foreign_jwks_are_refused() -> None:
    with pytest.raises(keys.KeyMaterialError, match="at least"):
        keys.derive("short", COST)
    for jwk in (
        {"kty": "RSA"},
        {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"},
        {"kty": "EC", "crv": "P-256", "x": "A" * 43, "y": "A" * 43},
        "x",
    ):
        with pytest.raises(keys.KeyMaterialError):
            keys.public_key_from_jwk(jwk)


def _stored(engine: Engine) -> list[KeyRecord]:
    with Session(engine) as session:
        return list(session.exec(select(KeyRecord).order_by(col(KeyRecord.id))).all())


def test_the_key_ring_is_stored_wrapped_and_rotates(engine: Engine) -> None:
    upgrade(engine, migrations())
    ring = KeyRing.load_or_create(engine, "did:web:bank.test", PASSPHRASE, NOW, cost=COST)
    again = KeyRing.load_or_create(engine, "did:web:bank.test", PASSPHRASE, NOW, cost=COST)
    assert again.current.key_id == ring.current.key_id == "did:web:bank.test#key-1"
    (record,) = _stored(engine)
    assert record.kdf == "scrypt"
    raw = ring.current.private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    assert raw not in record.wrapped_key
    rotated = KeyRing.rotate(engine, "did:web:bank.test", PASSPHRASE, NOW, cost=COST)
    document = rotated.document()
    assert rotated.current.key_id == "did:web:bank.test#key-2"
    assert [m.id for m in document.verification_methods] == [
        "did:web:bank.test#key-1",
        "did:web:bank.test#key-2",
    ]
    assert document.assertion_method == ("did:web:bank.test#key-1", "did:web:bank.test#key-2")
    assert document.capability_invocation == ("did:web:bank.test#key-2",)
    assert len({r.kdf_params for r in _stored(engine)}) == 1  # one salt for the ring


def test_the_stored_format_records_scrypt_and_its_parameters_owasp_by_default(
    engine: Engine,
) -> None:
    upgrade(engine, migrations())
    KeyRing.load_or_create(engine, "did:web:bank.test", PASSPHRASE, NOW)
    (record,) = _stored(engine)
    params = json.loads(record.kdf_params)
    assert record.kdf == "scrypt"
    assert (params["n"], params["r"], params["p"], params["length"]) == (2**17, 8, 1, 32)
    assert len(base64.urlsafe_b64decode(params["salt"] + "==")) == keys.SALT_BYTES


def _legacy_pem(key: keys.PrivateKey, passphrase: str = PASSPHRASE) -> bytes:
    """How keys were stored before scrypt: PKCS#8 PEM, BestAvailableEncryption (PBKDF2)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    )  # fmt: skip


def _old_ring(engine: Engine, *pems: bytes) -> None:
    """A database at the first identity revision holding a key ring in the old format."""
    upgrade(engine, migrations(), FIRST_REVISION)
    with engine.begin() as connection:
        for number, pem in enumerate(pems, start=1):
            connection.execute(
                text(
                    "INSERT INTO identity_key (key_id, key_type, encrypted_pem, created_at) "
                    "VALUES (:key_id, 'Ed25519', :pem, :created_at)"
                ),
                {"key_id": f"key-{number}", "pem": pem, "created_at": NOW},
            )
    upgrade(engine, migrations())


def test_an_old_ring_is_rewrapped_with_scrypt_on_load_and_still_decrypts(engine: Engine) -> None:
    old = [keys.generate(keys.KeyType.ED25519) for _ in range(2)]
    _old_ring(engine, *(_legacy_pem(key) for key in old))
    assert [r.kdf for r in _stored(engine)] == ["pkcs8", "pkcs8"]
    keys._scrypt.cache_clear()
    ring = KeyRing.load_or_create(engine, "did:web:bank.test", PASSPHRASE, NOW, cost=COST)
    assert keys._scrypt.cache_info().misses == 1  # one derivation for the whole ring
    assert [keys.public_jwk(m.public_key) for m in ring.document().verification_methods] == [
        keys.public_jwk(key) for key in old
    ]
    records = _stored(engine)
    assert [r.kdf for r in records] == ["scrypt", "scrypt"]
    assert all(json.loads(r.kdf_params)["n"] == 2**COST.log2_n for r in records)
    assert all(b"ENCRYPTED PRIVATE KEY" not in r.wrapped_key for r in records)
    again = KeyRing.load_or_create(engine, "did:web:bank.test", PASSPHRASE, NOW, cost=COST)
    assert again.current.key_id == ring.current.key_id
    assert [r.wrapped_key for r in _stored(engine)] == [r.wrapped_key for r in records]


def test_a_ring_wrapped_at_another_cost_is_rewrapped_at_the_wanted_one(engine: Engine) -> None:
    upgrade(engine, migrations())
    ring = KeyRing.load_or_create(engine, "did:web:bank.test", PASSPHRASE, NOW, cost=COST)
    higher = keys.ScryptCost(log2_n=COST.log2_n + 1)
    again = KeyRing.load_or_create(engine, "did:web:bank.test", PASSPHRASE, NOW, cost=higher)
    assert keys.public_jwk(again.current.private_key) == keys.public_jwk(ring.current.private_key)
    (record,) = _stored(engine)
    assert json.loads(record.kdf_params)["n"] == 2**higher.log2_n


@pytest.mark.parametrize("old_format", [True, False], ids=["pkcs8", "scrypt"])
def test_a_wrong_passphrase_fails_closed_and_changes_nothing(
    engine: Engine, old_format: bool
) -> None:
    if old_format:
        _old_ring(engine, _legacy_pem(keys.generate(keys.KeyType.ED25519)))
    else:
        upgrade(engine, migrations())
        KeyRing.load_or_create(engine, "did:web:bank.test", PASSPHRASE, NOW, cost=COST)
    before = [(r.kdf, r.kdf_params, r.wrapped_key) for r in _stored(engine)]
    for load in (KeyRing.load_or_create, KeyRing.rotate):
        with pytest.raises(keys.KeyMaterialError, match="wrong passphrase or damaged key"):
            load(engine, "did:web:bank.test", "not the passphrase at all", NOW, cost=COST)
    assert [(r.kdf, r.kdf_params, r.wrapped_key) for r in _stored(engine)] == before


def test_one_key_that_does_not_decrypt_leaves_the_whole_old_ring_as_it_was(
    engine: Engine,
) -> None:
    first = _legacy_pem(keys.generate(keys.KeyType.ED25519))
    other = _legacy_pem(keys.generate(keys.KeyType.ED25519), "another passphrase entirely")
    _old_ring(engine, first, other)
    with pytest.raises(keys.KeyMaterialError, match="wrong passphrase"):
        KeyRing.load_or_create(engine, "did:web:bank.test", PASSPHRASE, NOW, cost=COST)
    assert [(r.kdf, r.wrapped_key) for r in _stored(engine)] == [
        ("pkcs8", first),
        ("pkcs8", other),
    ]


@pytest.mark.parametrize(
    "params",
    [
        pytest.param("not json", id="not-json"),
        pytest.param('{"n": 3, "r": 8, "p": 1, "salt": "AAAA"}', id="n-not-a-power-of-two"),
        pytest.param('{"n": 2097152, "r": 8, "p": 1, "salt": "AAAA"}', id="n-too-large"),
        pytest.param('{"n": 1048576, "r": 32, "p": 1, "salt": "AAAA"}', id="4-gib-of-memory"),
        pytest.param('{"n": 1024, "r": 8, "salt": "AAAA"}', id="p-missing"),
        pytest.param('{"n": 1024, "r": true, "p": 1, "salt": "AAAA"}', id="r-not-a-number"),
    ],
)
def test_damaged_stored_parameters_are_refused(params: str) -> None:
    with pytest.raises(keys.KeyMaterialError):
        keys.stored_wrapping(params)


def test_the_migration_refuses_to_downgrade_over_scrypt_keys(engine: Engine) -> None:
    upgrade(engine, migrations())
    KeyRing.load_or_create(engine, "did:web:bank.test", PASSPHRASE, NOW, cost=COST)
    with pytest.raises(RuntimeError, match="refusing to downgrade"):
        downgrade(engine, migrations(), FIRST_REVISION)


def test_scrypt_gives_rfc_7914s_test_vector() -> None:
    # RFC 7914 section 12, the third vector (its first 32 of 64 bytes: PBKDF2's first block)
    derived = keys._scrypt("pleaseletmein", b"SodiumChloride", keys.ScryptCost(14, 8, 1))
    assert derived.hex() == "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2"


def test_scrypt_does_not_raise_the_callers_peak_memory() -> None:
    # OWASP's cost needs 128 MiB; it is spent in a child process, which gives it back
    # (VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's peak)
    probe = (
        "from pathlib import Path; from identity import keys\n"
        "def peak(): return next(int(line.split()[1]) for line in"
        " Path('/proc/self/status').read_text().splitlines() if line.startswith('VmHWM:'))\n"
        "before = peak()\n"
        "keys._scrypt('a passphrase of enough length', b'0' * 16, keys.OWASP_SCRYPT)\n"
        "print(peak() - before)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert int(done.stdout) < 16 * 1024  # KiB


def test_a_failing_derivation_is_a_key_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(keys.KeyMaterialError, match=r"scrypt failed \(exit 1\)"):
        keys._scrypt("another passphrase", b"1" * 16, keys.ScryptCost(10, 8, 1))


def test_status_list_bits() -> None:
    bits = bytearray(16)
    set_bit(bits, 0)
    set_bit(bits, 9)
    decoded = decode_bits(encode_bits(bytes(bits)))
    assert [i for i in range(128) if is_set(decoded, i)] == [0, 9]
    assert decoded[0] == 0x80
