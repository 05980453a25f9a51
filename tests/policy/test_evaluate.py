from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from policy.errors import PolicyError
from policy.evaluate import Outcome, evaluate
from policy.jsonld import read_policy
from policy.operands import Context, CredentialFacts, Grade, Scope
from tests.policy.policies import BANK, BUREAU, FIRM_LIST, NOW, atom, bank_context, offer

FIRM_POLICY = read_policy(FIRM_LIST)


def decide(document: dict[str, Any], context: Context, scope: Scope = Scope.ACCESS, action: str = "use") -> bool:  # fmt: skip
    return evaluate(read_policy(document), context, scope, action).allowed


# --- the firm list: licensed banks, credit assessment, 30 days, 3 downloads, delete afterwards ---


def test_a_bank_may_use_the_firm_list_and_gets_the_deletion_duty() -> None:
    decision = evaluate(FIRM_POLICY, bank_context(), Scope.ACCESS, "read")
    assert decision.allowed
    assert [duty.action for duty in decision.duties] == ["delete"]
    assert decision.reasons[0].startswith("permission[0] grants read: ")
    assert "count lteq 3: satisfied (actual 1)" in decision.reasons[0]


def test_the_third_download_is_allowed_and_the_fourth_refused() -> None:
    assert evaluate(FIRM_POLICY, bank_context(uses_so_far=2), Scope.ACCESS).allowed
    decision = evaluate(FIRM_POLICY, bank_context(uses_so_far=3), Scope.ACCESS)
    assert not decision.allowed
    assert "count lteq 3: violated (actual 4)" in "\n".join(decision.reasons)


def test_nothing_after_thirty_days() -> None:
    assert evaluate(FIRM_POLICY, bank_context(agreement_start=NOW - timedelta(days=30)), Scope.ACCESS).allowed  # fmt: skip
    decision = evaluate(
        FIRM_POLICY, bank_context(agreement_start=NOW - timedelta(days=30, seconds=1)), Scope.ACCESS
    )
    assert not decision.allowed
    assert "elapsedTime lteq P30D: violated (actual P30DT1S)" in "\n".join(decision.reasons)


def test_another_purpose_is_refused() -> None:
    decision = evaluate(FIRM_POLICY, bank_context(purpose="marketing"), Scope.ACCESS)
    assert not decision.allowed
    assert "purpose isA credit-assessment: violated (actual marketing)" in "\n".join(
        decision.reasons
    )


def test_a_party_without_the_bank_licence_is_refused() -> None:
    context = bank_context(
        credentials=CredentialFacts(membership=True, roles=frozenset({"PublicDataHolder"}))
    )
    assert not evaluate(FIRM_POLICY, context, Scope.ACCESS).allowed


def test_a_broader_purpose_does_not_satisfy_a_narrower_one() -> None:
    assert not evaluate(
        FIRM_POLICY, bank_context(purpose="financial-services"), Scope.ACCESS
    ).allowed


def test_a_narrower_purpose_satisfies_is_a() -> None:
    document = offer(
        {"action": "use", "constraint": [atom("purpose", "isA", "financial-services")]}
    )
    assert decide(document, bank_context(purpose="credit-assessment"))
    assert decide(document, bank_context(purpose="risk-control"))
    assert not decide(document, bank_context(purpose="statistics"))


# --- unknowns: deferred where a scope cannot know, denied where it should ----------------------


def test_catalog_shows_the_offer_when_what_it_cannot_know_is_deferred() -> None:
    decision = evaluate(FIRM_POLICY, bank_context(purpose=None, uses_so_far=None, agreement_start=None), Scope.CATALOG)  # fmt: skip
    assert decision.allowed
    outcomes = {r.text: r.outcome for r in decision.rules[0].constraints}
    assert outcomes == {
        "kexin:role hasPart FinancialInstitution": Outcome.SATISFIED,
        "purpose isA credit-assessment": Outcome.DEFERRED,
        "elapsedTime lteq P30D": Outcome.DEFERRED,
        "count lteq 3": Outcome.DEFERRED,
    }


def test_catalog_hides_the_offer_from_a_party_without_credentials() -> None:
    decision = evaluate(FIRM_POLICY, Context(now=NOW, recipient=BANK), Scope.CATALOG)
    assert not decision.allowed
    assert "kexin:role hasPart FinancialInstitution: no value known" in "\n".join(decision.reasons)


