"""Reconciliation: one cross-entity flow as each of its two parties recorded it, side by side,
matched by the DSP process ids both record (``providerPid``, ``consumerPid``), and every
disagreement with its reason.

What is compared, for each side's events of one flow: that both sides logged it at all; the
agreement (its canonical hash and its policy's hash); the last state of the transfer process;
the data that went over (bytes and rows in the data-plane accesses each side recorded); the
duties each says were fulfilled (by the hash of the signed receipt) or violated. The sides are
named by DID; which one is the provider is not guessed. Pure: the events come in, the findings
go out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise
from typing import Any

from ledger.events import (
    AgreementConcluded,
    DataAccessed,
    DutyFulfilled,
    DutyViolated,
    LedgerEvent,
    TransferStateChanged,
)


class MismatchKind(StrEnum):
    ONE_SIDED = "one_sided"
    """Only one party logged the flow."""
    AGREEMENT = "agreement_differs"
    TRANSFER_STATE = "transfer_state_differs"
    BYTES = "bytes_differ"
    ROWS = "rows_differ"
    DUTY_FULFILLED = "duty_fulfilment_one_sided"
    """A receipt one side holds and the other never recorded."""
    DUTY_VIOLATED = "duty_violation_one_sided"
    UNREADABLE = "unreadable_record"
    """Stored records of the flow that are no longer readable events: tampered."""


@dataclass(frozen=True)
class Mismatch:
    kind: MismatchKind
    reason: str


@dataclass(frozen=True)
class SideSummary:
    """What one party recorded of the flow."""

    participant: str
    events: int
    agreement: tuple[str, str] | None
    transfer_state: str | None
    bytes: int
    rows: int | None
    receipts: frozenset[str]
    violated: frozenset[str]


@dataclass(frozen=True)
class FlowReconciliation:
    provider_pid: str
    consumer_pid: str
    sides: tuple[SideSummary, ...]
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return not self.mismatches

    def to_json(self) -> dict[str, Any]:
        return {
            "providerPid": self.provider_pid,
            "consumerPid": self.consumer_pid,
            "matches": self.matches,
            "sides": [
                {
                    "participant": side.participant,
                    "events": side.events,
                    "agreementHash": None if side.agreement is None else side.agreement[0],
                    "policyHash": None if side.agreement is None else side.agreement[1],
                    "transferState": side.transfer_state,
                    "bytes": side.bytes,
                    "rows": side.rows,
                    "receipts": sorted(side.receipts),
                    "violated": sorted(side.violated),
                }
                for side in self.sides
            ],
            "mismatches": [{"kind": m.kind.value, "reason": m.reason} for m in self.mismatches],
        }


def summarise(participant: str, events: Iterable[LedgerEvent]) -> SideSummary:
    own = sorted(events, key=lambda e: e.occurred_at)
    agreement = None
    state = None
    sent = 0
    rows: int | None = None
    receipts: set[str] = set()
    violated: set[str] = set()
    for event in own:
        match event.detail:
            case AgreementConcluded(agreement_hash=hash_, policy_hash=policy):
                agreement = (hash_, policy)
            case TransferStateChanged(to_state=to_state):
                state = to_state.value
            case DataAccessed(bytes_sent=count, rows_sent=row_count):
                sent += count
                if row_count is not None:
                    rows = (rows or 0) + row_count
            case DutyFulfilled(receipt_hash=receipt):
                receipts.add(receipt)
            case DutyViolated(duty_id=duty, action=action):
                violated.add(f"{action} ({duty})")
            case _:
                pass
    return SideSummary(
        participant, len(own), agreement, state, sent, rows, frozenset(receipts),
        frozenset(violated),
    )  # fmt: skip


def reconcile(
    provider_pid: str, consumer_pid: str, events: Sequence[LedgerEvent], unreadable: int = 0
) -> FlowReconciliation:
    """The flow of these process ids from the events of both parties (any order)."""
    parties = sorted({e.participant for e in events})
    sides = tuple(summarise(p, (e for e in events if e.participant == p)) for p in parties)
    mismatches: list[Mismatch] = []
    if unreadable:
        mismatches.append(
            Mismatch(MismatchKind.UNREADABLE, f"{unreadable} stored records are not readable")
        )
    if len(sides) == 1:
        (only,) = sides
        counterparties = sorted({e.counterparty for e in events if e.counterparty})
        other = ", ".join(counterparties) or "its counterparty"
        mismatches.append(
            Mismatch(MismatchKind.ONE_SIDED, f"{only.participant} logged it, {other} never did")
        )
    for a, b in pairwise(sides):
        mismatches += _compare(a, b)
    return FlowReconciliation(provider_pid, consumer_pid, sides, mismatches)


def _compare(a: SideSummary, b: SideSummary) -> list[Mismatch]:
    found: list[Mismatch] = []
    name_a, name_b = a.participant, b.participant
    if a.agreement != b.agreement:
        found.append(
            Mismatch(
                MismatchKind.AGREEMENT,
                f"{name_a} recorded agreement {_hash(a.agreement)}, {name_b} {_hash(b.agreement)}",
            )
        )
    if a.transfer_state != b.transfer_state:
        found.append(
            Mismatch(
                MismatchKind.TRANSFER_STATE,
                f"the transfer ended {a.transfer_state or 'unlogged'} for {name_a}, "
                f"{b.transfer_state or 'unlogged'} for {name_b}",
            )
        )
    if a.bytes != b.bytes:
        found.append(
            Mismatch(MismatchKind.BYTES, f"{name_a}: {a.bytes} bytes, {name_b}: {b.bytes} bytes")
        )
    if a.rows != b.rows:
        found.append(
            Mismatch(
                MismatchKind.ROWS,
                f"{name_a}: {_count(a.rows)} rows, {name_b}: {_count(b.rows)} rows",
            )
        )
    for holder, other, only in (
        (a, b, a.receipts - b.receipts),
        (b, a, b.receipts - a.receipts),
    ):
        found += [
            Mismatch(
                MismatchKind.DUTY_FULFILLED,
                f"{holder.participant} recorded the duty fulfilled with receipt {receipt}, "
                f"{other.participant} never received it",
            )
            for receipt in sorted(only)
        ]
    for holder, other, only in (
        (a, b, a.violated - b.violated),
        (b, a, b.violated - a.violated),
    ):
        found += [
            Mismatch(
                MismatchKind.DUTY_VIOLATED,
                f"{holder.participant} recorded {duty} violated, {other.participant} did not",
            )
            for duty in sorted(only)
        ]
    return found


def _hash(agreement: tuple[str, str] | None) -> str:
    return "none" if agreement is None else agreement[0][:16] + "…"


def _count(rows: int | None) -> str:
    return "no" if rows is None else str(rows)
