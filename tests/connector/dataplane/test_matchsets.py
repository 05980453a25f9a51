"""Matching sets without servers: the setup of a matching asset is computed once per data
version, reused while the data is unchanged, computed again when it changed, and the
provider's own invalid identifiers are reported to it."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session

from connector.audit import AuditRecord
from connector.dataplane.matchruns import pack, unpack
from connector.dataplane.matchsets import (
    MatchingSets,
    SharedWorkers,
    WorkersUnavailableError,
    matching_of,
)
from connector.dataplane.sources import SourceError, SourceRules
from matching.identifiers import Kind
from matching.synthetic import credit_check_character
from service.destinations import Destinations
from storage.engine import create_engine


class Recorded:
    """An audit sink that keeps what it is given (the edge, not our code)."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def record(self, record: AuditRecord) -> None:
        self.records.append(record)

    def add(self, session: Session, record: AuditRecord) -> None:
        self.records.append(record)


def uscc(n: int) -> str:
    first17 = f"91440101{n:09d}"
    return first17 + credit_check_character(first17)


def write(path: Path, values: list[str]) -> None:
    path.write_text("uscc,name\n" + "".join(f"{v},firm\n" for v in values), encoding="utf-8")


def sets_for(root: Path, audit: Recorded, **engines: Any) -> MatchingSets:
    rules = SourceRules(
        data_roots=(root,), protected=(), http_hosts=frozenset(), destinations=Destinations()
    )
    return MatchingSets(
        rules=rules, sql_sources=engines, root=root / "setups", fpr=1e-6,
        max_client_items=1000, audit=audit, me="did:web:bureau", clock=lambda: datetime.now(UTC),
    )  # fmt: skip


def address(path: Path) -> dict[str, Any]:
    return {"type": "file", "path": str(path), "matching": {"column": "uscc", "kind": "uscc"}}


def test_the_setup_is_reused_until_the_data_changes(tmp_path: Path) -> None:
    audit = Recorded()
    firms = tmp_path / "firms.csv"
    write(firms, [uscc(n) for n in range(50)] + ["not a code"])
    sets = sets_for(tmp_path, audit)
    first = sets.current("asset-1", address(firms))
    assert first.offer.server_items == 50
    assert sets.current("asset-1", address(firms)) is first  # unchanged: not read again
    prepared = [r for r in audit.records if r.action == "matching set prepared"]
    assert len(prepared) == 1
    assert "50 valid uscc, 1 invalid" in (prepared[0].reason or "")
    assert prepared[0].rows_sent == 1  # the invalid rows, reported to the provider

    write(firms, [uscc(n) for n in range(51)])
    os.utime(firms, ns=(1, 1))  # another modification time, whatever the clock's resolution
    second = sets.current("asset-1", address(firms))
    assert second.offer.data_version != first.offer.data_version
    assert second.offer.server_items == 51
    assert len([r for r in audit.records if r.action == "matching set prepared"]) == 2
    # the old version's key and setup are gone from the store
    folders = list((tmp_path / "setups").iterdir())
    assert len(folders) == 1
    assert [p.name for p in folders[0].iterdir()] == [second.offer.data_version[7:]]


def test_a_restart_reuses_the_stored_setup_and_key(tmp_path: Path) -> None:
    firms = tmp_path / "firms.csv"
    write(firms, [uscc(n) for n in range(20)])
    first = sets_for(tmp_path, Recorded()).current("asset-1", address(firms))
    audit = Recorded()
    again = sets_for(tmp_path, audit).current("asset-1", address(firms))
    assert (again.setup, again.key) == (first.setup, first.key)
    assert first.computed_s is not None
    assert again.computed_s is None  # read from the store, not computed
    prepared = [r for r in audit.records if r.action == "matching set prepared"]
    assert "reused from the setup store" in (prepared[0].reason or "")


def test_a_sql_matching_set_is_read_at_every_run(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'firms.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE firm (code TEXT)"))
        connection.execute(
            text("INSERT INTO firm VALUES (:c)"), [{"c": uscc(n)} for n in range(30)]
        )
    sets = sets_for(tmp_path, Recorded(), firms=engine)
    sql = {"type": "sql", "database": "firms", "query": "SELECT code FROM firm",
           "matching": {"column": "code", "kind": "uscc"}}  # fmt: skip
    first = sets.current("asset-2", sql)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO firm VALUES (:c)"), {"c": uscc(99)})
    second = sets.current("asset-2", sql)
    assert (first.offer.server_items, second.offer.server_items) == (30, 31)
    missing = {**sql, "matching": {"column": "nope", "kind": "uscc"}}
    with pytest.raises(SourceError) as refused:
        sets.current("asset-3", missing)
    assert refused.value.code == "source_unavailable"
    engine.dispose()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        pytest.param("name\nfirm\n", "no such column", id="no-column"),
        pytest.param("uscc\nnot a code\n", "nothing valid", id="no-valid-item"),
    ],
)
def test_an_unusable_matching_set_is_unavailable(tmp_path: Path, content: str, why: str) -> None:
    firms = tmp_path / "firms.csv"
    firms.write_text(content, encoding="utf-8")
    with pytest.raises(SourceError) as refused:
        sets_for(tmp_path, Recorded()).current("asset-1", address(firms))
    assert (refused.value.status, refused.value.code) == (502, "source_unavailable"), why


