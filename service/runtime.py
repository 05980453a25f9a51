"""How a service process runs: settings of the Python runtime for a long-lived server."""

from __future__ import annotations

import gc
from typing import Final

GC_THRESHOLDS: Final = (20_000, 20, 20)
"""The cyclic garbage collector's thresholds for a server process. Python's default (700, 10,
10) runs a young collection every 700 allocations; a connector allocates thousands of objects
per request (ORM rows, pydantic models, JSON), so the collector ran several times per request
and, with the large heap of a running service, took about a tenth of its CPU time (measured
with the connector benchmark: 10 % less CPU per negotiation with these). Reference counting
still frees everything that is not in a cycle at once; cycles wait a little longer."""


def tune_for_server() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
