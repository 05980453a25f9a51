"""An access cut off by a crash: the stream records how far it got in bounded steps, and the
connector, when it starts again, ends the access as interrupted with those bytes and audits it
(in the same transaction), so the regulator sees what went out."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from connector.app import create_app
from connector.audit import AuditEvent
from connector.dataplane.plane import MATCH_COUNTED
from connector.dataplane.response import PROGRESS_BYTES, AccessResponse
from connector.dataplane.sources import Body
from connector.dataplane.store import DataAccess
from connector.transfer.store import TransferProcessRecord
from storage.engine import create_engine
from tests.connector.test_conformance import settings

CHUNK = 1 << 20


def test_the_stream_records_how_far_it_got_in_bounded_steps() -> None:
    recorded: list[int] = []
    finished: list[tuple[str, int]] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * CHUNK

    body = Body(status=200, media_type="text/csv", chunks=chunks(), length=20 * CHUNK)
    response = AccessResponse(
        body, lambda outcome, sent, *_: finished.append((outcome, sent)), recorded.append
    )

    async def receive() -> MutableMapping[str, Any]:
        await anyio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(_message: MutableMapping[str, Any]) -> None:
        return None

    async def serve() -> None:
        await response({"type": "http"}, receive, send)

    anyio.run(serve)
    assert recorded == [PROGRESS_BYTES, 2 * PROGRESS_BYTES]
    assert finished == [("completed", 20 * CHUNK)]


def test_an_access_cut_off_by_a_crash_is_audited_at_restart_with_its_bytes(
    tmp_path: Path,
) -> None:
    configured = settings(tmp_path)
    with TestClient(create_app(configured)):
        pass  # the schema exists
    engine = create_engine(configured.database_url)
    with Session(engine) as session:  # what a crashed connector left behind
        session.add(
            DataAccess(
                transfer_id="urn:uuid:t", agreement_id="urn:uuid:a", consumer="did:web:bank",
                outcome="in_progress", bytes_sent=3 * PROGRESS_BYTES,
                started_at=datetime.now(UTC),
            )
        )  # fmt: skip
        session.commit()
    with TestClient(create_app(configured)) as client:  # the restart
        client.get("/health")

        def recovered() -> bool:
            with Session(engine) as session:
                return session.exec(select(DataAccess)).one().outcome != "in_progress"

        deadline = datetime.now(UTC).timestamp() + 10
        while not recovered():
            assert datetime.now(UTC).timestamp() < deadline, "not recovered"
            anyio.run(anyio.sleep, 0.02)
    with Session(engine) as session:
        access = session.exec(select(DataAccess)).one()
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "data access")).all()
    engine.dispose()
    assert (access.outcome, access.bytes_sent) == ("interrupted", 3 * PROGRESS_BYTES)
    assert [(e.outcome, e.bytes_sent, e.subject) for e in events] == [
        ("refused", 3 * PROGRESS_BYTES, "urn:uuid:t")
    ]
    assert events[0].reason == "interrupted: the connector stopped"


def test_a_matching_run_that_had_answered_stays_counted_after_a_crash(tmp_path: Path) -> None:
    """A PSI-PULL run cut off after answers went out ends as aborted (counted: its consumer may
    have learned part of the result); one that had answered nothing as interrupted."""
    configured = settings(tmp_path)
    with TestClient(create_app(configured)):
        pass  # the schema exists
    engine = create_engine(configured.database_url)
    now = datetime.now(UTC)
    with Session(engine) as session:
        session.add(
            TransferProcessRecord(
                id="urn:uuid:t", role="provider", state="STARTED", consumer_pid="urn:uuid:c",
                counterparty="did:web:bank", counterparty_address="http://bank/dsp",
                agreement_id="urn:uuid:a", format="PSI-PULL", created_at=now, updated_at=now,
            )
        )  # fmt: skip
        for sent in (5000, 0):
            session.add(
                DataAccess(
                    transfer_id="urn:uuid:t", agreement_id="urn:uuid:a", consumer="did:web:bank",
                    outcome="in_progress", bytes_sent=sent, started_at=now,
                )
            )  # fmt: skip
        session.commit()
    with TestClient(create_app(configured)) as client:  # the restart
        client.get("/health")
        deadline = datetime.now(UTC).timestamp() + 10
        while True:
            with Session(engine) as session:
                ended = session.exec(select(DataAccess).order_by(col(DataAccess.id))).all()
            if all(a.outcome != "in_progress" for a in ended):
                break
            assert datetime.now(UTC).timestamp() < deadline, "not recovered"
            anyio.run(anyio.sleep, 0.02)
    engine.dispose()
    assert [(a.outcome, a.bytes_sent) for a in ended] == [("aborted", 5000), ("interrupted", 0)]
    assert "aborted" in MATCH_COUNTED
