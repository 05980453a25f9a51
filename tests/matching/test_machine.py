"""The run's rules, without cryptography: which message is legal when, and that counts add up."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from matching.errors import MatchingError, Reason
from matching.machine import (
    TRANSITIONS,
    ClientRun,
    ClientSetup,
    Event,
    Mode,
    RequestChunk,
    ResponseChunk,
    Role,
    RunStart,
    ServerRun,
    SetupOffer,
    State,
    digest,
    next_state,
    setup_chunks,
)

SETUP = bytes(range(256)) * 10
OFFER = SetupOffer("sha256:" + "a" * 64, digest(SETUP), 1000, 100, 1e-9, len(SETUP))
START = RunStart("run-1", OFFER.data_version, OFFER.setup_digest, Mode.INTERSECTION, 25, 3)


def server(start: RunStart = START) -> ServerRun:
    machine = ServerRun(OFFER, max_chunk_items=10)
    machine.start(start)
    return machine


def refused(reason: Reason, call: object, *args: object) -> None:
    assert callable(call)
    with pytest.raises(MatchingError) as error:
        call(*args)
    assert error.value.reason is reason


def test_everything_not_in_the_table_is_refused() -> None:
    for key in itertools.product(Role, State, Event):
        if key not in TRANSITIONS:
            reason = Reason.RUN_FAILED if key[1] is State.FAILED else Reason.OUT_OF_ORDER
            refused(reason, next_state, *key)


def test_a_whole_run_on_both_sides() -> None:
    client = ClientRun("run-1", Mode.INTERSECTION, max_chunk_items=10, setup=ClientSetup(OFFER, SETUP))  # fmt: skip
    machine = ServerRun(OFFER, max_chunk_items=10)
    machine.start(client.start(25))
    for items in (10, 10, 5):
        chunk = client.request(items, b"r")
        machine.request(chunk)
        client.response(machine.respond(items, b"a"))
    assert (client.state, machine.state) == (State.DONE, State.DONE)


def test_a_run_against_another_setup_is_refused() -> None:
    for stale in (
        replace(START, data_version="sha256:" + "b" * 64),
        replace(START, setup_digest=digest(b"an older setup")),
    ):
        machine = ServerRun(OFFER, max_chunk_items=10)
        refused(Reason.STALE_SETUP, machine.start, stale)
        assert machine.state is State.FAILED
        refused(Reason.RUN_FAILED, machine.request, RequestChunk("run-1", 0, 10, b""))


@pytest.mark.parametrize(
    ("start", "reason"),
    [
        pytest.param(replace(START, client_items=101, chunks=11), Reason.TOO_MANY_ITEMS, id="over-the-setup"),
        pytest.param(replace(START, client_items=0, chunks=1), Reason.SIZE_MISMATCH, id="empty"),
        pytest.param(replace(START, chunks=2), Reason.SIZE_MISMATCH, id="too-few-chunks"),
        pytest.param(replace(START, chunks=26), Reason.SIZE_MISMATCH, id="more-chunks-than-items"),
    ],
)  # fmt: skip
def test_a_start_that_cannot_add_up_is_refused(start: RunStart, reason: Reason) -> None:
    refused(reason, ServerRun(OFFER, max_chunk_items=10).start, start)


@pytest.mark.parametrize(
    ("chunks", "reason"),
    [
        pytest.param([RequestChunk("run-1", 1, 10, b"")], Reason.OUT_OF_ORDER, id="skipped"),
        pytest.param([RequestChunk("run-1", 0, 10, b""), RequestChunk("run-1", 0, 10, b"")], Reason.OUT_OF_ORDER, id="replayed"),
        pytest.param([RequestChunk("run-2", 0, 10, b"")], Reason.WRONG_RUN, id="other-run"),
        pytest.param([RequestChunk("run-1", 0, 11, b"")], Reason.SIZE_MISMATCH, id="oversized-chunk"),
        pytest.param([RequestChunk("run-1", 0, 0, b"")], Reason.SIZE_MISMATCH, id="empty-chunk"),
        pytest.param([RequestChunk("run-1", 0, 10, b""), RequestChunk("run-1", 1, 10, b""), RequestChunk("run-1", 2, 4, b"")], Reason.SIZE_MISMATCH, id="short-total"),
        pytest.param([RequestChunk("run-1", 0, 10, b""), RequestChunk("run-1", 1, 10, b""), RequestChunk("run-1", 2, 10, b"")], Reason.SIZE_MISMATCH, id="long-total"),
        pytest.param([RequestChunk("run-1", 0, 10, b""), RequestChunk("run-1", 1, 10, b""), RequestChunk("run-1", 2, 5, b""), RequestChunk("run-1", 3, 1, b"")], Reason.OUT_OF_ORDER, id="after-the-last"),
    ],
)  # fmt: skip
def test_request_chunks_out_of_line_are_refused(chunks: list[RequestChunk], reason: Reason) -> None:
    machine = server()
    *fine, bad = chunks
    for chunk in fine:
        machine.request(chunk)
    refused(reason, machine.request, bad)
    assert machine.state is State.FAILED


def test_a_request_before_the_start_is_refused() -> None:
    refused(Reason.OUT_OF_ORDER, ServerRun(OFFER, max_chunk_items=10).request, RequestChunk("run-1", 0, 10, b""))  # fmt: skip


def test_the_server_answers_only_what_was_asked() -> None:
    machine = server()
    refused(Reason.OUT_OF_ORDER, machine.respond, 10, b"")
    machine = server()
    machine.request(RequestChunk("run-1", 0, 10, b""))
    refused(Reason.SIZE_MISMATCH, machine.respond, 9, b"")


def test_cardinality_answers_wait_for_every_request() -> None:
    machine = server(replace(START, mode=Mode.CARDINALITY))
    machine.request(RequestChunk("run-1", 0, 10, b""))
    refused(Reason.OUT_OF_ORDER, machine.respond, 10, b"")


def client_with_requests() -> ClientRun:
    client = ClientRun("run-1", Mode.INTERSECTION, max_chunk_items=10, setup=ClientSetup(OFFER, SETUP))  # fmt: skip
    client.start(25)
    for items in (10, 10, 5):
        client.request(items, b"")
    return client


@pytest.mark.parametrize(
    ("responses", "reason"),
    [
        pytest.param([ResponseChunk("run-1", 1, 10, b"")], Reason.OUT_OF_ORDER, id="reordered"),
        pytest.param([ResponseChunk("run-9", 0, 10, b"")], Reason.WRONG_RUN, id="other-run"),
        pytest.param([ResponseChunk("run-1", 0, 9, b"")], Reason.SIZE_MISMATCH, id="short-answer"),
        pytest.param([ResponseChunk("run-1", 0, 10, b""), ResponseChunk("run-1", 1, 10, b""), ResponseChunk("run-1", 2, 5, b""), ResponseChunk("run-1", 3, 1, b"")], Reason.OUT_OF_ORDER, id="after-the-last"),
    ],
)  # fmt: skip
def test_the_client_refuses_answers_out_of_line(
    responses: list[ResponseChunk], reason: Reason
) -> None:
    client = client_with_requests()
    *fine, bad = responses
    for response in fine:
        client.response(response)
    refused(reason, client.response, bad)
    assert client.state is State.FAILED


def test_the_client_asks_no_more_than_the_setup_allows() -> None:
    client = ClientRun("r", Mode.INTERSECTION, max_chunk_items=10, setup=ClientSetup(OFFER, SETUP))
    refused(Reason.TOO_MANY_ITEMS, client.start, 101)


def test_the_setup_arrives_in_pieces_and_is_checked_whole() -> None:
    pieces = setup_chunks(OFFER, SETUP, 1000)
    assert len(pieces) == 3
    client = ClientRun("r", Mode.CARDINALITY, max_chunk_items=10)
    assert client.setup_chunk(pieces[0]) is None
    assert client.setup_chunk(pieces[1]) is None
    held = client.setup_chunk(pieces[2])
    assert held == ClientSetup(OFFER, SETUP)
    assert client.state is State.READY


@pytest.mark.parametrize(
    "case",
    ["reordered", "tampered", "mixed", "repeated", "truncated"],
)
def test_a_bad_setup_is_refused(case: str) -> None:
    pieces = setup_chunks(OFFER, SETUP, 1000)
    match case:
        case "reordered":
            pieces = [pieces[1], pieces[0], pieces[2]]
        case "tampered":
            pieces[1] = replace(pieces[1], payload=b"x" + pieces[1].payload[1:])
        case "mixed":
            pieces[2] = replace(pieces[2], data_version="sha256:" + "c" * 64)
        case "repeated":
            pieces = [pieces[0], pieces[0]]
        case "truncated":
            pieces[2] = replace(pieces[2], payload=pieces[2].payload[:-1])
    client = ClientRun("r", Mode.CARDINALITY, max_chunk_items=10)
    with pytest.raises(MatchingError):
        list(map(client.setup_chunk, pieces))
    assert client.state is State.FAILED


def test_setup_bytes_other_than_the_offered_ones_are_not_published() -> None:
    refused(Reason.STALE_SETUP, setup_chunks, OFFER, SETUP + b"x", 1000)
