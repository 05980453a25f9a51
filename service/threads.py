"""Blocking work (database sessions) run in a worker thread from async code, such that a
cancellation of the caller waits for the thread to finish before it goes on.

``asyncio.to_thread`` and anyio's ``run_sync`` called from a plain asyncio task both give up on
the thread when the task is cancelled: the thread runs on, unseen. A service cancels its
workers at shutdown and then disposes of its database engine; a thread still inside a session
then hands its connection back to a pool that nothing will close, and the connection is left
open (PostgreSQL: psycopg's finalizer warns of it much later). :func:`run_to_completion` lets
the thread finish, then passes the cancellation on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from anyio.to_thread import run_sync

T = TypeVar("T")


async def run_to_completion(function: Callable[..., T], *args: object) -> T:
    """``function(*args)`` in a worker thread; cancelled meanwhile, wait for it, then raise."""
    # anyio's worker threads (up to 40, shared with the app's sync endpoints), not the event
    # loop's default executor (min(32, cores + 4): 6 threads here, too few for the outbox)
    running = asyncio.ensure_future(run_sync(function, *args))
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        await asyncio.wait({running})
        raise
