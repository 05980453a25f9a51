"""Every value a policy holds is representable everywhere it goes (issue 13, finding 2).

A right operand that cannot be represented (a duration longer than ``timedelta`` allows, a
date-time that leaves the years 1 to 9999 once in UTC, a number of 400 digits) is a
:class:`PolicyError` when the policy is read; the largest values that are read go through
evaluation, lint, writing, the agreement hashes and the duty clock without an overflow.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from policy.agreement import canonical, policy_hash, terms_hash
from policy.duties import LATEST, deadline_of, obligations_for
from policy.errors import PolicyError
from policy.evaluate import evaluate
from policy.jsonld import read_policy, write_policy
from policy.lint import lint
from policy.operands import (
    MAX_DURATION,
    MAX_INTEGER,
    Scope,
    format_duration,
    parse_datetime,
    parse_duration,
    render,
)
from tests.policy.policies import BANK, NOW, atom, bank_context, offer


def constrained(*constraints: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return offer({"action": "use", "constraint": list(constraints)}, **extra)


def issues_of(document: object) -> list[str]:
    with pytest.raises(PolicyError) as raised:
        read_policy(document)
    return [str(issue) for issue in raised.value.issues]


WHERE = "permission[0].constraint[0].rightOperand"


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        pytest.param("elapsedTime", "P1000000000D", "longer than P3650000D", id="days-beyond-timedelta"),
        pytest.param("elapsedTime", "P3650001D", "longer than P3650000D", id="days-beyond-the-limit"),
        pytest.param("elapsedTime", "P999999999W", "longer than P3650000D", id="weeks"),
        pytest.param("elapsedTime", "PT" + "9" * 400 + "S", "longer than P3650000D", id="seconds-of-400-digits"),
        pytest.param("elapsedTime", "P1DT" + "9" * 30 + "H", "longer than P3650000D", id="hours"),
        pytest.param("dateTime", "9999-12-31T23:59:59-14:00", "outside the years 1 to 9999", id="after-9999-in-utc"),
        pytest.param("dateTime", "0001-01-01T00:00:00+14:00", "outside the years 1 to 9999", id="before-year-1-in-utc"),
        pytest.param("count", 10**400, "at most 999,999,999,999,999,999", id="integer-of-400-digits"),
        pytest.param("count", -(10**18), "at most 999,999,999,999,999,999", id="negative-integer"),
        pytest.param("count", 1e308, "at most 999,999,999,999,999,999", id="huge-float"),
        pytest.param("count", float("inf"), "expected a whole number", id="infinity"),
        pytest.param("count", float("nan"), "expected a whole number", id="nan"),
        pytest.param("count", {"@value": 10**19, "@type": "xsd:integer"}, "at most", id="value-object"),
    ],
)  # fmt: skip
def test_values_that_cannot_be_represented_are_refused(
    left: str, right: object, expected: str
) -> None:
    found = issues_of(constrained(atom(left, "lteq", right)))
    assert len(found) == 1, found
    assert found[0].startswith(f"{WHERE}: "), found
    assert expected in found[0], found


def test_lint_reports_them_instead_of_raising() -> None:
    document = constrained(atom("elapsedTime", "lteq", "P1000000000D"))
    (finding,) = lint(document, NOW)
    assert (finding.code, finding.path) == ("invalid", WHERE)


LARGEST: dict[str, Any] = offer(
    {
        "action": "use",
        "constraint": [
            atom("elapsedTime", "lteq", format_duration(MAX_DURATION)),
            atom("dateTime", "lteq", "9999-12-31T09:59:59.999999-14:00"),
            atom("dateTime", "gt", "0001-01-01T14:00:00+14:00"),
            atom("count", "lteq", MAX_INTEGER),
            atom("count", "gt", -MAX_INTEGER),
        ],
        "duty": [
            {
                "action": "delete",
                "constraint": [atom("elapsedTime", "lteq", format_duration(MAX_DURATION))],
            }
        ],
    },
    timestamp="9999-12-31T23:59:59Z",
)


def test_the_largest_values_are_read_written_and_hashed() -> None:
    policy = read_policy(LARGEST)
    written = write_policy(policy)
    constraints = written["permission"][0]["constraint"]
    assert [c["rightOperand"] for c in constraints] == [
        "P3650000D",
        "9999-12-31T23:59:59.999999Z",
        "0001-01-01T00:00:00Z",
        "999999999999999999",
        "-999999999999999999",
    ]
    assert read_policy(written) == policy
    assert canonical(policy) == canonical(read_policy(written))
    assert policy_hash(policy).startswith("sha256:")
    assert terms_hash(policy).startswith("sha256:")


@pytest.mark.parametrize(
    "context",
    [
        pytest.param(bank_context(), id="today"),
        pytest.param(bank_context(agreement_start=datetime.min.replace(tzinfo=UTC)), id="agreed-in-year-1"),
        pytest.param(bank_context(now=datetime.max.replace(tzinfo=UTC), agreement_start=datetime.min.replace(tzinfo=UTC)), id="the-whole-calendar"),
        pytest.param(bank_context(now=datetime.min.replace(tzinfo=UTC), agreement_start=datetime.max.replace(tzinfo=UTC)), id="agreed-after-now"),
        pytest.param(bank_context(uses_so_far=MAX_INTEGER), id="uses-at-the-limit"),
    ],
)  # fmt: skip
def test_the_largest_values_are_evaluated_in_every_scope(context: Any) -> None:
    policy = read_policy(LARGEST)
    for scope in Scope:
        decision = evaluate(policy, context, scope)
        assert decision.reasons


def test_the_largest_values_are_linted() -> None:
    assert lint(LARGEST, NOW) == []


def test_a_deadline_beyond_the_calendar_is_the_last_instant() -> None:
    (duty,) = read_policy(LARGEST).permissions[0].duties
    assert deadline_of(duty, NOW) == LATEST
    (obligation,) = obligations_for((duty,), "urn:agreement:1", BANK, NOW)
    assert obligation.deadline == LATEST
    first = datetime.min.replace(tzinfo=UTC)
    assert deadline_of(duty, first) == first + MAX_DURATION


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P3650000D", timedelta(days=3_650_000)),
        ("PT0.000001S", timedelta(microseconds=1)),
        ("PT1.1S", timedelta(seconds=1, microseconds=100_000)),
        ("P3649999DT23H59M59.999999S", MAX_DURATION - timedelta(microseconds=1)),
    ],
)
def test_durations_are_exact_to_the_microsecond(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert format_duration(expected) == text


def test_negative_durations_are_rendered_with_a_sign() -> None:
    # Elapsed time before the agreement (a clock behind), as an explanation shows it.
    assert format_duration(timedelta(seconds=-1.5)) == "-PT1.5S"
    assert format_duration(timedelta.min) == "-P999999999D"
    assert format_duration(timedelta.max) == "P999999999DT23H59M59.999999S"


def test_date_times_are_read_in_utc() -> None:
    assert parse_datetime("2026-11-24T17:00:00+08:00") == NOW
    assert parse_datetime("2026-11-24T17:00:00+08:00").tzinfo is UTC


def test_a_clock_at_the_end_of_the_calendar_is_rendered() -> None:
    # A caller's clock may be anywhere; one that is after 9999 in UTC is rendered as it is.
    edge = datetime.max.replace(tzinfo=timezone(timedelta(hours=-5)))
    assert render(datetime(9999, 12, 31, 23, 0, tzinfo=UTC)) == "9999-12-31T23:00:00Z"
    assert render(datetime.min.replace(tzinfo=UTC)) == "0001-01-01T00:00:00Z"
    assert render(edge) == "9999-12-31T23:59:59.999999-05:00"


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        pytest.param(20261124, "timestamp: expected a date-time", id="a-number"),
        pytest.param("yesterday", "timestamp: expected a date-time", id="not-a-date"),
        pytest.param("9" * 5000, "timestamp: expected a date-time", id="long"),
    ],
)
def test_a_timestamp_that_is_not_a_date_time_is_refused(timestamp: object, expected: str) -> None:
    found = issues_of(constrained(atom("count", "lteq", "3"), timestamp=timestamp))
    assert any(issue.startswith(expected) for issue in found), found
