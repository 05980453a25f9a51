"""The connector's ledger: its audit events, as committed, become its signed, hash-chained
ledger events, batched, anchored on the chain and pushed to the regulator's ledger service.

``audit_event`` stays the in-transaction outbox: the state-change path writes one row there, as
before, and nothing else. The :class:`LedgerWorker` turns committed rows into ledger events in
the order it finds them committed, not by id: a row has no ``ledger_sequence`` until it is
sequenced, and each round takes every row still without one, oldest id first. On PostgreSQL a
lower id can commit after a higher one; it is simply taken by the next round. Sequencing a row
(appending its event to the participant's hash chain, :mod:`ledger.store`) and marking it are
one transaction: a crash leaves both or neither, and a row is never sequenced twice (a second
worker on the same database collides on the chain's primary key and its round rolls back).

Rows that are no ledger event (the operator's own management calls, a repeat answered as the
first time) are marked ``-1``. An audit row lacking a field the event model requires is mapped
only to what it shows; nothing is made up (see :func:`to_event`).

Batches are closed by count and age (:class:`ledger.recorder.Recorder`), anchored when a chain
is configured (idempotent by batch sequence: the chain down, they wait and are anchored later,
never twice), and pushed in order when a ledger service is configured; a refused push is logged
with the service's reason, kept in ``ledger_push`` and tried again each round.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import httpx
from pydantic import ValidationError
from sqlalchemy import BigInteger, Column, DateTime, Text, bindparam, update
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, col, select

from connector.audit import AuditEvent, Outcome
from connector.catalog.store import Asset
from connector.database import ConnectorBase
from connector.negotiation.machine import Role
from connector.negotiation.store import ContractNegotiationRecord
from connector.outbox import worker_backoff_s
from connector.transfer.store import TransferProcessRecord
from identity.did import check_did
from ledger import store
from ledger.events import (
    MAX_NAME_CHARS,
    MAX_REASON_CHARS,
    AccessOutcome,
    AgreementConcluded,
    AssetEvent,
    DataAccessed,
    Detail,
    DutyFulfilled,
    DutyViolated,
    EventType,
    LedgerEvent,
    LegalBasis,
    NegotiationState,
    NegotiationStateChanged,
    PsiParty,
    PsiRun,
    RefusalScope,
    Refused,
    RevealMode,
    TransferState,
    TransferStateChanged,
)
from ledger.recorder import Recorder
from policy.operands import Grade
from service.logs import one_line
from service.threads import run_to_completion

if TYPE_CHECKING:  # web3 (behind ledger.chain) takes 0.75 s and ~60 MiB to import: only a
    # connector that anchors loads it (connector/app.py, when the ledger's chain is set)
    from ledger.chain import AnchorRegistry

log = logging.getLogger("kexin.connector.ledger")

NOT_AN_EVENT: Final = -1
"""``ledger_sequence`` of an audit row that is no ledger event."""
ROUND_ROWS: Final = 1000
"""Audit rows sequenced in one transaction."""
PUSH_PATH: Final = "/ledger/v1/batches"
EVENT_NAMESPACE: Final = uuid.UUID("6b3d8f1e-8f5c-4d0e-9a41-1c2f3e4d5a6b")
"""Ledger event ids are derived from the participant and the audit row's id: the same row
always gives the same event."""

_ACCESS_OUTCOMES: Final = {
    "completed": AccessOutcome.COMPLETE,
    "interrupted": AccessOutcome.INTERRUPTED,
    "aborted": AccessOutcome.INTERRUPTED,
    "failed": AccessOutcome.FAILED,
}
_ASSET_EVENTS: Final = {
    "asset offered": EventType.ASSET_OFFERED,
    "asset changed": EventType.ASSET_CHANGED,
    "asset withdrawn": EventType.ASSET_WITHDRAWN,
}
OUTSIDE_MAINLAND: Final = ("71", "81", "82")
"""GB/T 2260 province codes of Taiwan, Hong Kong and Macao: a counterparty whose membership
region is one of them is outside the mainland (数据出境: the cross-border flag)."""
_DSP_PATHS: Final = (
    ("/dsp/negotiations", RefusalScope.NEGOTIATION),
    ("/dsp/callback/negotiations", RefusalScope.NEGOTIATION),
    ("/dsp/transfers", RefusalScope.TRANSFER),
    ("/dsp/callback/transfers", RefusalScope.TRANSFER),
    ("/dsp/catalog", RefusalScope.CATALOG),
)


class LedgerPush(ConnectorBase, table=True):
    """How far this participant's batches were pushed to the ledger service, and the last
    refusal (the service's reason) while a batch keeps being refused."""

    __tablename__ = "ledger_push"

    participant: str = Field(primary_key=True, max_length=2048)
    next_batch: int = Field(sa_column=Column(BigInteger, nullable=False))
    refused_batch: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    refused_reason: str | None = Field(default=None, max_length=100)
    refused_message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    refused_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


def _did_or_none(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_did(value)
    except ValueError:
        return None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reasons(row: AuditEvent) -> tuple[str, ...]:
    return (_clip(row.reason, MAX_REASON_CHARS),) if row.reason else ()


def _process_scope(row: AuditEvent) -> RefusalScope | None:
    if row.process == "negotiation":
        return RefusalScope.NEGOTIATION
    if row.process == "transfer":
        return RefusalScope.TRANSFER
    path = row.action.partition(" ")[2]
    return next((scope for prefix, scope in _DSP_PATHS if path.startswith(prefix)), None)


def _state_change(row: AuditEvent, to_state: str) -> Detail:
    terminated = to_state == "TERMINATED"
    code = (
        _clip(row.termination_code, MAX_NAME_CHARS) if terminated and row.termination_code else None
    )
    reasons = _reasons(row) if terminated else ()
    if row.process == "negotiation":
        return NegotiationStateChanged(
            type="negotiation.state-changed",  # type: ignore[arg-type]
            from_state=None if row.from_state is None else NegotiationState(row.from_state),
            to_state=NegotiationState(to_state),
            termination_code=code,
            reasons=reasons,
        )
    return TransferStateChanged(
        type="transfer.state-changed",  # type: ignore[arg-type]
        from_state=None if row.from_state is None else TransferState(row.from_state),
        to_state=TransferState(to_state),
        termination_code=code,
        reasons=reasons,
    )


def _detail(row: AuditEvent) -> Detail | None:
    """The typed event an audit row shows, or ``None`` when it is no ledger event."""
    refused = row.outcome == Outcome.REFUSED.value
    if row.process in ("negotiation", "transfer") and row.to_state is not None:
        return _state_change(row, row.to_state)
    if row.action in ("data access", "data received"):
        outcome = _ACCESS_OUTCOMES.get(row.access_outcome or "")
        if outcome is not None and row.subject and row.bytes_sent is not None:
            return DataAccessed(
                type="dataplane.access",  # type: ignore[arg-type]
                transfer_id=row.subject,
                bytes_sent=row.bytes_sent,
                rows_sent=row.rows_sent,
                outcome=outcome,
            )
        return _access_refused(row) if refused else None
    if row.action == "duty violated" and row.subject and row.duty_action:
        return DutyViolated(
            type="duty.violated",  # type: ignore[arg-type]
            duty_id=row.subject,
            action=_clip(row.duty_action, MAX_NAME_CHARS),
            reasons=_reasons(row),
        )
    if row.action == "matching run":
        return _psi_run(row, refused)
    asset_event = _ASSET_EVENTS.get(row.action)
    if asset_event is not None and row.subject and not refused:
        return AssetEvent(
            type=asset_event,  # type: ignore[arg-type]
            asset_id=row.subject,
            description_hash=row.evidence_hash,
        )
    fulfilled = row.action in ("duty fulfilled", "duty receipt")
    if fulfilled and not refused and row.subject and row.duty_action:
        if row.evidence_hash:
            return DutyFulfilled(
                type="duty.fulfilled",  # type: ignore[arg-type]
                duty_id=row.subject,
                action=_clip(row.duty_action, MAX_NAME_CHARS),
                receipt_hash=row.evidence_hash,
            )
        return None
    if refused:
        scope = _process_scope(row)
        if scope is not None and row.reason:
            return Refused(
                type="refusal",  # type: ignore[arg-type]
                scope=scope,
                reasons=_reasons(row),
            )
    return None


def _access_refused(row: AuditEvent) -> Refused:
    """A refused access to data (a download, a matching run), with the policy's reasons."""
    return Refused(
        type="refusal",  # type: ignore[arg-type]
        scope=RefusalScope.ACCESS,
        reasons=_reasons(row) or ("refused",),
    )


def _psi_run(row: AuditEvent, refused: bool) -> Detail | None:
    """A completed matching run: the sizes each side knows and who learned what (the consumer
    the intersection or its size, the provider nothing of it); a refused one: its reason."""
    if refused:
        return _access_refused(row)
    if row.psi_mode is None:
        return None
    if row.psi_own_items is None or row.psi_peer_items is None or row.counterparty is None:
        return None
    mode = RevealMode(row.psi_mode)
    consumer_side = row.psi_intersection is not None
    consumer, provider = (
        (row.actor, row.counterparty) if consumer_side else (row.counterparty, row.actor)
    )
    return PsiRun(
        type="psi.run",  # type: ignore[arg-type]
        own_set_size=row.psi_own_items,
        peer_set_size=row.psi_peer_items,
        intersection_size=row.psi_intersection,
        reveal_mode=mode,  # type: ignore[arg-type]
        parties=(
            PsiParty(participant=consumer, learned=mode),
            PsiParty(participant=provider, learned=RevealMode.NOTHING),
        ),
    )


def _details(row: AuditEvent) -> list[Detail]:
    """What the row shows: one event, or two when a negotiation's move to FINALIZED
    concluded an agreement whose hashes it carries, or when a consumer's matching run says
    how many bytes its answers held; none when it is no ledger event."""
    detail = _detail(row)
    details = [] if detail is None else [detail]
    consumer_run = isinstance(detail, PsiRun) and detail.intersection_size is not None
    if consumer_run and row.bytes_sent is not None and row.subject:
        # what the consumer's answers held: beside the bytes the provider's data plane sent
        details.append(
            DataAccessed(
                type="dataplane.access",  # type: ignore[arg-type]
                transfer_id=row.subject,
                bytes_sent=row.bytes_sent,
                outcome=AccessOutcome.COMPLETE,
            )
        )
    if detail is not None and row.agreement_hash and row.policy_hash:
        details.append(
            AgreementConcluded(
                type="agreement.concluded",  # type: ignore[arg-type]
                agreement_hash=row.agreement_hash,
                policy_hash=row.policy_hash,
            )
        )
    return details


@dataclass(frozen=True)
class FlowFacts:
    """What a regulator asks of a flow, from the connector's own records of it: the asset and
    agreement, the purpose the consumer declared, and, where this connector holds the asset
    (the provider), its grade, personal information (legal basis, persons) and scenario
    domain, and whether the consumer is outside the mainland. A consumer's events carry the
    asset, agreement and purpose only: the provider's description of the data is not its own
    record, and the provider's record beside it (reconciliation) has the rest."""

    asset_id: str | None = None
    agreement_id: str | None = None
    purpose: str | None = None
    data_grade: Grade | None = None
    personal_information: bool = False
    legal_basis: LegalBasis | None = None
    person_count: int | None = None
    """As the asset's holder states it (``personCount``)."""
    scenario_domain: str | None = None
    cross_border: bool = False
    provider_pid: str | None = None
    """The transfer's process ids, for a data-plane access whose row names only the transfer
    (so that it joins its flow in the regulator's reconciliation)."""
    consumer_pid: str | None = None

    def persons(self, detail: Detail) -> int:
        """How many persons' information an event moved: for a data access, its rows (one
        per person), at most the persons the asset holds, or those when it has no rows; no
        other event moves data."""
        if not self.personal_information or not isinstance(detail, DataAccessed):
            return 0
        declared = self.person_count
        if detail.rows_sent is None:
            return declared or 0
        return detail.rows_sent if declared is None else min(detail.rows_sent, declared)


def _enum_or_none(kind: type[Grade] | type[LegalBasis], value: str | None) -> Any:
    try:
        return None if value is None else kind(value)
    except ValueError:
        return None


class Flows:
    """Reads the :class:`FlowFacts` of one sequencing round's audit rows from the connector's
    database: the transfers, negotiations and assets they name are read up front, a query of
    each kind for the whole round (the worker shares the process with the state-change path).
    The facts are read when a row is sequenced, normally within a second of it: an asset
    changed in between gives its new grade (its ``asset.changed`` event is on the ledger just
    before)."""

    def __init__(self, session: Session, rows: Sequence[AuditEvent] = ()) -> None:
        self.session = session
        self._transfers: dict[str, TransferProcessRecord] = {}
        self._negotiations: dict[str, ContractNegotiationRecord] = {}
        self._by_agreement: dict[str, ContractNegotiationRecord] = {}
        self._assets: dict[str, Asset] = {}
        self._load(rows)

    def _load(self, rows: Sequence[AuditEvent]) -> None:
        transfer_ids = {i for row in rows for i in _transfer_ids(row)}
        for transfer in self._fetch(TransferProcessRecord, TransferProcessRecord.id, transfer_ids):
            self._transfers[transfer.id] = transfer
        negotiation_ids = {
            pid for row in rows if row.process == "negotiation"
            for pid in (row.provider_pid, row.consumer_pid) if pid
        }  # fmt: skip
        agreements = {row.agreement_id for row in rows if row.agreement_id} | {
            t.agreement_id for t in self._transfers.values()
        }
        negotiations = list(
            self._fetch(ContractNegotiationRecord, ContractNegotiationRecord.id, negotiation_ids)
        )
        for negotiation in negotiations:
            self._negotiations[negotiation.id] = negotiation
        by_agreement = self._fetch(
            ContractNegotiationRecord, ContractNegotiationRecord.agreement_id, agreements
        )
        for negotiation in by_agreement:
            agreement_id = negotiation.agreement_id
            known = self._by_agreement.get(agreement_id or "")
            if agreement_id and (known is None or negotiation.role == Role.PROVIDER.value):
                self._by_agreement[agreement_id] = negotiation
            negotiations.append(negotiation)
        asset_ids = {n.asset_id for n in negotiations if n.role == Role.PROVIDER.value} | {
            row.subject for row in rows if row.action in _ASSET_EVENTS and row.subject
        }
        for asset in self._fetch(Asset, Asset.id, asset_ids):
            self._assets[asset.id] = asset

    def _fetch(self, model: Any, column: Any, values: set[str]) -> list[Any]:
        found: list[Any] = []
        ordered = sorted(values)
        for start in range(0, len(ordered), 500):  # bounded IN lists
            chunk = ordered[start : start + 500]
            found += self.session.exec(select(model).where(col(column).in_(chunk))).all()
        return found

    def of(self, row: AuditEvent) -> FlowFacts:
        if row.action in _ASSET_EVENTS and row.subject:
            return self._asset_facts(row.subject, FlowFacts(asset_id=row.subject))
        transfer = _provider_first([self._transfers.get(i) for i in _transfer_ids(row)])
        negotiation = self._negotiation(row, transfer)
        provider_pid = None if transfer is None else transfer.provider_pid
        consumer_pid = None if transfer is None else transfer.consumer_pid
        if negotiation is None:
            return FlowFacts(
                agreement_id=row.agreement_id, provider_pid=provider_pid, consumer_pid=consumer_pid
            )
        facts = FlowFacts(
            asset_id=negotiation.asset_id,
            agreement_id=row.agreement_id or negotiation.agreement_id,
            purpose=None if negotiation.purpose is None else _clip(negotiation.purpose, 200),
            cross_border=(negotiation.counterparty_region or "")[:2] in OUTSIDE_MAINLAND,
            provider_pid=provider_pid,
            consumer_pid=consumer_pid,
        )
        if negotiation.role != Role.PROVIDER.value:
            return facts
        return self._asset_facts(negotiation.asset_id, facts)

    def _asset_facts(self, asset_id: str, facts: FlowFacts) -> FlowFacts:
        asset = self._assets.get(asset_id)
        if asset is None:  # withdrawn since
            return facts
        personal = asset.personal_information
        return replace(
            facts,
            data_grade=_enum_or_none(Grade, asset.data_grade),
            personal_information=personal,
            legal_basis=_enum_or_none(LegalBasis, asset.legal_basis) if personal else None,
            person_count=asset.person_count if personal else None,
            scenario_domain=None if asset.domain is None else _clip(asset.domain, 200),
        )

    def _negotiation(
        self, row: AuditEvent, transfer: TransferProcessRecord | None
    ) -> ContractNegotiationRecord | None:
        agreement_id = row.agreement_id
        if agreement_id is None and transfer is not None:
            agreement_id = transfer.agreement_id
        if agreement_id is not None:
            return self._by_agreement.get(agreement_id)
        if row.process != "negotiation":
            return None
        pids = (row.provider_pid, row.consumer_pid)
        return _provider_first([self._negotiations.get(p) for p in pids if p])


_Record = TypeVar("_Record", ContractNegotiationRecord, TransferProcessRecord)


def _provider_first(records: list[_Record | None]) -> _Record | None:
    """The provider's record first: a connector that negotiated with itself holds both."""
    found = [r for r in records if r is not None]
    return next((r for r in found if r.role == Role.PROVIDER.value), found[0] if found else None)


def _transfer_ids(row: AuditEvent) -> list[str]:
    """The transfer a row is about: by its process ids, or the transfer a data-plane access or
    a matching run names (its subject)."""
    if row.process == "transfer":
        return [i for i in (row.provider_pid, row.consumer_pid) if i]
    if row.action in ("data access", "matching run") and row.subject:
        return [row.subject]
    return []


def to_events(
    row: AuditEvent, participant: str, facts: FlowFacts | None = None
) -> list[LedgerEvent]:
    """The ledger events of an audit row: who (the participant), when, with whom, under which
    DSP process ids and agreement, and what happened, with the flow's ``facts``
    (:class:`Flows`). Fields neither holds stay at the event model's defaults."""
    facts = facts or FlowFacts(agreement_id=row.agreement_id)
    occurred_at = row.occurred_at
    if occurred_at.tzinfo is None:  # SQLite keeps no zone; the audit sink stores UTC
        occurred_at = occurred_at.replace(tzinfo=UTC)
    return [
        LedgerEvent(
            event_id=str(uuid.uuid5(EVENT_NAMESPACE, f"{participant}#{row.id}#{n}")),
            participant=participant,
            occurred_at=occurred_at,
            detail=detail,
            counterparty=_did_or_none(row.counterparty),
            provider_pid=row.provider_pid or facts.provider_pid,
            consumer_pid=row.consumer_pid or facts.consumer_pid,
            asset_id=facts.asset_id,
            agreement_id=facts.agreement_id,
            data_grade=facts.data_grade,
            personal_information=facts.personal_information,
            person_count=facts.persons(detail),
            purpose=facts.purpose,
            legal_basis=facts.legal_basis,
            scenario_domain=facts.scenario_domain,
            cross_border=facts.cross_border,
        )
        for n, detail in enumerate(_details(row))
    ]


def _events_or_none(row: AuditEvent, participant: str, flows: Flows) -> list[LedgerEvent]:
    """An audit row that the event model refuses (a state name it does not know, a field out
    of range) is logged and left out of the ledger, not invented into shape."""
    try:
        return to_events(row, participant, flows.of(row))
    except (ValidationError, ValueError) as error:
        log.warning("audit event %s is no valid ledger event: %s", row.id, one_line(error))
        return []


def sequence(engine: Engine, recorder: Recorder, limit: int = ROUND_ROWS) -> int:
    """Sequence the committed audit rows not sequenced yet (up to ``limit``, oldest id first)
    in one transaction: their events appended to the participant's chain, each row marked
    with its event's sequence (or :data:`NOT_AN_EVENT`). Returns how many rows were taken."""
    with Session(engine) as session:
        rows = session.exec(
            select(AuditEvent)
            .where(col(AuditEvent.ledger_sequence).is_(None))
            .order_by(col(AuditEvent.id))
            .limit(limit)
        ).all()
        if not rows:
            return 0
        events: list[LedgerEvent] = []
        owners: list[int] = []
        marks: dict[int, int] = {}
        flows = Flows(session, rows)
        for row in rows:
            row_id = cast(int, row.id)  # read from the table
            found = _events_or_none(row, recorder.participant, flows)
            if not found:
                marks[row_id] = NOT_AN_EVENT
            events += found
            owners += [row_id] * len(found)
        for row_id, link in zip(owners, recorder.record(session, events), strict=True):
            marks.setdefault(row_id, link.sequence)  # a row of two events: the first one's
        # one statement for the round's rows (the unit of work wrote one UPDATE per row)
        session.connection().execute(
            _MARK_SEQUENCED, [{"row_id": key, "sequence": value} for key, value in marks.items()]
        )
        session.commit()
        return len(rows)


_AUDIT: Final = AuditEvent.__table__  # type: ignore[attr-defined]
_MARK_SEQUENCED: Final = (
    update(_AUDIT)
    .where(_AUDIT.c.id == bindparam("row_id"))
    .values(ledger_sequence=bindparam("sequence"))
)


@dataclass(frozen=True)
class Anchoring:
    """Where and as whom batches are anchored."""

    registry: AnchorRegistry
    key: bytes
    confirmations: int = 0
    """Blocks after its anchor's before a batch is pushed (``ledger_confirmations``)."""

    @property
    def account(self) -> str:
        from ledger.chain import address_of  # loaded only by a connector that anchors

        return address_of(self.key)


@dataclass(frozen=True)
class Pushing:
    """Where batches are pushed, and how this connector authenticates there."""

    url: str
    authorization: Callable[[], dict[str, str]]


class PushError(Exception):
    """The ledger service refused a batch (its typed reason), or could not take it now."""

    def __init__(self, batch: int, status: int, reason: str, message: str) -> None:
        super().__init__(f"batch {batch}: {status} {reason}: {message}")
        self.batch, self.status, self.reason, self.message = batch, status, reason, message


def _refusal(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "not_json", response.text[:200]
    if not isinstance(body, dict):
        return "not_json", response.text[:200]
    return str(body.get("reason", "unknown"))[:100], str(body.get("message", ""))[:2000]


class LedgerWorker:
    """The supervised worker: sequence, seal, anchor, push; again every ``interval_s``. A
    failing round (database, chain or ledger service) is logged and retried with backoff; the
    readiness report shows it (:attr:`failing`)."""

    def __init__(
        self,
        *,
        engine: Engine,
        recorder: Recorder,
        client: httpx.AsyncClient,
        interval_s: float,
        anchoring: Anchoring | None = None,
        pushing: Pushing | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.recorder = recorder
        self.client = client
        self.interval_s = interval_s
        self.anchoring = anchoring
        self.pushing = pushing
        self.clock = clock
        self.failing: str | None = None
        self.rounds = 0
        """Rounds completed without an error (tests wait on it)."""

    def local_round(self) -> None:
        """Sequence everything committed, close due batches, anchor what is not on chain."""
        try:
            while sequence(self.engine, self.recorder) == ROUND_ROWS:
                pass
            self.recorder.seal()
        except Exception:
            self.recorder.resume()  # the batcher back in step with what was stored
            raise
        if self.anchoring is not None:
            registry = self.anchoring.registry
            lost = self.recorder.recheck(registry, self.anchoring.account)
            if lost:
                log.warning(
                    "the chain no longer holds the anchors of batches %s (a reorganisation, "
                    "or a chain that lost its state): anchoring them again", lost,
                )  # fmt: skip
            self.recorder.anchor(registry, self.anchoring.key)

    def flush(self) -> None:
        """Close every pending event into a batch now (tests, shutdown of a demo)."""
        self.local_round()
        self.recorder.seal(flush=True)
        if self.anchoring is not None:
            self.recorder.anchor(self.anchoring.registry, self.anchoring.key)

    async def push(self) -> int:
        """Push the anchored batches the ledger service has not taken yet, in order. Returns
        how many it took; raises :class:`PushError` at the first it does not take."""
        if self.pushing is None or self.anchoring is None:
            return 0
        participant = self.recorder.participant
        pushed = 0
        while True:
            batch = await run_to_completion(self._next_push)
            if batch is None:
                return pushed
            sequence_number, body = batch
            response = await self.client.post(
                self.pushing.url.rstrip("/") + PUSH_PATH,
                json=body,
                headers=self.pushing.authorization(),
            )
            if response.status_code in (200, 201):
                await run_to_completion(self._pushed, sequence_number + 1, None)
                pushed += 1
                continue
            reason, message = _refusal(response)
            if response.status_code == 409 and reason == "out_of_order":
                expected = response.json().get("expectedBatchSequence")
                if isinstance(expected, int) and expected > sequence_number:
                    # The service holds this batch already (its answer to us was lost).
                    await run_to_completion(self._pushed, expected, None)
                    continue
            refusal = PushError(sequence_number, response.status_code, reason, message)
            if response.status_code < 500:
                log.warning("the ledger service refused %s's %s", participant, refusal)
                await run_to_completion(self._pushed, sequence_number, refusal)
            raise refusal

    def _next_push(self) -> tuple[int, dict[str, Any]] | None:
        assert self.anchoring is not None  # noqa: S101 - push() checked
        participant = self.recorder.participant
        with Session(self.engine) as session:
            state = session.get(LedgerPush, participant)
            next_batch = 0 if state is None else state.next_batch
            record = session.get(store.BatchRecord, (participant, next_batch))
            if record is None or record.anchor_block is None:
                return None  # not closed yet, or not on chain yet (the service checks there)
            confirmations = self.anchoring.confirmations
            if confirmations and (
                record.anchor_block > self.anchoring.registry.chain.block_number() - confirmations
            ):
                return None  # not final yet: a reorganisation may still drop it
            events = store.events(session, participant, record.first_sequence, record.last_sequence)
            body: dict[str, Any] = {
                "signedHeader": record.signed_header,
                "events": [json.loads(event) for event in events],
                "account": self.anchoring.account,
            }
            if record.anchor_transaction:
                body["transaction"] = record.anchor_transaction
            return next_batch, body

    def _pushed(self, next_batch: int, refusal: PushError | None) -> None:
        participant = self.recorder.participant
        with Session(self.engine) as session:
            state = session.get(LedgerPush, participant) or LedgerPush(
                participant=participant, next_batch=0
            )
            state.next_batch = next_batch
            state.refused_batch = None if refusal is None else refusal.batch
            state.refused_reason = None if refusal is None else refusal.reason
            state.refused_message = None if refusal is None else refusal.message
            state.refused_at = None if refusal is None else self.clock()
            session.add(state)
            session.commit()

    async def run(self) -> None:
        """Rounds until cancelled; a cancellation waits for the round's thread
        (:mod:`service.threads`)."""
        failures = 0
        while True:
            try:
                await run_to_completion(self.local_round)
                await self.push()
                self.failing = None
                self.rounds += 1
                failures = 0
            except Exception as error:  # a failed round must not end the worker
                failures += 1
                self.failing = one_line(error)
                # the other workers' backoff (capped at 10 s), so that it is back as soon as
                # they are once a database outage ends; never sooner than its own interval
                backoff = max(self.interval_s, worker_backoff_s(failures))
                log.warning("ledger round failed, retrying in %.1f s: %s", backoff, self.failing)
                await asyncio.sleep(backoff)
                continue
            await asyncio.sleep(self.interval_s)
