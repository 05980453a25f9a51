"""Synthetic lists: valid where they should be, malformed where asked, the overlap exact."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from identity.credentials import check_credit_code
from matching.identifiers import Kind, normalise, read_column
from matching.synthetic import (
    Dataset,
    _org_check,
    credit_check_character,
    generate,
    regions,
    write_csv,
)


def identifiers(dataset: Dataset, count: int, seed: int, **options: object) -> list[str]:
    return [row[0] for row in generate(dataset, count, seed, **options)]  # type: ignore[arg-type]


@pytest.mark.parametrize("dataset", list(Dataset))
def test_the_same_seed_gives_the_same_list(dataset: Dataset) -> None:
    first = list(generate(dataset, 300, 42, malformed=0.05))
    assert list(generate(dataset, 300, 42, malformed=0.05)) == first
    assert list(generate(dataset, 300, 43, malformed=0.05)) != first


def test_credit_codes_pass_the_identity_check_and_name_real_regions() -> None:
    table = regions()
    rows = list(generate(Dataset.ENTERPRISES, 2000, 1))
    result = normalise([row[0] for row in rows], Kind.USCC)
    assert result.invalid == []
    assert len(result.items) == 2000
    for code in result.items:
        assert check_credit_code(code) == code
        assert code[:2] == "91"
        assert code[2:8] in table
    for _, name, region in rows[:50]:
        assert region in table
        assert name.endswith("公司")
        assert name.startswith(table.get(region[:4] + "00", table[region]))


def test_identity_numbers_are_valid_with_real_regions_and_birth_dates() -> None:
    result = normalise(identifiers(Dataset.RESIDENTS, 2000, 2), Kind.ID_NUMBER)
    assert result.invalid == []
    assert len(result.items) == 2000
    assert all(item[:6] in regions() for item in result.items)
    assert all("1950" <= item[6:10] <= "2005" for item in result.items)


def test_the_region_table_is_guangdong() -> None:
    table = regions()
    assert table["440100"] == "广州市"
    assert table["440300"] == "深圳市"
    assert table["440106"] == "天河区"
    assert all(code.startswith("44") and len(code) == 6 for code in table)


@pytest.mark.parametrize("dataset", list(Dataset))
def test_the_malformed_share_is_exact_and_always_refused(dataset: Dataset) -> None:
    result = normalise(identifiers(dataset, 2000, 3, malformed=0.1), dataset.kind)
    assert len(result.invalid) == 200
    assert len(result.items) == 1800


@pytest.mark.parametrize("dataset", list(Dataset))
def test_the_overlap_is_exact_after_normalisation(dataset: Dataset) -> None:
    bureau = normalise(identifiers(dataset, 3000, 4, malformed=0.01), dataset.kind)
    bank = normalise(
        identifiers(dataset, 2000, 5, overlap_with=bureau.items, overlap=0.2, malformed=0.01),
        dataset.kind,
    )
    assert len(set(bank.items) & set(bureau.items)) == 400
    assert len(bank.invalid) == 20


def test_some_valid_rows_are_written_as_people_type_them() -> None:
    typed = identifiers(Dataset.RESIDENTS, 2000, 6)
    assert any(len(value) == 15 for value in typed)
    assert any(not value.isascii() for value in typed)
    assert normalise(typed, Kind.ID_NUMBER).invalid == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"overlap": 0.2}, "needs --overlap-with", id="overlap-without-list"),
        pytest.param({"overlap": 0.5, "overlap_with": ["91350100M000100Y43"]}, "needs that many", id="list-too-short"),
        pytest.param({"overlap": 1.5}, "between 0 and 1", id="overlap-above-one"),
        pytest.param({"malformed": -0.1}, "between 0 and 1", id="negative-malformed"),
    ],
)  # fmt: skip
def test_impossible_requests_are_refused_at_once(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(Dataset.ENTERPRISES, 10, 1, **options)  # type: ignore[arg-type]


def test_the_csv_has_the_identifier_column(tmp_path: Path) -> None:
    path = tmp_path / "residents.csv"
    assert write_csv(path, Dataset.RESIDENTS, generate(Dataset.RESIDENTS, 10, 1)) == 10
    with path.open(encoding="utf-8") as stream:
        assert next(csv.reader(stream)) == ["id_number", "name", "mobile"]
    assert len(read_column(path, "id_number", Kind.ID_NUMBER).items) == 10


def test_an_overlap_with_firms_outside_the_region_table_names_them_too() -> None:
    # Beijing (110105) and a code whose region is no real one (990000): both valid codes
    others = []
    for region in ("110105", "990000"):
        first17 = "91" + region + "MA01AB2C" + _org_check("MA01AB2C")
        others.append(first17 + credit_check_character(first17))
    assert all(check_credit_code(code) == code for code in others)
    rows = list(generate(Dataset.ENTERPRISES, 4, 6, overlap_with=others, overlap=0.5))
    shared = {row[0]: row for row in rows if normalise([row[0]], Kind.USCC).items[0] in others}
    assert len(shared) == 2
    assert all(name for _code, name, _region in shared.values())
