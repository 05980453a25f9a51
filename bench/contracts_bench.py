"""Data contracts under load (reliability issue: 200 concurrent data-contract calls from one
consumer against one provider all succeed, on SQLite and on PostgreSQL; 1,000 in a sustained
run with 0 errors).

Set-up as in ``connector_bench``: a city bureau (provider) and a bank (consumer), each its own
``dataspace connector serve`` process on loopback, DCP on every DSP message, the authority in
this process. Each call asks the bank's data contracts API (``POST /contracts/v1/data``) for a
dataset of its own, so that every call negotiates an agreement and starts a transfer (no reuse).

- burst: 200 calls at the same moment; p50, p95, max, and every answer that is not 200;
- sustained: 1,000 calls, 20 at a time; calls per second and every error.

Run: ``.venv/bin/python -m bench.contracts_bench [--postgres]`` (``make bench`` runs it on
SQLite). Exits 1 when any call fails.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.connector_bench import KEY, start_pair
from connector.settings import ConnectorSettings

BURST = 200
SUSTAINED = 1_000
SUSTAINED_AT_ONCE = 20
CALL_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Outcome:
    status: int
    seconds: float
    detail: str


async def call(client: httpx.AsyncClient, bank: ConnectorSettings, bureau: ConnectorSettings,
               dataset: str) -> Outcome:  # fmt: skip
    start = time.perf_counter()
    try:
        response = await client.post(
            f"{bank.base_url}/contracts/v1/data",
            json={"provider": bureau.participant_id, "providerAddress": f"{bureau.base_url}/dsp",
                  "dataset": dataset, "purpose": "credit-assessment"},
        )  # fmt: skip
    except httpx.HTTPError as error:
        return Outcome(0, time.perf_counter() - start, f"{type(error).__name__}: {error}")
    detail = "" if response.status_code == 200 else response.text[:300]
    return Outcome(response.status_code, time.perf_counter() - start, detail)


async def run_calls(
    bank: ConnectorSettings, bureau: ConnectorSettings, datasets: list[str], at_once: int
) -> tuple[list[Outcome], float]:
    limits = httpx.Limits(max_connections=at_once, max_keepalive_connections=at_once)
    gate = asyncio.Semaphore(at_once)
    async with httpx.AsyncClient(
        timeout=CALL_TIMEOUT_S, limits=limits, headers={"X-Api-Key": KEY}
    ) as client:

        async def one(dataset: str) -> Outcome:
            async with gate:
                return await call(client, bank, bureau, dataset)

        start = time.perf_counter()
        outcomes = await asyncio.gather(*(one(d) for d in datasets))
        return list(outcomes), time.perf_counter() - start


def report(name: str, outcomes: list[Outcome], elapsed: float) -> int:
    times = sorted(o.seconds * 1e3 for o in outcomes)
    errors = [o for o in outcomes if o.status != 200]
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    print(
        f"{name}: {len(outcomes) - len(errors)} of {len(outcomes)} succeeded in {elapsed:.1f} s "
        f"({len(outcomes) / elapsed:.1f}/s); p50 {statistics.median(times):.0f} ms, "
        f"p95 {p95:.0f} ms, max {times[-1]:.0f} ms; errors {len(errors)}"
    )
    for (status, detail), times_seen in Counter((e.status, e.detail) for e in errors).items():
        print(f"  {times_seen} x {status}: {detail}")
    return len(errors)


@contextmanager
def databases(postgres: bool, folder: Path) -> Iterator[tuple[str, str]]:
    if not postgres:
        yield f"sqlite:///{folder / 'bureau.db'}", f"sqlite:///{folder / 'bank.db'}"
        return
    from tests.postgres import cluster, create_database, find_bindir  # bench only

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed (make postgres)")
    with cluster(bindir) as admin:
        yield create_database(admin, "bureau"), create_database(admin, "bank")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", action="store_true", help="both connectors on PostgreSQL")
    parser.add_argument("--burst", type=int, default=BURST)
    parser.add_argument("--sustained", type=int, default=SUSTAINED)
    options = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="kexin-bench-") as scratch,
        ExitStack() as servers,
        databases(options.postgres, Path(scratch)) as (bureau_db, bank_db),
    ):
        bureau, bank = start_pair(
            servers, Path(scratch), bureau={"database_url": bureau_db},
            bank={"database_url": bank_db, "contracts_timeout_s": CALL_TIMEOUT_S},
        )  # fmt: skip
        datasets = [f"urn:kexin:asset:{index:05d}" for index in range(10_000)]
        kind = "PostgreSQL" if options.postgres else "SQLite"
        burst, burst_s = asyncio.run(
            run_calls(bank, bureau, datasets[: options.burst], options.burst)
        )
        failed = report(f"{kind}, {options.burst} calls at once", burst, burst_s)
        rest = datasets[options.burst : options.burst + options.sustained]
        sustained, sustained_s = asyncio.run(run_calls(bank, bureau, rest, SUSTAINED_AT_ONCE))
        failed += report(
            f"{kind}, {options.sustained} calls, {SUSTAINED_AT_ONCE} at a time",
            sustained,
            sustained_s,
        )
    print("contracts targets met" if failed == 0 else "contracts targets MISSED")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