@pytest.mark.parametrize(
    "missing",
    [
        pytest.param({"purpose": None}, id="purpose"),
        pytest.param({"uses_so_far": None}, id="count"),
        pytest.param({"agreement_start": None}, id="elapsed"),
        pytest.param({"credentials": None}, id="credentials"),
    ],
)
def test_an_unresolvable_operand_denies_access(missing: dict[str, Any]) -> None:
    decision = evaluate(FIRM_POLICY, bank_context(**missing), Scope.ACCESS)
    assert not decision.allowed
    assert "no value known, so it does not hold" in "\n".join(decision.reasons)


def test_the_monitor_catches_an_exhausted_count_and_an_expired_agreement() -> None:
    assert evaluate(FIRM_POLICY, bank_context(purpose=None), Scope.MONITOR).allowed
    assert not evaluate(
        FIRM_POLICY, bank_context(purpose=None, uses_so_far=3), Scope.MONITOR
    ).allowed
    assert not evaluate(FIRM_POLICY, bank_context(agreement_start=NOW - timedelta(days=31)), Scope.MONITOR).allowed  # fmt: skip


def test_revoked_membership_is_refused() -> None:
    document = offer({"action": "use", "constraint": [atom("kexin:membership", "eq", "active")]})
    assert decide(document, bank_context())
    assert not decide(document, bank_context(credentials=CredentialFacts(membership=False)))


def test_a_violated_duty_stops_further_use() -> None:
    decision = evaluate(FIRM_POLICY, bank_context(violated_duties=("agreement-1#permission[0].duty[0]",)), Scope.ACCESS)  # fmt: skip
    assert not decision.allowed
    assert "a duty of this agreement was violated" in decision.reasons[-1]


# --- actions, targets, assignees --------------------------------------------------------------


def test_use_covers_read_but_not_distribute() -> None:
    document = offer({"action": "use"})
    assert decide(document, bank_context(), action="read")
    decision = evaluate(read_policy(document), bank_context(), Scope.ACCESS, "distribute")
    assert not decision.allowed
    assert "its action use does not include distribute" in "\n".join(decision.reasons)


def test_a_read_permission_does_not_cover_use() -> None:
    assert not decide(offer({"action": "read"}), bank_context(), action="use")


def test_another_assignee_is_not_granted() -> None:
    document = offer({"action": "use", "assignee": BUREAU})
    assert decide(document, bank_context(recipient=BUREAU))
    assert not decide(document, bank_context())
    assert not decide(document, bank_context(recipient=None))


def test_a_rule_about_another_target_does_not_apply() -> None:
    document = offer({"action": "use", "target": "urn:dataset:a"})
    assert decide(document, bank_context(target="urn:dataset:a"))
    assert not decide(document, bank_context(target="urn:dataset:b"))


def test_two_permissions_are_alternatives() -> None:
    document = offer(
        {"action": "use", "constraint": [atom("purpose", "eq", "statistics")]},
        {"action": "use", "constraint": [atom("purpose", "eq", "credit-assessment")]},
    )
    decision = evaluate(read_policy(document), bank_context(), Scope.ACCESS)
    assert decision.allowed
    assert decision.reasons[0].startswith("permission[1] grants use")


# --- prohibitions and conflicts ---------------------------------------------------------------


def conflicting(strategy: str | None, region: str = "440000") -> dict[str, Any]:
    document = offer(
        {"action": "use"},
        prohibition=[{"action": "read", "constraint": [atom("spatial", "isPartOf", region)]}],
    )
    if strategy is not None:
        document["conflict"] = strategy
    return document


@pytest.mark.parametrize(
    ("strategy", "allowed", "reason"),
    [
        pytest.param(None, False, "the policy is void", id="default-invalid"),
        pytest.param("invalid", False, "the policy is void", id="invalid"),
        pytest.param(
            "prohibit", False, "prohibits read (conflict strategy prohibit)", id="prohibit"
        ),
        pytest.param("perm", True, "overridden by a permission", id="perm"),
    ],
)
def test_conflict_strategies(strategy: str | None, allowed: bool, reason: str) -> None:
    decision = evaluate(read_policy(conflicting(strategy)), bank_context(), Scope.ACCESS, "read")
    assert decision.allowed is allowed
    assert reason in "\n".join(decision.reasons)


def test_a_prohibition_that_does_not_hold_leaves_the_permission() -> None:
    assert decide(conflicting(None, region="310000"), bank_context(), action="read")


def test_an_unresolvable_prohibition_is_taken_to_apply() -> None:
    assert not decide(
        conflicting("prohibit", region="310000"), bank_context(spatial=None), action="read"
    )


def test_a_prohibition_for_an_unknown_recipient_is_taken_to_apply() -> None:
    document = offer(
        {"action": "use"}, prohibition=[{"action": "use", "assignee": BANK}], conflict="prohibit"
    )
    assert not decide(document, bank_context(recipient=None))
    assert decide(document, bank_context(recipient=BUREAU))


