"""Matching benchmarks (issue 15), at the library level: both sides in this process, the PSI
work on worker processes (one per core), messages as frames, no HTTP yet.

- normalisation: 10^6 unified social credit codes, 10^6 identity numbers, 10^6 mobile numbers
  (synthetic, 1 % malformed, a few typed the way people do), each <= 2 s;
- unbalanced: a 2^12 client against a 2^20 server whose setup is precomputed and held by the
  client (cached by data version): the online phase (start, requests, answers, result)
  <= 0.5 s; the setup's time and size are reported apart;
- balanced: 2^20 x 2^20 on both cores, the setup precomputed: time (<= 120 s) and peak RSS of
  this process and of the largest worker (for information: the 1 GiB target is per connector,
  end to end over HTTP, once the data plane drives the sessions).

The setup of 2^20 items takes minutes on one core (the library builds it in one call); with
``--store DIR`` it is kept there and reused by the next run (the same seed gives the same data,
the same version, the same key). Run: ``make bench`` (or ``.venv/bin/python -m
bench.matching_bench``; ``--help`` for smaller sizes). Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matching.identifiers import Kind, normalise
from matching.machine import ClientSetup, Mode
from matching.parallel import ClientSession, MatchResult, Workers, run_local, setup_frames
from matching.setup import PreparedSetup, SetupStore, prepare
from matching.synthetic import Dataset, generate

NORMALISE_TARGET_S = 2.0
UNBALANCED_TARGET_S = 0.5
BALANCED_TARGET_S = 120.0
FPR = 1e-6
"""Per query of up to 2^20 items (about 1e-12 an item); 2^20 x 2^20 / 1e-9 would overflow the
library's 64-bit GCS hash range (matching.psi refuses it)."""
OVERLAP = 0.2
MALFORMED = 0.01


@dataclass(frozen=True)
class Sizes:
    normalise: int
    server: int
    small_client: int
    large_client: int
    ceiling: int
    """The setup is sized for client sets up to this (a matching policy's ceiling)."""


def column(dataset: Dataset, count: int, seed: int, index: int = 0) -> list[str]:
    return [row[index] for row in generate(dataset, count, seed, malformed=MALFORMED)]


def timed_normalise(values: Sequence[str], kind: Kind) -> tuple[float, int, int]:
    start = time.perf_counter()
    result = normalise(values, kind)
    return time.perf_counter() - start, len(result.items), len(result.invalid)


def client_list(server: list[str], count: int, seed: int) -> list[str]:
    rows = generate(Dataset.ENTERPRISES, count, seed, overlap_with=server, overlap=OVERLAP)
    return normalise([row[0] for row in rows], Kind.USCC).items


def fetch(prepared: PreparedSetup, workers: Workers) -> ClientSetup:
    client = ClientSession(["fetch-only"], Mode.CARDINALITY, workers)
    held = None
    for frame in setup_frames(prepared):
        held = client.setup_frame(frame)
    if held is None:  # pragma: no cover - the last frame completes the setup
        raise RuntimeError("setup incomplete")
    return held


def timed_run(
    items: list[str], prepared: PreparedSetup, mode: Mode, workers: Workers, held: ClientSetup
) -> tuple[float, MatchResult]:
    start = time.perf_counter()
    result = run_local(items, prepared, mode, workers, setup=held)
    return time.perf_counter() - start, result


def peak_rss_mib(pid: int | None = None) -> float:
    """This process's peak RSS, or another's (its VmHWM)."""
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--normalise", type=int, default=10**6, help="identifiers per kind")
    parser.add_argument("--server-log2", type=int, default=20)
    parser.add_argument("--small-client-log2", type=int, default=12)
    parser.add_argument("--large-client-log2", type=int, default=20)
    parser.add_argument("--store", type=Path, default=None, help="keep setups here")
    parser.add_argument("--ceiling-log2", type=int, default=20, help="largest client set")
    parser.add_argument("--no-balanced", action="store_true", help="skip the 2^20 x 2^20 run")
    args = parser.parse_args(argv)
    large = 0 if args.no_balanced else 2**args.large_client_log2
    sizes = Sizes(
        args.normalise, 2**args.server_log2, 2**args.small_client_log2, large,
        2**args.ceiling_log2,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="kexin-bench-") as folder:
        return measure(sizes, args.store or Path(folder))


def measure(sizes: Sizes, store_dir: Path) -> int:
    ok = True
    print(f"normalisation of {sizes.normalise:,} identifiers each ({MALFORMED:.0%} malformed):")
    columns = (
        (Kind.USCC, column(Dataset.ENTERPRISES, sizes.normalise, 1)),
        (Kind.ID_NUMBER, column(Dataset.RESIDENTS, sizes.normalise, 2)),
        (Kind.MOBILE, column(Dataset.RESIDENTS, sizes.normalise, 3, index=2)),
    )
    for kind, values in columns:
        seconds, valid, invalid = timed_normalise(values, kind)
        ok &= seconds <= NORMALISE_TARGET_S
        print(
            f"  {kind.value}: {seconds:.2f} s ({seconds / len(values) * 1e6:.2f} us each; "
            f"{valid:,} valid, {invalid:,} invalid; target <= {NORMALISE_TARGET_S} s)"
        )
    del columns

    server = normalise(column(Dataset.ENTERPRISES, sizes.server, 4), Kind.USCC).items
    ceiling = sizes.ceiling  # one setup serves both runs
    start = time.perf_counter()
    prepared = prepare(SetupStore(store_dir), server, fpr=FPR, max_client_items=ceiling)
    setup_s = time.perf_counter() - start
    print(
        f"setup of {len(server):,} server items for clients of up to {ceiling:,} (rate {FPR}): "
        f"{setup_s:.1f} s (one library call on one core; reused from the store, only the data "
        f"version is computed), "
        f"{len(prepared.setup) / 2**20:.2f} MiB, {len(setup_frames(prepared))} frames"
    )
    small = client_list(server, sizes.small_client, 5)
    large = client_list(server, sizes.large_client, 6) if sizes.large_client else []
    with Workers() as workers:
        start = time.perf_counter()
        held = fetch(prepared, workers)
        print(f"setup fetch and check by the client: {time.perf_counter() - start:.2f} s")
        timed_run(small, prepared, Mode.CARDINALITY, workers, held)  # warm-up, not measured
        print(f"unbalanced, {len(small):,} client items, {workers.processes} workers:")
        for mode in Mode:
            seconds, result = timed_run(small, prepared, mode, workers, held)
            ok &= seconds <= UNBALANCED_TARGET_S
            print(
                f"  {mode.value}: online {seconds:.3f} s, {result.cardinality:,} found "
                f"(target <= {UNBALANCED_TARGET_S} s)"
            )
        if large:
            seconds, result = timed_run(large, prepared, Mode.INTERSECTION, workers, held)
            ok &= seconds <= BALANCED_TARGET_S
            print(
                f"balanced, {len(large):,} x {len(server):,} on {workers.processes} workers: "
                f"{seconds:.1f} s, {result.cardinality:,} found "
                f"(target <= {BALANCED_TARGET_S:.0f} s)"
            )
        workers_mib = max(peak_rss_mib(pid) for pid in workers.pids())
        print(
            f"peak RSS {peak_rss_mib():.0f} MiB here (both sides' data in one process), "
            f"{workers_mib:.0f} MiB the largest worker"
        )
    print("matching targets met" if ok else "matching targets MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
