"""Matching assets: runs, a floor and a ceiling on the consumer's set size, the output mode."""

from __future__ import annotations

from typing import Any

import pytest

from policy.errors import PolicyError
from policy.evaluate import Outcome, evaluate
from policy.jsonld import read_policy
from policy.lint import lint
from policy.operands import MatchFacts, Scope
from tests.policy.policies import NOW, atom, bank_context, offer

# "The bureau's key enterprises may be matched by banks: 3 runs at most, sets of 1,000 to
# 100,000 identifiers, and the bank learns only how many of its borrowers are listed."
KEY_ENTERPRISES: dict[str, Any] = offer(
    {
        "action": "use",
        "constraint": [
            atom("kexin:role", "hasPart", "FinancialInstitution"),
            atom("kexin:matchRuns", "lteq", "3"),
            atom("kexin:matchSetSize", "gteq", "1000"),
            atom("kexin:matchSetSize", "lteq", "100000"),
            atom("kexin:matchOutput", "eq", "cardinality"),
        ],
    }
)
POLICY = read_policy(KEY_ENTERPRISES)


def run(set_size: int = 50_000, runs_so_far: int = 0, output: str = "cardinality") -> MatchFacts:
    return MatchFacts(set_size=set_size, runs_so_far=runs_so_far, output=output)


def test_a_run_within_the_terms_is_allowed() -> None:
    decision = evaluate(POLICY, bank_context(matching=run()), Scope.ACCESS)
    assert decision.allowed
    assert "kexin:matchRuns lteq 3: satisfied (actual 1)" in decision.reasons[0]
    assert "kexin:matchSetSize gteq 1000: satisfied (actual 50000)" in decision.reasons[0]


def test_the_third_run_is_allowed_and_the_fourth_refused() -> None:
    assert evaluate(POLICY, bank_context(matching=run(runs_so_far=2)), Scope.ACCESS).allowed
    decision = evaluate(POLICY, bank_context(matching=run(runs_so_far=3)), Scope.ACCESS)
    assert not decision.allowed
    assert "kexin:matchRuns lteq 3: violated (actual 4)" in "\n".join(decision.reasons)


@pytest.mark.parametrize(
    ("set_size", "allowed"),
    [
        pytest.param(999, False, id="under-the-floor"),
        pytest.param(1000, True, id="at-the-floor"),
        pytest.param(100_000, True, id="at-the-ceiling"),
        pytest.param(100_001, False, id="over-the-ceiling"),
        pytest.param(1, False, id="a-probe-of-one"),
    ],
)
def test_the_set_size_must_lie_between_floor_and_ceiling(set_size: int, allowed: bool) -> None:
    context = bank_context(matching=run(set_size=set_size))
    assert evaluate(POLICY, context, Scope.ACCESS).allowed is allowed


def test_asking_for_the_intersection_when_only_the_count_is_offered_is_refused() -> None:
    decision = evaluate(POLICY, bank_context(matching=run(output="intersection")), Scope.ACCESS)
    assert not decision.allowed
    assert "kexin:matchOutput eq cardinality: violated (actual intersection)" in "\n".join(
        decision.reasons
    )


def test_either_output_may_be_offered() -> None:
    either = offer({"action": "use", "constraint": [atom("kexin:matchOutput", "isAnyOf", "intersection,cardinality")]})  # fmt: skip
    for output in ("intersection", "cardinality"):
        assert evaluate(read_policy(either), bank_context(matching=run(output=output)), Scope.ACCESS).allowed  # fmt: skip


def test_the_matching_terms_are_deferred_until_a_run_starts() -> None:
    for scope in (Scope.CATALOG, Scope.NEGOTIATION, Scope.TRANSFER):
        decision = evaluate(POLICY, bank_context(), scope)
        assert decision.allowed, scope
        outcomes = {r.outcome for r in decision.rules[0].constraints[1:]}
        assert outcomes == {Outcome.DEFERRED}


def test_without_run_facts_the_access_is_refused() -> None:
    """A plain download of a matching asset: the data plane supplies no run, nothing holds."""
    decision = evaluate(POLICY, bank_context(), Scope.ACCESS)
    assert not decision.allowed
    assert "kexin:matchSetSize gteq 1000: no value known" in "\n".join(decision.reasons)


@pytest.mark.parametrize(
    "constraint",
    [
        pytest.param(atom("kexin:matchOutput", "eq", "everything"), id="unknown-output"),
        pytest.param(atom("kexin:matchOutput", "lt", "cardinality"), id="output-is-not-ordered"),
        pytest.param(atom("kexin:matchSetSize", "eq", "many"), id="size-not-a-number"),
        pytest.param(atom("kexin:matchRuns", "isA", "3"), id="runs-not-a-term"),
    ],
)
def test_ill_typed_matching_terms_are_refused_when_read(constraint: dict[str, Any]) -> None:
    with pytest.raises(PolicyError):
        read_policy(offer({"action": "use", "constraint": [constraint]}))


# --- lint --------------------------------------------------------------------------------------


def codes(document: object) -> list[tuple[str, str]]:
    return [(f.severity.value, f.code) for f in lint(document, NOW)]


def test_the_key_enterprises_policy_is_clean() -> None:
    assert lint(KEY_ENTERPRISES, NOW) == []


@pytest.mark.parametrize(
    "constraints",
    [
        pytest.param([atom("kexin:matchSetSize", "gteq", "1000"), atom("kexin:matchSetSize", "lteq", "100")], id="floor-above-ceiling"),
        pytest.param([atom("kexin:matchSetSize", "gt", "100"), atom("kexin:matchSetSize", "lteq", "100")], id="open-floor-at-ceiling"),
        pytest.param([atom("kexin:matchSetSize", "lt", "1")], id="no-set-is-empty"),
        pytest.param([atom("kexin:matchRuns", "lt", "1")], id="no-run-is-run-zero"),
        pytest.param([atom("kexin:matchOutput", "eq", "intersection"), atom("kexin:matchOutput", "eq", "cardinality")], id="two-outputs"),
    ],
)  # fmt: skip
def test_unsatisfiable_matching_terms(constraints: list[dict[str, Any]]) -> None:
    assert ("error", "unsatisfiable") in codes(offer({"action": "use", "constraint": constraints}))


def without(*names: tuple[str, str]) -> dict[str, Any]:
    kept = [c for c in KEY_ENTERPRISES["permission"][0]["constraint"] if (c["leftOperand"], c["operator"]) not in names]  # fmt: skip
    return offer({"action": "use", "constraint": kept})


@pytest.mark.parametrize(
    ("removed", "code"),
    [
        pytest.param(("kexin:matchSetSize", "gteq"), "matching-no-floor", id="no-floor"),
        pytest.param(("kexin:matchSetSize", "lteq"), "matching-no-ceiling", id="no-ceiling"),
        pytest.param(("kexin:matchRuns", "lteq"), "matching-no-run-limit", id="no-run-limit"),
    ],
)
def test_probing_is_warned_about(removed: tuple[str, str], code: str) -> None:
    assert codes(without(removed)) == [("warning", code)]


def test_count_also_limits_the_runs() -> None:
    policy = without(("kexin:matchRuns", "lteq"))
    policy["permission"][0]["constraint"].append(atom("count", "lteq", "5"))
    assert codes(policy) == []


def test_a_policy_without_matching_terms_gets_no_matching_warnings() -> None:
    assert codes(offer({"action": "use", "constraint": [atom("count", "lteq", "3")]})) == []
