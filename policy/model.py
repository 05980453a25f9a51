"""Typed ODRL 2.2 policies: Set, Offer, Agreement; permissions, prohibitions, obligations, duties;
atomic and logical constraints. Values are typed by their left operand when the policy is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from policy.operands import LeftOperand, Value, render

LOGICAL_OPERATORS: Final = ("and", "or", "xone", "andSequence")
LIST_OPERATORS: Final = frozenset({"isAnyOf", "isAllOf", "isNoneOf"})


class PolicyType(StrEnum):
    SET = "Set"
    OFFER = "Offer"
    AGREEMENT = "Agreement"


class RuleKind(StrEnum):
    PERMISSION = "permission"
    PROHIBITION = "prohibition"
    OBLIGATION = "obligation"
    DUTY = "duty"


class ConflictStrategy(StrEnum):
    """ODRL's odrl:conflict: which wins when a permission and a prohibition both apply."""

    PERM = "perm"
    PROHIBIT = "prohibit"
    INVALID = "invalid"


@dataclass(frozen=True)
class Atomic:
    path: str
    left: LeftOperand
    operator: str
    right: Value | tuple[Value, ...]
    """A tuple for the list operators (isAnyOf, isAllOf, isNoneOf)."""
    unit: str | None = None

    @property
    def text(self) -> str:
        right = (
            "[" + ", ".join(render(v) for v in self.right) + "]"
            if isinstance(self.right, tuple)
            else render(self.right)
        )
        return f"{self.left.name} {self.operator} {right}"


@dataclass(frozen=True)
class Logical:
    path: str
    operator: str
    constraints: tuple[Constraint, ...]

    @property
    def text(self) -> str:
        return f" {self.operator} ".join(f"({c.text})" for c in self.constraints)


Constraint = Atomic | Logical


@dataclass(frozen=True)
class Rule:
    kind: RuleKind
    path: str
    action: str
    constraints: tuple[Constraint, ...] = ()
    duties: tuple[Rule, ...] = ()
    target: str | None = None
    assignee: str | None = None
    assigner: str | None = None
    informed_party: str | None = None
    compensated_party: str | None = None


@dataclass(frozen=True)
class Policy:
    type: PolicyType
    uid: str | None = None
    permissions: tuple[Rule, ...] = ()
    prohibitions: tuple[Rule, ...] = ()
    obligations: tuple[Rule, ...] = ()
    target: str | None = None
    assigner: str | None = None
    assignee: str | None = None
    profile: tuple[str, ...] = ()
    conflict: ConflictStrategy = ConflictStrategy.INVALID
    timestamp: str | None = None

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self.permissions + self.prohibitions + self.obligations
