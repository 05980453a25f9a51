"""The catalogue's full-text index, one implementation per back end, beside the dataset table
(not a SQLModel table: migration 0004 creates it, and only this module writes it).

- SQLite: an FTS5 table ``catalogue_fts(heading, body)`` (``unicode61`` tokenizer) whose rowid
  is the dataset's id; relevance is ``bm25`` with titles and keywords weighing 4 to 1.
- PostgreSQL: a table ``catalogue_fts(dataset, document tsvector)`` with a GIN index; the
  document is the same tokens written out as a tsvector with their positions (no parser, no
  dictionary: exactly the tokens), titles and keywords weighted A, descriptions D; relevance
  is ``ts_rank``.

Both are fed the tokens of :mod:`broker.search.tokens` and queried with them: every query token
must be present (AND), each quoted as a literal. A token is letters and digits only, so that
no quote, operator or bracket of a query reaches the back end's query syntax, and the query
itself is always a bound parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

HEADING_WEIGHT: Final = 4.0
MAX_POSITIONS: Final = 255
"""PostgreSQL keeps at most 256 positions of a lexeme, each at most 16,383."""
MAX_POSITION: Final = 16_383


def _sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def put_many(session: Session, entries: Sequence[tuple[int, Sequence[str], Sequence[str]]]) -> None:
    """Index (or index anew) datasets, each ``(id, heading tokens, body tokens)``, in the
    caller's transaction."""
    if not entries:
        return
    if _sqlite(session):
        remove(session, [dataset for dataset, _, _ in entries])
        session.execute(
            sa.text("INSERT INTO catalogue_fts (rowid, heading, body) VALUES (:id, :h, :b)"),
            [
                {"id": d, "h": " ".join(heading), "b": " ".join(body)}
                for d, heading, body in entries
            ],
        )
    else:
        session.execute(
            sa.text(
                "INSERT INTO catalogue_fts (dataset, document) VALUES (:id, CAST(:v AS tsvector)) "
                "ON CONFLICT (dataset) DO UPDATE SET document = EXCLUDED.document"
            ),
            [{"id": d, "v": tsvector_literal(heading, body)} for d, heading, body in entries],
        )


def tsvector_literal(heading: Sequence[str], body: Sequence[str]) -> str:
    """The tsvector of these tokens, written out: each token a quoted lexeme with its positions,
    weight A in the heading and D in the body (``'企业':1A,5D``). Tokens are letters and digits
    only, so quoting them needs no escapes."""
    positions: dict[str, list[str]] = {}
    for offset, (tokens, weight) in enumerate(((heading, "A"), (body, "D"))):
        start = 1 + offset * len(heading)
        for number, token in enumerate(tokens, start):
            if not token.isalnum():
                raise ValueError(f"not a token: {token!r}")
            found = positions.setdefault(token, [])
            if len(found) < MAX_POSITIONS:
                found.append(f"{min(number, MAX_POSITION)}{weight}")
    return " ".join(f"'{token}':{','.join(at)}" for token, at in positions.items())


def remove(session: Session, datasets: Sequence[int]) -> None:
    if not datasets:
        return
    key = "rowid" if _sqlite(session) else "dataset"
    statement = sa.text(f"DELETE FROM catalogue_fts WHERE {key} IN :ids").bindparams(  # noqa: S608 - a fixed column name
        sa.bindparam("ids", expanding=True)
    )
    session.execute(statement, {"ids": list(datasets)})


def matched(session: Session, tokens: Sequence[str], *, scored: bool = True) -> sa.CTE:
    """The rows that hold every token (``tokens`` from
    :func:`broker.search.tokens.query_tokens`: letters and digits only, at least one), as a
    materialised common table expression of ``(id, score)``: the index is asked once, and the
    dataset table is then read by primary key for those rows only (never the index once per
    row of another plan). ``score`` (if ``scored``): the relevance, higher is better."""
    if not tokens or not all(t.isalnum() for t in tokens):
        raise ValueError("query tokens are letters and digits, at least one")
    if _sqlite(session):
        fts = sa.table("catalogue_fts", sa.column("rowid"))
        expression = " AND ".join(f'"{t}"' for t in tokens)
        condition = sa.text("catalogue_fts MATCH :fts_query").bindparams(fts_query=expression)
        score: ColumnElement[float] = sa.literal_column(
            f"-bm25(catalogue_fts, {HEADING_WEIGHT}, 1.0)", sa.Float
        )
        columns = [fts.c.rowid.label("id"), *([score.label("score")] if scored else [])]
        query = sa.select(*columns).where(condition)
    else:
        table = sa.table("catalogue_fts", sa.column("dataset"), sa.column("document"))
        ts_query = sa.cast(sa.bindparam("ts_query", " & ".join(f"'{t}'" for t in tokens)), TSQUERY)
        rank = sa.func.ts_rank(table.c.document, ts_query, type_=sa.Float).label("score")
        query = sa.select(table.c.dataset.label("id"), *([rank] if scored else [])).where(
            table.c.document.op("@@")(ts_query)
        )
    return query.cte("matched").prefix_with("MATERIALIZED")


def postgres_ranked(tokens: Sequence[str]) -> tuple[Any, ColumnElement[bool], ColumnElement[float]]:
    """PostgreSQL: the index table to join on ``dataset``, the match condition and the rank,
    for a page whose rank is computed only for the rows that pass its filters."""
    table = sa.table("catalogue_fts", sa.column("dataset"), sa.column("document"))
    ts_query = sa.cast(sa.bindparam("ts_query", " & ".join(f"'{t}'" for t in tokens)), TSQUERY)
    rank = sa.func.ts_rank(table.c.document, ts_query, type_=sa.Float)
    return table, table.c.document.op("@@")(ts_query), rank
