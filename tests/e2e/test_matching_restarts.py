"""Matching across restarts, with the bureau (provider) and the bank (consumer) as real server
processes killed with SIGKILL and started again on the same database and setup folder: the
bureau's setup of a data version is reused, not computed again; a run cut off by a restart of
either side is counted at most once (only if answers had gone out), leaves no access in
progress, and the runs after it are counted on from there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, select

from broker.app import create_app as create_broker
from connector.contracts.client import ContractsError
from connector.dataplane.matchruns import unpack
from connector.dataplane.store import DataAccess
from dataspace.servers import bind, serve_in_thread
from identity.credentials import CredentialType
from matching.identifiers import Kind, read_column
from matching.machine import Mode
from matching.parallel import ClientSession, Workers
from matching.synthetic import Dataset, generate, write_csv
from storage.engine import create_engine
from tests.e2e.dataplane_helpers import audit, offer_data, terms
from tests.e2e.forked import ConnectorProcess
from tests.e2e.space import TTL_S, Space, onboard
from tests.e2e.test_matching import (
    FIRMS,
    MATCH_TERMS,
    borrower_values,
    lists,
    match,
    started_transfer,
)
from tests.participants import (  # fmt: skip
    BANK_ORG,
    BUREAU_ORG,
    authority_settings,
    connector_settings,
    did_for,
)
from tests.policy.policies import atom

CHUNK_ITEMS = 256
IDLE_S = 3
"""The bureau ends a run it has not heard of for this long."""
MATCHING = {
    "CONNECTOR_MATCHING_CHUNK_ITEMS": str(CHUNK_ITEMS),
    "CONNECTOR_MATCHING_FRAMES_PER_ANSWER": "1",
    "CONNECTOR_MATCHING_WORKERS": "1",
    "CONNECTOR_MATCHING_RUN_IDLE_S": str(IDLE_S),
}


@dataclass
class Pair:
    space: Space
    bureau: ConnectorProcess
    bank: ConnectorProcess
    setups: Path
    workers: Workers
    """The test's own PSI workers, for runs driven by hand."""
    folder: Path
    """Inside the connectors' data root."""

    def data_folder(self, name: str) -> Path:
        folder = self.folder / name
        folder.mkdir()
        return folder

    def restart(self, side: ConnectorProcess) -> None:
        side.kill()
        side.start()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    folder = tmp_path_factory.mktemp("matching-restarts")
    authority_sock = bind()
    authority = did_for(authority_sock, "authority")
    bureau_sock, bank_sock = bind(), bind()  # their ports; the processes bind them again
    bureau = connector_settings(bureau_sock, folder, "bureau", authority, ttl_s=TTL_S)
    bank = connector_settings(bank_sock, folder, "bank", authority, ttl_s=TTL_S)
    bureau_sock.close()
    bank_sock.close()
    allow = {
        bureau.participant_id: {"types": ["MembershipCredential", "PublicDataHolderCredential"], "organisation": BUREAU_ORG},
        bank.participant_id: {"types": ["MembershipCredential", "FinancialInstitutionCredential"], "organisation": BANK_ORG},
    }  # fmt: skip
    setups = folder / "setups"
    sides = (
        ConnectorProcess(
            "bureau", bureau, folder / "bureau.log",
            {**MATCHING, "CONNECTOR_MATCHING_DIR": str(setups)},
        ),
        ConnectorProcess("bank", bank, folder / "bank.log", dict(MATCHING)),
    )  # fmt: skip
    with ExitStack() as stack:
        workers = stack.enter_context(Workers(1))
        authority_url = stack.enter_context(
            serve_in_thread(create_broker(authority_settings(authority_sock, folder, allow)), authority_sock)
        )  # fmt: skip
        for side in sides:
            stack.callback(side.stop)
            side.start()
        asyncio.run(onboard(bank, authority, [CredentialType.MEMBERSHIP, CredentialType.FINANCIAL_INSTITUTION]))  # fmt: skip
        asyncio.run(onboard(bureau, authority, [CredentialType.MEMBERSHIP, CredentialType.PUBLIC_DATA_HOLDER]))  # fmt: skip
        yield Pair(
            Space(authority, authority_url, bureau, bank, bank.base_url),
            *sides,
            setups,
            workers,
            folder,
        )


def matching_set(pair: Pair, name: str, *constraints: dict[str, Any]) -> tuple[str, Path, Path]:
    firms, borrowers = lists(pair.data_folder(name))
    address = {"type": "file", "path": str(firms), "matching": {"column": "uscc", "kind": "uscc"}}
    asset = offer_data(pair.space, address, terms(*constraints), onboard=False)
    return asset, firms, borrowers


