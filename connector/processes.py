"""What the negotiation and transfer processes do the same way: load a process (404 when unknown
or another participant's), move it through its protocol table (400 and nothing changed when the
move is illegal), enqueue the message it causes in the same transaction, commit, and audit every
state change and every refusal."""

from __future__ import annotations

import functools
import hashlib
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, Final, Generic, Protocol, TypeVar, cast

import anyio
import httpx
from anyio.to_thread import run_sync
from sqlalchemy import Update, bindparam, inspect, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import Executable
from sqlmodel import Session

from connector.audit import AuditRecord, AuditSink, Outcome
from connector.faults import NO_FAULTS, FaultPoint, Faults
from connector.inbox import answered, digest, remember
from connector.negotiation.machine import ProtocolError, Role
from connector.outbox import Outbox, OutboxMessage, enqueue, older_pending
from connector.protocol import DspError, DspMessage, MessageError
from connector.webhooks import KIND as WEBHOOK
from connector.webhooks import Webhook, destinations, event
from policy.agreement import canonical, canonical_terms
from policy.errors import PolicyError
from policy.jsonld import read_policy_text
from policy.operands import Vocabulary


class ProcessRecord(Protocol):
    id: str
    role: str
    state: str
    consumer_pid: str | None
    provider_pid: str | None
    counterparty: str
    counterparty_address: str
    termination_code: str | None
    termination_reason: str | None
    updated_at: datetime


R = TypeVar("R", bound=ProcessRecord)
ACK_WAIT_S: Final = 5.0
"""How long a GET of a process waits for the other side's pid (the answer to our request)."""
ACK_POLL_S: Final = 0.02
TERMINATED: Final = "TERMINATED"
FINALIZED: Final = "FINALIZED"
POLICY_DENIED: Final = "policy_denied"
"""The termination code of a process its policy refused (both protocols)."""
PEER_ENDED: Final = "ended_at_peer"
"""Termination code of a process ended here because the other side had ended it (resync)."""


class Repeated(Exception):  # noqa: N818 - not an error: the message was applied before
    """A message this connector applied already: answer it as the first time."""

    def __init__(self, status: int, answer: Any, process_id: str) -> None:
        super().__init__(f"a repeat of a message to {process_id}")
        self.status, self.answer, self.process_id = status, answer, process_id


class Steering(Protocol):
    """Someone other than the automatic rules moves some processes (the conformance-testing
    extension's scenario driver): a process it steers makes no automatic move, and it hears of
    every committed change of every process."""

    def steers(self, noun: str, record: ProcessRecord) -> bool: ...

    def changed(self, noun: str, record: ProcessRecord) -> None: ...


def _state_changed(record: object) -> bool:
    """New, or its state differs from what was loaded."""
    status = inspect(record)
    return bool(status.transient or status.pending or status.attrs["state"].history.has_changes())


_LOADED_STATES: Final = "kexin.loaded_states"
"""``Session.info`` key: the state each process was in when :meth:`ProcessSteps.lock` read it
(a flush in between forgets the attribute's history, this does not)."""


def _agreement_hashes(record: object) -> tuple[str, str] | None:
    """A finalized negotiation's agreement: the SHA-256 of its canonical form and of its terms
    (policy/agreement.py); ``None`` when there is none or it does not read as a policy (the
    ledger then records no agreement rather than a made-up one)."""
    text = getattr(record, "agreement", None)
    if not isinstance(text, str):
        return None
    try:
        policy = read_policy_text(text)
    except PolicyError:
        return None
    return (
        hashlib.sha256(canonical(policy)).hexdigest(),
        hashlib.sha256(canonical_terms(policy)).hexdigest(),
    )


def _move(session: Session, record: ProcessRecord, changed: bool) -> tuple[bool, str | None]:
    """Whether this transaction moved the process, and from which state (``None``: it was
    created here)."""
    loaded: dict[str, str] = session.info.get(_LOADED_STATES, {})
    if record.id in loaded:
        return loaded[record.id] != record.state, loaded[record.id]
    return changed, None


