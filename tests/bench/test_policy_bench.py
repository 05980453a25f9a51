"""The benchmark's inputs stay meaningful: no timing here (bench/ measures, tests check)."""

from __future__ import annotations

from bench.policy_bench import CONTEXT, FIVE_CONSTRAINTS, NOW, hundred_rules
from policy.evaluate import evaluate
from policy.jsonld import read_policy
from policy.lint import lint
from policy.model import Atomic, Logical
from policy.operands import Scope


def test_the_benchmarked_policy_has_five_constraints_one_logical_and_is_allowed() -> None:
    policy = read_policy(FIVE_CONSTRAINTS)
    constraints = policy.permissions[0].constraints
    assert len(constraints) == 5
    assert sum(isinstance(c, Logical) for c in constraints) == 1
    assert sum(isinstance(c, Atomic) for c in constraints) == 4
    assert evaluate(policy, CONTEXT, Scope.ACCESS, "read").allowed


def test_the_linted_policy_has_a_hundred_rules() -> None:
    document = hundred_rules()
    assert len(read_policy(document).rules) == 100
    assert lint(document, NOW) == []
