from __future__ import annotations

from typing import Any

import pytest

from policy.lint import Finding, Severity, lint
from tests.policy.policies import BANK, FIRM_LIST, NOW, atom, offer


def codes(document: object) -> list[tuple[str, str, str]]:
    return [(f.severity.value, f.code, f.path) for f in lint(document, NOW)]


def test_the_firm_list_is_clean() -> None:
    assert lint(FIRM_LIST, NOW) == []


def test_unreadable_policies_are_reported_not_raised() -> None:
    findings = lint(offer({"action": "use", "constraint": [atom("weather", "eq", "x")]}), NOW)
    assert findings == [
        Finding(
            Severity.ERROR,
            "invalid",
            "permission[0].constraint[0].leftOperand",
            findings[0].message,
        )
    ]
    assert "unknown left operand 'weather'" in findings[0].message


def test_a_date_compared_to_a_number_is_a_type_error() -> None:
    (finding,) = lint(offer({"action": "use", "constraint": [atom("dateTime", "lt", "5")]}), NOW)
    assert finding.code == "invalid"
    assert "ISO 8601 date-time" in finding.message


@pytest.mark.parametrize(
    "constraints",
    [
        pytest.param([atom("count", "lt", "5"), atom("count", "gt", "10")], id="lt5-and-gt10"),
        pytest.param([{"and": [atom("count", "lt", "5"), atom("count", "gt", "10")]}], id="nested-and"),
        pytest.param([atom("count", "lt", "1")], id="count-below-one"),
        pytest.param([atom("elapsedTime", "lt", "P0D")], id="negative-elapsed"),
        pytest.param([atom("purpose", "eq", "research"), atom("purpose", "eq", "statistics")], id="two-eq"),
        pytest.param([atom("count", "gt", "3"), atom("count", "lteq", "3")], id="touching-open"),
        pytest.param([atom("kexin:dataGrade", "gt", "core")], id="nothing-above-core"),
        pytest.param([atom("count", "eq", "2"), atom("count", "gt", "2")], id="eq-outside"),
    ],
)  # fmt: skip
def test_unsatisfiable_constraints(constraints: list[dict[str, Any]]) -> None:
    assert codes(offer({"action": "use", "constraint": constraints})) == [
        ("error", "unsatisfiable", "permission[0]")
    ]


def test_constraints_under_or_are_not_conjoined() -> None:
    either = {"or": [atom("count", "lt", "5"), atom("count", "gt", "10")]}
    assert codes(offer({"action": "use", "constraint": [either]})) == []


def test_satisfiable_ranges_pass() -> None:
    document = offer({"action": "use", "constraint": [atom("count", "gteq", "3"), atom("count", "lteq", "3")]})  # fmt: skip
    assert codes(document) == []


def test_an_end_date_in_the_past() -> None:
    document = offer({"action": "use", "constraint": [atom("dateTime", "lteq", "2025-01-01T00:00:00Z")]})  # fmt: skip
    (finding,) = lint(document, NOW)
    assert (finding.code, finding.path) == ("expired", "permission[0]")
    assert "2025-01-01T00:00:00Z" in finding.message


def test_an_unconditional_conflict_is_an_error_and_a_conditional_one_a_warning() -> None:
    unconditional = offer({"action": "use"}, prohibition=[{"action": "read"}])
    assert codes(unconditional) == [("error", "conflict", "prohibition[0]")]
    conditional = offer(
        {"action": "use"},
        prohibition=[{"action": "read", "constraint": [atom("spatial", "isPartOf", "310000")]}],
    )
    assert codes(conditional) == [("warning", "conflict", "prohibition[0]")]
    assert codes({**conditional, "conflict": "perm"}) == []


def test_unrelated_prohibitions_do_not_conflict() -> None:
    assert codes(offer({"action": "use"}, prohibition=[{"action": "distribute"}])) == []
    assigned = offer({"action": "use", "assignee": BANK}, prohibition=[{"action": "use", "assignee": "did:web:x"}])  # fmt: skip
    assert codes(assigned) == []