# --- operators --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("constraint", "allowed"),
    [
        pytest.param(atom("spatial", "isPartOf", "440100"), True, id="district-in-city"),
        pytest.param(atom("spatial", "isPartOf", "440000"), True, id="district-in-province"),
        pytest.param(atom("spatial", "isPartOf", "310000"), False, id="other-province"),
        pytest.param(
            atom("spatial", "hasPart", "440100"), False, id="district-does-not-hold-its-city"
        ),
        pytest.param(atom("spatial", "hasPart", "440106"), True, id="containment-is-reflexive"),
        pytest.param(atom("kexin:region", "hasPart", "440106"), True, id="city-has-district"),
        pytest.param(atom("spatial", "isAnyOf", ["440106", "310101"]), True, id="any-of"),
        pytest.param(atom("spatial", "isNoneOf", "440106,310101"), False, id="none-of-comma-list"),
        pytest.param(
            atom("kexin:role", "isAllOf", ["FinancialInstitution", "Regulator"]),
            False,
            id="all-of-missing",
        ),
        pytest.param(
            atom("kexin:role", "isAnyOf", ["FinancialInstitution", "Regulator"]),
            True,
            id="role-any-of",
        ),
        pytest.param(atom("kexin:role", "isNoneOf", ["Regulator"]), True, id="role-none-of"),
        pytest.param(atom("kexin:dataGrade", "gteq", "important"), True, id="grade-gteq"),
        pytest.param(atom("kexin:dataGrade", "gteq", "core"), False, id="grade-too-low"),
        pytest.param(
            atom("kexin:dataGrade", "isAnyOf", ["general", "important"]), True, id="grade-any-of"
        ),
        pytest.param(atom("dateTime", "lt", "2026-12-31T00:00:00+08:00"), True, id="before-end"),
        pytest.param(
            atom("dateTime", "gteq", "2026-11-24T17:00:01+08:00"), False, id="not-yet-started"
        ),
        pytest.param(atom("recipient", "eq", BANK), True, id="recipient-eq"),
        pytest.param(atom("recipient", "neq", BANK), False, id="recipient-neq"),
        pytest.param(
            atom("purpose", "isAnyOf", ["credit-assessment", "risk-control"]),
            True,
            id="purpose-any-of",
        ),
        pytest.param(atom("count", "gt", "0"), True, id="count-gt"),
        pytest.param(atom("elapsedTime", "gteq", "P3D"), True, id="elapsed-gteq"),
    ],
)
def test_operators(constraint: dict[str, Any], allowed: bool) -> None:
    assert decide(offer({"action": "use", "constraint": [constraint]}), bank_context()) is allowed


@pytest.mark.parametrize(
    ("logical", "allowed"),
    [
        pytest.param({"and": [atom("count", "lteq", "3"), atom("purpose", "eq", "credit-assessment")]}, True, id="and"),
        pytest.param({"and": [atom("count", "lteq", "3"), atom("purpose", "eq", "statistics")]}, False, id="and-one-fails"),
        pytest.param({"or": [atom("purpose", "eq", "statistics"), atom("count", "lteq", "3")]}, True, id="or"),
        pytest.param({"or": [atom("purpose", "eq", "statistics"), atom("count", "gt", "3")]}, False, id="or-none"),
        pytest.param({"xone": [atom("purpose", "eq", "statistics"), atom("count", "lteq", "3")]}, True, id="xone-one"),
        pytest.param({"xone": [atom("purpose", "eq", "credit-assessment"), atom("count", "lteq", "3")]}, False, id="xone-two"),
        pytest.param({"andSequence": [atom("count", "lteq", "3"), atom("spatial", "isPartOf", "440000")]}, True, id="and-sequence"),
    ],
)  # fmt: skip
def test_logical_constraints(logical: dict[str, Any], allowed: bool) -> None:
    assert decide(offer({"action": "use", "constraint": [logical]}), bank_context()) is allowed


def test_or_with_an_unknown_branch_still_grants_when_another_holds() -> None:
    logical = {"or": [atom("purpose", "eq", "statistics"), atom("count", "lteq", "3")]}
    assert decide(offer({"action": "use", "constraint": [logical]}), bank_context(purpose=None))
    logical = {"or": [atom("purpose", "eq", "statistics"), atom("count", "gt", "3")]}
    assert not decide(offer({"action": "use", "constraint": [logical]}), bank_context(purpose=None))


