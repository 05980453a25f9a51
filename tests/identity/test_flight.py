"""Single flight: concurrent calls for one key share one call; a waiter's cancellation does
not cancel it; its failure reaches every waiter; once it has ended, the next call is new."""

from __future__ import annotations

import asyncio

from identity.flight import SingleFlight


def test_concurrent_calls_for_one_key_share_one_call() -> None:
    calls: list[str] = []

    async def go() -> list[str]:
        flights: SingleFlight[str, str] = SingleFlight()

        async def call(key: str) -> str:
            calls.append(key)
            await asyncio.sleep(0.05)
            return key.upper()

        first = await asyncio.gather(
            *(flights.run(k, lambda k=k: call(k)) for k in ["a"] * 10 + ["b"] * 5)  # type: ignore[misc]
        )
        again = await flights.run("a", lambda: call("a"))
        assert flights.in_flight() == 0
        return [*first, again]

    answers = asyncio.run(go())
    assert answers == ["A"] * 10 + ["B"] * 5 + ["A"]
    assert calls == ["a", "b", "a"]


def test_a_cancelled_waiter_does_not_cancel_the_call_and_failures_reach_everyone() -> None:
    async def go() -> None:
        flights: SingleFlight[str, int] = SingleFlight()
        released = asyncio.Event()

        async def slow() -> int:
            await released.wait()
            return 7

        impatient = asyncio.ensure_future(flights.run("k", slow))
        patient = asyncio.ensure_future(flights.run("k", slow))
        await asyncio.sleep(0.01)
        impatient.cancel()
        released.set()
        assert await patient == 7

        async def broken() -> int:
            raise ValueError("nope")

        results = await asyncio.gather(
            flights.run("x", broken), flights.run("x", broken), return_exceptions=True
        )
        assert [type(r) for r in results] == [ValueError, ValueError]

    asyncio.run(go())


def test_nothing_is_left_when_every_waiter_gave_up() -> None:
    async def go() -> int:
        flights: SingleFlight[str, int] = SingleFlight()

        async def fails_later() -> int:
            await asyncio.sleep(0.01)
            raise ValueError("nobody waits for this")

        waiter = asyncio.ensure_future(flights.run("k", fails_later))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.sleep(0.05)
        return flights.in_flight()

    assert asyncio.run(go()) == 0
