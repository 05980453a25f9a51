"""``dataspace match``: which rows of a CSV file are in a provider's matching set, through
your own connector's data contracts API (``POST /contracts/v1/match``): it normalises the
identifiers, agrees with the provider (or reuses an agreement) and runs the private set
intersection; the provider never sees the identifiers. Exit codes as for ``fetch``: 3 when a
policy refuses, 1 for any other failure, 2 for a usage error."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from connector.contracts.client import ContractsClient, ContractsError
from matching.identifiers import Kind
from matching.machine import Mode

MAX_INVALID_SHOWN = 10


class _Ticker:
    """Progress on standard error with ``rich`` while the run goes on (a spinner and the time
    so far: the connector answers once, at the end), then one line with the time it took."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("  "), SpinnerColumn(), TextColumn("{task.description}"),
            TimeElapsedColumn(), console=self.console, transient=True,
        )  # fmt: skip
        self.started = time.monotonic()

    def __enter__(self) -> _Ticker:
        self.progress.add_task(self.what, total=None)
        self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.progress.stop()
        elapsed = time.monotonic() - self.started
        self.console.print(f"  {self.what}: {elapsed:.1f} s", highlight=False, markup=False)


def _read(path: Path, column: str) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8-sig") as stream:
        reader = csv.reader(stream)
        header = next(reader, None)
        if header is None or column not in header:
            raise ValueError(f"{path}: no column {column!r}; columns: {', '.join(header or [])}")
        return header, list(reader)


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    part = path.with_name(path.name + ".part")
    with part.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
        out.flush()
        os.fsync(out.fileno())
    part.replace(path)


def match(
    provider: Annotated[str, typer.Option(help="The provider's DID.")],
    provider_address: Annotated[str, typer.Option(help="The provider's DSP address.")],
    dataset: Annotated[str, typer.Option(help="The matching set (asset) id.")],
    purpose: Annotated[str, typer.Option(help="Why the match is needed (policy purpose).")],
    input_file: Annotated[
        Path, typer.Option("--input", help="Your CSV file (UTF-8, with a header).")
    ],
    column: Annotated[str, typer.Option(help="The column that holds the identifiers.")] = "uscc",
    kind: Annotated[
        Kind | None,
        typer.Option(help="What the identifiers are (default: the column's name, if a kind)."),
    ] = None,
    mode: Annotated[
        Mode, typer.Option(help="intersection: the matching rows; cardinality: only how many.")
    ] = Mode.INTERSECTION,
    output: Annotated[
        Path | None, typer.Option(help="Where to write the matching rows (intersection mode).")
    ] = None,
    connector: Annotated[
        str, typer.Option(envvar="KEXIN_CONNECTOR_URL", help="Your own connector's base URL.")
    ] = "http://127.0.0.1:8181",
    api_key: Annotated[
        str, typer.Option(envvar="KEXIN_API_KEY", help="Your connector's management API key.")
    ] = "",
    timeout_s: Annotated[float, typer.Option(min=1.0, help="How long to wait, in all.")] = 3600.0,
) -> None:
    """Match the identifiers of one column of a CSV file against a provider's matching set
    (private set intersection): write the matching rows, or print only how many match."""
    if not api_key:
        typer.echo("error: set KEXIN_API_KEY (or --api-key)", err=True)
        raise typer.Exit(2)
    if kind is None:
        try:
            kind = Kind(column)
        except ValueError:
            typer.echo(f"error: --kind is needed: {column!r} is not a kind of identifier", err=True)
            raise typer.Exit(2) from None
    if mode is Mode.INTERSECTION and output is None:
        typer.echo("error: --output is needed in the intersection mode", err=True)
        raise typer.Exit(2)
    try:
        header, rows = _read(input_file, column)
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    position = header.index(column)
    values = [row[position] if position < len(row) else "" for row in rows]
    if not values:
        typer.echo(f"error: {input_file} has no rows", err=True)
        raise typer.Exit(1)
    typer.echo(f"{len(values)} rows read from {input_file}", err=True)
    try:
        with (
            ContractsClient(connector, api_key, timeout_s=timeout_s) as client,
            _Ticker(f"matching {len(values)} identifiers ({mode.value})"),
        ):
            result = client.match(
                provider, provider_address, dataset, purpose, kind=kind.value, items=values,
                mode=mode.value,
            )  # fmt: skip
    except ContractsError as error:
        typer.echo(f"refused: {error.code}: {error.message}", err=True)
        for reason in error.reasons:
            typer.echo(f"  - {reason}", err=True)
        raise typer.Exit(3 if error.status == 403 else 1) from None
    for invalid in result["invalid"][:MAX_INVALID_SHOWN]:
        typer.echo(f"  invalid row {invalid['row'] + 1}: {invalid['reason']}", err=True)
    if result["invalidCount"] > MAX_INVALID_SHOWN:
        typer.echo(f"  ... {result['invalidCount'] - MAX_INVALID_SHOWN} more invalid", err=True)
    if output is not None and result["matches"] is not None:
        matched = sorted(m["row"] for m in result["matches"])
        try:
            _write(output, header, [rows[r - 1] for r in matched])
        except OSError as error:
            typer.echo(f"error: {output}: {error.strerror}", err=True)
            raise typer.Exit(1) from None
    learned = "the matching rows" if result["matches"] is not None else "only how many match"
    typer.echo(
        f"{result['cardinality']} of {result['clientItems']} valid identifiers match "
        f"({result['invalidCount']} invalid, {result['duplicates']} duplicates); you learned "
        f"{learned}, the provider only your set size ({result['clientItems']})"
        + (f"; matching rows in {output}" if output is not None and result["matches"] else "")
    )
