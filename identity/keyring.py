"""A participant's keys, and the DID document they make.

Keys are generated once and kept wrapped in the database (:mod:`identity.keys`: scrypt from the
passphrase in settings, then AES-256-GCM). Loading the ring re-wraps, in the same transaction,
every key not wrapped with the wanted cost (keys written before scrypt, or under another cost),
so an existing ring moves to the new scheme on its first start. One salt serves the whole ring:
scrypt runs once per load, however many keys it holds.

Rotation adds a new key and retires the current one: a retired key stays in the DID document
under ``authentication`` and ``assertionMethod`` so that what it signed still verifies, but
leaves ``capabilityInvocation``, so no new self-issued token signed with it is accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from identity import keys
from identity.database import KeyRecord
from identity.documents import DIDDocument, Service, VerificationMethod


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    """Absolute: ``did#key-1``."""
    private_key: keys.PrivateKey


class KeyRing:
    def __init__(self, owner: str, opened: Sequence[tuple[KeyRecord, keys.PrivateKey]]) -> None:
        if not opened:
            raise ValueError("a key ring needs at least one key")
        self.owner = owner
        self._keys = sorted(opened, key=lambda pair: pair[0].created_at)

    @classmethod
    def load_or_create(
        cls, engine: Engine, owner: str, passphrase: str, now: datetime,
        key_type: keys.KeyType = keys.KeyType.ED25519, cost: keys.ScryptCost = keys.OWASP_SCRYPT,
    ) -> KeyRing:  # fmt: skip
        """The stored keys (re-wrapped first if need be); on first use, a new key is
        generated and stored wrapped."""
        with Session(engine) as session:
            records = list(session.exec(select(KeyRecord).order_by(col(KeyRecord.id))).all())
            wrapping, opened = _open(session, records, passphrase, cost)
            if not records:
                fresh = _new_record("key-1", key_type, wrapping, now)
                session.add(fresh[0])
                opened = [fresh]
            session.commit()
            for record, _key in opened:
                session.refresh(record)
            return cls(owner, opened)

    @classmethod
    def rotate(
        cls, engine: Engine, owner: str, passphrase: str, now: datetime,
        key_type: keys.KeyType = keys.KeyType.ED25519, cost: keys.ScryptCost = keys.OWASP_SCRYPT,
    ) -> KeyRing:  # fmt: skip
        """Retire the current key and make a new one current."""
        with Session(engine) as session:
            records = list(session.exec(select(KeyRecord).order_by(col(KeyRecord.id))).all())
            wrapping, opened = _open(session, records, passphrase, cost)
            for record in records:
                if record.retired_at is None:
                    record.retired_at = now
                    session.add(record)
            fresh = _new_record(f"key-{len(records) + 1}", key_type, wrapping, now)
            session.add(fresh[0])
            opened = [*opened, fresh]
            session.commit()
            for record, _key in opened:
                session.refresh(record)
        return cls(owner, opened)

    @property
    def current(self) -> SigningKey:
        record, private_key = next((r, k) for r, k in reversed(self._keys) if r.retired_at is None)
        return SigningKey(f"{self.owner}#{record.key_id}", private_key)

    def document(self, services: Sequence[Service] = ()) -> DIDDocument:
        methods = tuple(
            VerificationMethod(f"{self.owner}#{record.key_id}", self.owner, key.public_key())
            for record, key in self._keys
        )
        every = tuple(m.id for m in methods)
        return DIDDocument(
            id=self.owner,
            verification_methods=methods,
            authentication=every,
            assertion_method=every,
            capability_invocation=(self.current.key_id,),
            services=tuple(services),
        )


def check_passphrase(engine: Engine, passphrase: str) -> int:
    """Open every stored key with ``passphrase``, changing nothing (a service's start-up check
    before it runs); the number of keys. Raises :class:`keys.KeyMaterialError` as a load
    would."""
    with Session(engine) as session:
        records = list(session.exec(select(KeyRecord).order_by(col(KeyRecord.id))).all())
    derived: dict[tuple[keys.ScryptCost, bytes], keys.WrappingKey] = {}
    for record in records:
        if record.kdf == keys.Kdf.SCRYPT:
            stored_cost, salt = keys.stored_wrapping(record.kdf_params)
            if (stored_cost, salt) not in derived:
                derived[stored_cost, salt] = keys.derive(passphrase, stored_cost, salt)
            keys.unwrap(record.wrapped_key, derived[stored_cost, salt], _associated(record))
        elif record.kdf == keys.Kdf.PKCS8:
            keys.decrypt_pkcs8(record.wrapped_key, passphrase)
        else:
            raise keys.KeyMaterialError(f"stored key {record.key_id} uses an unknown KDF")
    return len(records)


def _associated(record: KeyRecord) -> bytes:
    return f"{record.key_id} {record.key_type}".encode()


def _open(
    session: Session, records: Sequence[KeyRecord], passphrase: str, cost: keys.ScryptCost
) -> tuple[keys.WrappingKey, list[tuple[KeyRecord, keys.PrivateKey]]]:
    """Every key of the ring decrypted, and the ring's wrapping key for ``cost``: the salt of a
    key already wrapped with it, else a fresh one. Keys wrapped otherwise are re-wrapped with it
    (added to ``session``: written by the caller's commit, with the rest, or not at all). Any
    key that does not decrypt fails the whole load."""
    derived: dict[tuple[keys.ScryptCost, bytes], keys.WrappingKey] = {}

    def wrapping_for(stored_cost: keys.ScryptCost, salt: bytes) -> keys.WrappingKey:
        if (stored_cost, salt) not in derived:
            derived[stored_cost, salt] = keys.derive(passphrase, stored_cost, salt)
        return derived[stored_cost, salt]

    target: keys.WrappingKey | None = None
    opened: list[tuple[KeyRecord, keys.PrivateKey]] = []
    for record in records:
        if record.kdf == keys.Kdf.SCRYPT:
            stored_cost, salt = keys.stored_wrapping(record.kdf_params)
            wrapping = wrapping_for(stored_cost, salt)
            opened.append((record, keys.unwrap(record.wrapped_key, wrapping, _associated(record))))
            if target is None and stored_cost == cost:
                target = wrapping
        elif record.kdf == keys.Kdf.PKCS8:
            opened.append((record, keys.decrypt_pkcs8(record.wrapped_key, passphrase)))
        else:
            raise keys.KeyMaterialError(f"stored key {record.key_id} uses an unknown KDF")
    if target is None:
        target = keys.derive(passphrase, cost)
    for record, private_key in opened:
        if record.kdf != keys.Kdf.SCRYPT or record.kdf_params != target.params():
            record.kdf, record.kdf_params = keys.Kdf.SCRYPT.value, target.params()
            record.wrapped_key = keys.wrap(private_key, target, _associated(record))
            session.add(record)
    return target, opened


def _new_record(
    key_id: str, key_type: keys.KeyType, wrapping: keys.WrappingKey, now: datetime
) -> tuple[KeyRecord, keys.PrivateKey]:
    private_key = keys.generate(key_type)
    record = KeyRecord(
        key_id=key_id,
        key_type=key_type.value,
        kdf=keys.Kdf.SCRYPT.value,
        kdf_params=wrapping.params(),
        wrapped_key=b"",
        created_at=now,
    )
    record.wrapped_key = keys.wrap(private_key, wrapping, _associated(record))
    return record, private_key
