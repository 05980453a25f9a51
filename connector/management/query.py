"""The one query shape of the management API's lists: ``offset`` and ``limit`` (at most 500)
page, ``sort`` orders (a field's API name, ``-`` before it for descending; each list names the
fields it sorts by), and each list's filters are its fields' API names (``role``, ``state``,
``counterPartyId`` ...). A page answers ``items``, ``offset`` and ``next`` (the offset of the
next page, or null on the last)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from fastapi import Query
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel.sql.expression import SelectOfScalar

from connector.deps import ManagementError

Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Limit = Annotated[int, Query(ge=1, le=500)]
Sort = Annotated[
    str | None,
    Query(
        max_length=60,
        pattern=r"^-?[A-Za-z]+$",
        description="A field's API name to sort by, '-' before it for descending.",
    ),
]
Filter = Annotated[str | None, Query(min_length=1, max_length=2048)]

T = TypeVar("T")


def page(items: list[Any], offset: int, limit: int) -> dict[str, Any]:
    """``items`` fetched with ``limit + 1``: the page, and whether there is a next one."""
    return {
        "items": items[:limit],
        "offset": offset,
        "next": offset + limit if len(items) > limit else None,
    }


def ordered(
    query: SelectOfScalar[T],
    sort: str | None,
    fields: Mapping[str, Any],
    default: str,
    tie: Any,
) -> SelectOfScalar[T]:
    """``query`` sorted by ``sort`` (one of ``fields``, else 400 naming them), then by
    ``tie`` (a unique column) so that pages do not overlap."""
    name = sort or default
    descending = name.startswith("-")
    column = fields.get(name.removeprefix("-"))
    if column is None:
        raise ManagementError(
            400, "unknown_sort", f"sort by one of {', '.join(sorted(fields))} (- for descending)"
        )
    key: ColumnElement[Any] = column.desc() if descending else column.asc()
    return query.order_by(key, tie.desc() if descending else tie.asc())
