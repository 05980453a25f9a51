"""Duties settled with their audit event in the same transaction: a receipt signed (consumer)
or taken (provider) and its ledger event commit together or not at all."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from connector.audit import AuditEvent, AuditRecord, SqlAuditSink
from connector.dataplane.duties import Duties
from connector.dataplane.store import DutyRecord
from connector.outbox import Outbox
from connector.participant import migrate, participant_for
from identity.participant import Participant
from storage.engine import create_engine
from tests.connector.test_app import make_settings

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
PROVIDER = "did:web:bureau.example"


class Broken(SqlAuditSink):
    """A sink whose write fails (the database refusing the event's row)."""

    def add(self, session: Session, record: AuditRecord) -> None:
        raise RuntimeError("the audit write failed")


@pytest.fixture
def consumer(tmp_path: Path) -> Iterator[tuple[Participant, Outbox, Engine]]:
    settings = make_settings(f"sqlite:///{tmp_path / 'c.db'}")
    engine = create_engine(settings.database_url)
    migrate(engine)
    client = httpx.AsyncClient()
    participant = participant_for(settings, engine, client, lambda: NOW)
    outbox = Outbox(engine, participant, client, lambda: NOW)
    with Session(engine) as session:
        session.add(
            DutyRecord(
                id="a1#duty-0", role="consumer", agreement_id="a1", counterparty=PROVIDER,
                duty_path="duty-0", action="delete", party=participant.did,
                deadline=NOW + timedelta(days=30), state="pending",
                receipt_endpoint="https://bureau.example/receipts", created_at=NOW,
            )
        )  # fmt: skip
        session.commit()
    yield participant, outbox, engine
    asyncio.run(client.aclose())
    engine.dispose()


def _duties(
    participant: Participant, outbox: Outbox, engine: Engine, audit: SqlAuditSink
) -> Duties:
    return Duties(
        engine=engine, participant=participant, outbox=outbox, audit=audit,
        clock=lambda: NOW,
    )  # fmt: skip


def test_a_duty_done_and_its_event_commit_together(
    consumer: tuple[Participant, Outbox, Engine],
) -> None:
    participant, outbox, engine = consumer
    with pytest.raises(RuntimeError, match="audit write failed"):
        _duties(participant, outbox, engine, Broken(engine)).performed("a1#duty-0", None)
    with Session(engine) as session:
        duty = session.get(DutyRecord, ("a1#duty-0", "consumer"))
        assert duty is not None
        assert (duty.state, duty.evidence) == ("pending", None)

    done = _duties(participant, outbox, engine, SqlAuditSink(engine)).performed("a1#duty-0", None)
    assert done.state == "fulfilled"
    with Session(engine) as session:
        (event,) = session.exec(
            select(AuditEvent).where(col(AuditEvent.action) == "duty fulfilled")
        ).all()
    assert (event.subject, event.agreement_id, event.duty_action) == ("a1#duty-0", "a1", "delete")
    assert event.evidence_hash is not None
    assert len(event.evidence_hash) == 64
