"""Identifier normalisation before matching: the same code on both sides, so that the same
identifier written two ways is one item, and an invalid one is never matched.

- Unified social credit codes (统一社会信用代码, GB 32100-2015): 18 characters; full-width
  forms to half-width, spaces and hyphens removed, upper-cased; the check character is verified
  by ``identity.credentials.check_credit_code`` (the one implementation of it).
- Resident identity numbers (公民身份号码, GB 11643-1999): 18 characters, the last one the
  ISO 7064 MOD 11-2 check character (``x`` written ``X``); a real birth date in positions 7-14
  and a province in 1-2. A 15-digit number of the first generation (born 19YYMMDD, no check
  character) is converted to its 18-digit form.
- Mobile numbers: ``+86``, ``0086`` or ``86`` before 11 digits, spaces, hyphens, dots and
  parentheses removed; 11 digits starting 13-19.

An invalid identifier is counted and reported with its row, never passed on; a duplicate (after
normalisation) is counted once. What this does not do: decide whether an identifier *exists*.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Final, TextIO

from identity.credentials import check_credit_code
from matching.errors import MatchingError, Reason
from policy.operands import check_region_code


class Kind(StrEnum):
    """What a column holds; the value is the column's usual name."""

    USCC = "uscc"
    ID_NUMBER = "id_number"
    MOBILE = "mobile"


def _table(removed: str) -> dict[int, int | None]:
    table: dict[int, int | None] = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
    table[0x3000] = None  # ideographic space
    for character in removed:
        table[ord(character)] = None
    return table


_SPACES: Final = " \t\u00a0\u3000"
_DASHES: Final = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\uff0d"
_CODE_TABLE: Final = _table(_SPACES + _DASHES)
_PHONE_TABLE: Final = _table(_SPACES + _DASHES + ".()\uff08\uff09\uff0e")
_MOBILE_SECOND: Final = frozenset("3456789")
_CHECK: Final = "10X98765432"
"""GB 11643: the check character for a weighted sum of the first 17 digits modulo 11."""


def _clean(value: str, table: dict[int, int | None]) -> str:
    # most values are already clean: skip the translation then
    return value if value.isascii() and value.isalnum() else value.translate(table)


def normalise_uscc(value: str) -> str:
    """The canonical form of a unified social credit code; ValueError says why it is not one."""
    return check_credit_code(_clean(value, _CODE_TABLE).upper())


def _id_checksum(body: str) -> int:
    # ISO 7064 MOD 11-2: weights 2^(17-i) mod 11. int(body, 13) is sum(d_i * 13^(16-i)) and
    # 13 = 2 (mod 11), so twice it is the weighted sum, modulo 11, computed in C.
    return (2 * int(body, 13)) % 11


def normalise_id_number(value: str) -> str:
    """The 18-digit form of a resident identity number; ValueError says why it is not one."""
    text = _clean(value, _CODE_TABLE)
    if len(text) == 15:
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"{value!r}: a 15-digit identity number has only digits")
        body = text[:6] + "19" + text[6:]
        text = body + _CHECK[_id_checksum(body)]
    if len(text) != 18:
        raise ValueError(f"{value!r} is not an 18-digit (or 15-digit) identity number")
    body, check = text[:17], text[17]
    if not (body.isascii() and body.isdigit()):
        raise ValueError(f"{value!r}: the first 17 characters of an identity number are digits")
    expected = _CHECK[(2 * int(body, 13)) % 11]  # _id_checksum, inline: it runs 10^6 times
    if check != expected and not (check == "x" and expected == "X"):
        raise ValueError(f"{value!r}: check character should be {expected}")
    if not _birth_date(body[6:14]):
        raise ValueError(f"{value!r}: {body[6:14]} is not a date of birth since 1900")
    if not _region(body[:6]):
        raise ValueError(f"{value!r}: {body[:6]} is not a region code")
    return text if check == expected else body + expected


@lru_cache(maxsize=65_536)
def _birth_date(digits: str) -> bool:
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:])).year >= 1900
    except ValueError:
        return False


@lru_cache(maxsize=65_536)
def _region(code: str) -> bool:
    try:
        check_region_code(code)
    except ValueError:
        return False
    return True


def normalise_mobile(value: str) -> str:
    """The 11-digit form of a mainland mobile number; ValueError says why it is not one."""
    text = value if value.isdigit() and value.isascii() else value.translate(_PHONE_TABLE)
    if text.startswith("+86"):
        text = text[3:]
    elif text.startswith("0086"):
        text = text[4:]
    elif len(text) == 13 and text.startswith("86"):
        text = text[2:]
    if len(text) != 11 or not (text.isascii() and text.isdigit()):
        raise ValueError(f"{value!r} is not an 11-digit mobile number")
    if text[0] != "1" or text[1] not in _MOBILE_SECOND:
        raise ValueError(f"{value!r}: a mobile number starts with 13 to 19")
    return text


NORMALISERS: Final[dict[Kind, Callable[[str], str]]] = {
    Kind.USCC: normalise_uscc,
    Kind.ID_NUMBER: normalise_id_number,
    Kind.MOBILE: normalise_mobile,
}


@dataclass(frozen=True)
class Invalid:
    row: int
    value: str
    reason: str


@dataclass(frozen=True)
class Normalised:
    """A column after normalisation: the distinct valid items, in the order first seen, the row
    each came from, and what was left out."""

    kind: Kind
    items: list[str] = field(repr=False)
    rows: list[int] = field(repr=False)
    invalid: list[Invalid] = field(repr=False)
    duplicates: int = 0

    @property
    def report(self) -> str:
        return (
            f"{len(self.items)} valid {self.kind.value}, {len(self.invalid)} invalid, "
            f"{self.duplicates} duplicates"
        )


def normalise(values: Iterable[str], kind: Kind, *, first_row: int = 1) -> Normalised:
    """Normalise and validate a column; row numbers count from ``first_row``."""
    check = NORMALISERS[kind]
    seen: dict[str, int] = {}
    invalid: list[Invalid] = []
    duplicates = 0
    for row, value in enumerate(values, first_row):
        try:
            item = check(value)
        except ValueError as error:
            invalid.append(Invalid(row, value[:64], str(error)))
            continue
        if item in seen:
            duplicates += 1
        else:
            seen[item] = row
    return Normalised(kind, list(seen), list(seen.values()), invalid, duplicates)


def read_rows(stream: TextIO, column: str, kind: Kind, *, name: str) -> Normalised:
    """Normalise one column of CSV text with a header (``name`` says where it came from in
    errors). Rows are numbered as in the file: the header is row 1."""
    try:
        reader = csv.reader(stream)
        header = next(reader, None)
        if header is None or column not in header:
            raise MatchingError(
                Reason.INVALID_PARAMETER,
                f"{name}: no column {column!r}; columns: {', '.join(header or [])[:500]}",
            )
        position = header.index(column)
        values = (record[position] if position < len(record) else "" for record in reader)
        return normalise(values, kind, first_row=2)
    except (UnicodeDecodeError, csv.Error) as error:
        raise MatchingError(Reason.INVALID_PARAMETER, f"{name}: {error}") from None


def read_column(path: Path, column: str, kind: Kind) -> Normalised:
    """Normalise one column of a CSV file (UTF-8, with a header). Rows are numbered as in the
    file: the header is row 1."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            return read_rows(stream, column, kind, name=str(path))
    except OSError as error:
        raise MatchingError(Reason.INVALID_PARAMETER, f"{path}: {error}") from None