@pytest.mark.parametrize(
    ("duty", "expected"),
    [
        pytest.param({"action": "read"}, [("error", "unfulfillable-duty", "permission[0].duty[0]")], id="not-a-duty"),
        pytest.param({"action": "inform"}, [("error", "unfulfillable-duty", "permission[0].duty[0]")], id="inform-nobody"),
        pytest.param({"action": "compensate", "constraint": [atom("elapsedTime", "lteq", "P7D")]}, [("error", "unfulfillable-duty", "permission[0].duty[0]")], id="compensate-nobody"),
        pytest.param({"action": "delete"}, [("warning", "no-deadline", "permission[0].duty[0]")], id="delete-without-deadline"),
        pytest.param({"action": "delete", "constraint": [atom("purpose", "eq", "research")]}, [("error", "unfulfillable-duty", "permission[0].duty[0].constraint[0]"), ("warning", "no-deadline", "permission[0].duty[0]")], id="constraint-not-a-deadline"),
        pytest.param({"action": "delete", "constraint": [atom("elapsedTime", "gt", "P7D")]}, [("error", "unfulfillable-duty", "permission[0].duty[0].constraint[0]")], id="gt-is-no-deadline"),
        pytest.param({"action": "delete", "constraint": [atom("dateTime", "lteq", "2025-01-01T00:00:00Z")]}, [("error", "expired", "permission[0].duty[0]")], id="deadline-passed"),
        pytest.param({"action": "inform", "informedParty": BANK}, [], id="inform-ok"),
        pytest.param({"action": "kexin:log"}, [], id="log-ok"),
    ],
)  # fmt: skip
def test_duties_no_one_can_fulfil(
    duty: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    assert codes(offer({"action": "use", "duty": [duty]})) == expected


def test_a_policy_without_permissions_grants_nothing() -> None:
    assert codes({"@type": "Set", "prohibition": [{"action": "distribute"}]}) == [
        ("warning", "grants-nothing", "")
    ]


def test_findings_read_as_sentences() -> None:
    (finding,) = lint(offer({"action": "use", "duty": [{"action": "delete"}]}), NOW)
    assert str(finding) == (
        "warning no-deadline at permission[0].duty[0]: delete has no deadline, so it can never be "
        "found violated; add e.g. elapsedTime lteq P30D"
    )


@pytest.mark.parametrize(
    "constraints",
    [
        pytest.param([atom("dateTime", "gt", "9999-01-01T00:00:00.000001Z"), atom("dateTime", "lt", "9999-01-01T00:00:00.000003Z")], id="microseconds-in-9999"),
        pytest.param([atom("elapsedTime", "gt", "P3649999DT0.000001S"), atom("elapsedTime", "lt", "P3649999DT0.000003S")], id="microseconds-of-a-long-duration"),
    ],
)  # fmt: skip
def test_bounds_are_compared_exactly(constraints: list[dict[str, Any]]) -> None:
    # One value lies between each pair; a float would have merged the two bounds into one.
    assert codes(offer({"action": "use", "constraint": constraints})) == []


def test_a_one_member_and_is_linted_as_its_member() -> None:
    lonely = {"and": [atom("count", "lt", "1")]}
    assert codes(offer({"action": "use", "constraint": [lonely]})) == [
        ("error", "unsatisfiable", "permission[0]")
    ]


def test_a_purpose_the_vocabulary_does_not_know_is_a_warning() -> None:
    """A misspelt purpose (or a deployment's own one the settings do not give) matches no
    narrower purpose: warned, wherever the purpose is named (eq, isA, a list)."""
    from policy.operands import Vocabulary

    typo = offer({"action": "use", "constraint": [atom("purpose", "eq", "credit-asessment")]})
    assert codes(typo) == [("warning", "unknown-purpose", "permission[0].constraint[0]")]
    listed = offer(
        {"action": "use", "constraint": [atom("purpose", "isAnyOf", ["statistics", "tax-audit"])]}
    )
    [finding] = lint(listed, NOW)
    assert (finding.code, "'tax-audit'" in finding.message) == ("unknown-purpose", True)
    known = offer({"action": "use", "constraint": [atom("purpose", "isA", "financial-services")]})
    assert lint(known, NOW) == []
    deployment = Vocabulary.extended({"tax-audit": "regulatory-supervision"})
    assert lint(listed, NOW, deployment) == []
    assert deployment.purpose_is_a("tax-audit", "public-administration")
    assert not Vocabulary().knows("tax-audit")


def test_the_shipped_purposes_are_a_tree_of_known_purposes() -> None:
    from policy.operands import default_purposes

    purposes = default_purposes()
    assert purposes["credit-assessment"] == "financial-services"
    assert all(broader is None or broader in purposes for broader in purposes.values())
