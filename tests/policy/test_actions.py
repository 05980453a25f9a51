from __future__ import annotations

import pytest

from policy.actions import action_name, includes, overlap


@pytest.mark.parametrize("action", ["read", "display", "aggregate", "use", "anonymize"])
def test_use_includes_consuming_actions(action: str) -> None:
    assert includes("use", action)


@pytest.mark.parametrize("action", ["transfer", "distribute", "sell", "give", "share"])
def test_use_does_not_imply_handing_data_on(action: str) -> None:
    assert not includes("use", action)


def test_sell_is_a_kind_of_transfer() -> None:
    assert includes("transfer", "sell")
    assert not includes("sell", "transfer")


def test_a_narrow_rule_does_not_cover_a_broad_request() -> None:
    assert not includes("read", "use")
    assert overlap("read", "use")
    assert not overlap("read", "transfer")


# ODRL 2.2 deprecates these names, each owl:equivalentProperty to the action it maps to.
DEPRECATED = [
    ("write", "modify"),
    ("writeTo", "modify"),
    ("append", "modify"),
    ("appendTo", "modify"),
    ("copy", "reproduce"),
    ("export", "transform"),
]


@pytest.mark.parametrize(("deprecated", "current"), DEPRECATED)
def test_a_deprecated_action_is_the_action_it_is_equivalent_to(
    deprecated: str, current: str
) -> None:
    assert action_name(deprecated) == current
    assert includes(deprecated, current)
    assert includes(current, deprecated)
    assert includes("use", deprecated)
    assert not includes(deprecated, "use")
    assert overlap(deprecated, "use")
