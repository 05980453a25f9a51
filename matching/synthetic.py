"""Synthetic lists that look real, for tests, benchmarks and the demo (never real people or firms).

- Enterprises: unified social credit codes ``91`` (market regulator, enterprise) + a real
  Guangdong region code of GB/T 2260 (``regions.json``) + an organisation code with its
  GB 11714 check character + the GB 32100 check character; plausible Chinese firm names.
- Residents: identity numbers with a real region code, a real birth date (1950-2005), a
  sequence number and the GB 11643 check character; names; mobile numbers.

Deterministic by seed. ``overlap_with`` (normalised identifiers of another list) puts exactly
``round(overlap * count)`` of them in this list; ``malformed`` makes that share of the other
rows invalid in a way normalisation always refuses (a wrong check character, a dropped
character, a character outside the alphabet, a date that does not exist). A few valid rows are
written the way people type them (lower case, spaces, hyphens, full-width forms, 15-digit old
identity numbers): they normalise to the same item.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Final

from matching.identifiers import Kind

CREDIT_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
"""GB 32100: the 31 characters of a unified social credit code (no I, O, S, V, Z)."""
_CREDIT_VALUE: Final = {c: v for v, c in enumerate(CREDIT_ALPHABET)}
_CREDIT_WEIGHTS: Final = tuple(pow(3, i, 31) for i in range(17))
"""GB 32100: the weight of position i is 3^i modulo 31."""
_ORG_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK: Final = "10X98765432"
_ID_WEIGHTS: Final = tuple(pow(2, 17 - i, 11) for i in range(17))
"""GB 11643 (ISO 7064 MOD 11-2): the weight of position i is 2^(17-i) modulo 11."""
MESSY_SHARE: Final = 0.05
"""Share of valid rows written with the noise of hand-typed data."""

_FIRM_WORDS: Final = (
    "华信达恒泰鑫宏盛德隆丰源安顺嘉禾博创汇通万科联合粤海南方珠江岭南星辰天成金桥"
    "远航众诚新锐智达瑞丰永利海纳卓越荣昌广和合兴东升凯旋志远新锦明辉益康"
)
_TRADES: Final = (
    "科技", "电子", "贸易", "实业", "机械", "建材", "物流", "信息技术", "生物科技", "新材料",
    "餐饮管理", "服装", "智能装备", "环保科技", "医疗器械", "食品", "家具", "文化传播",
)  # fmt: skip
_FORMS: Final = ("有限公司", "有限公司", "有限公司", "股份有限公司", "有限责任公司")
_SURNAMES: Final = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许邓冯韩曹曾彭萧蔡潘田董袁"
_GIVEN: Final = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰建国志文婷雪梅晓俊浩宇欣怡子涵嘉"
)


class Dataset(StrEnum):
    ENTERPRISES = "enterprises"
    RESIDENTS = "residents"

    @property
    def kind(self) -> Kind:
        return Kind.USCC if self is Dataset.ENTERPRISES else Kind.ID_NUMBER

    @property
    def header(self) -> tuple[str, ...]:
        if self is Dataset.ENTERPRISES:
            return ("uscc", "name", "region")
        return ("id_number", "name", "mobile")


@cache
def regions() -> dict[str, str]:
    """The region table shipped with the package: code -> name."""
    text = resources.files("matching").joinpath("regions.json").read_text(encoding="utf-8")
    table: dict[str, str] = json.loads(text)["regions"]
    return table


def _places() -> list[str]:
    """Codes of the lowest level: districts, and cities that have none."""
    table = regions()
    places = [c for c in table if c[4:] != "00"]
    cities_with_districts = {c[:4] for c in places}
    places += [
        c for c in table if c[2:] != "0000" and c[4:] == "00" and c[:4] not in cities_with_districts
    ]
    return sorted(places)


def credit_check_character(first17: str) -> str:
    """The GB 32100 check character of the first 17 characters (for making codes; codes are
    checked by ``identity.credentials.check_credit_code``)."""
    total = sum(_CREDIT_VALUE[c] * w for c, w in zip(first17, _CREDIT_WEIGHTS, strict=True))
    return CREDIT_ALPHABET[(31 - total % 31) % 31]


def _org_check(body: str) -> str:
    total = sum(int(c, 36) * w for c, w in zip(body, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


def id_check_character(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


@dataclass
class _Maker:
    rng: random.Random
    places: list[str]

    def uscc(self) -> str:
        region = self.rng.choice(self.places)
        if self.rng.random() < 0.7:  # since 2015: organisation codes issued as MA...
            body = "MA" + "".join(self.rng.choices(CREDIT_ALPHABET, k=6))
        else:
            body = "".join(self.rng.choices("0123456789", k=8))
        first17 = "91" + region + body + _org_check(body)
        return first17 + credit_check_character(first17)

    def firm_name(self, region: str) -> str:
        """A name for a firm of ``region``: its city's name first, else the region's or its
        province's; none for a region outside the table (an overlap taken from a list of
        other provinces' firms)."""
        table = regions()
        codes = (region[:4] + "00", region, region[:2] + "0000")
        city = next((table[code] for code in codes if code in table), "")
        words = "".join(self.rng.sample(_FIRM_WORDS, self.rng.choice((2, 2, 3))))
        return f"{city}{words}{self.rng.choice(_TRADES)}{self.rng.choice(_FORMS)}"

    def id_number(self) -> str:
        region = self.rng.choice(self.places)
        born = date(1950, 1, 1) + timedelta(days=self.rng.randrange(20_454))  # to 2005-12-31
        first17 = f"{region}{born:%Y%m%d}{self.rng.randrange(1000):03d}"
        return first17 + id_check_character(first17)

    def person_name(self) -> str:
        given = "".join(self.rng.choices(_GIVEN, k=self.rng.choice((1, 2, 2))))
        return self.rng.choice(_SURNAMES) + given

    def mobile(self) -> str:
        return "1" + self.rng.choice("3456789") + f"{self.rng.randrange(10**9):09d}"


