"""Lint a policy before it is offered: every finding says where, what, and what to do.

Checks: the policy can be read at all (unknown operands and operators, type errors such as a
date compared to a number, bounds); constraints that can never hold (an end date in the past,
``count lt 5`` with ``count gt 10``, two different ``eq`` values); permissions and prohibitions
that collide; duties nobody can fulfil (an action that is not a duty, an ``inform`` without
anyone to inform, a deadline already past or missing); matching permissions that let a consumer
probe (no floor or no ceiling on its set size, no limit on runs); a purpose the vocabulary does
not know (a typo, or a deployment's own purpose not given in its settings), which no declared
purpose but itself can ever match.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from policy.actions import DUTY_ACTIONS, overlap
from policy.errors import PolicyError
from policy.jsonld import read_policy
from policy.model import Atomic, ConflictStrategy, Constraint, Policy, Rule, RuleKind
from policy.operands import (
    MATCH_OPERANDS,
    Grade,
    Value,
    ValueType,
    Vocabulary,
    regions,
    render,
)

DEADLINE_OPERANDS: Final = frozenset({"elapsedTime", "dateTime"})


class Severity(StrEnum):
    ERROR = "error"
    """The policy does not do what it says; do not offer it."""
    WARNING = "warning"
    """Probably not what was meant."""


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity} {self.code} at {self.path or '(policy)'}: {self.message}"


def lint(document: object, now: datetime, vocabulary: Vocabulary | None = None) -> list[Finding]:
    """Lint a policy given as parsed JSON (or an already read :class:`Policy`); purposes are
    checked against ``vocabulary`` (default: Kexin's own, ``policy/purposes.json``)."""
    if isinstance(document, Policy):
        policy = document
    else:
        try:
            policy = read_policy(document)
        except PolicyError as error:
            return [Finding(Severity.ERROR, "invalid", i.path, i.message) for i in error.issues]
    findings: list[Finding] = []
    for rule in policy.rules:
        findings += _unsatisfiable(rule, now)
        findings += _matching(rule)
        for duty in rule.duties:
            findings += _duty(duty, now)
            findings += _unsatisfiable(duty, now)
    for obligation in policy.obligations:
        findings += _duty(obligation, now)
    findings += _purposes(policy, vocabulary or Vocabulary())
    findings += _regions(policy)
    findings += _conflicts(policy)
    if not policy.permissions:
        findings.append(
            Finding(Severity.WARNING, "grants-nothing", "", "no permission: nothing can be used")
        )
    return findings


# --- constraints that can never hold -----------------------------------------------------------


def _atoms(constraints: tuple[Constraint, ...]) -> Iterator[Atomic]:
    """Every atomic constraint, however nested."""
    for constraint in constraints:
        if isinstance(constraint, Atomic):
            yield constraint
        else:
            yield from _atoms(constraint.constraints)


def _texts(policy: Policy, wanted: Callable[[Atomic], bool]) -> Iterator[tuple[Atomic, str]]:
    """Each text value of the ``wanted`` constraints, in every rule, duty and obligation."""
    for rule in (*policy.rules, *(d for r in policy.rules for d in r.duties), *policy.obligations):
        for atom in _atoms(rule.constraints):
            if wanted(atom):
                given = atom.right if isinstance(atom.right, tuple) else (atom.right,)
                yield from ((atom, value) for value in given if isinstance(value, str))


def _purposes(policy: Policy, vocabulary: Vocabulary) -> list[Finding]:
    return [
        Finding(
            Severity.WARNING,
            "unknown-purpose",
            atom.path,
            f"{purpose!r} is not a known purpose: only a request declaring exactly it matches, "
            "none narrower; check the spelling, or add it to the deployment's purposes "
            "(CONNECTOR_PURPOSES)",
        )
        for atom, purpose in _texts(policy, lambda atom: atom.left.name == "purpose")
        if not vocabulary.knows(purpose)
    ]


def _regions(policy: Policy) -> list[Finding]:
    """A region code of GB/T 2260's form that today's list does not hold (abolished, or never
    given): no asset can be in it."""
    return [
        Finding(
            Severity.WARNING,
            "unknown-region",
            atom.path,
            f"{code} is not on today's list of divisions (GB/T 2260): abolished or never given, "
            "so no asset's region is in it",
        )
        for atom, code in _texts(policy, lambda atom: atom.left.value_type is ValueType.REGION)
        if code not in regions()
    ]


def _conjuncts(constraints: tuple[Constraint, ...]) -> Iterator[Atomic]:
    """The atomic constraints that must all hold (through and / andSequence)."""
    for constraint in constraints:
        if isinstance(constraint, Atomic):
            yield constraint
        elif constraint.operator in ("and", "andSequence"):
            yield from _conjuncts(constraint.constraints)


_FLOOR: Final[dict[str, float]] = {
    "count": 1,
    "elapsedTime": 0,
    "kexin:matchRuns": 1,
    "kexin:matchSetSize": 1,
}
"""Values an operand can never go below: count includes the use being decided, a run counts
itself and its set holds at least one item."""


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def _number(value: Value) -> int | None:
    """Ordered values as whole numbers (times in microseconds), so that bounds of any ordered
    type compare alike, and exactly: a float would merge bounds a microsecond apart."""
    if isinstance(value, Grade):
        return value.rank
    if isinstance(value, datetime):
        return (value - _EPOCH) // _MICROSECOND
    if isinstance(value, timedelta):
        return value // _MICROSECOND
    if isinstance(value, int):
        return value
    return None


@dataclass
class _Interval:
    low: float = float("-inf")
    low_open: bool = False
    high: float = float("inf")
    high_open: bool = False

    def raise_low(self, value: float, *, open_: bool) -> None:
        if value > self.low or (value == self.low and open_):
            self.low, self.low_open = value, open_

    def lower_high(self, value: float, *, open_: bool) -> None:
        if value < self.high or (value == self.high and open_):
            self.high, self.high_open = value, open_

    def empty(self) -> bool:
        return self.low > self.high or (self.low == self.high and (self.low_open or self.high_open))


def _unsatisfiable(rule: Rule, now: datetime) -> list[Finding]:
    findings: list[Finding] = []
    by_operand: dict[str, list[Atomic]] = defaultdict(list)
    for atom in _conjuncts(rule.constraints):
        by_operand[atom.left.name].append(atom)
    for name, atoms in by_operand.items():
        interval = _Interval()
        if name in _FLOOR:
            interval.raise_low(_FLOOR[name], open_=False)
        if atoms[0].left.value_type is ValueType.GRADE:
            interval.raise_low(Grade.GENERAL.rank, open_=False)
            interval.lower_high(Grade.CORE.rank, open_=False)
        equal: set[Value] = set()
        for atom in atoms:
            if isinstance(atom.right, tuple):
                continue
            if atom.operator == "eq":
                equal.add(atom.right)
            number = _number(atom.right)
            if number is None:
                continue
            if atom.operator in ("lt", "lteq", "eq"):
                interval.lower_high(number, open_=atom.operator == "lt")
            if atom.operator in ("gt", "gteq", "eq"):
                interval.raise_low(number, open_=atom.operator == "gt")
        texts = " and ".join(atom.text for atom in atoms)
        if len(equal) > 1 or interval.empty():
            findings.append(
                Finding(
                    Severity.ERROR, "unsatisfiable", rule.path,
                    f"{texts} can never all hold, so this {rule.kind.value} never applies",
                )
            )  # fmt: skip
        elif name == "dateTime" and interval.high <= (now - _EPOCH) // _MICROSECOND:
            ends = _EPOCH + int(interval.high) * _MICROSECOND
            findings.append(
                Finding(
                    Severity.ERROR, "expired", rule.path,
                    f"{texts}: that time ({render(ends)}) has passed, so this "
                    f"{rule.kind.value} never applies again; set a later date",
                )
            )  # fmt: skip
    return findings


# --- matching ------------------------------------------------------------------------------------


def _bounded(atoms: list[Atomic], name: str, operators: frozenset[str]) -> bool:
    return any(a.left.name == name and a.operator in operators for a in atoms)


_LOWER: Final = frozenset({"gt", "gteq", "eq"})
_UPPER: Final = frozenset({"lt", "lteq", "eq"})


def _matching(rule: Rule) -> list[Finding]:
    """A permission to run a matching (one that names a matching operand) should stop the
    consumer from probing: a set of one item tells whether that one identifier is listed, an
    unbounded set or unlimited runs let it enumerate an identifier space."""
    atoms = list(_conjuncts(rule.constraints))
    if rule.kind is not RuleKind.PERMISSION or not any(
        a.left.name in MATCH_OPERANDS for a in atoms
    ):
        return []
    findings: list[Finding] = []
    if not _bounded(atoms, "kexin:matchSetSize", _LOWER):
        findings.append(
            Finding(
                Severity.WARNING, "matching-no-floor", rule.path,
                "no floor on kexin:matchSetSize: a consumer may probe with tiny sets (one item "
                "tells whether that identifier is listed); add e.g. kexin:matchSetSize gteq 1000",
            )
        )  # fmt: skip
    if not _bounded(atoms, "kexin:matchSetSize", _UPPER):
        findings.append(
            Finding(
                Severity.WARNING, "matching-no-ceiling", rule.path,
                "no ceiling on kexin:matchSetSize: a consumer may match sets as large as it "
                "likes and enumerate identifiers; add e.g. kexin:matchSetSize lteq 100000",
            )
        )  # fmt: skip
    if not (_bounded(atoms, "kexin:matchRuns", _UPPER) or _bounded(atoms, "count", _UPPER)):
        findings.append(
            Finding(
                Severity.WARNING, "matching-no-run-limit", rule.path,
                "no limit on the number of runs: add e.g. kexin:matchRuns lteq 3",
            )
        )  # fmt: skip
    return findings


# --- duties ------------------------------------------------------------------------------------


def _duty(duty: Rule, now: datetime) -> list[Finding]:
    findings: list[Finding] = []
    if duty.action not in DUTY_ACTIONS:
        findings.append(
            Finding(
                Severity.ERROR, "unfulfillable-duty", duty.path,
                f"{duty.action} is not something a party can be obliged to do; duties are "
                f"{', '.join(sorted(DUTY_ACTIONS))}",
            )
        )  # fmt: skip
    if duty.action == "inform" and duty.informed_party is None:
        findings.append(
            Finding(
                Severity.ERROR, "unfulfillable-duty", duty.path,
                "inform needs an informedParty: whom to inform",
            )
        )  # fmt: skip
    if duty.action == "compensate" and duty.compensated_party is None:
        findings.append(
            Finding(
                Severity.ERROR, "unfulfillable-duty", duty.path,
                "compensate needs a compensatedParty: whom to pay",
            )
        )  # fmt: skip
    deadlines = [a for a in _conjuncts(duty.constraints) if a.left.name in DEADLINE_OPERANDS]
    others = [c for c in duty.constraints if not (isinstance(c, Atomic) and c in deadlines)]
    for constraint in others:
        findings.append(
            Finding(
                Severity.ERROR, "unfulfillable-duty", constraint.path,
                "a duty's constraints set its deadline: use elapsedTime or dateTime with lt or "
                f"lteq; {constraint.text} cannot be tracked",
            )
        )  # fmt: skip
    for atom in deadlines:
        if atom.operator not in ("lt", "lteq"):
            findings.append(
                Finding(
                    Severity.ERROR, "unfulfillable-duty", atom.path,
                    f"{atom.text} is not a deadline: use lt or lteq",
                )
            )  # fmt: skip
    if duty.action in ("delete", "compensate") and not deadlines:
        findings.append(
            Finding(
                Severity.WARNING, "no-deadline", duty.path,
                f"{duty.action} has no deadline, so it can never be found violated; add e.g. "
                "elapsedTime lteq P30D",
            )
        )  # fmt: skip
    return findings


# --- permission / prohibition conflicts --------------------------------------------------------


def _conflicts(policy: Policy) -> list[Finding]:
    findings: list[Finding] = []
    if policy.conflict is ConflictStrategy.PERM:
        return findings
    for permission in policy.permissions:
        for prohibition in policy.prohibitions:
            if not overlap(permission.action, prohibition.action):
                continue
            targets = {permission.target or policy.target, prohibition.target or policy.target}
            assignees = {
                permission.assignee or policy.assignee,
                prohibition.assignee or policy.assignee,
            }
            if len(targets - {None}) > 1 or len(assignees - {None}) > 1:
                continue
            unconditional = not permission.constraints and not prohibition.constraints
            what = (
                "the policy is void whenever both apply"
                if policy.conflict is ConflictStrategy.INVALID
                else "the prohibition wins whenever both apply"
            )
            findings.append(
                Finding(
                    Severity.ERROR if unconditional else Severity.WARNING, "conflict",
                    prohibition.path,
                    f"{prohibition.kind.value} of {prohibition.action} collides with "
                    f"{permission.path} ({permission.action}): {what} (conflict strategy "
                    f"{policy.conflict.value}); narrow one of them, or set conflict to perm or "
                    "prohibit",
                )
            )  # fmt: skip
    return findings
