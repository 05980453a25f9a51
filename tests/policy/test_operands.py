from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from policy.operands import (
    Grade,
    ValueType,
    Vocabulary,
    coerce,
    format_duration,
    parse_datetime,
    parse_duration,
    region_ancestors,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P30D", timedelta(days=30)),
        ("PT12H", timedelta(hours=12)),
        ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
        ("P2W", timedelta(weeks=2)),
        ("PT0.5S", timedelta(seconds=0.5)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["P1M", "P1Y", "P1Y2D"])
def test_months_and_years_are_refused_with_advice(text: str) -> None:
    with pytest.raises(ValueError, match="no fixed length"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["", "P", "PT", "30D", "P30", "P1DT"])
def test_malformed_durations(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_duration(text)


def test_date_times_need_a_zone() -> None:
    assert parse_datetime("2023-12-31T06:00Z") == datetime(2023, 12, 31, 6, tzinfo=UTC)
    with pytest.raises(ValueError, match="time zone"):
        parse_datetime("2023-12-31T06:00:00")


def test_region_hierarchy() -> None:
    assert region_ancestors("440106") == ("440106", "440100", "440000")
    assert region_ancestors("440100") == ("440100", "440000")
    assert region_ancestors("440000") == ("440000",)


@pytest.mark.parametrize("code", ["44010", "4401066", "990000", "040106", "_:EU"])
def test_bad_region_codes(code: str) -> None:
    with pytest.raises(ValueError, match="administrative division"):
        coerce(ValueType.REGION, code)


@pytest.mark.parametrize(
    ("value_type", "raw", "expected"),
    [
        (ValueType.INTEGER, "3", 3),
        (ValueType.INTEGER, 3, 3),
        (ValueType.INTEGER, 3.0, 3),
        (ValueType.GRADE, "core", Grade.CORE),
        (ValueType.STATUS, "active", "active"),
    ],
)
def test_coercion(value_type: ValueType, raw: object, expected: object) -> None:
    assert coerce(value_type, raw) == expected


@pytest.mark.parametrize(
    ("value_type", "raw"),
    [
        (ValueType.INTEGER, "three"),
        (ValueType.INTEGER, True),
        (ValueType.INTEGER, 3.5),
        (ValueType.DATETIME, 5),
        (ValueType.GRADE, "secret"),
        (ValueType.STATUS, "revoked"),
        (ValueType.TEXT, ""),
        (ValueType.TEXT, None),
        (ValueType.TEXT, "x" * 5000),
    ],
)
def test_coercion_errors(value_type: ValueType, raw: object) -> None:
    with pytest.raises(ValueError, match=r"expected|at most"):
        coerce(value_type, raw)


def test_purpose_taxonomy() -> None:
    vocabulary = Vocabulary()
    assert vocabulary.purpose_is_a("credit-assessment", "financial-services")
    assert vocabulary.purpose_is_a("credit-assessment", "credit-assessment")
    assert not vocabulary.purpose_is_a("financial-services", "credit-assessment")
    assert not vocabulary.purpose_is_a("marketing", "financial-services")


def test_a_cyclic_taxonomy_terminates() -> None:
    vocabulary = Vocabulary(purposes={"a": "b", "b": "a"})
    assert not vocabulary.purpose_is_a("a", "c")
