"""Chunked runs on worker processes: the same result as one library call in one process, and
every frame that is out of line refused with a typed error, never a crash or a partial answer."""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from matching import psi
from matching.errors import MatchingError, Reason
from matching.machine import Mode, RequestChunk, ResponseChunk, State
from matching.messages import decode, encode
from matching.parallel import (
    PARENT_CHECK_S,
    ClientSession,
    ServerSession,
    Workers,
    check_chunking,
    run_local,
    setup_frames,
)
from matching.setup import PreparedSetup, SetupStore, prepare

CHUNK = 64


def sets(seed: int, server: int, client: int, shared: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)  # noqa: S311 - test data
    pool = [f"{n:018d}" for n in rng.sample(range(10**12), server + client - shared)]
    client_items = pool[server - shared :]
    rng.shuffle(client_items)
    return pool[:server], client_items


def single_process(server_items: list[str], client_items: list[str], mode: Mode) -> tuple[int, set[int]]:  # fmt: skip
    server_key, client_key = psi.new_key(), psi.new_key()
    setup = psi.create_setup(server_key, server_items, fpr=1e-9, max_client_items=1000)
    response = psi.process_request(server_key, psi.create_request(client_key, client_items, mode), mode)  # fmt: skip
    if mode is Mode.CARDINALITY:
        return psi.cardinality(client_key, setup, response), set()
    found = set(psi.intersection(client_key, setup, response))
    return len(found), found


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("seed", [11, 12])
def test_a_chunked_parallel_run_equals_one_call_in_one_process(workers: Workers, mode: Mode, seed: int) -> None:  # fmt: skip
    server_items, client_items = sets(seed, 600, 450, shared=100 + seed)
    prepared = prepare(SetupStore(), server_items, fpr=1e-9, max_client_items=1000)
    result = run_local(client_items, prepared, mode, workers, max_chunk_items=CHUNK)
    count, positions = single_process(server_items, client_items, mode)
    assert result.cardinality == count == 100 + seed
    assert (result.client_items, result.server_items) == (450, 600)
    if mode is Mode.INTERSECTION:
        assert result.positions is not None
        assert set(result.positions) == positions
        assert {client_items[p] for p in result.positions} == set(server_items) & set(client_items)
    else:
        assert result.positions is None


def test_no_frame_is_larger_than_the_limit(workers: Workers) -> None:
    server_items, client_items = sets(13, 3000, 300, shared=10)
    prepared = prepare(SetupStore(), server_items, fpr=1e-9, max_client_items=1000)
    limit = 10_000
    frames = setup_frames(prepared, limit)
    assert len(frames) > 1
    assert max(map(len, frames)) <= limit
    client = ClientSession(client_items, Mode.INTERSECTION, workers, max_chunk_items=CHUNK, max_message_bytes=limit)  # fmt: skip
    for frame in frames:
        client.setup_frame(frame)
    server = ServerSession(prepared, workers, max_chunk_items=CHUNK, max_message_bytes=limit)
    server.receive(client.start_frame())
    for frame in client.request_frames():
        assert len(frame) <= limit
        server.receive(frame)
    for frame in server.responses(wait=True):
        assert len(frame) <= limit
        client.receive(frame)
    assert client.result().cardinality == 10


def test_chunks_that_cannot_fit_the_message_limit_are_refused() -> None:
    with pytest.raises(MatchingError) as error:
        check_chunking(16_384, 100_000)
    assert error.value.reason is Reason.INVALID_PARAMETER


# --- the server refuses -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared() -> PreparedSetup:
    return prepare(SetupStore(), sets(14, 400, 0, 0)[0], fpr=1e-9, max_client_items=500)


def client_frames(workers: Workers, prepared: PreparedSetup, mode: Mode = Mode.INTERSECTION, items: int = 200) -> tuple[ClientSession, bytes, list[bytes]]:  # fmt: skip
    client = ClientSession(sets(15, 0, items, 0)[1], mode, workers, max_chunk_items=CHUNK)
    for frame in setup_frames(prepared):
        client.setup_frame(frame)
    return client, client.start_frame(), list(client.request_frames())


def reencoded(frame: bytes, change: Callable[[RequestChunk], RequestChunk]) -> bytes:
    message = decode(frame)
    assert isinstance(message, RequestChunk)
    return encode(change(message))


