from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.engine import Engine

from connector.audit import MAX_REASON_CHARS, AuditRecord, Outcome, SqlAuditSink
from connector.database import migrations
from storage.migrate import upgrade

BEIJING = timezone(timedelta(hours=8))


@pytest.fixture
def sink(engine: Engine) -> SqlAuditSink:
    upgrade(engine, migrations())
    return SqlAuditSink(engine)


def test_records_come_back_newest_first_in_utc(sink: SqlAuditSink) -> None:
    first = AuditRecord(
        actor="did:web:bank",
        action="ContractRequestMessage",
        outcome=Outcome.ACCEPTED,
        occurred_at=datetime(2026, 11, 24, 9, 0, tzinfo=BEIJING),
        counterparty="did:web:bureau",
        subject="urn:uuid:1",
    )
    second = AuditRecord(
        actor="did:web:bank",
        action="TransferRequestMessage",
        outcome=Outcome.REFUSED,
        occurred_at=datetime(2026, 11, 24, 9, 5, tzinfo=BEIJING),
        reason="no agreement",
    )
    sink.record(first)
    sink.record(second)
    newest, oldest = sink.recent()
    assert newest == replace(second, occurred_at=second.occurred_at.astimezone(UTC))
    assert oldest == replace(first, occurred_at=first.occurred_at.astimezone(UTC))
    assert oldest.occurred_at == datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


def test_a_timestamp_without_zone_is_refused_and_nothing_stored(sink: SqlAuditSink) -> None:
    with pytest.raises(ValueError, match="time zone"):
        sink.record(
            AuditRecord(
                actor="did:web:bank",
                action="x",
                outcome=Outcome.ACCEPTED,
                occurred_at=datetime(2026, 1, 1),
            )
        )
    assert sink.recent() == []


def test_an_overlong_reason_is_shortened_not_refused(sink: SqlAuditSink) -> None:
    sink.record(
        AuditRecord(
            actor="did:web:bank",
            action="x",
            outcome=Outcome.REFUSED,
            occurred_at=datetime.now(UTC),
            reason="r" * (MAX_REASON_CHARS * 2),
        )
    )
    (stored,) = sink.recent()
    assert stored.reason is not None
    assert len(stored.reason) == MAX_REASON_CHARS
    assert stored.reason.endswith("…")
