"""Change notices are written to the outbox in the change's own transaction, on both back ends:
a change rolled back writes none, a burst rides on the notice still waiting to go, a change
after that one is due writes its own, and other tables or other engines write nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connector.catalog.notices import DELAY, KIND, NOTICE_TYPE, ChangeNotices
from connector.catalog.store import Asset, PolicyDefinition
from connector.outbox import OutboxMessage
from connector.participant import migrate
from storage.engine import create_engine

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ME = "did:web:bureau.example.cn"
BROKER = "did:web:broker.example.cn:authority"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def asset(name: str) -> Asset:
    return Asset(
        id=f"urn:kexin:asset:{name}", data_grade="general", data_address="{}", created_at=NOW
    )


def notices(engine: Engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage)).all())


@pytest.fixture
def installed(engine: Engine) -> Iterator[tuple[Engine, Clock, list[int]]]:
    migrate(engine)
    clock, wakes = Clock(), list[int]()
    watching = ChangeNotices(
        engine=engine, me=ME, broker_id=BROKER, broker_url="https://broker.example.cn/",
        clock=clock, wake=lambda: wakes.append(1),
    )  # fmt: skip
    watching.install()
    yield engine, clock, wakes
    watching.remove()


def test_a_change_writes_one_notice_in_its_transaction(
    installed: tuple[Engine, Clock, list[int]],
) -> None:
    engine, clock, wakes = installed
    with Session(engine) as session:
        session.add(asset("a"))
        session.add(PolicyDefinition(id="p", policy="{}", created_at=NOW))
        session.commit()
    (notice,) = notices(engine)
    assert notice.kind == KIND
    assert notice.audience == BROKER
    assert notice.url == "https://broker.example.cn/catalogue/v1/notices"
    assert json.loads(notice.body) == {"@type": NOTICE_TYPE, "provider": ME}
    assert notice.next_attempt_at.replace(tzinfo=UTC) == NOW + DELAY
    assert wakes == [1]

    # a burst: the next change rides on the notice still waiting
    clock.now = NOW + timedelta(seconds=0.05)
    with Session(engine) as session:
        row = session.get(Asset, "urn:kexin:asset:a")
        assert row is not None
        row.title_en = "renamed"
        session.add(row)
        session.commit()
    assert len(notices(engine)) == 1

    # once the waiting notice is (nearly) due, a change writes its own
    clock.now = NOW + DELAY
    with Session(engine) as session:
        row = session.get(Asset, "urn:kexin:asset:a")
        assert row is not None
        session.delete(row)
        session.commit()
    assert len(notices(engine)) == 2


def test_a_change_rolled_back_writes_none(installed: tuple[Engine, Clock, list[int]]) -> None:
    engine, _clock, wakes = installed
    with Session(engine) as session:
        session.add(asset("b"))
        session.flush()
        session.rollback()
    assert notices(engine) == []
    assert wakes == []
    with Session(engine) as session:  # the flag went with the rollback: the next change counts
        session.add(asset("c"))
        session.commit()
    assert len(notices(engine)) == 1


def test_other_tables_and_other_engines_write_none(
    installed: tuple[Engine, Clock, list[int]], tmp_path: object
) -> None:
    engine, _clock, _wakes = installed
    with Session(engine) as session:
        session.add(OutboxMessage(
            process_id="x", kind="other", audience="a", url="u", body="{}",
            next_attempt_at=NOW, created_at=NOW,
        ))  # fmt: skip
        session.commit()
    assert [n.kind for n in notices(engine)] == ["other"]
    other = create_engine(f"sqlite:///{tmp_path}/other.db")
    try:
        migrate(other)
        with Session(other) as session:
            session.add(asset("d"))
            session.commit()
        assert notices(other) == []
    finally:
        other.dispose()
