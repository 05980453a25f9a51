"""The canonical bytes of a value (ledger/canonical.canonicalise) are RFC 8785's, as the
``rfc8785`` package writes them, whichever of the two encoders wrote them."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import _plain, canonicalise
from ledger.events import EventError

texts = st.text(
    alphabet=st.characters(codec="utf-8")
    | st.sampled_from(['"', "\\", "\n", "\x00", "\x1f", "\x7f", "\u2028", "\ue000", "😀"]),
    max_size=6,
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**54), max_value=2**54)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
keys = st.text(max_size=4) | st.sampled_from(["a", "B", "\ue000", "😀", "é", "aa", ""])
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


def reference(value: Any) -> bytes | None:
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        return None


def ours(value: Any) -> bytes | None:
    try:
        return canonicalise(value)
    except EventError:
        return None


@settings(max_examples=1500, deadline=None)
@given(values)
def test_the_bytes_are_rfc8785s(value: Any) -> None:
    assert ours(value) == reference(value)


@settings(max_examples=500, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | texts,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(alphabet=st.characters(max_codepoint=127)), inner)
        ),
        max_leaves=12,
    )
)
def test_plain_values_take_the_fast_path_and_still_match(value: Any) -> None:
    assert _plain(value)
    assert ours(value) == reference(value)


class Kind(StrEnum):
    ACCESS = "data.access"


@pytest.mark.parametrize(
    "value",
    [
        {"\ue000": 1, "😀": 2},  # code-point and UTF-16 order differ
        {"n": 2**53},  # past JCS's integers
        {"f": 1e21, "g": 1e-7, "h": 0.1},
        {"kind": Kind.ACCESS},
        [(1, 2)],
    ],
)
def test_what_the_fast_path_leaves_to_rfc8785(value: Any) -> None:
    assert not _plain(value)
    assert ours(value) == reference(value)


def test_a_lone_surrogate_is_refused_as_rfc8785_refuses_it() -> None:
    assert _plain({"s": "\ud800"})  # the C encoder writes it; its UTF-8 cannot be made
    assert ours({"s": "\ud800"}) is None
    assert reference({"s": "\ud800"}) is None


def test_a_value_that_contains_itself_is_refused() -> None:
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(EventError, match="contains itself"):
        canonicalise(looped)


@pytest.mark.parametrize("leaf", [[], {"k": 1.5}])  # the fast path, and rfc8785's
def test_a_value_nested_too_deeply_is_refused(leaf: Any) -> None:
    value = leaf
    for _ in range(100_000):
        value = [value]
    with pytest.raises(EventError, match="nested too deeply"):
        canonicalise(value)