BAD_REQUESTS: list[tuple[str, Callable[[list[bytes]], list[bytes]], Reason]] = [
    ("tampered", lambda f: [f[0][:-1] + bytes([f[0][-1] ^ 1])], Reason.TAMPERED_MESSAGE),
    ("truncated", lambda f: [f[0][:-100]], Reason.TAMPERED_MESSAGE),
    ("reordered", lambda f: [f[1]], Reason.OUT_OF_ORDER),
    ("replayed", lambda f: [f[0], f[0]], Reason.OUT_OF_ORDER),
    ("count-lies", lambda f: [reencoded(f[0], lambda m: replace(m, items=m.items - 1))], Reason.SIZE_MISMATCH),
    ("other-run", lambda f: [reencoded(f[0], lambda m: replace(m, run_id="someone-else"))], Reason.WRONG_RUN),
    ("not-protobuf", lambda f: [reencoded(f[0], lambda m: replace(m, payload=b"\xff" * 40))], Reason.TAMPERED_MESSAGE),
    ("oversized", lambda f: [f[0] + b"\x00" * (1 << 20)], Reason.OVERSIZED_MESSAGE),
    ("a-response", lambda f: [encode(ResponseChunk("x", 0, 1, b""))], Reason.OUT_OF_ORDER),
    ("garbage", lambda f: [b"\x00" * 64], Reason.MALFORMED_MESSAGE),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "reason"), [pytest.param(m, r, id=i) for i, m, r in BAD_REQUESTS]
)
def test_the_server_refuses_a_bad_request_and_then_everything(workers: Workers, prepared: PreparedSetup, mutate: Callable[[list[bytes]], list[bytes]], reason: Reason) -> None:  # fmt: skip
    _, start, frames = client_frames(workers, prepared)
    server = ServerSession(prepared, workers, max_chunk_items=CHUNK)
    server.receive(start)
    *fine, bad = mutate(frames)
    for frame in fine:
        server.receive(frame)
    with pytest.raises(MatchingError) as error:
        server.receive(bad)
    assert error.value.reason is reason
    assert server.run.state is State.FAILED
    with pytest.raises(MatchingError) as after:
        server.receive(frames[0])
    assert after.value.reason is Reason.RUN_FAILED
    with pytest.raises(MatchingError):
        list(server.responses(wait=True))


def test_a_point_off_the_curve_in_a_request_fails_the_run(workers: Workers, prepared: PreparedSetup) -> None:  # fmt: skip
    """Found by the library on a worker: the run fails when the answer is collected."""
    _, start, frames = client_frames(workers, prepared)
    server = ServerSession(prepared, workers, max_chunk_items=CHUNK)
    server.receive(start)
    server.receive(reencoded(frames[0], lambda m: replace(m, payload=m.payload[:5] + b"\xff" * 32 + m.payload[37:])))  # fmt: skip
    with pytest.raises(MatchingError) as error:
        list(server.responses(wait=True))
    assert error.value.reason is Reason.TAMPERED_MESSAGE
    with pytest.raises(MatchingError) as after:
        server.receive(frames[1])
    assert after.value.reason is Reason.RUN_FAILED


def test_a_request_built_against_an_old_setup_is_refused(workers: Workers, prepared: PreparedSetup) -> None:  # fmt: skip
    _, start, _ = client_frames(workers, prepared)
    changed = prepare(SetupStore(), sets(14, 401, 0, 0)[0], fpr=1e-9, max_client_items=500)
    server = ServerSession(changed, workers, max_chunk_items=CHUNK)
    with pytest.raises(MatchingError) as error:
        server.receive(start)
    assert error.value.reason is Reason.STALE_SETUP


def test_a_client_cannot_start_with_more_items_than_the_setup_was_sized_for(workers: Workers, prepared: PreparedSetup) -> None:  # fmt: skip
    client = ClientSession(sets(16, 0, 501, 0)[1], Mode.INTERSECTION, workers, max_chunk_items=CHUNK)  # fmt: skip
    for frame in setup_frames(prepared):
        client.setup_frame(frame)
    with pytest.raises(MatchingError) as error:
        client.start_frame()
    assert error.value.reason is Reason.TOO_MANY_ITEMS


