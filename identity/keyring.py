"""A participant's keys, and the DID document they make.

Keys are generated once and kept encrypted in the database (the passphrase comes from
settings). Rotation adds a new key and retires the current one: a retired key stays in the DID
document under ``authentication`` and ``assertionMethod`` so that what it signed still verifies,
but leaves ``capabilityInvocation``, so no new self-issued token signed with it is accepted.
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
    def __init__(self, owner: str, records: Sequence[KeyRecord], passphrase: str) -> None:
        if not records:
            raise ValueError("a key ring needs at least one key")
        self.owner = owner
        self._keys = [
            (record, keys.decrypt(record.encrypted_pem, passphrase))
            for record in sorted(records, key=lambda r: r.created_at)
        ]

    @classmethod
    def load_or_create(
        cls, engine: Engine, owner: str, passphrase: str, now: datetime,
        key_type: keys.KeyType = keys.KeyType.ED25519,
    ) -> KeyRing:  # fmt: skip
        """The stored keys; on first use, a new key is generated and stored encrypted."""
        with Session(engine) as session:
            records = list(session.exec(select(KeyRecord)).all())
            if not records:
                record = _new_record("key-1", key_type, passphrase, now)
                session.add(record)
                session.commit()
                session.refresh(record)
                records = [record]
            return cls(owner, records, passphrase)

    @classmethod
    def rotate(
        cls, engine: Engine, owner: str, passphrase: str, now: datetime,
        key_type: keys.KeyType = keys.KeyType.ED25519,
    ) -> KeyRing:  # fmt: skip
        """Retire the current key and make a new one current."""
        with Session(engine) as session:
            records = list(session.exec(select(KeyRecord).order_by(col(KeyRecord.id))).all())
            for record in records:
                if record.retired_at is None:
                    record.retired_at = now
                    session.add(record)
            fresh = _new_record(f"key-{len(records) + 1}", key_type, passphrase, now)
            session.add(fresh)
            session.commit()
            records = list(session.exec(select(KeyRecord)).all())
        return cls(owner, records, passphrase)

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


def _new_record(key_id: str, key_type: keys.KeyType, passphrase: str, now: datetime) -> KeyRecord:
    private_key = keys.generate(key_type)
    return KeyRecord(
        key_id=key_id,
        key_type=key_type.value,
        encrypted_pem=keys.encrypt(private_key, passphrase),
        created_at=now,
    )
