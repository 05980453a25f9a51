"""Single flight: concurrent calls for the same key share the one call in flight, so that a
burst of requests from one caller resolves its DID document and queries its Credential Service
once, not once per request. A waiter that gives up (cancelled) does not cancel the shared call.
Nothing is cached here: once the call has ended, the next one starts afresh."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._flights: dict[K, asyncio.Task[V]] = {}

    async def run(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(call())
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        return await asyncio.shield(flight)

    def _landed(self, key: K, done: asyncio.Task[V]) -> None:
        if self._flights.get(key) is done:
            del self._flights[key]
        if not done.cancelled():
            done.exception()  # retrieved: a failure nobody awaited any more is not "never seen"

    def in_flight(self) -> int:
        return len(self._flights)
