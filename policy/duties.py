"""Duties with state: a duty of an agreement becomes a tracked obligation with a deadline.

States: ``pending`` until fulfilled or overdue; ``fulfilled`` with evidence (a statement signed
by the party that had to act, checked by a verifier the caller passes in: identity/ signs and
verifies, this module only decides); ``violated`` once the deadline passed without evidence.
Fulfilled and violated are final. Duties without a deadline that recur on every use
(``kexin:log``, ``inform`` without a deadline) stay pending for the life of the agreement and
are met use by use by the connector itself. Pure: the caller passes ``now``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from policy.model import Atomic, Rule
from policy.operands import parse_datetime

RECURRING: Final = frozenset({"kexin:log", "inform"})
LATEST: Final = datetime.max.replace(tzinfo=UTC)
"""The last instant a deadline can be: one that falls after it is never reached anyway."""


class DutyState(StrEnum):
    PENDING = "pending"
    FULFILLED = "fulfilled"
    VIOLATED = "violated"


class DutyError(ValueError):
    """A move the obligation does not allow, or evidence that does not prove fulfilment."""


@dataclass(frozen=True)
class SignedStatement:
    """What a verifier returns for valid evidence: who signed it and what it says."""

    issuer: str
    claims: Mapping[str, object]


Verifier = Callable[[str], SignedStatement]
"""Checks a piece of evidence (e.g. a JWS) and returns its signer and claims, or raises."""


@dataclass(frozen=True)
class Obligation:
    id: str
    agreement_id: str
    duty_path: str
    action: str
    party: str
    """Who must act."""
    deadline: datetime | None
    state: DutyState = DutyState.PENDING
    evidence: str | None = None
    settled_at: datetime | None = None

    @property
    def recurring(self) -> bool:
        return self.action in RECURRING and self.deadline is None


def deadline_of(duty: Rule, agreed_at: datetime) -> datetime | None:
    """The earliest deadline the duty's constraints set: ``elapsedTime lt(eq) D`` counts from
    the agreement, ``dateTime lt(eq) T`` is absolute."""
    deadlines: list[datetime] = []
    for constraint in duty.constraints:
        if not isinstance(constraint, Atomic) or constraint.operator not in ("lt", "lteq"):
            continue
        if constraint.left.name == "elapsedTime" and isinstance(constraint.right, timedelta):
            deadlines.append(_after(agreed_at, constraint.right))
        elif constraint.left.name == "dateTime" and isinstance(constraint.right, datetime):
            deadlines.append(constraint.right)
    return min(deadlines, default=None)


def _after(start: datetime, duration: timedelta) -> datetime:
    """``start + duration``, or :data:`LATEST` when that is past the calendar's end."""
    try:
        return start + duration
    except OverflowError:
        return LATEST


def obligations_for(
    duties: tuple[Rule, ...], agreement_id: str, party: str, agreed_at: datetime
) -> tuple[Obligation, ...]:
    return tuple(
        Obligation(
            id=f"{agreement_id}#{duty.path}",
            agreement_id=agreement_id,
            duty_path=duty.path,
            action=duty.action,
            party=duty.assignee or party,
            deadline=deadline_of(duty, agreed_at),
        )
        for duty in duties
    )


def check_deadline(obligation: Obligation, now: datetime) -> Obligation:
    """A pending obligation past its deadline becomes violated; anything else is unchanged."""
    if (
        obligation.state is DutyState.PENDING
        and obligation.deadline is not None
        and now > obligation.deadline
    ):
        return replace(obligation, state=DutyState.VIOLATED, settled_at=now)
    return obligation


def fulfil(obligation: Obligation, evidence: str, verify: Verifier, now: datetime) -> Obligation:
    """Record fulfilment if ``evidence`` is a statement, signed by the obliged party, that it
    did exactly this duty. Raises :class:`DutyError` and changes nothing otherwise."""
    current = check_deadline(obligation, now)
    if current.state is not DutyState.PENDING:
        raise DutyError(f"obligation {obligation.id} is already {current.state.value}")
    if current.recurring:
        raise DutyError(f"{current.action} is met on every use, not once")
    try:
        statement = verify(evidence)
    except Exception as error:  # the verifier's own error types are not ours to know
        raise DutyError(f"evidence not accepted: {error}") from None
    if statement.issuer != current.party:
        raise DutyError(f"evidence is signed by {statement.issuer}, not by {current.party}")
    if statement.claims.get("obligation") != current.id:
        raise DutyError("evidence is about another obligation")
    if statement.claims.get("action") != current.action:
        raise DutyError(f"evidence is not about {current.action}")
    performed = statement.claims.get("performedAt")
    try:
        performed_at = parse_datetime(performed) if isinstance(performed, str) else None
    except ValueError:
        performed_at = None
    if performed_at is None or performed_at > now:
        raise DutyError("evidence needs performedAt: a date-time that is not in the future")
    return replace(current, state=DutyState.FULFILLED, evidence=evidence, settled_at=now)


def violated(obligations: tuple[Obligation, ...], now: datetime) -> tuple[str, ...]:
    """Ids of the obligations that are violated at ``now`` (for ``Context.violated_duties``)."""
    return tuple(o.id for o in obligations if check_deadline(o, now).state is DutyState.VIOLATED)