def test_and_sequence_stops_at_the_first_failure() -> None:
    logical = {
        "andSequence": [atom("count", "gt", "5"), atom("purpose", "eq", "credit-assessment")]
    }
    decision = evaluate(read_policy(offer({"action": "use", "constraint": [logical]})), bank_context(), Scope.ACCESS)  # fmt: skip
    (result,) = decision.rules[0].constraints
    assert len(result.children) == 1
    assert "count gt 5: violated (actual 1)" in "\n".join(decision.reasons)


def test_obligations_of_the_policy_come_with_the_decision() -> None:
    document = offer(
        {"action": "use"},
        obligation=[{"action": "inform", "informedParty": BUREAU, "assignee": BANK}],
    )
    decision = evaluate(read_policy(document), bank_context(), Scope.ACCESS)
    assert [d.action for d in decision.duties] == ["inform"]
    other = evaluate(read_policy(document), bank_context(recipient=BUREAU), Scope.ACCESS)
    assert other.duties == ()


def test_evaluation_is_repeatable() -> None:
    context = bank_context()
    assert evaluate(FIRM_POLICY, context, Scope.ACCESS) == evaluate(
        FIRM_POLICY, replace(context), Scope.ACCESS
    )


def test_grades_order() -> None:
    assert Grade.GENERAL.rank < Grade.IMPORTANT.rank < Grade.CORE.rank


def test_a_prohibition_for_a_collection_of_parties_is_not_passed_over() -> None:
    # Reduced to its @id, the collection is not the bank, so the prohibition would not apply and
    # the permission would grant: ODRL's prohibition is for every member, the bank among them.
    document = {
        "@type": "Offer",
        "permission": [{"action": "use"}],
        "prohibition": [
            {
                "action": "use",
                "assignee": {
                    "@id": "urn:group:banks",
                    "@type": "PartyCollection",
                    "refinement": [atom("kexin:role", "hasPart", "FinancialInstitution")],
                },
            }
        ],
        "conflict": "prohibit",
    }
    with pytest.raises(PolicyError, match="PartyCollection is not supported"):
        decide(document, bank_context())


@pytest.mark.parametrize(
    ("rules", "requested", "allowed"),
    [
        pytest.param({"permission": [{"action": "use"}]}, "write", True, id="use-grants-write"),
        pytest.param({"permission": [{"action": "write"}]}, "modify", True, id="write-grants-modify"),
        pytest.param({"permission": [{"action": "modify"}]}, "write", True, id="modify-grants-write"),
        pytest.param({"permission": [{"action": "write"}]}, "read", False, id="write-is-not-read"),
        pytest.param({"permission": [{"action": "use"}], "prohibition": [{"action": "modify"}], "conflict": "prohibit"}, "write", False, id="modify-prohibited-so-write"),
        pytest.param({"permission": [{"action": "use"}], "prohibition": [{"action": "write"}], "conflict": "prohibit"}, "modify", False, id="write-prohibited-so-modify"),
        pytest.param({"permission": [{"action": "use"}], "prohibition": [{"action": "write"}], "conflict": "prohibit"}, "read", True, id="write-prohibited-read-allowed"),
    ],
)  # fmt: skip
def test_write_means_modify_in_policies_and_requests(
    rules: dict[str, Any], requested: str, allowed: bool
) -> None:
    decision = evaluate(read_policy({"@type": "Offer", **rules}), bank_context(), Scope.ACCESS, requested)  # fmt: skip
    assert decision.allowed is allowed, decision.reasons
    if not allowed and "prohibition" in rules:
        assert "prohibition[0] prohibits modify" in decision.reasons[0], decision.reasons


@pytest.mark.parametrize("operator", ["and", "or", "xone", "andSequence"])
@pytest.mark.parametrize(
    ("uses_so_far", "allowed"), [pytest.param(2, True, id="third-use"), pytest.param(3, False, id="fourth-use")]
)  # fmt: skip
def test_a_logical_constraint_of_one_member_means_that_member(
    operator: str, uses_so_far: int, allowed: bool
) -> None:
    document = offer({"action": "use", "constraint": {operator: [atom("count", "lteq", "3")]}})
    assert decide(document, bank_context(uses_so_far=uses_so_far)) is allowed
    assert decide(offer({"action": "use", "constraint": [atom("count", "lteq", "3")]}), bank_context(uses_so_far=uses_so_far)) is allowed  # fmt: skip


@pytest.mark.parametrize("operator", ["and", "or", "xone", "andSequence"])
def test_a_logical_constraint_of_one_unknown_member_is_not_satisfied(operator: str) -> None:
    document = offer({"action": "use", "constraint": {operator: [atom("purpose", "eq", "research")]}})  # fmt: skip
    assert not decide(document, bank_context(purpose=None))
    assert decide(document, bank_context(), Scope.CATALOG)  # deferred: shown in the catalogue
