"""The adapter against plain set arithmetic, single calls in one process."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from matching import psi
from matching.errors import MatchingError, Reason
from matching.machine import Mode

ROOT = Path(__file__).resolve().parents[2]


def sets(seed: int, server: int, client: int, shared: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)  # noqa: S311 - test data
    pool = rng.sample(range(10**9), server + client - shared)
    server_items = [f"id-{n}" for n in pool[:server]]
    client_items = [f"id-{n}" for n in pool[server - shared :]]
    rng.shuffle(client_items)
    return server_items, client_items


def run(server_items: list[str], client_items: list[str], mode: Mode, fpr: float = 1e-9) -> tuple[bytes, bytes, bytes]:  # fmt: skip
    server_key, client_key = psi.new_key(), psi.new_key()
    setup = psi.create_setup(server_key, server_items, fpr=fpr, max_client_items=max(len(client_items), 1))  # fmt: skip
    request = psi.create_request(client_key, client_items, mode)
    return client_key, setup, psi.process_request(server_key, request, mode)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_intersection_is_the_plain_set_intersection(seed: int) -> None:
    server_items, client_items = sets(seed, 700, 400, shared=seed * 37)
    key, setup, response = run(server_items, client_items, Mode.INTERSECTION)
    found = {client_items[p] for p in psi.intersection(key, setup, response)}
    assert found == set(server_items) & set(client_items)


@pytest.mark.parametrize("seed", [4, 5])
def test_the_cardinality_is_the_plain_intersection_size(seed: int) -> None:
    server_items, client_items = sets(seed, 500, 600, shared=seed * 21)
    key, setup, response = run(server_items, client_items, Mode.CARDINALITY)
    assert psi.cardinality(key, setup, response) == len(set(server_items) & set(client_items))


def test_the_cardinality_answer_is_sorted_so_its_order_says_nothing() -> None:
    server_items, client_items = sets(7, 100, 100, shared=30)
    _, _, response = run(server_items, client_items, Mode.CARDINALITY)
    (reordered,) = psi.shuffle_responses([response], 1000)
    assert reordered == response  # already sorted by the library


def test_the_false_positive_rate_is_what_it_is_set_to() -> None:
    """Sized for 100 client items at rate 0.5, each item is a false positive with probability
    0.005: 4,000 disjoint items find about 20, a rate of 1e-9 finds none."""
    server_items, client_items = sets(8, 2000, 4000, shared=0)
    server_key, client_key = psi.new_key(), psi.new_key()
    request = psi.create_request(client_key, client_items, Mode.CARDINALITY)
    response = psi.process_request(server_key, request, Mode.CARDINALITY)
    loose = psi.create_setup(server_key, server_items, fpr=0.5, max_client_items=100)
    strict = psi.create_setup(server_key, server_items, fpr=1e-9, max_client_items=100)
    assert 5 <= psi.cardinality(client_key, loose, response) <= 50
    assert psi.cardinality(client_key, strict, response) == 0
    facts = psi.read_setup(strict)
    assert facts.false_positive_rate(2000, 100) == pytest.approx(1e-9, rel=1e-6)


def test_the_same_key_and_items_give_the_same_setup() -> None:
    key = psi.new_key()
    first = psi.create_setup(key, ["a", "b", "c"], fpr=1e-9, max_client_items=10)
    assert psi.create_setup(key, ["a", "b", "c"], fpr=1e-9, max_client_items=10) == first
    assert psi.create_setup(psi.new_key(), ["a", "b", "c"], fpr=1e-9, max_client_items=10) != first


BLOOM_SETUP = b"\x1a\x05\x08\x05\x12\x01\xff"
RAW_SETUP = b"\x0a\x00"


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        pytest.param(BLOOM_SETUP, Reason.UNSAFE_SETUP, id="bloom-filter"),
        pytest.param(RAW_SETUP, Reason.UNSAFE_SETUP, id="raw"),
        pytest.param(b"", Reason.UNSAFE_SETUP, id="empty"),
        pytest.param(b"\xff\xff\xff", Reason.TAMPERED_MESSAGE, id="garbage"),
        pytest.param(b"\x12\x00", Reason.TAMPERED_MESSAGE, id="gcs-without-range"),
    ],
)
def test_only_a_gcs_setup_is_accepted(setup: bytes, reason: Reason) -> None:
    with pytest.raises(MatchingError) as error:
        psi.read_setup(setup)
    assert error.value.reason is reason


def test_a_bloom_filter_setup_is_refused_by_the_client() -> None:
    server_items, client_items = sets(9, 20, 20, shared=5)
    key, _, response = run(server_items, client_items, Mode.CARDINALITY)
    with pytest.raises(MatchingError) as error:
        psi.cardinality(key, BLOOM_SETUP, response)
    assert error.value.reason is Reason.UNSAFE_SETUP


def tampered(message: bytes) -> bytes:
    return message[:-3] + bytes([message[-3] ^ 0x40]) + message[-2:]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        pytest.param(lambda m: m[:-5], Reason.TAMPERED_MESSAGE, id="truncated"),
        pytest.param(lambda m: b"\xff" + m, Reason.TAMPERED_MESSAGE, id="not-protobuf"),
        pytest.param(lambda m: m[:2] + b"\x05" + m[3:], Reason.TAMPERED_MESSAGE, id="bad-point-prefix"),
        pytest.param(lambda m: m.replace(b"\x08\x01", b"\x08\x00", 1), Reason.WRONG_MODE, id="other-mode"),
    ],
)  # fmt: skip
def test_a_bad_request_is_refused(mutate: object, reason: Reason) -> None:
    request = psi.create_request(psi.new_key(), ["a", "b", "c"], Mode.INTERSECTION)
    assert callable(mutate)
    with pytest.raises(MatchingError) as error:
        psi.process_request(psi.new_key(), mutate(request), Mode.INTERSECTION)
    assert error.value.reason is reason


def test_a_point_off_the_curve_is_refused_by_the_client() -> None:
    server_items, client_items = sets(10, 20, 20, shared=5)
    key, setup, response = run(server_items, client_items, Mode.INTERSECTION)
    forged = response[:3] + b"\xff" * 32 + response[35:]
    with pytest.raises(MatchingError) as error:
        psi.intersection(key, setup, forged)
    assert error.value.reason is Reason.TAMPERED_MESSAGE


@pytest.mark.parametrize("key", [b"", b"short", b"x" * 33])
def test_a_key_of_the_wrong_length_is_refused(key: bytes) -> None:
    with pytest.raises(MatchingError) as error:
        psi.create_request(key, ["a"], Mode.INTERSECTION)
    assert error.value.reason is Reason.INVALID_PARAMETER


@pytest.mark.parametrize("fpr", [0.0, 1.0, -1e-9, 2.0])
def test_a_false_positive_rate_outside_zero_one_is_refused(fpr: float) -> None:
    with pytest.raises(MatchingError):
        psi.create_setup(psi.new_key(), ["a"], fpr=fpr, max_client_items=10)


def test_only_the_adapter_imports_openmined_psi() -> None:
    found = subprocess.run(
        ["git", "grep", "--untracked", "-l", "-E", "^[[:space:]]*(from|import) private_set_intersection", "--", "*.py"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert found.stdout.split() == ["matching/psi.py"]


def test_a_rate_that_would_overflow_the_gcs_is_refused() -> None:
    """The library's hash range (max(server, client) x client items / rate) is a signed 64-bit
    integer: 2^20 x 2^20 at 1e-9 would wrap around and write a broken setup."""
    million = [f"s{n}" for n in range(2**20)]
    with pytest.raises(MatchingError) as error:
        psi.create_setup(psi.new_key(), million, fpr=1e-9, max_client_items=2**20)
    assert error.value.reason is Reason.INVALID_PARAMETER
    assert "overflows the GCS" in error.value.message
    with pytest.raises(MatchingError):  # the range grows with the client's size alone too
        psi.create_setup(psi.new_key(), million[:1024], fpr=1e-9, max_client_items=2**20)
    psi.read_setup(psi.create_setup(psi.new_key(), million[:1024], fpr=1e-6, max_client_items=2**20))  # fmt: skip
