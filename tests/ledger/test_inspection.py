"""The regulator's re-check of its archive and the proof bundles it gives: batches accepted
through the service (in-process chain), then one byte of one stored event changed, one event
deleted, two reordered: each is named; a bundle verifies against the chain, a tampered one
does not, and says why."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from dataspace.cli import app as cli
from ledger import store
from ledger.app import create_app
from ledger.archive import FlowRecord, RetentionError, purge
from ledger.chain import Chain, address_of, new_account_key
from ledger.inspection import Finding, verify_archive
from ledger.messages import ProofBundle
from ledger.proofs import InvalidProofError, MovedAnchor, build_bundle, check_bundle
from storage.engine import create_engine
from tests.ledger.factories import T0
from tests.ledger.pushes import Operator, Side, did_key_participant
from tests.ledger.test_service import settings_for


@dataclass
class Archive:
    engine: Engine
    operator: Operator
    side: Side

    def findings(self) -> list[Finding]:
        with Session(self.engine) as session:
            return verify_archive(session, self.operator.chain)

    def event(self, sequence: int) -> store.EventRecord:
        with Session(self.engine) as session:
            row = session.get(store.EventRecord, (self.side.did, sequence))
            assert row is not None
            return row

    def bundle(self, sequence: int) -> ProofBundle:
        with Session(self.engine) as session:
            bundle = build_bundle(session, self.event(sequence).event_id)
        assert bundle is not None
        return bundle


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    operator = Operator.deploy(Chain.in_process())
    did, key = did_key_participant()
    side = Side(tmp_path, did, key, operator)
    side.record(10)
    side.seal()
    side.anchor()
    url = f"sqlite:///{tmp_path / 'regulator.db'}"
    with TestClient(create_app(settings_for(url, operator.registry.address), chain=operator.chain)) as client:  # fmt: skip
        for push in side.pushes():
            assert client.post("/ledger/v1/batches", json=push).status_code == 201
    engine = create_engine(url)
    yield Archive(engine, operator, side)
    engine.dispose()
    side.close()


def named(findings: list[Finding]) -> set[tuple[int | None, str]]:
    return {(f.sequence, f.fault) for f in findings}


def test_an_untouched_archive_verifies(archive: Archive) -> None:
    assert archive.findings() == []


def test_one_changed_byte_of_one_event_is_named(archive: Archive) -> None:
    target = archive.event(5)
    body = bytearray(target.body)
    body[body.index(b'"personCount":') + len(b'"personCount":')] ^= 0x01  # 1005 -> 0005
    with Session(archive.engine) as session:
        session.execute(
            update(store.EventRecord)
            .where(store.EventRecord.participant == archive.side.did)  # type: ignore[arg-type]
            .where(store.EventRecord.sequence == 5)  # type: ignore[arg-type]
            .values(body=bytes(body))
        )
        session.commit()
    findings = archive.findings()
    events = {(f.sequence, f.event_id) for f in findings if f.sequence is not None}
    assert events == {(5, target.event_id)}
    assert any(f.fault in ("tampered", "unreadable") for f in findings)
    assert all(f.sequence in (None, 5) for f in findings)


def test_a_deleted_event_is_named(archive: Archive) -> None:
    target = archive.event(6)
    with Session(archive.engine) as session:
        session.execute(
            delete(store.EventRecord)
            .where(store.EventRecord.participant == archive.side.did)  # type: ignore[arg-type]
            .where(store.EventRecord.sequence == 6)  # type: ignore[arg-type]
        )
        session.commit()
    findings = archive.findings()
    assert (6, "gap") in named(findings)
    assert any(f.event_id == target.event_id for f in findings)  # from the index row
    assert any(f.fault == "missing_events" and f.batch_sequence == 1 for f in findings)


def test_two_reordered_events_are_named(archive: Archive) -> None:
    first, second = archive.event(2), archive.event(3)
    with Session(archive.engine) as session:
        for sequence, row in ((2, second), (3, first)):
            session.execute(
                update(store.EventRecord)
                .where(store.EventRecord.participant == archive.side.did)  # type: ignore[arg-type]
                .where(store.EventRecord.sequence == sequence)  # type: ignore[arg-type]
                .values(
                    event_id=f"{'0' * 35}{sequence}",
                    body=row.body,
                    event_hash=row.event_hash,
                    previous_hash=row.previous_hash,
                    link_hash=row.link_hash,
                )
            )
        session.commit()
    failing = {f.sequence for f in archive.findings() if f.sequence is not None}
    assert {2, 3} <= failing
    assert failing <= {2, 3, 4}


def test_an_index_row_that_lies_about_its_event_is_named(archive: Archive) -> None:
    with Session(archive.engine) as session:
        session.execute(
            update(FlowRecord)
            .where(FlowRecord.sequence == 4)  # type: ignore[arg-type]
            .values(purpose="something-else")
        )
        session.commit()
    [finding] = archive.findings()
    assert (finding.sequence, finding.fault) == (4, "index_mismatch")
    assert "purpose" in finding.detail


def test_a_batch_root_that_differs_from_the_chain_is_named(archive: Archive) -> None:
    with Session(archive.engine) as session:
        batch = session.exec(
            select(store.BatchRecord).where(store.BatchRecord.batch_sequence == 2)
        ).one()
        session.execute(
            update(store.BatchRecord)
            .where(store.BatchRecord.batch_sequence == 2)  # type: ignore[arg-type]
            .values(root=bytes(32), signed_header=batch.signed_header[:-4] + "AAAA")
        )
        session.commit()
    faults = {(f.batch_sequence, f.fault) for f in archive.findings()}
    assert (2, "bad_signature") in faults


def test_an_anchor_a_reorganisation_moved_is_named_then_followed(tmp_path: Path) -> None:
    """The chain goes back before the batch's anchor and the participant anchors it again in
    another block: the root still verifies, but the archive's block and transaction are
    stale, so its bundles fail against the chain. The check names it (``anchor_moved``); asked
    to follow, it stores where the chain holds the anchor now, and the bundle verifies."""
    operator = Operator.deploy(Chain.in_process())
    did, key = did_key_participant()
    side = Side(tmp_path, did, key, operator)
    side.record(4)
    side.seal()
    provider = operator.chain.w3.provider
    snapshot = provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    side.anchor()
    url = f"sqlite:///{tmp_path / 'regulator.db'}"
    with TestClient(create_app(settings_for(url, operator.registry.address), chain=operator.chain)) as client:  # fmt: skip
        [push] = side.pushes()
        assert client.post("/ledger/v1/batches", json=push).status_code == 201
    provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
    operator.chain.dev_fund(address_of(new_account_key()))  # the new branch moves on
    assert side.recorder.recheck(operator.registry, address_of(side.account)) == [0]
    side.anchor()
    engine = create_engine(url)
    archive = Archive(engine, operator, side)
    try:
        assert [(f.batch_sequence, f.fault) for f in archive.findings()] == [(0, "anchor_moved")]
        with pytest.raises(InvalidProofError, match="block"):
            check_bundle(archive.bundle(0), operator.registry)
        moved: list[MovedAnchor] = []
        with Session(engine) as session:
            assert verify_archive(session, operator.chain, moved) == []
            session.commit()
        [followed] = moved
        assert (followed.participant, followed.batch_sequence) == (did, 0)
        assert followed.to_block > (followed.from_block or 0)
        assert archive.findings() == []
        check_bundle(archive.bundle(0), operator.registry)
    finally:
        engine.dispose()
        side.close()


def test_a_bundle_proves_its_event_against_the_chain(archive: Archive) -> None:
    for sequence in (0, 5, 9):
        check_bundle(archive.bundle(sequence), archive.operator.registry)


def tampered(bundle: ProofBundle, **changes: object) -> ProofBundle:
    data = copy.deepcopy(bundle.model_dump(mode="json", by_alias=True))
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = data
        for parent in parents:
            node = node[parent]
        node[last] = value
    return ProofBundle.model_validate_json(__import__("json").dumps(data))


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        pytest.param({"event__personCount": 1}, "inclusion proof", id="changed-event"),
        pytest.param({"sequence": 6}, "place", id="wrong-place"),
        pytest.param({"previousHash": "00" * 32}, "inclusion proof", id="wrong-link"),
        pytest.param({"inclusion__path": ["11" * 32, "22" * 32]}, "inclusion proof", id="bad-path"),
        pytest.param({"anchor__root": "33" * 32}, "signed header", id="wrong-root"),
        pytest.param({"anchor__blockNumber": 1}, "block", id="wrong-block"),
        pytest.param({"anchor__transaction": "0x" + "44" * 32}, "block", id="wrong-transaction"),
    ],
)
def test_a_tampered_bundle_is_invalid_with_the_reason(
    archive: Archive, changes: dict[str, object], why: str
) -> None:
    bundle = tampered(archive.bundle(5), **changes)
    with pytest.raises(InvalidProofError, match=why):
        check_bundle(bundle, archive.operator.registry)


def test_a_bundle_whose_account_is_not_the_participants_is_invalid(
    archive: Archive, tmp_path: Path
) -> None:
    other_did, other_key = did_key_participant()
    other = Side(tmp_path, other_did, other_key, archive.operator, name="other")
    other.record(10)
    other.seal()
    other.anchor()
    bundle = archive.bundle(5)
    from ledger.chain import address_of

    forged = tampered(bundle, anchor__account=address_of(other.account))
    with pytest.raises(InvalidProofError):
        check_bundle(forged, archive.operator.registry)
    other.close()


RETENTION = timedelta(days=3 * 365)


def test_deleting_events_within_their_retention_is_refused(archive: Archive) -> None:
    with Session(archive.engine) as session, pytest.raises(RetentionError, match="kept until"):
        purge(session, archive.side.did, 0, RETENTION, T0 + RETENTION - timedelta(seconds=1))
    assert archive.findings() == []
    assert archive.event(0).event_id


def test_the_cli_refuses_a_purge_within_the_retention(archive: Archive) -> None:
    env = {
        "LEDGER_LEDGER_ID": "did:web:127.0.0.1%3A8383:ledger",
        "LEDGER_KEY_PASSPHRASE": "correct horse battery staple",
        "LEDGER_DATABASE_URL": archive.engine.url.render_as_string(hide_password=False),
    }
    result = CliRunner().invoke(
        cli, ["ledger", "purge", archive.side.did, "--through-batch", "1"], env=env
    )
    assert result.exit_code == 1
    assert "refused: an event of 2026-11-24" in result.output
    assert "LEDGER_RETENTION_DAYS" in result.output


def test_after_the_retention_whole_batches_go_and_the_rest_still_verifies(
    archive: Archive,
) -> None:
    kept = archive.event(8).event_id
    with Session(archive.engine) as session:
        assert purge(session, archive.side.did, 1, RETENTION, T0 + RETENTION * 2) == 8
        session.commit()
    assert archive.findings() == []
    with Session(archive.engine) as session:
        assert session.get(store.EventRecord, (archive.side.did, 0)) is None
        assert len(session.exec(select(FlowRecord)).all()) == 2
        with pytest.raises(RetentionError, match="purged already"):
            purge(session, archive.side.did, 0, RETENTION, T0 + RETENTION * 2)
        bundle = build_bundle(session, kept)
    assert bundle is not None
    check_bundle(bundle, archive.operator.registry)


def test_after_a_purge_a_changed_link_at_the_cut_is_still_seen(archive: Archive) -> None:
    with Session(archive.engine) as session:
        purge(session, archive.side.did, 1, RETENTION, T0 + RETENTION * 2)
        session.execute(
            update(store.EventRecord)
            .where(store.EventRecord.sequence == 8)  # type: ignore[arg-type]
            .values(previous_hash=bytes(32))
        )
        session.commit()
    assert 8 in {f.sequence for f in archive.findings()}


def test_after_purging_everything_the_participant_goes_on(archive: Archive) -> None:
    with Session(archive.engine) as session:
        purge(session, archive.side.did, 2, RETENTION, T0 + RETENTION * 2)
        session.commit()
    archive.side.record(4)
    archive.side.seal()
    archive.side.anchor()
    url = archive.engine.url.render_as_string(hide_password=False)
    app = create_app(
        settings_for(url, archive.operator.registry.address), chain=archive.operator.chain
    )
    with TestClient(app) as client:
        response = client.post("/ledger/v1/batches", json=archive.side.pushes()[-1])
    assert response.status_code == 201, response.text
    assert archive.findings() == []
