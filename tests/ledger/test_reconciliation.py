"""Reconciliation of one flow from both parties' records: what matches, and each disagreement
named with its reason (rows sent against rows received, a transfer one side never logged, a
deletion receipt the provider never got, different agreements, different end states)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ledger.events import (
    AgreementConcluded,
    DutyFulfilled,
    EventType,
    LedgerEvent,
    TransferState,
    TransferStateChanged,
)
from ledger.reconciliation import MismatchKind, reconcile
from tests.ledger.factories import CONSUMER, PROVIDER, T0, access_event

PIDS = ("urn:uuid:provider-1", "urn:uuid:consumer-1")
AGREEMENT = AgreementConcluded(
    type=EventType.AGREEMENT_CONCLUDED, agreement_hash="a" * 64, policy_hash="b" * 64
)


def event(participant: str, n: int, detail: Any, **changes: Any) -> LedgerEvent:
    counterparty = CONSUMER if participant == PROVIDER else PROVIDER
    return LedgerEvent(
        participant=participant, counterparty=counterparty, occurred_at=T0 + timedelta(seconds=n),
        provider_pid=PIDS[0], consumer_pid=PIDS[1], detail=detail, **changes,
    )  # fmt: skip


def completed(participant: str) -> LedgerEvent:
    return event(
        participant, 9,
        TransferStateChanged(type=EventType.TRANSFER_STATE_CHANGED, to_state=TransferState.COMPLETED),
    )  # fmt: skip


def access(participant: str, rows: int) -> LedgerEvent:
    base = access_event(1, participant)
    detail = base.detail.model_copy(update={"rows_sent": rows})
    return base.model_copy(
        update={"detail": detail, "provider_pid": PIDS[0], "consumer_pid": PIDS[1],
                "counterparty": CONSUMER if participant == PROVIDER else PROVIDER}
    )  # fmt: skip


def flow(provider: list[LedgerEvent], consumer: list[LedgerEvent]) -> list[tuple[str, str]]:
    result = reconcile(*PIDS, [*provider, *consumer])
    return [(m.kind.value, m.reason) for m in result.mismatches]


def both(participant: str) -> list[LedgerEvent]:
    return [event(participant, 0, AGREEMENT), access(participant, 1000), completed(participant)]


def test_two_records_that_agree_match() -> None:
    result = reconcile(*PIDS, [*both(PROVIDER), *both(CONSUMER)])
    assert result.matches
    assert [s.participant for s in result.sides] == sorted([PROVIDER, CONSUMER])
    assert result.to_json()["matches"] is True


def test_rows_sent_against_rows_received() -> None:
    consumer = [event(CONSUMER, 0, AGREEMENT), access(CONSUMER, 900), completed(CONSUMER)]
    [(kind, reason)] = flow(both(PROVIDER), consumer)
    assert kind == MismatchKind.ROWS
    assert f"{PROVIDER}: 1000 rows" in reason
    assert f"{CONSUMER}: 900 rows" in reason


def test_a_flow_one_side_never_logged() -> None:
    [(kind, reason)] = flow(both(PROVIDER), [])
    assert kind == MismatchKind.ONE_SIDED
    assert reason == f"{PROVIDER} logged it, {CONSUMER} never did"


def test_a_deletion_receipt_the_provider_never_received() -> None:
    receipt = DutyFulfilled(
        type=EventType.DUTY_FULFILLED, duty_id="duty-1", action="delete", receipt_hash="c" * 64
    )
    consumer = [*both(CONSUMER), event(CONSUMER, 10, receipt)]
    [(kind, reason)] = flow(both(PROVIDER), consumer)
    assert kind == MismatchKind.DUTY_FULFILLED
    assert reason == (
        f"{CONSUMER} recorded the duty fulfilled with receipt {'c' * 64}, "
        f"{PROVIDER} never received it"
    )


@pytest.mark.parametrize(
    ("consumer", "kind"),
    [
        pytest.param(
            [event(CONSUMER, 0, AGREEMENT.model_copy(update={"agreement_hash": "d" * 64})),
             access(CONSUMER, 1000), completed(CONSUMER)],
            MismatchKind.AGREEMENT, id="agreement",
        ),
        pytest.param(
            [event(CONSUMER, 0, AGREEMENT), access(CONSUMER, 1000)],
            MismatchKind.TRANSFER_STATE, id="end-state",
        ),
    ],
)  # fmt: skip
def test_other_disagreements_are_named(consumer: list[LedgerEvent], kind: MismatchKind) -> None:
    assert [k for k, _ in flow(both(PROVIDER), consumer)] == [kind.value]


def test_unreadable_records_are_a_mismatch() -> None:
    result = reconcile(*PIDS, [*both(PROVIDER), *both(CONSUMER)], unreadable=1)
    assert [m.kind for m in result.mismatches] == [MismatchKind.UNREADABLE]