def _messy(rng: random.Random, identifier: str, dataset: Dataset) -> str:
    """The same identifier as people type it."""
    if dataset is Dataset.RESIDENTS and identifier[6:8] == "19" and rng.random() < 0.3:
        return identifier[:6] + identifier[8:17]  # the 15-digit form of the first generation
    style = rng.randrange(3)
    if style == 0:
        return identifier.lower()
    if style == 1:
        return f"{identifier[:6]} {identifier[6:14]}-{identifier[14:]}"
    return "".join(chr(ord(c) + 0xFEE0) for c in identifier)  # full-width


def _malformed(rng: random.Random, identifier: str, dataset: Dataset) -> str:
    """A variant that no normalisation accepts."""
    style = rng.randrange(4)
    if style == 0:  # a wrong check character
        alphabet = CREDIT_ALPHABET if dataset is Dataset.ENTERPRISES else "0123456789X"
        return identifier[:17] + rng.choice([c for c in alphabet if c != identifier[17]])
    if style == 1:  # one character lost
        position = rng.randrange(18)
        return identifier[:position] + identifier[position + 1 :]
    if style == 2 or dataset is Dataset.ENTERPRISES:  # outside the alphabet
        position = rng.randrange(2, 17)
        return identifier[:position] + rng.choice("IOSVZ") + identifier[position + 1 :]
    first17 = identifier[:10] + "13" + identifier[12:17]  # month 13, with a right check digit
    return first17 + id_check_character(first17)


def generate(
    dataset: Dataset,
    count: int,
    seed: int,
    *,
    overlap_with: Sequence[str] = (),
    overlap: float = 0.0,
    malformed: float = 0.0,
) -> Iterator[tuple[str, ...]]:
    """Rows (without the header) of a synthetic list; the arguments are checked at once."""
    if count < 0:
        raise ValueError("--count is at least 0")
    if not 0.0 <= overlap <= 1.0 or not 0.0 <= malformed <= 1.0:
        raise ValueError("--overlap and --malformed are shares between 0 and 1")
    shared = round(overlap * count)
    if shared and not overlap_with:
        raise ValueError("--overlap needs --overlap-with: the list to overlap with")
    others = sorted(set(overlap_with))
    if shared > len(others):
        raise ValueError(
            f"an overlap of {shared} rows needs that many valid identifiers in the other list; "
            f"it has {len(others)}"
        )
    broken = round(malformed * count)
    if shared + broken > count:
        raise ValueError("--overlap and --malformed together are more than --count rows")
    return _rows(dataset, count, seed, others, shared, broken)


def _rows(
    dataset: Dataset, count: int, seed: int, others: list[str], shared: int, broken: int
) -> Iterator[tuple[str, ...]]:
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible by seed
    maker = _Maker(rng, _places())
    taken = set(others)
    chosen = rng.sample(others, shared)
    fresh: list[str] = []
    make = maker.uscc if dataset is Dataset.ENTERPRISES else maker.id_number
    while len(fresh) < count - shared:
        identifier = make()
        if identifier not in taken:
            taken.add(identifier)
            fresh.append(identifier)
    rows: list[tuple[str, bool]] = [(i, True) for i in chosen] + [(i, False) for i in fresh]
    rng.shuffle(rows)
    to_break = set(
        rng.sample([n for n, (_, shared_row) in enumerate(rows) if not shared_row], broken)
    )
    for number, (identifier, _) in enumerate(rows):
        written = identifier
        if number in to_break:
            written = _malformed(rng, identifier, dataset)
        elif rng.random() < MESSY_SHARE:
            written = _messy(rng, identifier, dataset)
        if dataset is Dataset.ENTERPRISES:
            yield (written, maker.firm_name(identifier[2:8]), identifier[2:8])
        else:
            yield (written, maker.person_name(), maker.mobile())


def write_csv(path: Path, dataset: Dataset, rows: Iterator[tuple[str, ...]]) -> int:
    """Write the header and ``rows``; returns the number of rows."""
    written = 0
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(dataset.header)
        for row in rows:
            writer.writerow(row)
            written += 1
    return written
