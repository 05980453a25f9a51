"""The regulator's ledger service over HTTP (with :mod:`ledger.app`, the package's only web
module; its dependencies are the only readers of ``app.state``): participants push their
signed, anchored batches; regulators (DCP with a ``RegulatorCredential``) query the flows,
reconcile both sides of each flow, read reports and ask for any event's proof bundle; a
participant without that credential sees only its own events and report.

A pushed batch is accepted only after every check, in this order: it follows the participant's
last accepted batch (a repeat of an accepted one is answered as the first time, a different
batch under the same number is 409, a batch ahead of the next one 409 with what is expected);
its signature is by a key under ``assertionMethod`` in the participant's DID document; its
events are canonical events of that participant, continue its hash chain and give the header's
Merkle root; and the chain holds that root for that batch, anchored by the account the operator
registered for the participant (not suspended). Then it is stored in one transaction. A chain
node that is down, slow or answering garbage is 503 ``chain_unavailable`` (retry later):
nothing is stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from identity import jwt_sign
from identity.credentials import CredentialType
from identity.documents import DIDDocument
from identity.errors import IdentityError
from identity.participant import Participant
from ledger import archive, store
from ledger.batches import BatchError, BatchFault, BatchHeader, verify_signed_header
from ledger.canonical import canonicalise
from ledger.chain import AnchorRegistry, ChainError, ChainFault, Status
from ledger.events import EventError, EventType
from ledger.hashchain import Link
from ledger.ingest import CheckedBatch, IngestError, check_pushed
from ledger.messages import BatchAccepted, BatchPush, Flow, FlowPage, ProofBundle
from ledger.proofs import CHAIN_DOWN, build_bundle, follow_anchor
from ledger.reconciliation import reconcile
from ledger.reports import Report, build_report
from ledger.settings import LedgerSettings
from service.http import read_json
from service.refusals import refusals

MAX_PAGE: Final = 500
MAX_OFFSET: Final = 10**9
CHAIN_RETRY_AFTER_S: Final = 10

REPLAYED: Final[dict[int | str, dict[str, Any]]] = {
    200: {"model": BatchAccepted, "description": "Accepted before: the same answer as then"}
}
router = APIRouter(prefix="/ledger/v1", tags=["ledger"])


class LedgerError(Exception):
    """A refusal of the ledger service: status, reason code, message, and extra fields of the
    body (what was expected, say)."""

    def __init__(
        self, status: int, reason: str, message: str, *, retry_after_s: int | None = None,
        **extra: Any,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after_s = retry_after_s
        self.extra = extra


def get_settings(request: Request) -> LedgerSettings:
    settings: LedgerSettings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_participant(request: Request) -> Participant:
    participant: Participant = request.app.state.participant
    return participant


def get_registry(request: Request) -> AnchorRegistry | None:
    registry: AnchorRegistry | None = request.app.state.registry
    return registry


@dataclass(frozen=True)
class Viewer:
    did: str
    regulator: bool
    """Holds a valid ``RegulatorCredential``: sees every participant's events."""

    def may_see(self, participant: str) -> bool:
        return self.regulator or participant == self.did