def test_cardinality_answers_come_only_after_every_request(workers: Workers, prepared: PreparedSetup) -> None:  # fmt: skip
    client, start, frames = client_frames(workers, prepared, Mode.CARDINALITY)
    server = ServerSession(prepared, workers, max_chunk_items=CHUNK)
    server.receive(start)
    for frame in frames[:-1]:
        server.receive(frame)
    assert list(server.responses(wait=True)) == []
    server.receive(frames[-1])
    for frame in server.responses(wait=True):
        client.receive(frame)
    assert server.done
    assert client.result().cardinality == 0


def test_cardinality_chunks_do_not_tell_which_request_chunk_matched() -> None:
    """All matches in the first request chunk: after the server's global sort each answer
    chunk holds about a quarter of them, not all or nothing."""
    server_items = [f"s{n}" for n in range(400)]
    client_items = server_items[:64] + [f"c{n}" for n in range(192)]
    server_key, client_key = psi.new_key(), psi.new_key()
    setup = psi.create_setup(server_key, server_items, fpr=1e-9, max_client_items=1000)
    answers = [
        psi.process_request(server_key, psi.create_request(client_key, client_items[i : i + 64], Mode.CARDINALITY), Mode.CARDINALITY)
        for i in range(0, 256, 64)
    ]  # fmt: skip
    assert [psi.cardinality(client_key, setup, a) for a in answers] == [64, 0, 0, 0]
    counts = [psi.cardinality(client_key, setup, a) for a in psi.shuffle_responses(answers, 64)]
    assert sum(counts) == 64
    assert max(counts) < 40


# --- the client refuses -------------------------------------------------------------------------


def served(workers: Workers, prepared: PreparedSetup, mode: Mode = Mode.INTERSECTION) -> tuple[ClientSession, list[bytes]]:  # fmt: skip
    client, start, frames = client_frames(workers, prepared, mode)
    server = ServerSession(prepared, workers, max_chunk_items=CHUNK)
    server.receive(start)
    for frame in frames:
        server.receive(frame)
    return client, list(server.responses(wait=True))


def response_reencoded(frame: bytes, change: Callable[[ResponseChunk], ResponseChunk]) -> bytes:
    message = decode(frame)
    assert isinstance(message, ResponseChunk)
    return encode(change(message))


BAD_RESPONSES: list[tuple[str, Callable[[list[bytes]], list[bytes]], Reason]] = [
    ("tampered", lambda f: [f[0][:-1] + bytes([f[0][-1] ^ 1])], Reason.TAMPERED_MESSAGE),
    ("truncated", lambda f: [f[0][:-34]], Reason.TAMPERED_MESSAGE),
    ("reordered", lambda f: [f[1]], Reason.OUT_OF_ORDER),
    ("short", lambda f: [response_reencoded(f[0], lambda m: replace(m, items=m.items - 1, payload=m.payload[35:]))], Reason.SIZE_MISMATCH),
    ("other-run", lambda f: [response_reencoded(f[0], lambda m: replace(m, run_id="other"))], Reason.WRONG_RUN),
    ("oversized", lambda f: [f[0] + b"\x00" * (1 << 20)], Reason.OVERSIZED_MESSAGE),
    ("a-request", lambda f: [encode(RequestChunk("x", 0, 1, b""))], Reason.OUT_OF_ORDER),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "reason"), [pytest.param(m, r, id=i) for i, m, r in BAD_RESPONSES]
)
def test_the_client_refuses_a_bad_response_and_gives_no_result(workers: Workers, prepared: PreparedSetup, mutate: Callable[[list[bytes]], list[bytes]], reason: Reason) -> None:  # fmt: skip
    client, responses = served(workers, prepared)
    *fine, bad = mutate(responses)
    for frame in fine:
        client.receive(frame)
    with pytest.raises(MatchingError) as error:
        client.receive(bad)
    assert error.value.reason is reason
    with pytest.raises(MatchingError):
        client.result()


