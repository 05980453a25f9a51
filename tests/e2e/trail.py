"""The audit log compared with what a connector's database says happened: every process's
audited states form the path it took through its protocol table and end where the process
stands; every message it applied (``received_message``) has its event, as many as there are
messages; every finished data-plane access has its event, with the same outcome and bytes, and
none is left in progress. Used after the crash tests, whose kills fall between a commit and
what follows it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from itertools import pairwise
from typing import Any, Final

from sqlmodel import Session, col, select

from connector.audit import AuditEvent, Outcome
from connector.dataplane.store import DataAccess
from connector.inbox import ReceivedMessage
from connector.negotiation import machine as negotiation
from connector.negotiation.store import ContractNegotiationRecord
from connector.transfer import machine as transfer
from connector.transfer.store import TransferProcessRecord
from storage.engine import create_engine

REPEAT: Final = "a repeat"
ACCESS: Final = "data access"
RECEIVED: Final = "data received"
"""The consumer's account of a download (the SDK's report): no move of its transfer."""
MAX_STEPS: Final = 2
"""A move may take two steps of the table in one transaction (a request agreed at once)."""
OWN_FIRST: Final = {
    ("consumer", "ContractRequestMessage"),
    ("consumer", "TransferRequestMessage"),
    ("provider", "ContractOfferMessage"),
}
"""Actions that are also the name of a message the other side receives: audited when we
start a process ourselves, without a received message."""
ENDED: Final = ("completed", "failed", "interrupted")


def _edges(table: Mapping[tuple[Any, Any, Any], Any]) -> set[tuple[str | None, str]]:
    return {(None if s is None else str(s.value), str(t.value)) for (s, _, _), t in table.items()}


def _reachable(edges: set[tuple[str | None, str]], start: str | None, end: str | None) -> bool:
    frontier = {start}
    for _ in range(MAX_STEPS):
        frontier = {t for (s, t) in edges if s in frontier}
        if end in frontier:
            return True
    return False


def _state(event: AuditEvent) -> str | None:
    reason = event.reason or ""
    if reason.startswith("now "):
        return reason.removeprefix("now ").split(":")[0].split()[0]
    if event.outcome == Outcome.REFUSED.value and reason.startswith("policy_denied:"):
        return "TERMINATED"
    return None


def _path_problems(
    noun: str,
    record: ContractNegotiationRecord | TransferProcessRecord,
    events: list[AuditEvent],
    edges: set[tuple[str | None, str]],
) -> list[str]:
    problems: list[str] = []
    states: list[str] = []
    for event in events:
        state = _state(event)
        if state is None:
            problems.append(f"{noun} {record.id}: event {event.action!r} says no state")
        else:
            states.append(state)
    walked: list[str | None] = [None, *states]
    for before, after in pairwise(walked):
        if before != after and not _reachable(edges, before, after):
            problems.append(f"{noun} {record.id}: a gap from {before} to {after} in {states}")
    if (states[-1] if states else None) != record.state:
        problems.append(f"{noun} {record.id} is {record.state}; its audit log says {states}")
    return problems


def _count_problems(
    noun: str,
    record: ContractNegotiationRecord | TransferProcessRecord,
    events: list[AuditEvent],
    received: Iterable[ReceivedMessage],
) -> list[str]:
    applied = Counter(message.kind for message in received)
    audited = Counter(event.action for event in events if event.action in applied)
    for kind in applied:
        audited[kind] -= (record.role, kind) in OWN_FIRST
    if audited != applied:
        return [f"{noun} {record.id}: applied {dict(applied)}, audited {dict(audited)}"]
    return []


def _access_problems(accesses: list[DataAccess], events: list[AuditEvent]) -> list[str]:
    problems = [
        f"access {a.id} to {a.transfer_id} is left {a.outcome}"
        for a in accesses
        if a.outcome not in ENDED
    ]
    kept = Counter((a.transfer_id, a.outcome, a.bytes_sent) for a in accesses)
    audited = Counter(
        (e.subject, (e.reason or "").split(":")[0], e.bytes_sent)
        for e in events
        if e.action == ACCESS and (e.reason or "").split(":")[0] in ENDED
    )
    if kept != audited:
        problems.append(f"accesses {dict(kept)} but audited {dict(audited)}")
    return problems


def gaps(database_url: str) -> list[str]:
    """What the audit log of the connector on ``database_url`` misses or has too much of."""
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            events = list(session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all())
            received = list(session.exec(select(ReceivedMessage)).all())
            accesses = list(session.exec(select(DataAccess)).all())
            negotiations = list(session.exec(select(ContractNegotiationRecord)).all())
            transfers = list(session.exec(select(TransferProcessRecord)).all())
    finally:
        engine.dispose()
    moves = [e for e in events if not (e.reason or "").startswith(REPEAT)]
    problems: list[str] = []
    for noun, records, edges in (
        ("negotiation", negotiations, _edges(negotiation.TRANSITIONS)),
        ("transfer", transfers, _edges(transfer.TRANSITIONS)),
    ):
        for record in records:
            mine = [
                e for e in moves
                if e.subject == record.id and e.action not in (ACCESS, RECEIVED)
                and (e.outcome == Outcome.ACCEPTED.value or _state(e) is not None)
            ]  # fmt: skip
            problems += _path_problems(noun, record, mine, edges)
            here = [m for m in received if m.process_id == record.id]
            problems += _count_problems(noun, record, mine, here)
    return problems + _access_problems(accesses, events)
