"""What this connector received and applied: each DSP message that moved a process, by digest,
with the answer it got. Delivery between connectors is at least once (an outbox posts, then
records that it sent; a crash between the two sends again), so a message may arrive twice: a
repeat is answered as the first time and changes nothing. A message is the same when its whole
body is (the sender's ``@id`` included: every message a Kexin connector sends has a fresh one,
as the DSP TCK's have), so two equal moves sent one after the other are never mistaken for a
repeat. Refused messages are not remembered: their repeat is refused again.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Column, DateTime, Text, bindparam, insert
from sqlalchemy import select as sa_select
from sqlmodel import Field, Session

from connector.database import ConnectorBase


class ReceivedMessage(ConnectorBase, table=True):
    __tablename__ = "received_message"

    process_id: str = Field(primary_key=True, max_length=100)
    digest: str = Field(primary_key=True, max_length=71)
    """``sha256:`` and the hex digest of the body's canonical JSON."""
    kind: str = Field(max_length=100)
    status: int
    answer: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


_RECEIVED: Final = ReceivedMessage.__table__  # type: ignore[attr-defined]
_ANSWERED: Final = sa_select(_RECEIVED.c.status, _RECEIVED.c.answer).where(
    _RECEIVED.c.process_id == bindparam("process_id"), _RECEIVED.c.digest == bindparam("digest")
)
"""Built once (building a statement at each call cost more than running it), and run on the
session's connection: what the transaction sees, as ``session.get`` read it."""
_REMEMBER: Final = insert(_RECEIVED)


def digest(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def answered(session: Session, process_id: str, body_digest: str) -> tuple[int, Any] | None:
    """The answer a message with this digest got, if it was applied to this process."""
    seen = (
        session.connection()
        .execute(_ANSWERED, {"process_id": process_id, "digest": body_digest})
        .first()
    )
    return None if seen is None else (seen.status, json.loads(seen.answer))


def remember(
    session: Session,
    *,
    process_id: str,
    body_digest: str,
    kind: str,
    status: int,
    answer: Any,
    now: datetime,
) -> None:
    """Add to the caller's transaction: remembered only if the move it caused commits (Core, on
    the session's connection: the unit of work cost more than the INSERT)."""
    session.connection().execute(
        _REMEMBER,
        {
            "process_id": process_id, "digest": body_digest, "kind": kind, "status": status,
            "answer": json.dumps(answer, ensure_ascii=False), "received_at": now,
        },
    )  # fmt: skip