_PROCESS_KIND: Final = {"contract negotiation": "negotiation", "transfer process": "transfer"}
"""How the ledger names each process (``AuditRecord.process``)."""


def join(base: str, path: str) -> str:
    """Callback addresses work with and without a trailing slash (HTTPS bindings)."""
    return base.rstrip("/") + path


@functools.cache
def _touch(record_type: type[Any]) -> Update:
    """The write that locks a process's row (see ``ProcessSteps.lock``), built once per table:
    building it cost more than running it."""
    table = record_type.__table__
    return update(table).where(table.c.id == bindparam("pid")).values(updated_at=table.c.updated_at)


class ProcessSteps(Generic[R]):
    record_type: type[R]
    ack_type: type[DspMessage]
    """The ACK message of this protocol (ContractNegotiation, TransferProcess)."""
    error_type: str
    noun: str

    def __init__(
        self,
        *,
        engine: Engine,
        me: str,
        base_url: str,
        outbox: Outbox,
        audit: AuditSink,
        clock: Callable[[], datetime],
        next_state: Callable[[Any, Any, Role], Any],
        state_type: Callable[[str], Any],
        webhook: Webhook | None = None,
        steering: Steering | None = None,
        faults: Faults = NO_FAULTS,
        vocabulary: Vocabulary | None = None,
    ) -> None:
        self.vocabulary = vocabulary or Vocabulary()
        """The purposes a policy's ``purpose isA`` judges by (the deployment's, from settings)."""
        self.faults = faults
        self.steering = steering
        self.engine = engine
        self.me = me
        self.base_url = base_url
        self.outbox = outbox
        self.audit = audit
        self.clock = clock
        self._next_state = next_state
        self._state_type = state_type
        self.webhook = webhook

    def automatic(self, record: R) -> bool:
        """Whether the automatic rules may move this process (nobody steers it)."""
        return self.steering is None or not self.steering.steers(self.noun, record)

    def _changed(self, record: R) -> None:
        if self.steering is not None:
            self.steering.changed(self.noun, record)

    def known_pid(self, record: R, attribute: str) -> str:
        """A pid of the process for a message or an answer; 409 while the other side has not
        told us its pid yet (never an empty or made-up one)."""
        value: str | None = getattr(record, attribute)
        if value is None:
            raise self.error(
                409, "not_acknowledged", f"the other side has not acknowledged {record.id}", record
            )
        return value

    def show(self, role: Role, peer: str, pid: str) -> dict[str, Any] | None:
        """The process as the other side reads it (GET), or None while its pid is not known."""
        with Session(self.engine) as session:
            record = self.load(session, role, peer, pid, for_update=False)
            if record.provider_pid is None or record.consumer_pid is None:
                return None
            return self.ack(record)

    async def show_when_known(self, role: Role, peer: str, pid: str) -> dict[str, Any]:
        """GET of a process. A consumer learns the provider's pid from the answer to its
        request, and the provider may read the process before that answer is recorded (the
        DSP TCK does, at once): wait a moment for it rather than answer without a pid."""
        deadline = time.monotonic() + ACK_WAIT_S
        while True:
            shown = await run_sync(self.show, role, peer, pid)
            if shown is not None:
                return shown
            if time.monotonic() >= deadline:
                mine = pid if role is Role.PROVIDER else None
                theirs = pid if role is Role.CONSUMER else None
                raise self.error(
                    409,
                    "not_acknowledged",
                    f"the other side has not acknowledged {self.noun} {pid} yet",
                    provider_pid=mine,
                    consumer_pid=theirs,
                )
            await anyio.sleep(ACK_POLL_S)

    def ack(self, record: R) -> dict[str, Any]:
        raise NotImplementedError  # each protocol has its own ACK message

    def error(
        self,
        status: int,
        code: str,
        reason: str,
        record: R | None = None,
        *,
        provider_pid: str | None = None,
        consumer_pid: str | None = None,
    ) -> DspError:
        return DspError(
            status,
            self.error_type,
            code,
            reason,
            provider_pid=record.provider_pid if record else provider_pid,
            consumer_pid=record.consumer_pid if record else consumer_pid,
        )

    def audit_event(
        self,
        action: str,
        record: R | None,
        counterparty: str | None,
        outcome: Outcome,
        reason: str | None = None,
    ) -> None:
        self.audit.record(
            AuditRecord(
                actor=self.me,
                action=action,
                outcome=outcome,
                occurred_at=self.clock(),
                counterparty=counterparty,
                subject=record.id if record else None,
                reason=reason,
                process=_PROCESS_KIND.get(self.noun),
                provider_pid=record.provider_pid if record else None,
                consumer_pid=record.consumer_pid if record else None,
            )
        )

    def refuse(
        self, action: str, peer: str | None, error: DspError, record: R | None = None
    ) -> DspError:
        self.audit_event(action, record, peer, Outcome.REFUSED, f"{error.code}: {error.reason}")
        error.audited = True
        return error

    def lock(self, session: Session, pid: str) -> R | None:
        """Read a process in order to change it, and hold it until the session ends. The read
        comes after a write to its row: a row lock on PostgreSQL, the database's write lock on
        SQLite (whose driver runs reads before a transaction's first write outside it). So two
        moves of one process at the same time happen one after the other: the second sees the
        first's state, never the same old one (no lost update, no two messages from one state).
        """
        session.connection().execute(_touch(self.record_type), {"pid": pid})
        record = session.get(self.record_type, pid, populate_existing=True)
        if record is not None:  # the state it was in: the ledger's from-state (commit)
            session.info.setdefault(_LOADED_STATES, {})[pid] = record.state
        return record

    def receive_creating(
        self, action: str, peer: str, receive: Callable[[], tuple[int, dict[str, Any]]]
    ) -> tuple[int, dict[str, Any]]:
        """Handle a message that may create a process (``receive``), auditing a refusal. When a
        concurrent request with the same consumerPid created its process first (the unique
        constraint), ``receive`` runs once more and answers as the protocol says for a pid in
        use (a repeated transfer request, a duplicate negotiation pid): never a 500."""
        try:
            try:
                return receive()
            except IntegrityError:
                return receive()
        except Repeated as repeat:
            return self.answer_repeat(action, peer, repeat)
        except DspError as error:
            raise self.refuse(action, peer, error) from None

    def load(
        self, session: Session, role: Role, peer: str, pid: str, *, for_update: bool = True
    ) -> R:
        """A process of ours with ``peer`` (404 otherwise), locked unless only read."""
        record = self.lock(session, pid) if for_update else session.get(self.record_type, pid)
        if record is None or record.role != role.value or record.counterparty != peer:
            # Unknown, or another participant's: the same answer (HTTPS bindings: 404).
            mine = pid if role is Role.PROVIDER else None
            theirs = pid if role is Role.CONSUMER else None
            raise self.error(
                404, "not_found", f"no {self.noun} {pid}", provider_pid=mine, consumer_pid=theirs
            )
        return record

    def move(self, record: R, event: Any, sender: Role) -> None:
        try:
            record.state = self._next_state(self._state_type(record.state), event, sender).value
        except ProtocolError as error:
            raise self.error(400, "illegal_transition", str(error), record) from None
        record.updated_at = self.clock()

    def send(self, session: Session, record: R, kind: str, path: str, body: dict[str, Any]) -> None:
        """Enqueue a message to the other side, with an ``@id`` of its own: its retries carry
        the same one (a repeat), two equal moves do not."""
        enqueue(
            session,
            process_id=record.id,
            kind=kind,
            audience=record.counterparty,
            url=join(record.counterparty_address, path),
            body={"@id": f"urn:uuid:{uuid.uuid4()}", **body},
            now=self.clock(),
        )

    def check_repeat(self, session: Session, record: R, message: DspMessage) -> None:
        """Raise ``Repeated`` with the first answer if this very message was applied already."""
        seen = answered(session, record.id, digest(message.dump()))
        if seen is not None:
            raise Repeated(seen[0], seen[1], record.id)

    def answer_repeat(self, action: str, peer: str, repeat: Repeated) -> tuple[int, Any]:
        """Audit a repeat (outside the transaction that found it) and give its first answer."""
        self.audit.record(
            AuditRecord(
                actor=self.me, action=action, outcome=Outcome.ACCEPTED, occurred_at=self.clock(),
                counterparty=peer, subject=repeat.process_id,
                reason="a repeat: answered as the first time",
            )
        )  # fmt: skip
        return repeat.status, repeat.answer

    def applied(
        self,
        session: Session,
        record: R,
        message: DspMessage,
        action: str,
        status: int = 200,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Commit the move a message caused, remembering the message and our answer with it."""
        answer = self.ack(record)
        remember(
            session, process_id=record.id, body_digest=digest(message.dump()), kind=action,
            status=status, answer=answer, now=self.clock(),
        )  # fmt: skip
        self.commit(session, record, action, reason)
        return answer

    def receive_move(
        self,
        action: str,
        peer: str,
        role: Role,
        pid: str,
        message: DspMessage,
        pids: tuple[str, str],
        apply: Callable[[Session, R], str | None],
    ) -> dict[str, Any]:
        """A message that moves a process of ours (``role``, our ``pid``): 404 unless it is
        ours with ``peer``; a repeat is answered as the first time and changes nothing; else
        its ``pids`` (provider's, consumer's) are checked and ``apply`` moves the process (400
        and nothing changed when the move is illegal), and the move commits with the messages
        it causes. ``apply`` may return the reason to audit."""
        try:
            with Session(self.engine) as session:
                record = self.load(session, role, peer, pid)
                self.check_repeat(session, record, message)
                self.check_pids(record, *pids)
                reason = apply(session, record)
                return self.applied(session, record, message, action, reason=reason)
        except Repeated as repeat:
            answer: dict[str, Any] = self.answer_repeat(action, peer, repeat)[1]
            return answer
        except DspError as error:
            raise self.refuse(action, peer, error) from None

    def commit(self, session: Session, record: R, action: str, reason: str | None = None) -> None:
        """Commit a move with everything it causes in one transaction: the messages to the
        other side, the webhook event and the audit event (a refusal by the policy is audited
        as refused, with its reasons). A crash loses the move and its event together."""
        session.add(record)
        changed = _state_changed(record)
        moved, before = _move(session, record, changed)
        hashes = _agreement_hashes(record) if moved and record.state == FINALIZED else None
        # announced when it moved (from the state it was read in: a flush since may have made
        # the record look unchanged, and a transfer's STARTED, COMPLETED … went unannounced)
        hooks = destinations(self.webhook, record) if moved else []
        if hooks:
            body = event(_PROCESS_KIND[self.noun], record, self.clock())
            for key, url in hooks:  # each receiver in its own order, apart from the protocol
                enqueue(session, process_id=key, kind=WEBHOOK, audience="", url=url, body=body,
                        now=self.clock())  # fmt: skip
        # The state the process is now in, always: the audit log shows the path it took.
        why = f"now {record.state}" + (f": {reason}" if reason else "")
        outcome = Outcome.ACCEPTED
        if changed and record.state == TERMINATED and record.termination_code == POLICY_DENIED:
            outcome, why = Outcome.REFUSED, f"{POLICY_DENIED}: {record.termination_reason}"
        self.audit.add(
            session,
            AuditRecord(
                actor=self.me, action=action, outcome=outcome, occurred_at=self.clock(),
                counterparty=record.counterparty, subject=record.id, reason=why,
                process=_PROCESS_KIND.get(self.noun), from_state=before if moved else None,
                to_state=record.state if moved else None,
                termination_code=record.termination_code if moved else None,
                provider_pid=record.provider_pid, consumer_pid=record.consumer_pid,
                agreement_id=getattr(record, "agreement_id", None),
                agreement_hash=None if hashes is None else hashes[0],
                policy_hash=None if hashes is None else hashes[1],
            ),
        )  # fmt: skip
        enqueued: dict[str, list[OutboxMessage]] = {}
        for added in session.new:
            if isinstance(added, OutboxMessage):
                enqueued.setdefault(added.process_id, []).append(added)
        # the process's messages and each receiver's events, each with what was pending before
        # them (None: too many, or another process's: the outbox looks at the table instead)
        ours = {record.id, *(key for key, _url in hooks)}
        older = {key: None if key not in ours else older_pending(session, key) for key in enqueued}
        session.expire_on_commit = False  # the record stays as written: no read after commit
        session.commit()
        session.info.setdefault(_LOADED_STATES, {})[record.id] = record.state  # a later move
        self.faults.reached(FaultPoint.COMMITTED, action)
        for key, messages in enqueued.items():
            pending = older[key]
            if pending is None:
                self.outbox.wake()
            else:  # straight to delivery: the outbox need not look for them
                self.outbox.hand(sorted(messages, key=lambda message: message.id or 0), pending)
        self._changed(record)

    def ack_changes(self, message: OutboxMessage, response: httpx.Response) -> list[Executable]:
        """The answer to a message that created a process on the other side: learn its pid (in
        the transaction that records the message sent; a message of the other side that
        overtook the answer may have told us already, see ``check_pids``)."""
        try:
            ack = self.ack_type.read(response.json())
        except (ValueError, MessageError) as error:
            self.on_failed(message, f"the answer is not a {self.ack_type.TYPE}: {error}")
            return []
        table = cast(Any, self.record_type)
        changes: list[Executable] = []
        for attribute in ("provider_pid", "consumer_pid"):
            pid = getattr(ack, attribute, None)
            if pid is not None:
                column = getattr(table, attribute)
                changes.append(
                    update(table)
                    .where(table.id == message.process_id, column.is_(None))
                    .values({attribute: pid})
                )
        return changes

    def on_ack(self, message: OutboxMessage, response: httpx.Response) -> None:
        """Whoever steers processes hears of the pid learned from the answer."""
        if self.steering is None:
            return
        with Session(self.engine) as session:
            record = session.get(self.record_type, message.process_id)
        if record is not None:
            self._changed(record)

    terminate_event: Any
    """The protocol's termination event."""
    taken_over: ClassVar[dict[tuple[str, str], Any]] = {}
    """Re-synchronisation: (the other side's state, ours) -> the event we take over."""

    def follow_peer(self, process_id: str, seen_state: str, their_state: str | None) -> None:
        """Re-synchronisation (connector.resync): take over an end the other side reached
        while we did not hear of it (None: the other side does not know the process)."""
        with Session(self.engine) as session:
            record = self.lock(session, process_id)
            if record is None or record.state != seen_state:
                return  # moved meanwhile: nothing was missed
            peer = Role.PROVIDER if record.role == Role.CONSUMER.value else Role.CONSUMER
            if their_state in (None, TERMINATED):
                self.move(record, self.terminate_event, peer)
                record.termination_code = PEER_ENDED
                record.termination_reason = f"the {peer.value} says: {their_state or 'unknown'}"
            elif (event := self.taken_over.get((str(their_state), record.state))) is not None:
                self.move(record, event, peer)
            else:
                return
            self.moved_by_peer(session, record)
            self.commit(session, record, "resync", f"the {peer.value} says {their_state}")

    def moved_by_peer(self, session: Session, record: R) -> None:
        """What else a move of the other side's causes here (none by default)."""

    def on_failed(self, message: OutboxMessage, error: str) -> None:
        raise NotImplementedError  # each protocol ends its process its own way

    def check_pids(self, record: R, provider_pid: str, consumer_pid: str) -> None:
        # A message may overtake the ACK that would have told us the other side's pid.
        if record.provider_pid is None and record.role == Role.CONSUMER.value:
            record.provider_pid = provider_pid
        if record.consumer_pid is None and record.role == Role.PROVIDER.value:
            record.consumer_pid = consumer_pid
        if (record.provider_pid, record.consumer_pid) != (provider_pid, consumer_pid):
            raise self.error(
                400, "pid_mismatch", f"the pids do not belong to one {self.noun}", record
            )
