"""Change notices to the broker: when an asset, a policy definition or a contract definition of
this connector changes, the broker (``CONNECTOR_BROKER_URL``, ``CONNECTOR_BROKER_ID``) hears of
it, and re-crawls this connector's catalogue at once.

The notice is written to the outbox in the transaction that makes the change (a session event
on this connector's engine, so every way of changing the three tables is covered, and a
change rolled back sends nothing); the outbox sends it, DCP-authenticated with this
connector's self-issued token for the broker, retries it while the broker is down, and sends
it after a restart. A burst of changes is one notice: a change made while a notice is still
waiting to go (it goes ``DELAY`` after the change that wrote it) writes none of its own; the
waiting notice is sent after this change's commit, since it is not due before ``MARGIN``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import col, select

from connector.catalog.store import Asset, ContractDefinition, PolicyDefinition
from connector.outbox import Delivery, OutboxMessage

KIND: Final = "broker.catalogue_changed"
PROCESS: Final = "broker-catalogue-notice"
NOTICE_TYPE: Final = "kexin:CatalogueChangeNotice"
PATH: Final = "/catalogue/v1/notices"
WATCHED: Final = (Asset, PolicyDefinition, ContractDefinition)
DELAY: Final = timedelta(seconds=0.2)
"""A notice goes this long after the change that wrote it: the changes of a burst ride on it."""
MARGIN: Final = timedelta(seconds=0.1)
"""A change rides on a waiting notice only if that one is due this long after now at least."""
_FLAG: Final = "kexin.catalogue_notice"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ChangeNotices:
    """Installed on one engine for the app's lifetime (:meth:`install`, :meth:`remove`)."""

    def __init__(
        self,
        *,
        engine: Engine,
        me: str,
        broker_id: str,
        broker_url: str,
        clock: Callable[[], datetime],
        wake: Callable[[], None],
    ) -> None:
        self._engine = engine
        self._me = me
        self._broker_id = broker_id
        self._url = broker_url.rstrip("/") + PATH
        self._clock = clock
        self._wake = wake

    def install(self) -> None:
        event.listen(OrmSession, "before_flush", self._before_flush)
        event.listen(OrmSession, "after_commit", self._after_commit)
        event.listen(OrmSession, "after_soft_rollback", self._after_rollback)

    def remove(self) -> None:
        event.remove(OrmSession, "before_flush", self._before_flush)
        event.remove(OrmSession, "after_commit", self._after_commit)
        event.remove(OrmSession, "after_soft_rollback", self._after_rollback)

    def _ours(self, session: OrmSession) -> bool:
        return session.bind is self._engine

    def _before_flush(self, session: OrmSession, _context: Any, _instances: Any) -> None:
        if not self._ours(session) or session.info.get(_FLAG):
            return
        changed = (*session.new, *session.dirty, *session.deleted)
        if not any(isinstance(item, WATCHED) for item in changed):
            return
        session.info[_FLAG] = True
        now = self._clock()
        waiting = session.execute(
            select(OutboxMessage.next_attempt_at).where(
                col(OutboxMessage.process_id) == PROCESS,
                col(OutboxMessage.status) == Delivery.PENDING,
            )
        ).scalars()
        if any(_aware(due) >= now + MARGIN for due in waiting):
            return  # it goes after this commit, and the broker crawls what this one changed
        body = {"@type": NOTICE_TYPE, "provider": self._me}
        session.add(
            OutboxMessage(
                process_id=PROCESS, kind=KIND, audience=self._broker_id, url=self._url,
                body=json.dumps(body), next_attempt_at=now + DELAY, created_at=now,
            )
        )  # fmt: skip

    def _after_commit(self, session: OrmSession) -> None:
        if self._ours(session) and session.info.pop(_FLAG, False):
            self._wake()

    def _after_rollback(self, session: OrmSession, _previous: Any) -> None:
        if self._ours(session):
            session.info.pop(_FLAG, None)
