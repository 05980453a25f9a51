"""Normalisation vectors: the same identifier typed two ways is one item; an invalid one is
reported with its row and never passed on."""

from __future__ import annotations

from pathlib import Path

import pytest

from matching.errors import MatchingError
from matching.identifiers import (
    Kind,
    normalise,
    normalise_id_number,
    normalise_mobile,
    normalise_uscc,
    read_column,
)


def wide(text: str) -> str:
    """The full-width forms of ASCII characters, as typed with a Chinese input method."""
    return "".join(chr(ord(c) + 0xFEE0) for c in text)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        pytest.param("91350100M000100Y43", "91350100M000100Y43", id="canonical"),
        pytest.param("91350100m000100y43", "91350100M000100Y43", id="lower-case"),
        pytest.param(" 9135 0100-M000 100Y43 ", "91350100M000100Y43", id="spaces-and-hyphens"),
        pytest.param(wide("91350100M000100Y43"), "91350100M000100Y43", id="full-width"),
        pytest.param(
            "9144\u30000300\uff0d708461136t",
            "91440300708461136T",
            id="ideographic-space-full-width-hyphen",
        ),
    ],
)
def test_credit_codes_are_normalised(typed: str, expected: str) -> None:
    assert normalise_uscc(typed) == expected


@pytest.mark.parametrize(
    "typed",
    [
        pytest.param("91350100M000100Y44", id="wrong-check-character"),
        pytest.param("91350100M000100Y4", id="seventeen"),
        pytest.param("91350100M000100Y433", id="nineteen"),
        pytest.param("91350100I000100Y43", id="letter-i-not-in-the-alphabet"),
        pytest.param("91350100M000100Y4_", id="punctuation"),
        pytest.param("", id="empty"),
    ],
)
def test_invalid_credit_codes_are_refused(typed: str) -> None:
    with pytest.raises(ValueError, match=r"credit code|check character"):
        normalise_uscc(typed)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        pytest.param("11010519491231002X", "11010519491231002X", id="canonical"),
        pytest.param("11010519491231002x", "11010519491231002X", id="lower-x"),
        pytest.param("110105 19491231 002X", "11010519491231002X", id="spaces"),
        pytest.param(wide("11010519491231002X"), "11010519491231002X", id="full-width"),
        pytest.param("110105491231002", "11010519491231002X", id="fifteen-digit-old-number"),
        pytest.param("440106200002290016", "440106200002290016", id="leap-day"),
    ],
)
def test_identity_numbers_are_normalised(typed: str, expected: str) -> None:
    assert normalise_id_number(typed) == expected


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        pytest.param("110105194912310021", "check character should be X", id="wrong-check-digit"),
        pytest.param("11010519491231002", "18-digit", id="seventeen"),
        pytest.param("1101051949123100X2", "17 characters", id="x-inside"),
        pytest.param("110105194913310021", "date of birth", id="month-13"),
        pytest.param("440106190102290017", "date of birth", id="no-leap-day-in-1901"),
        pytest.param("440106180001010013", "date of birth", id="born-before-1900"),
        pytest.param("990106200001010016", "region", id="no-such-province"),
        pytest.param("11010549123100A", "only digits", id="fifteen-with-a-letter"),
        pytest.param(
            "".join(chr(0x0660 + int(d)) for d in "11010519491231002") + "X",
            "digits",
            id="arabic-indic-digits",
        ),
    ],
)
def test_invalid_identity_numbers_are_refused(typed: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        normalise_id_number(typed)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        pytest.param("13812345678", "13812345678", id="plain"),
        pytest.param("+86 138 1234 5678", "13812345678", id="plus-86"),
        pytest.param("0086-138-1234-5678", "13812345678", id="0086"),
        pytest.param("86 13812345678", "13812345678", id="86"),
        pytest.param("(+86)138.1234.5678", "13812345678", id="dots-and-parentheses"),
        pytest.param(
            "\uff0b" + wide("86") + "\u3000" + wide("19912345678"), "19912345678", id="full-width"
        ),
    ],
)
def test_mobile_numbers_are_normalised(typed: str, expected: str) -> None:
    assert normalise_mobile(typed) == expected


@pytest.mark.parametrize(
    "typed",
    [
        pytest.param("1381234567", id="ten-digits"),
        pytest.param("23812345678", id="not-starting-with-1"),
        pytest.param("12812345678", id="no-12-numbers"),
        pytest.param("020-12345678", id="a-landline"),
        pytest.param("+1 415 555 0100", id="another-country"),
    ],
)
def test_invalid_mobile_numbers_are_refused(typed: str) -> None:
    with pytest.raises(ValueError, match="mobile number"):
        normalise_mobile(typed)


def test_a_column_reports_invalid_rows_and_counts_duplicates_once() -> None:
    values = ["91350100M000100Y43", "bad", "91350100m000100y43", "91440300708461136T", ""]
    result = normalise(values, Kind.USCC, first_row=2)
    assert result.items == ["91350100M000100Y43", "91440300708461136T"]
    assert result.rows == [2, 5]
    assert [(i.row, i.value) for i in result.invalid] == [(3, "bad"), (6, "")]
    assert result.duplicates == 1
    assert result.report == "2 valid uscc, 2 invalid, 1 duplicates"


def test_a_csv_column_is_read_with_file_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "borrowers.csv"
    path.write_text("\ufeffname,uscc\nA,91350100M000100Y43\nB,nope\nC\n", encoding="utf-8")
    result = read_column(path, "uscc", Kind.USCC)
    assert result.items == ["91350100M000100Y43"]
    assert [(i.row, i.value) for i in result.invalid] == [(3, "nope"), (4, "")]


@pytest.mark.parametrize(
    ("content", "column", "message"),
    [
        pytest.param("name,id\nA,1\n", "uscc", "no column 'uscc'", id="missing-column"),
        pytest.param("", "uscc", "no column", id="empty-file"),
    ],
)
def test_a_file_without_the_column_is_refused(tmp_path: Path, content: str, column: str, message: str) -> None:  # fmt: skip
    path = tmp_path / "in.csv"
    path.write_text(content)
    with pytest.raises(MatchingError, match=message):
        read_column(path, column, Kind.USCC)


def test_a_missing_or_binary_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MatchingError):
        read_column(tmp_path / "absent.csv", "uscc", Kind.USCC)
    (tmp_path / "binary.csv").write_bytes(b"uscc\n\xff\xfe\x00")
    with pytest.raises(MatchingError):
        read_column(tmp_path / "binary.csv", "uscc", Kind.USCC)
