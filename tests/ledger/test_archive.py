"""The regulator's archive in SQL, on SQLite and PostgreSQL: a query's page (filters, order,
offset and limit) is the same as filtering, ordering and cutting the whole list."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session

from ledger import archive, store
from ledger.database import LedgerBase, migrations
from ledger.events import LedgerEvent
from storage.migrate import upgrade
from tests.ledger.factories import CONSUMER, PROVIDER, T0, access_event

PURPOSES = ("credit-assessment", "statistics", "risk-control")


def events_of(participant: str, count: int) -> list[LedgerEvent]:
    """Interleaved in time with the other participant's (even and odd seconds), some of them
    at the same moment as another (ordered then by participant and sequence)."""
    odd = participant == CONSUMER
    return [
        access_event(
            n, participant=participant, counterparty=PROVIDER if odd else CONSUMER,
            occurred_at=T0 + timedelta(seconds=2 * (n // 2) + (odd and n % 5 != 0)),
            purpose=PURPOSES[n % 3], asset_id=f"asset-{n % 4}",
        )
        for n in range(count)
    ]  # fmt: skip


@pytest.fixture
def stored(engine: Engine) -> list[tuple[LedgerEvent, int]]:
    upgrade(engine, migrations())
    table = LedgerBase.metadata.tables[archive.FlowRecord.__tablename__]
    everything = []
    with Session(engine) as session:
        for participant in (PROVIDER, CONSUMER):
            events = events_of(participant, 40)
            links = store.append(session, participant, events, batch_sequence=0)
            rows = [
                archive.flow_row(link.sequence, e) for link, e in zip(links, events, strict=True)
            ]
            session.execute(insert(table), rows)
            everything += [(e, link.sequence) for link, e in zip(links, events, strict=True)]
        session.commit()
    return everything


@pytest.mark.parametrize(
    "query",
    [
        archive.FlowQuery(),
        archive.FlowQuery(limit=7),
        archive.FlowQuery(offset=33, limit=9),
        archive.FlowQuery(offset=79, limit=5),
        archive.FlowQuery(offset=80),
        archive.FlowQuery(participant=PROVIDER, offset=5, limit=10),
        archive.FlowQuery(participant=CONSUMER, purpose="statistics", offset=2, limit=4),
        archive.FlowQuery(asset_id="asset-1", counterparty=PROVIDER),
        archive.FlowQuery(
            since=T0 + timedelta(seconds=10), until=T0 + timedelta(seconds=30), offset=3, limit=8
        ),
        archive.FlowQuery(
            participant=PROVIDER,
            since=(T0 + timedelta(seconds=10)).astimezone(timezone(timedelta(hours=8))),
            until=(T0 + timedelta(seconds=30)).astimezone(timezone(timedelta(hours=8))),
        ),
    ],
)
def test_a_page_is_the_ordered_matches_cut_at_offset_and_limit(
    engine: Engine, stored: list[tuple[LedgerEvent, int]], query: archive.FlowQuery
) -> None:
    def matches(event: LedgerEvent) -> bool:
        wanted = {
            "participant": query.participant, "counterparty": query.counterparty,
            "asset_id": query.asset_id, "purpose": query.purpose,
        }  # fmt: skip
        return (
            all(v is None or getattr(event, k) == v for k, v in wanted.items())
            and (query.since is None or event.occurred_at >= query.since)
            and (query.until is None or event.occurred_at < query.until)
        )

    ordered = sorted(
        (
            (e.occurred_at, e.participant, sequence, e.event_id)
            for e, sequence in stored
            if matches(e)
        ),
    )
    expected = [row[1:] for row in ordered[query.offset : query.offset + query.limit]]
    with Session(engine) as session:
        page = archive.flows(session, query)
    assert [(row.participant, row.sequence, row.event_id) for row, _b, _n in page] == expected
    assert all(batch == 0 for _row, _body, batch in page)
    by_id = {e.event_id: e for e, _sequence in stored}
    assert all(body == store.hash_event(by_id[row.event_id]).body for row, body, _n in page)
