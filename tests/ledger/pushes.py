"""A participant's side for the regulator's tests: its own ledger database and recorder, its
chain account registered by the operator, and the pushes it sends the ledger service (built
from what it stored, as a connector will)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from identity import keys
from identity.documents import did_key_document, did_key_of
from identity.keyring import SigningKey
from ledger import store
from ledger.chain import AnchorRegistry, Chain, address_of, new_account_key
from ledger.database import migrations
from ledger.events import LedgerEvent
from ledger.recorder import Recorder
from storage.engine import create_engine
from storage.migrate import upgrade
from tests.ledger.factories import access_event

PASSPHRASE = "correct horse battery staple"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def did_key_participant() -> tuple[str, SigningKey]:
    """A participant on did:key (resolved offline): its DID and its signing key."""
    private = keys.generate(keys.KeyType.ED25519)
    did = did_key_of(private.public_key())
    key_id = did_key_document(did).verification_methods[0].id
    return did, SigningKey(key_id, private)


@dataclass
class Operator:
    chain: Chain
    key: bytes
    registry: AnchorRegistry

    @classmethod
    def deploy(cls, chain: Chain) -> Operator:
        key = new_account_key()
        chain.dev_fund(address_of(key))
        return cls(chain, key, chain.deploy(key))


class Side:
    """One participant's ledger, recording access events and anchoring its batches."""

    def __init__(
        self,
        folder: Path,
        did: str,
        key: SigningKey,
        operator: Operator | None,
        *,
        name: str = "participant",
        register: bool = True,
        max_events: int = 4,
    ) -> None:
        self.did = did
        self.key = key
        self.engine: Engine = create_engine(f"sqlite:///{folder / f'{name}-ledger.db'}")
        upgrade(self.engine, migrations())
        self.account = new_account_key()
        self.operator = operator
        if operator is not None:
            operator.chain.dev_fund(address_of(self.account))
            if register:
                operator.registry.register(operator.key, address_of(self.account), did)
        self.recorder = Recorder(
            self.engine, did, key.key_id, key.private_key,
            max_events=max_events, max_age_s=60.0, clock=Clock(),
        )  # fmt: skip
        self.count = 0

    def record(self, count: int, **changes: Any) -> None:
        with Session(self.engine) as session:
            self.recorder.record(
                session,
                [self.event(self.count + n, **changes) for n in range(count)],
            )
            session.commit()
        self.count += count

    def event(self, n: int, **changes: Any) -> LedgerEvent:
        return access_event(n, self.did, **changes)

    def seal(self) -> None:
        self.recorder.seal(flush=True)

    def anchor(self) -> None:
        assert self.operator is not None
        self.recorder.anchor(self.operator.registry, self.account)

    def pushes(self) -> list[dict[str, Any]]:
        """Every stored batch as the ledger service takes it."""
        with Session(self.engine) as session:
            batches = session.exec(
                select(store.BatchRecord)
                .where(store.BatchRecord.participant == self.did)
                .order_by(col(store.BatchRecord.batch_sequence))
            ).all()
            return [
                {
                    "signedHeader": batch.signed_header,
                    "events": [
                        json.loads(body)
                        for body in store.events(
                            session, self.did, batch.first_sequence, batch.last_sequence
                        )
                    ],
                    "account": address_of(self.account),
                    **(
                        {"transaction": batch.anchor_transaction}
                        if batch.anchor_transaction
                        else {}
                    ),
                }
                for batch in batches
            ]

    def close(self) -> None:
        self.engine.dispose()
