"""Decisions: ``evaluate(policy, context, scope)`` says allowed or denied, and why.

Semantics (docs/policy.md says them in plain words):

- A permission *grants* the requested action when its action includes it, its target and
  assignee (or the policy's) match, and each of its constraints holds. Several permissions are
  alternatives: one that grants is enough. Constraints inside a rule all have to hold.
- A prohibition *applies* when its action overlaps the request, its target and assignee match,
  and its constraints hold. Fail closed: a prohibition whose constraint cannot be resolved, or
  whose assignee cannot be compared because the recipient is unknown, is taken to apply.
- When both a granting permission and an applying prohibition exist, the policy's conflict
  strategy decides: ``perm`` allows, ``prohibit`` denies, ``invalid`` (the default) makes the
  policy void, which denies.
- A constraint whose operand the scope cannot know is *deferred* (decided in a later scope); a
  constraint whose operand the scope should know but the context does not give is *unresolved*
  and denies.
- A duty of this agreement that was violated denies every further use.

The result carries every rule's and constraint's outcome with the values compared, and the
duties that come with the permission that granted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from policy.actions import action_name, includes, overlap
from policy.model import Atomic, ConflictStrategy, Constraint, Logical, Policy, Rule, RuleKind
from policy.operands import Context, Grade, Scope, Value, region_ancestors, render


class Outcome(StrEnum):
    SATISFIED = "satisfied"
    VIOLATED = "violated"
    UNRESOLVED = "unresolved"
    DEFERRED = "deferred"


@dataclass(frozen=True)
class ConstraintResult:
    path: str
    text: str
    outcome: Outcome
    actual: str | None = None
    """The value the left operand had (None when unresolved, deferred or logical)."""
    children: tuple[ConstraintResult, ...] = ()

    def explain(self) -> str:
        if self.outcome is Outcome.DEFERRED:
            return f"{self.text}: decided later (not known in this scope)"
        if self.outcome is Outcome.UNRESOLVED:
            return f"{self.text}: no value known, so it does not hold"
        if self.children:
            inner = "; ".join(child.explain() for child in self.children)
            return f"{self.text}: {self.outcome} [{inner}]"
        return f"{self.text}: {self.outcome} (actual {self.actual})"


@dataclass(frozen=True)
class RuleResult:
    path: str
    kind: RuleKind
    action: str
    applicable: bool
    outcome: Outcome
    constraints: tuple[ConstraintResult, ...] = ()
    note: str | None = None
    """Why the rule does not apply, when it does not."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    scope: Scope
    action: str
    reasons: tuple[str, ...]
    rules: tuple[RuleResult, ...]
    duties: tuple[Rule, ...] = ()


# --- constraints -------------------------------------------------------------------------------

_ORDER: Final[dict[str, Callable[[int], bool]]] = {
    "eq": lambda c: c == 0,
    "neq": lambda c: c != 0,
    "lt": lambda c: c < 0,
    "lteq": lambda c: c <= 0,
    "gt": lambda c: c > 0,
    "gteq": lambda c: c >= 0,
}


def _cmp(actual: Value, expected: Value) -> int:
    if isinstance(actual, Grade) and isinstance(expected, Grade):
        return (actual.rank > expected.rank) - (actual.rank < expected.rank)
    if isinstance(actual, int) and isinstance(expected, int):
        return (actual > expected) - (actual < expected)
    if isinstance(actual, datetime) and isinstance(expected, datetime):
        return (actual > expected) - (actual < expected)
    if isinstance(actual, timedelta) and isinstance(expected, timedelta):
        return (actual > expected) - (actual < expected)
    return 0 if actual == expected else 1


def holds(constraint: Atomic, actual: Value, context: Context) -> bool:
    """Whether ``actual`` (the left operand's value) satisfies an atomic constraint."""
    operator, expected = constraint.operator, constraint.right
    if isinstance(expected, tuple):
        found = actual if isinstance(actual, frozenset) else frozenset((actual,))
        wanted = frozenset(expected)
        if operator == "isAnyOf":
            return not found.isdisjoint(wanted)
        if operator == "isNoneOf":
            return found.isdisjoint(wanted)
        return wanted <= found  # isAllOf
    if operator in _ORDER:
        return _ORDER[operator](_cmp(actual, expected))
    if operator == "isA":
        return (
            isinstance(actual, str)
            and isinstance(expected, str)
            and (context.vocabulary.purpose_is_a(actual, expected))
        )
    if operator == "isPartOf":
        return isinstance(actual, str) and expected in region_ancestors(actual)
    # hasPart: a set of roles that contains the value, or a region that contains the other
    if isinstance(actual, frozenset):
        return expected in actual
    return isinstance(expected, str) and actual in region_ancestors(expected)


def check(constraint: Constraint, context: Context, scope: Scope) -> ConstraintResult:
    if isinstance(constraint, Logical):
        return _check_logical(constraint, context, scope)
    if scope not in constraint.left.scopes:
        return ConstraintResult(constraint.path, constraint.text, Outcome.DEFERRED)
    actual = constraint.left.resolve(context)
    if actual is None:
        return ConstraintResult(constraint.path, constraint.text, Outcome.UNRESOLVED)
    outcome = Outcome.SATISFIED if holds(constraint, actual, context) else Outcome.VIOLATED
    return ConstraintResult(constraint.path, constraint.text, outcome, render(actual))