def test_a_file_outside_the_data_roots_is_never_read(tmp_path: Path) -> None:
    outside = tmp_path.parent / "elsewhere.csv"
    with pytest.raises(SourceError):
        sets_for(tmp_path, Recorded()).current("asset-1", address(outside))


def test_the_matching_part_of_an_address() -> None:
    assert matching_of({"type": "file", "path": "/x"}) is None
    found = matching_of(address(Path("/x")))
    assert found is not None
    assert (found.column, found.kind) == ("uscc", Kind.USCC)


def test_frames_are_framed_and_a_cut_or_oversized_body_is_refused() -> None:
    body = b"".join(pack([b"abc", b"", b"defg"]))
    assert unpack(body, 10) == [b"abc", b"", b"defg"]
    for broken in (body[:-1], body[:2]):
        with pytest.raises(ValueError, match="cut off"):
            unpack(broken, 10)
    with pytest.raises(ValueError, match="over the limit"):
        unpack(body, 3)


def test_a_run_does_not_wait_for_a_setup_being_computed(tmp_path: Path) -> None:
    firms = tmp_path / "firms.csv"
    write(firms, [uscc(n) for n in range(20)])
    sets = sets_for(tmp_path, Recorded())
    with sets._asset_lock("asset-1"):  # another caller computes the setup now
        with pytest.raises(SourceError) as pending:
            sets.current("asset-1", address(firms), wait=False)
        assert (pending.value.status, pending.value.code) == (503, "setup_pending")
    published = sets.publish("asset-1", address(firms))
    published.join(timeout=30)
    assert sets.current("asset-1", address(firms), wait=False).offer.server_items == 20


def _start_workers(answers: multiprocessing.Queue[str]) -> None:
    try:
        SharedWorkers(1)()
    except WorkersUnavailableError as error:
        answers.put(f"unavailable: {error}")
    else:  # pragma: no cover - the failure this test is about did not happen
        answers.put("started")


def test_workers_that_cannot_start_are_a_typed_error() -> None:
    # a daemonic process may not have children: the pool cannot start there
    context = multiprocessing.get_context("spawn")
    answers: multiprocessing.Queue[str] = context.Queue()
    process = context.Process(target=_start_workers, args=(answers,), daemon=True)
    process.start()
    try:
        answer = answers.get(timeout=30)
    finally:
        process.join(timeout=10)
    assert answer.startswith("unavailable: AssertionError")
    assert "daemonic" in answer


def test_the_watch_computes_a_changed_sets_setup_before_any_run(tmp_path: Path) -> None:
    """The firm list changes on disk: the watch's next look computes the new version's setup
    (audited), so the run after it reuses that setup instead of computing it; an ordinary asset
    a set whose file is gone and one whose address is broken are passed over, the rest still
    looked at."""
    from connector.catalog.store import Asset
    from connector.dataplane.matchwatch import MatchingWatch
    from connector.participant import migrate

    engine = create_engine(f"sqlite:///{tmp_path / 'connector.db'}")
    migrate(engine)
    firms, gone = tmp_path / "firms.csv", tmp_path / "gone.csv"
    write(firms, [uscc(n) for n in range(30)])
    with Session(engine) as session:
        for asset_id, data_address in (
            ("firms", address(firms)),
            ("gone", address(gone)),
            ("broken", {"type": "file", "path": str(firms), "matching": {"kind": "uscc"}}),
            ("plain", {"type": "file", "path": str(firms)}),
        ):
            session.add(
                Asset(
                    id=asset_id,
                    data_grade="general",
                    data_address=json.dumps(data_address),
                    created_at=datetime.now(UTC),
                )
            )
        session.commit()
    audit = Recorded()
    sets = sets_for(tmp_path, audit)
    watch = MatchingWatch(engine=engine, sets=sets, interval_s=60)

    def prepared() -> list[str]:
        return [r.reason or "" for r in audit.records if r.action == "matching set prepared"]

    assert sorted(watch.look()) == ["broken", "gone"]
    assert len(prepared()) == 1
    assert sorted(watch.look()) == ["broken", "gone"]  # unchanged: nothing computed
    assert len(prepared()) == 1
    write(firms, [uscc(n) for n in range(40)])
    os.utime(firms, ns=(time.time_ns() + 10**9,) * 2)  # a later modification time, surely
    watch.look()
    assert len(prepared()) == 2
    run = sets.current("firms", address(firms))
    assert run.offer.server_items == 40
    assert run.offer.data_version in prepared()[1]
    assert len(prepared()) == 2  # the run computed nothing
    engine.dispose()


def test_the_watch_survives_a_failed_look_and_tries_again_soon(tmp_path: Path) -> None:
    """A look that fails (the database gone) is reported by readiness and tried again after
    half a second, not after the whole interval."""
    import asyncio

    from connector.dataplane.matchwatch import MatchingWatch

    class Flaky(MatchingWatch):
        looks = 0

        def matching_assets(self) -> list[tuple[str, dict[str, Any]]]:
            self.looks += 1
            if self.looks == 1:
                raise OSError("disk I/O error")
            return []

    watch = Flaky(engine=create_engine("sqlite://"), sets=sets_for(tmp_path, Recorded()),
                  interval_s=3600)  # fmt: skip

    async def observe() -> tuple[str | None, str | None, int]:
        task = asyncio.create_task(watch.run())
        await asyncio.sleep(0.2)
        failing = watch.failing
        await asyncio.sleep(0.6)
        task.cancel()
        return failing, watch.failing, watch.looks

    assert asyncio.run(observe()) == ("OSError: disk I/O error", None, 2)