async def get_viewer(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Viewer:
    """The caller, authenticated the DCP way (a failure is the identity layer's typed 401 or
    403); no token at all is 401 ``not_authenticated``."""
    if not authorization:
        raise LedgerError(
            401, "not_authenticated", "a DCP self-issued ID token is needed (Authorization: Bearer)"
        )
    peer = await get_participant(request).verifier.authenticate(authorization)
    return Viewer(peer.did, CredentialType.REGULATOR in peer.presentation.types())


SettingsDep = Annotated[LedgerSettings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ParticipantDep = Annotated[Participant, Depends(get_participant)]
RegistryDep = Annotated[AnchorRegistry | None, Depends(get_registry)]
ViewerDep = Annotated[Viewer, Depends(get_viewer)]


_BATCH_STATUS: Final = {
    BatchFault.MALFORMED: 400,
    BatchFault.BAD_SIGNATURE: 403,
    BatchFault.WRONG_PARTICIPANT: 403,
    BatchFault.WRONG_RANGE: 400,
    BatchFault.ROOT_MISMATCH: 400,
    BatchFault.BROKEN_CHAIN: 400,
}


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def _read_header(push: BatchPush) -> BatchHeader:
    try:
        _protected, claims = jwt_sign.unverified(push.signed_header)
        return BatchHeader.model_validate_json(json.dumps(claims))
    except IdentityError as error:
        raise LedgerError(400, BatchFault.MALFORMED.value, error.message) from None
    except ValidationError as error:
        raise LedgerError(400, BatchFault.MALFORMED.value, _first_problem(error)) from None


def _answer(header: BatchHeader, block: int, transaction: str, *, replayed: bool) -> BatchAccepted:
    return BatchAccepted(
        participant=header.participant,
        batch_sequence=header.batch_sequence,
        first_sequence=header.first_sequence,
        last_sequence=header.last_sequence,
        root=header.root,
        block_number=block,
        transaction=transaction,
        replayed=replayed,
    )


def _standing(
    engine: Engine, header: BatchHeader, push: BatchPush
) -> BatchAccepted | tuple[BatchHeader | None, Link | None]:
    """The answer to a batch accepted before (if this is it), or the participant's last
    accepted batch and event that this one must follow."""
    with Session(engine) as session:
        existing = session.get(store.BatchRecord, (header.participant, header.batch_sequence))
        if existing is not None:
            same = existing.signed_header == push.signed_header and archive.stored_bodies(
                session, header
            ) == _bodies(push)
            if not same:
                raise LedgerError(
                    409, "batch_conflict",
                    f"batch {header.batch_sequence} of {header.participant} was accepted "
                    "with other contents",
                )  # fmt: skip
            return _answer(
                header, existing.anchor_block or 0, existing.anchor_transaction or "",
                replayed=True,
            )  # fmt: skip
        previous = archive.previous_batch(session, header.participant)
        expected_batch = 0 if previous is None else previous.batch_sequence + 1
        expected_event = 0 if previous is None else previous.last_sequence + 1
        if header.batch_sequence != expected_batch or header.first_sequence != expected_event:
            raise LedgerError(
                409, "out_of_order",
                f"expected batch {expected_batch} from event {expected_event}, got batch "
                f"{header.batch_sequence} from event {header.first_sequence}",
                expectedBatchSequence=expected_batch, expectedFirstSequence=expected_event,
            )  # fmt: skip
        head = store.head(session, header.participant)
        # After a retention purge of every stored event, the chain goes on from the last one.
        return previous, head or archive.purged_through(session, header.participant)


def _bodies(push: BatchPush) -> list[bytes]:
    try:
        return [canonicalise(e) for e in push.events]
    except EventError:
        return []


def _check(
    header: BatchHeader, push: BatchPush, head: Link | None, previous: BatchHeader | None
) -> CheckedBatch:
    try:
        return check_pushed(header, push.events, head, previous)
    except IngestError as error:
        raise LedgerError(400, error.fault.value, error.message) from None
    except BatchError as error:
        raise LedgerError(_BATCH_STATUS[error.fault], error.fault.value, error.message) from None


def _chain_unavailable(error: ChainError) -> LedgerError:
    return LedgerError(
        503, "chain_unavailable", f"the chain cannot be read now ({error.fault.value}): "
        f"{error.message}; nothing was stored, try again later",
        retry_after_s=CHAIN_RETRY_AFTER_S,
    )  # fmt: skip


def _on_chain(
    registry: AnchorRegistry | None, header: BatchHeader, push: BatchPush
) -> archive.Where:
    """Where the chain holds the header's root, anchored by ``push.account``, registered for
    the header's participant and active."""
    if registry is None:
        raise LedgerError(
            503, "chain_unavailable", "no registry contract is configured (LEDGER_REGISTRY_ADDRESS)"
        )
    try:
        status = registry.status(push.account)
        if status is Status.UNKNOWN:
            raise LedgerError(
                403, ChainFault.NOT_REGISTERED.value, f"{push.account} is not registered"
            )
        if status is Status.SUSPENDED:
            raise LedgerError(403, ChainFault.SUSPENDED.value, f"{push.account} is suspended")
        registered = registry.did_of(push.account)
        if registered != header.participant:
            raise LedgerError(
                403, "wrong_account",
                f"{push.account} is registered for {registered}, not {header.participant}",
            )  # fmt: skip
        anchor = registry.verify_root(push.account, header)
        transaction = registry.anchor_transaction(anchor)
        chain_id = registry.chain.chain_id
    except ChainError as error:
        if error.fault in CHAIN_DOWN or error.fault is ChainFault.NOT_DEPLOYED:
            raise _chain_unavailable(error) from None
        if error.fault is ChainFault.NO_SUCH_ANCHOR:
            raise LedgerError(
                409, "not_anchored",
                f"batch {header.batch_sequence} is not on chain yet: anchor it, then push it",
            ) from None  # fmt: skip
        raise LedgerError(400, "anchor_mismatch", error.message) from None
    if push.transaction is not None and push.transaction != transaction:
        raise LedgerError(
            400,
            "wrong_transaction",
            f"the root was anchored by {transaction}, not {push.transaction}",
        )
    return archive.Where(chain_id, registry.address, anchor.participant, anchor, transaction)


def _store(
    engine: Engine,
    checked: CheckedBatch,
    push: BatchPush,
    where: archive.Where,
    document: DIDDocument,
    now: datetime,
) -> None:
    with Session(engine) as session:
        archive.accept(session, checked, push.signed_header, where, document, now)
        session.commit()


@router.post(
    "/batches",
    status_code=201,
    responses=REPLAYED | refusals(400, 401, 403, 409, 413, 422, 503),
)
async def push_batch(
    request: Request,
    settings: SettingsDep,
    engine: EngineDep,
    participant: ParticipantDep,
    registry: RegistryDep,
) -> JSONResponse:
    """A participant pushes one signed, anchored batch with its events (``BatchPush``)."""
    raw = await read_json(request, settings.max_body_bytes)
    try:
        push = BatchPush.model_validate(raw)
    except ValidationError as error:
        raise LedgerError(400, "malformed_batch", _first_problem(error)) from None
    header = _read_header(push)
    standing = await run_in_threadpool(_standing, engine, header, push)
    if isinstance(standing, BatchAccepted):
        return JSONResponse(standing.model_dump(mode="json", by_alias=True), status_code=200)
    previous, head = standing
    document = await participant.resolver.resolve(header.participant)
    try:
        verify_signed_header(push.signed_header, document)
    except BatchError as error:
        raise LedgerError(_BATCH_STATUS[error.fault], error.fault.value, error.message) from None
    checked = await run_in_threadpool(_check, header, push, head, previous)
    where = await run_in_threadpool(_on_chain, registry, header, push)
    try:
        await run_in_threadpool(_store, engine, checked, push, where, document, datetime.now(UTC))
    except (IntegrityError, BatchError):
        # Another push of this participant committed first: answer as if this one came second.
        again = await run_in_threadpool(_standing, engine, header, push)
        if isinstance(again, BatchAccepted):
            return JSONResponse(again.model_dump(mode="json", by_alias=True), status_code=200)
        raise LedgerError(
            409, "duplicate_event", "an event of this batch is stored already under another place"
        ) from None
    answer = _answer(header, where.anchor.block_number, where.transaction, replayed=False)
    return JSONResponse(answer.model_dump(mode="json", by_alias=True), status_code=201)


Text = Annotated[str | None, Query(min_length=1, max_length=2048)]


def _page(engine: Engine, query: archive.FlowQuery) -> FlowPage:
    with Session(engine) as session:
        rows = archive.flows(session, replace(query, limit=query.limit + 1))
    more = len(rows) > query.limit
    flows = [
        Flow(
            participant=row.participant,
            sequence=row.sequence,
            batch_sequence=batch,
            event=json.loads(body),
        )
        for row, body, batch in rows[: query.limit]
    ]
    return FlowPage(
        flows=flows,
        offset=query.offset,
        limit=query.limit,
        next_offset=query.offset + query.limit if more else None,
    )


@router.get("/flows", responses=refusals(401, 403, 422, 503))
async def list_flows(
    engine: EngineDep,
    viewer: ViewerDep,
    participant: Text = None,
    counterparty: Text = None,
    asset: Text = None,
    purpose: Text = None,
    domain: Text = None,
    event_type: Annotated[EventType | None, Query(alias="type")] = None,
    since: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    until: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> FlowPage:
    """The events that match every filter given, oldest first (``from`` inclusive, ``to``
    exclusive). A regulator sees every participant's; anyone else only its own."""
    if participant is not None and not viewer.may_see(participant):
        raise LedgerError(403, "not_a_regulator", "only a regulator sees another's events")
    if not viewer.regulator:
        participant = viewer.did
    query = archive.FlowQuery(
        participant=participant, counterparty=counterparty, asset_id=asset, purpose=purpose,
        scenario_domain=domain, event_type=event_type, since=since, until=until,
        offset=offset, limit=limit,
    )  # fmt: skip
    return await run_in_threadpool(_page, engine, query)


def _bundle(engine: Engine, event_id: str) -> ProofBundle | None:
    with Session(engine) as session:
        return build_bundle(session, event_id)


def _not_anchored(batch_sequence: int) -> LedgerError:
    return LedgerError(
        409, "not_anchored",
        f"the chain no longer holds batch {batch_sequence}'s anchor (a reorganisation?): its "
        "participant anchors it again; ask later",
    )  # fmt: skip


def _followed(engine: Engine, bundle: ProofBundle, registry: AnchorRegistry | None) -> ProofBundle:
    """The bundle with its anchor as the chain holds it now: an anchor that a reorganisation
    moved to another block (the same root, mined again) is followed and stored; one the chain
    no longer holds is a 409 until the participant anchors it again. With the chain down the
    stored anchor is served (whoever checks the bundle asks a node)."""
    if registry is None:
        return bundle
    participant = str(bundle.event["participant"])
    try:
        anchor = registry.anchor_at(bundle.anchor.account, bundle.batch_sequence)
        if anchor.root.hex() != bundle.anchor.root:
            raise _not_anchored(bundle.batch_sequence)
        with Session(engine) as session:
            batch = session.get(store.BatchRecord, (participant, bundle.batch_sequence))
            if batch is None or follow_anchor(session, batch, anchor, registry) is None:
                return bundle
            session.commit()
            return build_bundle(session, str(bundle.event["eventId"])) or bundle
    except ChainError as error:
        if error.fault in CHAIN_DOWN:
            return bundle
        if error.fault is ChainFault.NO_SUCH_ANCHOR:
            raise _not_anchored(bundle.batch_sequence) from None
        raise _chain_unavailable(error) from None


EventId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]


@router.get("/events/{event_id}/proof", responses=refusals(401, 403, 404, 409, 422, 503))
async def event_proof(
    event_id: EventId, engine: EngineDep, viewer: ViewerDep, registry: RegistryDep
) -> dict[str, Any]:
    """The event with its inclusion proof and its batch's on-chain anchor: all a third party
    needs to check it against a node of the chain (``dataspace ledger check-proof``)."""
    bundle = await run_in_threadpool(_bundle, engine, event_id)
    if bundle is None or not viewer.may_see(str(bundle.event.get("participant"))):
        raise LedgerError(404, "not_found", f"no event {event_id} (of yours)")
    bundle = await run_in_threadpool(_followed, engine, bundle, registry)  # once it may be seen
    return bundle.model_dump(mode="json", by_alias=True)


MAX_RECONCILIATION_PAGE: Final = 100


def _reconcile(engine: Engine, participant: str | None, offset: int, limit: int) -> dict[str, Any]:
    with Session(engine) as session:
        keys = archive.flow_keys(session, participant, offset, limit + 1)
        found = archive.flow_events(session, keys[:limit])
    flows = [
        reconcile(provider_pid, consumer_pid, events, unreadable).to_json()
        for (provider_pid, consumer_pid), (events, unreadable) in found.items()
    ]
    return {
        "flows": flows,
        "offset": offset,
        "limit": limit,
        "nextOffset": offset + limit if len(keys) > limit else None,
    }


@router.get("/reconciliation", responses=refusals(401, 403, 422, 503))
async def reconciliation(
    engine: EngineDep,
    viewer: ViewerDep,
    participant: Text = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_RECONCILIATION_PAGE)] = 20,
) -> dict[str, Any]:
    """Each cross-entity flow (with ``participant`` on either side) as each party recorded it,
    matched by DSP process ids, with every disagreement and its reason. Regulators only."""
    if not viewer.regulator:
        raise LedgerError(403, "not_a_regulator", "only a regulator reconciles both sides")
    return await run_in_threadpool(_reconcile, engine, participant, offset, limit)


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


def _report(
    engine: Engine, participant: str, since: datetime | None, until: datetime | None
) -> Report:
    with Session(engine) as session:
        events = archive.participant_events(session, participant, since, until)
        return build_report(participant, events, since, until)


REPORT: Final[dict[int | str, dict[str, Any]]] = {
    200: {"content": {"text/csv": {}}, "description": "The report (JSON, or CSV when asked)"}
}


@router.get("/reports", responses=REPORT | refusals(401, 403, 422, 503))
async def participant_report(
    participant: Annotated[str, Query(min_length=1, max_length=2048)],
    engine: EngineDep,
    viewer: ViewerDep,
    since: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    until: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    format: ReportFormat = ReportFormat.JSON,
) -> Response:
    """One participant's report over the period: data provided to others, personal information
    handled against the 100,000 and 1,000,000 person thresholds, cross-border flows, refusals
    by reason. A regulator asks for anyone's; a participant for its own."""
    if not viewer.may_see(participant):
        raise LedgerError(403, "not_a_regulator", "only a regulator sees another's report")
    report = await run_in_threadpool(_report, engine, participant, since, until)
    if format is ReportFormat.CSV:
        return Response(report.to_csv(), media_type="text/csv; charset=utf-8")
    return JSONResponse(report.to_json())