def _check_logical(constraint: Logical, context: Context, scope: Scope) -> ConstraintResult:
    results: list[ConstraintResult] = []
    for child in constraint.constraints:
        result = check(child, context, scope)
        results.append(result)
        if constraint.operator == "andSequence" and result.outcome is not Outcome.SATISFIED:
            break  # andSequence: each in order, stopping at the first that does not hold
    outcomes = [r.outcome for r in results]
    if constraint.operator == "or":
        outcome = _any_of(outcomes)
    elif constraint.operator == "xone":
        outcome = _exactly_one(outcomes)
    else:
        outcome = all_of(outcomes)
    return ConstraintResult(constraint.path, constraint.text, outcome, None, tuple(results))


def all_of(outcomes: list[Outcome]) -> Outcome:
    for worst in (Outcome.VIOLATED, Outcome.UNRESOLVED, Outcome.DEFERRED):
        if worst in outcomes:
            return worst
    return Outcome.SATISFIED


def _any_of(outcomes: list[Outcome]) -> Outcome:
    for best in (Outcome.SATISFIED, Outcome.DEFERRED, Outcome.UNRESOLVED):
        if best in outcomes:
            return best
    return Outcome.VIOLATED


def _exactly_one(outcomes: list[Outcome]) -> Outcome:
    satisfied = outcomes.count(Outcome.SATISFIED)
    if satisfied > 1:
        return Outcome.VIOLATED
    for unknown in (Outcome.UNRESOLVED, Outcome.DEFERRED):
        if unknown in outcomes:
            return unknown
    return Outcome.SATISFIED if satisfied == 1 else Outcome.VIOLATED


# --- rules -------------------------------------------------------------------------------------


def _applicability(rule: Rule, policy: Policy, context: Context, action: str) -> str | None:
    """None when the rule is about this request, else why it is not."""
    if rule.kind is RuleKind.PERMISSION and not includes(rule.action, action):
        return f"its action {rule.action} does not include {action}"
    if rule.kind is RuleKind.PROHIBITION and not overlap(rule.action, action):
        return f"its action {rule.action} is unrelated to {action}"
    target = rule.target or policy.target
    if target is not None and context.target is not None and target != context.target:
        return f"it is about {target}, not {context.target}"
    assignee = rule.assignee or policy.assignee
    if assignee is not None:
        if context.recipient is None:
            # Fail closed: a permission for someone we cannot identify does not grant,
            # a prohibition for someone we cannot identify is taken to apply.
            return "the recipient is unknown" if rule.kind is RuleKind.PERMISSION else None
        if assignee != context.recipient:
            return f"it is assigned to {assignee}"
    return None


def _check_rule(
    rule: Rule, policy: Policy, context: Context, scope: Scope, action: str
) -> RuleResult:
    note = _applicability(rule, policy, context, action)
    if note is not None:
        return RuleResult(rule.path, rule.kind, rule.action, False, Outcome.VIOLATED, (), note)
    results = tuple(check(c, context, scope) for c in rule.constraints)
    outcome = all_of([r.outcome for r in results])
    return RuleResult(rule.path, rule.kind, rule.action, True, outcome, results)


def _failures(result: RuleResult) -> list[str]:
    return [r.explain() for r in result.constraints if r.outcome is not Outcome.SATISFIED]


def evaluate(policy: Policy, context: Context, scope: Scope, action: str = "use") -> Decision:
    """Decide whether ``action`` is allowed under ``policy`` in ``scope``, with the reasons.

    A deprecated ODRL name is decided as its equivalent (``write`` as ``modify``), as in a policy.
    """
    action = action_name(action)
    permissions = [_check_rule(r, policy, context, scope, action) for r in policy.permissions]
    prohibitions = [_check_rule(r, policy, context, scope, action) for r in policy.prohibitions]
    granting = [
        (rule, result)
        for rule, result in zip(policy.permissions, permissions, strict=True)
        if result.applicable and result.outcome in (Outcome.SATISFIED, Outcome.DEFERRED)
    ]
    applying = [
        r
        for r in prohibitions
        if r.applicable and r.outcome in (Outcome.SATISFIED, Outcome.UNRESOLVED)
    ]
    results = tuple(permissions + prohibitions)
    reasons: list[str] = []

    if not granting:
        reasons.append(f"no permission grants {action}")
        for result in permissions:
            detail = result.note or "; ".join(_failures(result))
            reasons.append(f"{result.path} ({result.action}): {detail}")
        return Decision(False, scope, action, tuple(reasons), results)

    if applying:
        held = ", ".join(r.path for r in applying)
        if policy.conflict is not ConflictStrategy.PERM:
            if policy.conflict is ConflictStrategy.INVALID:
                reasons.append(
                    f"the policy is void: {granting[0][1].path} grants {action} but {held} "
                    "prohibits it (conflict strategy invalid)"
                )
            else:
                reasons.append(f"{held} prohibits {action} (conflict strategy prohibit)")
            for result in applying:
                detail = "; ".join(r.explain() for r in result.constraints) or "no constraints"
                reasons.append(f"{result.path} ({result.action}): {detail}")
            return Decision(False, scope, action, tuple(reasons), results)
        reasons.append(f"{held} is overridden by a permission (conflict strategy perm)")

    if context.violated_duties and scope in (Scope.TRANSFER, Scope.ACCESS, Scope.MONITOR):
        reasons.append(
            "a duty of this agreement was violated: " + ", ".join(context.violated_duties)
        )
        return Decision(False, scope, action, tuple(reasons), results)

    rule, result = granting[0]
    explained = "; ".join(r.explain() for r in result.constraints) or "no constraints"
    reasons.insert(0, f"{result.path} grants {action}: {explained}")
    duties = rule.duties + tuple(
        o
        for o in policy.obligations
        if (o.assignee or policy.assignee) in (None, context.recipient)
    )
    return Decision(True, scope, action, tuple(reasons), results, duties)
