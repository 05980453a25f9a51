"""What the resource commands of ``dataspace`` share: ``--output json|table``, the exit codes,
and the one line a refusal or a failure prints (never a traceback).

Exit codes: 0 ok, 1 refused by the other side (its reasons shown as text) or unreachable,
2 usage, 3 refused by a policy (a policy's lint errors, a policy decision), 78 configuration
(a setting missing or invalid, an API key the service does not take)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any, Final, NoReturn

import typer
from pydantic import BaseModel

from service.client import ApiError

EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2
EXIT_POLICY: Final = 3
EXIT_CONFIG: Final = 78
"""sysexits.h EX_CONFIG."""

POLICY_REFUSALS: Final = frozenset({"policy_rejected", "policy_denied"})
"""Refusal reasons that are a policy's (its lint errors, its decision): exit 3, as a 403."""


class Output(StrEnum):
    JSON = "json"
    TABLE = "table"


OutputOption = Annotated[
    Output, typer.Option("--output", "-o", help="json (the API's own shape) or table.")
]

Column = tuple[str, Callable[[Any], object]]
"""A table's header and how to get the cell from an item."""


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def fail(message: str, code: int) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def usage(message: str) -> NoReturn:
    fail(f"error: {message}", EXIT_USAGE)


def _plain(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(_plain(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _json(value: BaseModel | Sequence[BaseModel]) -> str:
    data: Any = (
        value.model_dump(by_alias=True, mode="json")
        if isinstance(value, BaseModel)
        else [v.model_dump(by_alias=True, mode="json") for v in value]
    )
    return json.dumps(data, ensure_ascii=False, indent=2)


def table(items: Sequence[Any], columns: Sequence[Column]) -> None:
    """Aligned columns, the last one unpadded."""
    rows = [[header for header, _ in columns]]
    rows += [[_plain(cell(item)) for _, cell in columns] for item in items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns) - 1)]
    for row in rows:
        padded = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        typer.echo("  ".join([*padded, row[-1]]).rstrip())


def show_list(
    items: Sequence[BaseModel],
    columns: Sequence[Column],
    output: Output,
    *,
    empty: str,
    next_offset: int | None = None,
) -> None:
    """A list (a page of one): JSON as the API answered it, or a table; in a table, where the
    next page starts (on standard error)."""
    if output is Output.JSON:
        typer.echo(_json(items))
        return
    if not items:
        typer.echo(empty)
        return
    table(items, columns)
    if next_offset is not None:
        typer.echo(f"(more: --offset {next_offset})", err=True)


def show_one(item: BaseModel, output: Output) -> None:
    """One resource: JSON, or its fields one a line."""
    if output is Output.JSON:
        typer.echo(_json(item))
        return
    fields = item.model_dump(by_alias=True, mode="json")
    width = max(len(name) for name in fields)
    for name, value in fields.items():
        typer.echo(f"{name.ljust(width)}  {_plain(value)}")


@contextmanager
def refusals(service: str, key_variable: str) -> Iterator[None]:
    """Turn the client's :class:`ApiError` into one line and the documented exit code.
    ``service`` names the other side, ``key_variable`` the setting of its API key."""
    try:
        yield
    except ApiError as error:
        if error.status == 0:
            fail(f"error: {service} unreachable: {_one_line(error.message)}", EXIT_REFUSED)
        if error.status == 401:
            fail(
                f"error: {service} refused the API key ({error.reason}): check {key_variable} "
                "or --api-key",
                EXIT_CONFIG,
            )
        policy = error.status == 403 or error.reason in POLICY_REFUSALS
        code = EXIT_POLICY if policy else EXIT_REFUSED
        typer.echo(f"refused: {error.reason}: {_one_line(error.message)}", err=True)
        for reason in error.reasons:
            typer.echo(f"  - {_one_line(reason)}", err=True)
        raise typer.Exit(code) from None