def prepared_records(pair: Pair, asset: str) -> list[str]:
    """The bureau's audit of the setups it prepared for ``asset``, oldest first."""
    return [
        e["reason"] or ""
        for e in reversed(audit(pair.space))
        if e["action"] == "matching set prepared" and e["subject"] == asset
    ]


def accesses(pair: Pair, agreement: str | None = None) -> list[DataAccess]:
    """The bureau's accesses (one a run), of one agreement or all, oldest first."""
    engine = create_engine(pair.space.bureau.database_url)
    try:
        with Session(engine) as session:
            query = select(DataAccess).order_by(col(DataAccess.id))
            if agreement is not None:
                query = query.where(DataAccess.agreement_id == agreement)
            return list(session.exec(query).all())
    finally:
        engine.dispose()


def settled(pair: Pair, agreement: str | None = None) -> list[DataAccess]:
    """The accesses once none is in progress (a restarted connector ends those it had)."""
    deadline = time.monotonic() + 20
    while True:
        found = accesses(pair, agreement)
        if all(a.outcome != "in_progress" for a in found):
            return found
        assert time.monotonic() < deadline, [(a.id, a.outcome) for a in found]
        time.sleep(0.05)


def test_the_provider_reuses_its_stored_setup_after_a_restart(pair: Pair) -> None:
    asset, firms, borrowers = matching_set(pair, "reuse", *MATCH_TERMS[:1])
    values = borrower_values(borrowers)
    first = match(pair.space, asset, values)
    assert (first["cardinality"], first["setupCached"]) == (200, False)
    assert len(prepared_records(pair, asset)) == 1
    assert "computed in" in prepared_records(pair, asset)[0]
    (stored,) = pair.setups.glob("*/*/*.setup")
    before = stored.stat()

    pair.restart(pair.bureau)
    again = match(pair.space, asset, values)
    # the same version and the same setup (its key was kept): the bank's cached copy still fits
    assert (again["dataVersion"], again["cardinality"]) == (first["dataVersion"], 200)
    assert again["setupCached"] is True
    records = prepared_records(pair, asset)
    assert len(records) == 2
    assert "reused from the setup store" in records[1]
    after = stored.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    # the bank forgets its copy with its memory: it fetches the same setup again
    pair.restart(pair.bank)
    third = match(pair.space, asset, values)
    assert (third["dataVersion"], third["cardinality"]) == (first["dataVersion"], 200)
    assert third["setupCached"] is False
    assert len(prepared_records(pair, asset)) == 2  # the bureau prepared nothing more

    # the data changes while the bureau is down: the setup of the new version, never the old
    pair.bureau.kill()
    rows = list(generate(Dataset.ENTERPRISES, FIRMS // 2, 1))
    write_csv(firms, Dataset.ENTERPRISES, iter(rows))
    pair.bureau.start()
    changed = match(pair.space, asset, values)
    assert changed["dataVersion"] != first["dataVersion"]
    assert changed["serverItems"] == FIRMS // 2
    assert "computed in" in prepared_records(pair, asset)[2]
    assert [p.name for p in stored.parent.parent.iterdir()] == [changed["dataVersion"][7:]]


def open_run(
    pair: Pair, endpoint: str, token: str, items: list[str]
) -> tuple[str, int, ClientSession]:
    """A run opened by hand, its setup fetched: its id, frame limit and client."""
    opened = httpx.post(f"{endpoint}/runs", headers={"Authorization": f"Bearer {token}"},
                        json={"clientItems": len(items), "mode": "intersection"})  # fmt: skip
    assert opened.status_code == 201, opened.text
    run_id, limit = opened.json()["runId"], opened.json()["maxMessageBytes"]
    client = ClientSession(items, Mode.INTERSECTION, pair.workers, max_chunk_items=CHUNK_ITEMS,
                           run_id=run_id)  # fmt: skip
    setup = httpx.get(
        f"{endpoint}/runs/{run_id}/setup", headers={"Authorization": f"Bearer {token}"}
    )
    for piece in unpack(setup.content, limit):
        client.setup_frame(piece)
    return run_id, limit, client


def send(endpoint: str, token: str, run_id: str, frame: bytes) -> httpx.Response:
    return httpx.post(f"{endpoint}/runs/{run_id}/messages",
                      headers={"Authorization": f"Bearer {token}"}, content=frame)  # fmt: skip


def test_a_run_cut_off_by_a_provider_restart_is_counted_once_if_it_had_answered(
    pair: Pair,
) -> None:
    asset, _, borrowers = matching_set(
        pair, "provider-restart", *MATCH_TERMS[:1], atom("kexin:matchRuns", "lteq", "3")
    )
    values = borrower_values(borrowers)
    items = read_column(borrowers, "uscc", Kind.USCC).items
    agreement = match(pair.space, asset, values)["agreementId"]  # run 1: completed
    _, endpoint, token = started_transfer(pair.space, agreement, "PSI-PULL")

    # run 2: started, nothing answered yet, when the bureau is killed
    run_id, _, client = open_run(pair, endpoint, token, items)
    assert send(endpoint, token, run_id, client.start_frame()).status_code == 200
    pair.restart(pair.bureau)
    settled(pair, agreement)
    gone = send(endpoint, token, run_id, next(client.request_frames()))
    assert (gone.status_code, gone.json()["reason"]) == (404, "unknown_run")

    # run 3: every request sent, one answer of four received, when the bureau is killed
    run_id, limit, client = open_run(pair, endpoint, token, items)
    answers = 0
    for frame in [client.start_frame(), *client.request_frames()]:
        answer = send(endpoint, token, run_id, frame)
        assert answer.status_code == 200, answer.text
        answers += len(unpack(answer.content, limit))
    assert 1 <= answers < -(-len(items) // CHUNK_ITEMS)
    pair.restart(pair.bureau)
    ended = settled(pair, agreement)
    assert [a.outcome for a in ended] == ["completed", "interrupted", "aborted"]
    assert all(a.reason == "the connector stopped" for a in ended[1:])
    assert ended[2].bytes_sent > 0
    # each ended once, audited once
    trail = [e for e in audit(pair.space) if e["action"] == "data access"]
    stopped = [e["reason"] for e in trail if e["subject"] == ended[1].transfer_id]
    assert stopped.count("interrupted: the connector stopped") == 1
    assert stopped.count("aborted: the connector stopped") == 1

    # the cut-off runs count as they ended: the aborted one, not the interrupted one
    assert match(pair.space, asset, values)["cardinality"] == 200  # counted: 3
    with pytest.raises(ContractsError) as refused:
        match(pair.space, asset, values)
    assert (refused.value.status, refused.value.code) == (403, "match_refused")
    assert any("kexin:matchRuns lteq 3: violated (actual 4)" in r for r in refused.value.reasons)


def test_a_run_cut_off_by_a_consumer_restart_ends_and_is_counted_once(
    pair: Pair,
) -> None:
    firms = pair.data_folder("consumer-restart") / "firms.csv"
    write_csv(firms, Dataset.ENTERPRISES, generate(Dataset.ENTERPRISES, FIRMS, 7))
    listed = read_column(firms, "uscc", Kind.USCC).items
    many = [r[0] for r in generate(Dataset.ENTERPRISES, 16_000, 8, overlap_with=listed,
                                   overlap=0.1)]  # fmt: skip
    address = {"type": "file", "path": str(firms), "matching": {"column": "uscc", "kind": "uscc"}}
    asset = offer_data(
        pair.space, address, terms(*MATCH_TERMS[:1], atom("kexin:matchRuns", "lteq", "3")),
        onboard=False,
    )  # fmt: skip
    known = {a.id for a in settled(pair)}

    # the bank is killed in the middle of its first run: the bureau has the run open
    with ThreadPoolExecutor(1) as background:
        cut: Future[Any] = background.submit(match, pair.space, asset, many)
        deadline = time.monotonic() + 60
        while not [a for a in accesses(pair) if a.id not in known]:
            assert not cut.done(), "the run ended before the bank was killed"
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.02)
        pair.restart(pair.bank)
        with pytest.raises((ContractsError, httpx.HTTPError)):
            cut.result()
    (opened,) = [a for a in accesses(pair) if a.id not in known]
    assert opened.outcome == "in_progress"  # the bureau waits for the consumer a while

    time.sleep(IDLE_S + 0.5)
    agreement = opened.agreement_id
    assert match(pair.space, asset, many)["cardinality"] == 1600  # its start ends the idle run
    ended = settled(pair, agreement)
    assert ended[0].id == opened.id
    assert ended[0].outcome in ("aborted", "interrupted")
    assert ended[0].reason == f"no message for {IDLE_S} s"
    assert ended[1].outcome == "completed"
    counted = [a for a in ended if a.outcome in ("completed", "aborted")]
    left = 3 - len(counted)
    for _ in range(left):
        match(pair.space, asset, many)
    with pytest.raises(ContractsError) as refused:
        match(pair.space, asset, many)
    assert any("kexin:matchRuns lteq 3: violated (actual 4)" in r for r in refused.value.reasons)
    bank_runs = [e for e in audit(pair.space, "bank") if e["action"] == "matching run"]
    assert sum("intersection 1600" in (e["reason"] or "") for e in bank_runs) >= 1 + left
