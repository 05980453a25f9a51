"""Setups by data version: reused while the data is the same, never across versions."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from matching import psi
from matching.errors import MatchingError, Reason
from matching.setup import SetupStore, data_version, prepare

ITEMS = [f"9144030{n:04d}" for n in range(300)]


def test_the_version_is_of_the_set_not_of_its_order_or_repeats() -> None:
    assert data_version(ITEMS) == data_version(list(reversed(ITEMS)) + ITEMS[:5])
    assert data_version(ITEMS) != data_version(ITEMS[1:])
    assert data_version([]).startswith("sha256:")


def test_an_item_with_a_line_break_has_no_version() -> None:
    with pytest.raises(MatchingError):
        data_version(["a\nb"])


def test_a_setup_is_computed_once_per_version(tmp_path: Path) -> None:
    store = SetupStore(tmp_path)
    first = prepare(store, ITEMS, fpr=1e-9, max_client_items=100)
    assert prepare(store, list(reversed(ITEMS)), fpr=1e-9, max_client_items=100) is first
    assert first.offer.data_version == data_version(ITEMS)
    assert first.offer.server_items == len(ITEMS)
    psi.read_setup(first.setup)


def test_a_restart_reuses_the_persisted_key_and_setup(tmp_path: Path) -> None:
    first = prepare(SetupStore(tmp_path), ITEMS, fpr=1e-9, max_client_items=100)
    again = prepare(SetupStore(tmp_path), ITEMS, fpr=1e-9, max_client_items=100)
    assert (again.key, again.setup, again.offer) == (first.key, first.setup, first.offer)
    (key_file,) = tmp_path.glob("*/key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_a_lost_setup_is_recomputed_with_the_same_key(tmp_path: Path) -> None:
    first = prepare(SetupStore(tmp_path), ITEMS, fpr=1e-9, max_client_items=100)
    for setup_file in tmp_path.glob("*/*.setup"):
        setup_file.write_bytes(b"damaged")
    again = prepare(SetupStore(tmp_path), ITEMS, fpr=1e-9, max_client_items=100)
    assert again.setup == first.setup  # same key, same items: the same setup


def test_changed_data_gets_a_new_version_and_a_new_key(tmp_path: Path) -> None:
    store = SetupStore(tmp_path)
    old = prepare(store, ITEMS, fpr=1e-9, max_client_items=100)
    new = prepare(store, [*ITEMS, "91440300NEW000001"], fpr=1e-9, max_client_items=100)
    assert new.offer.data_version != old.offer.data_version
    assert new.key != old.key
    assert new.offer.setup_digest != old.offer.setup_digest


def test_other_parameters_get_their_own_setup_under_the_same_key() -> None:
    store = SetupStore()
    tight = prepare(store, ITEMS, fpr=1e-9, max_client_items=100)
    wide = prepare(store, ITEMS, fpr=1e-9, max_client_items=10_000)
    assert tight.key == wide.key
    assert tight.offer.setup_digest != wide.offer.setup_digest


def test_prune_forgets_other_versions(tmp_path: Path) -> None:
    store = SetupStore(tmp_path)
    old = prepare(store, ITEMS, fpr=1e-9, max_client_items=100)
    new = prepare(store, ITEMS[:10], fpr=1e-9, max_client_items=100)
    store.prune(keep=new.offer.data_version)
    assert [p.name for p in tmp_path.iterdir()] == [new.offer.data_version.removeprefix("sha256:")]
    assert store.load(old.offer.data_version, 1e-9, 100) is None


def test_a_store_refuses_a_name_that_is_not_a_version(tmp_path: Path) -> None:
    with pytest.raises(MatchingError) as error:
        SetupStore(tmp_path).key("../../etc")
    assert error.value.reason is Reason.INVALID_PARAMETER
