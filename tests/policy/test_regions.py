"""The administrative division codes (GB/T 2260) are data shipped with the package
(``policy/regions.json``), rebuilt here from the npm package they were taken from (installed by
``make node-tools``, pinned in package-lock.json), and a code that does not exist is refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from policy.operands import check_region, region_ancestors, regions
from tests.ledger.nodetools import NODE_MODULES, require

SHIPPED = Path(__file__).resolve().parents[2] / "policy" / "regions.json"
GBT_2260_OUTSIDE_THE_LIST = {
    "710000": "台湾省",
    "810000": "香港特别行政区",
    "820000": "澳门特别行政区",
}


def rebuilt() -> dict[str, str]:
    """The codes as ``policy/regions.json`` takes them from china-division's tables: provinces
    (two digits, ``…0000``), prefectures (four, ``…00``) and counties (six)."""
    dist = require(NODE_MODULES / "china-division" / "dist", "china-division")
    found: dict[str, str] = {}
    for table, suffix in (("provinces", "0000"), ("cities", "00"), ("areas", "")):
        with (dist / f"{table}.csv").open(encoding="utf-8") as rows:
            for row in csv.DictReader(rows):
                found.setdefault(row["code"] + suffix, row["name"])
    return {**found, **GBT_2260_OUTSIDE_THE_LIST}


def test_the_shipped_codes_are_the_packages() -> None:
    shipped = json.loads(SHIPPED.read_text("utf-8"))["regions"]
    assert shipped == rebuilt()
    assert dict(regions()) == shipped


def test_guangdong_is_there_whole() -> None:
    guangdong = {code: name for code, name in regions().items() if code.startswith("44")}
    assert guangdong["440000"] == "广东省"
    assert guangdong["440100"] == "广州市"
    assert (guangdong["440106"], guangdong["440117"], guangdong["440118"]) == (
        "天河区", "从化区", "增城区",
    )  # fmt: skip
    prefectures = [c for c in guangdong if c[4:] == "00" and c[2:4] != "00"]
    assert len(prefectures) == 21  # 广州 … 云浮: the province's 21 prefecture-level cities
    for code in guangdong:
        assert check_region(code) == code
        assert all(level in regions() for level in region_ancestors(code))


@pytest.mark.parametrize("code", ["449999", "440199", "449900", "990000", "999999", "000000"])
def test_a_code_that_does_not_exist_is_refused(code: str) -> None:
    with pytest.raises(ValueError, match="administrative division code"):
        check_region(code)


@pytest.mark.parametrize("code", ["110101", "310000", "710000", "810000", "820000"])
def test_codes_of_other_provinces_and_of_the_special_regions_pass(code: str) -> None:
    assert check_region(code) == code


def test_a_code_abolished_since_stays_readable_where_it_was_written_before() -> None:
    """110103 (崇文区, merged into 东城区 in 2010) is not on today's list: an asset may not be
    put there now, but an identity number keeps its district for life, a credential or an
    agreement the code it was made with; those read it (the linter warns on a policy)."""
    from matching.identifiers import normalise_id_number
    from policy.jsonld import read_policy
    from policy.lint import lint
    from policy.operands import check_region_code
    from tests.policy.policies import NOW, atom, offer

    assert "110103" not in regions()
    with pytest.raises(ValueError, match="today's list"):
        check_region("110103")
    assert check_region_code("110103") == "110103"
    with pytest.raises(ValueError, match="administrative division code"):
        check_region_code("990000")
    assert normalise_id_number("110103198001010013") == "110103198001010013"  # 崇文区, 1980
    old = offer({"action": "use", "constraint": [atom("spatial", "eq", "110103")]})
    read_policy(old)  # an agreement made with it is still read
    [finding] = lint(old, NOW)
    assert (finding.code, finding.path) == ("unknown-region", "permission[0].constraint[0]")
    assert (
        lint(offer({"action": "use", "constraint": [atom("spatial", "eq", "110101")]}), NOW) == []
    )