def test_a_point_off_the_curve_in_a_response_fails_the_run(workers: Workers, prepared: PreparedSetup) -> None:  # fmt: skip
    client, responses = served(workers, prepared)
    forged = [response_reencoded(responses[0], lambda m: replace(m, payload=m.payload[:3] + b"\xff" * 32 + m.payload[35:])), *responses[1:]]  # fmt: skip
    for frame in forged:
        client.receive(frame)
    with pytest.raises(MatchingError) as error:
        client.result()
    assert error.value.reason is Reason.TAMPERED_MESSAGE


def test_no_result_before_every_answer(workers: Workers, prepared: PreparedSetup) -> None:
    client, responses = served(workers, prepared)
    for frame in responses[:-1]:
        client.receive(frame)
    with pytest.raises(MatchingError) as error:
        client.result()
    assert error.value.reason is Reason.OUT_OF_ORDER


def fetch(client: ClientSession, frames: list[bytes]) -> None:
    for frame in frames:
        client.setup_frame(frame)


def test_a_tampered_setup_is_refused(workers: Workers, prepared: PreparedSetup) -> None:
    frames = setup_frames(prepared, 2000)
    frames[1] = frames[1][:-1] + bytes([frames[1][-1] ^ 1])
    client = ClientSession(["a"], Mode.INTERSECTION, workers)
    with pytest.raises(MatchingError) as error:
        fetch(client, frames)
    assert error.value.reason is Reason.TAMPERED_MESSAGE


def test_a_setup_looser_than_it_says_is_refused(workers: Workers) -> None:
    items = [f"s{n}" for n in range(100)]
    loose = prepare(SetupStore(), items, fpr=0.5, max_client_items=10)
    lying = PreparedSetup(replace(loose.offer, fpr=1e-9), loose.setup, loose.key)
    client = ClientSession(["a"], Mode.INTERSECTION, workers)
    with pytest.raises(MatchingError) as error:
        fetch(client, setup_frames(lying))
    assert error.value.reason is Reason.UNSAFE_SETUP


def test_a_setup_above_the_clients_rate_is_refused(workers: Workers) -> None:
    setup = prepare(SetupStore(), ["a", "b"], fpr=1e-3, max_client_items=10)
    client = ClientSession(["a"], Mode.INTERSECTION, workers, max_fpr=1e-6)
    with pytest.raises(MatchingError) as error:
        fetch(client, setup_frames(setup))
    assert error.value.reason is Reason.UNSAFE_SETUP


def test_a_cached_setup_is_reused_without_fetching(workers: Workers, prepared: PreparedSetup) -> None:  # fmt: skip
    first = ClientSession(["x"], Mode.INTERSECTION, workers)
    held = None
    for frame in setup_frames(prepared):
        held = first.setup_frame(frame)
    assert held is not None
    server_items = sets(14, 400, 0, 0)[0]
    result = run_local([server_items[3], "nope"], prepared, Mode.INTERSECTION, workers, setup=held)
    assert result.positions == (0,)


def test_a_request_chunk_before_the_start_is_out_of_order(workers: Workers, prepared: PreparedSetup) -> None:  # fmt: skip
    _, _, frames = client_frames(workers, prepared)
    server = ServerSession(prepared, workers, max_chunk_items=CHUNK)
    with pytest.raises(MatchingError) as error:
        server.receive(frames[0])
    assert error.value.reason is Reason.OUT_OF_ORDER
    assert server.run.state is State.FAILED


def _hold_workers(pids: multiprocessing.Queue[list[int]]) -> None:
    workers = Workers(2)
    pids.put(workers.pids())
    time.sleep(600)  # until killed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for this purpose (its parent, the init process, reaps it)
    return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()


def test_workers_end_when_their_parent_is_killed() -> None:
    context = multiprocessing.get_context("spawn")
    pids: multiprocessing.Queue[list[int]] = context.Queue()
    parent = context.Process(target=_hold_workers, args=(pids,))  # it has children
    parent.start()
    try:
        started = pids.get(timeout=60)
        assert len(started) == 2
        assert all(_alive(pid) for pid in started)
    finally:
        parent.kill()  # SIGKILL: the pool is never shut down
        parent.join(timeout=10)
    deadline = time.monotonic() + 10 * PARENT_CHECK_S
    while any(_alive(pid) for pid in started):
        assert time.monotonic() < deadline, f"workers {started} outlived their parent"
        time.sleep(0.1)
