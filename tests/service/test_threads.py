"""A cancelled caller waits for its thread: the work it started ends before it does."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from service.threads import run_to_completion


def test_a_cancelled_caller_ends_after_its_thread() -> None:
    finished = threading.Event()

    def slow() -> None:
        time.sleep(0.3)
        finished.set()

    async def cancel_midway() -> bool:
        task = asyncio.create_task(run_to_completion(slow))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return finished.is_set()

    assert asyncio.run(cancel_midway())


def test_results_and_errors_come_back() -> None:
    def fail() -> None:
        raise ValueError("no")

    assert asyncio.run(run_to_completion(lambda a, b: a + b, 2, 3)) == 5
    with pytest.raises(ValueError, match="no"):
        asyncio.run(run_to_completion(fail))
