"""The outbox worker looks at the database only when something may have changed (an enqueue, a
delivery that left something for later, a retry that is due): these tests check that no
message is left behind by that economy. The peer is an httpx mock; the worker runs for real."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, cast

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connector.database import migrations
from connector.outbox import (
    CONCURRENCY,
    Delivery,
    Handlers,
    Outbox,
    OutboxMessage,
    enqueue,
    older_pending,
)
from storage.migrate import upgrade

KIND = "test.message"


def put(engine: Engine, process_id: str, number: int) -> None:
    with Session(engine) as session:
        enqueue(
            session, process_id=process_id, kind=KIND, audience="did:web:peer",
            url=f"http://peer.test/{process_id}/{number}", body={"n": number},
            now=datetime.now(UTC),
        )  # fmt: skip
        session.commit()


def put_and_hand(engine: Engine, outbox: Outbox, process_id: str, number: int) -> None:
    """As a process's move does: enqueue in a transaction, look for the process's older pending
    messages in it, and hand the new one to the outbox once committed."""
    with Session(engine, expire_on_commit=False) as session:
        older = older_pending(session, process_id)
        enqueue(
            session, process_id=process_id, kind=KIND, audience="did:web:peer",
            url=f"http://peer.test/{process_id}/{number}", body={"n": number},
            now=datetime.now(UTC),
        )  # fmt: skip
        added = [m for m in session.new if isinstance(m, OutboxMessage)]
        session.commit()
    assert older is not None
    outbox.hand(added, older)


def statuses(engine: Engine) -> dict[str, str]:
    with Session(engine) as session:
        return {m.url: m.status for m in session.exec(select(OutboxMessage)).all()}


async def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def run_worker(
    engine: Engine,
    answer: Callable[[httpx.Request], Coroutine[None, None, httpx.Response]],
    scenario: Callable[[Outbox], Awaitable[None]],
) -> None:
    upgrade(engine, migrations())

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            outbox = Outbox(
                engine, cast(Any, None), client, lambda: datetime.now(UTC)
            )  # the participant signs tokens: the handlers' headers replace it here
            outbox.register(KIND, Handlers(headers=lambda _m: {}))
            worker = asyncio.create_task(outbox.run())
            try:
                await scenario(outbox)
            finally:
                worker.cancel()

    asyncio.run(main())


def test_a_message_enqueued_while_its_process_is_in_flight_goes_when_that_delivery_lands(
    engine: Engine,
) -> None:
    release = asyncio.Event()
    seen: list[str] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/p/1":
            await release.wait()  # the first delivery is still in flight ...
        return httpx.Response(200, json={})

    async def scenario(outbox: Outbox) -> None:
        put(engine, "p", 1)
        outbox.wake()
        await until(lambda: seen == ["/p/1"])
        put(engine, "p", 2)  # ... when the process enqueues its next message
        outbox.wake()
        await asyncio.sleep(0.1)  # the worker looked and left it: its process is busy
        assert seen == ["/p/1"]
        release.set()  # nothing else wakes the worker but this delivery landing
        await until(lambda: statuses(engine).get("http://peer.test/p/2") == Delivery.SENT)
        assert seen == ["/p/1", "/p/2"]

    run_worker(engine, answer, scenario)


def test_processes_that_waited_for_a_free_slot_go_when_one_frees(engine: Engine) -> None:
    release = asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json={})

    processes = CONCURRENCY + 5

    async def scenario(outbox: Outbox) -> None:
        for index in range(processes):
            put(engine, f"q{index}", 1)
        outbox.wake()
        await asyncio.sleep(0.2)
        release.set()
        await until(lambda: list(statuses(engine).values()) == [Delivery.SENT] * processes, 20.0)

    run_worker(engine, answer, scenario)


def test_a_message_retried_later_goes_at_its_time_without_a_wake(engine: Engine) -> None:
    answers = iter([503, 200])

    async def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers), json={})

    async def scenario(outbox: Outbox) -> None:
        put(engine, "r", 1)
        outbox.wake()
        await until(lambda: statuses(engine)["http://peer.test/r/1"] == Delivery.SENT)

    run_worker(engine, answer, scenario)


def test_a_handed_message_goes_at_once_and_one_handed_while_its_process_is_in_flight_follows(
    engine: Engine,
) -> None:
    release = asyncio.Event()
    seen: list[str] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/h/1":
            await release.wait()
        return httpx.Response(200, json={})

    async def scenario(outbox: Outbox) -> None:
        await asyncio.sleep(0.05)  # the worker's first round is over: only a hand-over starts it
        put_and_hand(engine, outbox, "h", 1)
        await until(lambda: seen == ["/h/1"])
        put_and_hand(engine, outbox, "h", 2)  # its older message is the one in flight
        await asyncio.sleep(0.05)
        assert seen == ["/h/1"]  # never beside it
        release.set()
        await until(lambda: statuses(engine).get("http://peer.test/h/2") == Delivery.SENT)
        assert seen == ["/h/1", "/h/2"]

    run_worker(engine, answer, scenario)


def test_a_handed_message_never_overtakes_an_older_one_waiting_for_its_retry(
    engine: Engine,
) -> None:
    answers = iter([503, 200, 200])
    seen: list[str] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(next(answers), json={})

    async def scenario(outbox: Outbox) -> None:
        put_and_hand(engine, outbox, "o", 1)
        await until(lambda: seen == ["/o/1"])  # refused for now: retried after a backoff
        await asyncio.sleep(0.05)
        put_and_hand(engine, outbox, "o", 2)
        await until(lambda: statuses(engine).get("http://peer.test/o/2") == Delivery.SENT)
        assert seen == ["/o/1", "/o/1", "/o/2"]

    run_worker(engine, answer, scenario)


def test_a_handed_message_never_overtakes_an_older_one_the_worker_has_not_seen(
    engine: Engine,
) -> None:
    seen: list[str] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={})

    async def scenario(outbox: Outbox) -> None:
        await asyncio.sleep(0.05)
        put(engine, "u", 1)  # committed, but nobody told the worker yet
        put_and_hand(engine, outbox, "u", 2)
        await until(lambda: statuses(engine).get("http://peer.test/u/2") == Delivery.SENT)
        assert seen == ["/u/1", "/u/2"]

    run_worker(engine, answer, scenario)


def test_a_hand_over_that_comes_after_the_worker_sent_the_message_sends_nothing_again(
    engine: Engine,
) -> None:
    seen: list[str] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={})

    async def scenario(outbox: Outbox) -> None:
        with Session(engine, expire_on_commit=False) as session:
            enqueue(
                session, process_id="l", kind=KIND, audience="did:web:peer",
                url="http://peer.test/l/1", body={"n": 1}, now=datetime.now(UTC),
            )  # fmt: skip
            added = [m for m in session.new if isinstance(m, OutboxMessage)]
            session.commit()
        outbox.wake()  # a round of the worker finds it first ...
        await until(lambda: statuses(engine).get("http://peer.test/l/1") == Delivery.SENT)
        outbox.hand(added, [])  # ... and the committer's hand-over comes late
        await asyncio.sleep(0.1)
        assert seen == ["/l/1"]

    run_worker(engine, answer, scenario)
