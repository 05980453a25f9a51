"""The data plane: issues the pull address of a started transfer, admits every request for the
data (token, transfer state, the consumer's credentials now, the agreement's policy in the
access scope), streams it from its source, records each access, pushes to consumers that asked
for push, and runs the policy monitor and the duty clock.

Counting: an access is reserved (``in_progress``) when admitted, under a lock on the grant, and
counts as a use while in progress and once completed; one that fails or is interrupted is not
counted. Policy is evaluated once per request, never per chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import anyio
import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from connector.audit import AuditRecord, AuditSink, Outcome
from connector.catalog.store import Asset
from connector.dataplane import tokens
from connector.dataplane.sources import Body, SourceError, open_source
from connector.dataplane.store import (
    COUNTED,
    DataAccess,
    DataGrant,
    DutyRecord,
    agreement_time,
    uses,
)
from connector.negotiation.machine import Role
from connector.negotiation.store import ContractNegotiationRecord
from connector.transfer.machine import State
from connector.transfer.store import TransferProcessRecord
from identity.credentials import CredentialType
from identity.errors import IdentityError
from identity.participant import Participant
from identity.status import StatusEntry
from identity.verifier import Peer, facts_of
from policy.duties import DutyState, obligations_for
from policy.evaluate import evaluate
from policy.jsonld import read_policy
from policy.operands import Context, CredentialFacts, Grade, Scope
from service.http import error_body

if TYPE_CHECKING:
    from connector.transfer.process import Transfers

log = logging.getLogger("kexin.dataplane")

DATA_PATH: Final = "/dataplane/v1/data"
TOKEN_PATH: Final = "/dataplane/v1/token"  # noqa: S105 - a path, not a secret
RECEIPT_PATH: Final = "/dataplane/v1/receipts"
HTTP_ENDPOINT: Final = "https://w3id.org/idsa/v4.1/HTTP"
MAX_REASONS: Final = 20


class DataPlaneError(Exception):
    def __init__(self, status: int, code: str, message: str, reasons: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.reasons = status, code, message, reasons

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = error_body("DataPlaneError", self.code, self.message)
        if self.reasons:
            body["reasons"] = list(self.reasons)
        return body


@dataclass(frozen=True)
class Admitted:
    transfer_id: str
    agreement_id: str
    consumer: str
    address: dict[str, Any]
    facts: CredentialFacts
    """The consumer's credentials as checked at admission (decided on again when reserving)."""


def credential_json(peer: Peer) -> str:
    return json.dumps(
        [
            {
                "id": c.id,
                "type": c.type.value,
                "issuer": c.issuer,
                "expiresAt": c.expires_at.isoformat(),
                "dataGrade": c.organisation.data_grade.value,
                "region": c.organisation.region,
                "status": None
                if c.status is None
                else {"url": c.status.list_url, "index": c.status.index},
            }
            for c in peer.presentation.credentials
        ]
    )


def dataplane_base(dsp_address: str) -> str:
    """A Kexin connector's base URL from its DSP address (``<base>/dsp``)."""
    return dsp_address.rstrip("/").removesuffix("/dsp")


class DataPlane:
    def __init__(
        self,
        *,
        engine: Engine,
        participant: Participant,
        base_url: str,
        audit: AuditSink,
        clock: Callable[[], datetime],
        client: httpx.AsyncClient,
        sql_sources: Mapping[str, Engine],
        required: Collection[CredentialType],
        token_ttl_s: float,
        monitor_interval_s: float,
    ) -> None:
        self.engine = engine
        self.participant = participant
        self.me = participant.did
        self.base_url = base_url.rstrip("/")
        self.audit = audit
        self.clock = clock
        self.client = client
        self.sql_sources = dict(sql_sources)
        self.required = frozenset(required)
        self.token_ttl = timedelta(seconds=token_ttl_s)
        self.monitor_interval_s = monitor_interval_s
        self.transfers: Transfers | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self.failing: str | None = None
        """Why the worker's last round failed, while it keeps failing (for readiness)."""

    # --- hooks of the transfer process (inside its transaction) ---------------------------

    def grant(self, session: Session, record: TransferProcessRecord, peer: Peer) -> None:
        """Provider: remember the consumer's credentials as verified with this request."""
        grant = session.get(DataGrant, record.id) or DataGrant(
            transfer_id=record.id,
            agreement_id=record.agreement_id,
            consumer=peer.did,
            credentials="[]",
            updated_at=self.clock(),
        )
        grant.credentials = credential_json(peer)
        grant.updated_at = self.clock()
        session.add(grant)

    def address(self, session: Session, record: TransferProcessRecord) -> dict[str, Any] | None:
        """Provider, on start: a pull address with a fresh token (revoking older ones), or, for
        push, the push is queued and the start message carries no address."""
        grant = session.get(DataGrant, record.id)
        if grant is None:  # never granted (cannot happen through the protocol): fail closed
            grant = DataGrant(
                transfer_id=record.id, agreement_id=record.agreement_id,
                consumer=record.counterparty, credentials="[]", updated_at=self.clock(),
            )  # fmt: skip
        self._ensure_duties(session, record.agreement_id, Role.PROVIDER)
        grant.generation += 1
        grant.updated_at = self.clock()
        if record.format == "HttpData-PUSH":
            grant.push_state, grant.refresh_hash = "pending", None
            session.add(grant)
            self.wake()
            return None
        access, refresh, expires_at = self._tokens(grant)
        session.add(grant)
        return {
            "@type": "DataAddress",
            "endpointType": HTTP_ENDPOINT,
            "endpoint": self.base_url + DATA_PATH,
            "endpointProperties": [
                {"@type": "EndpointProperty", "name": name, "value": value}
                for name, value in (
                    ("authorization", access),
                    ("authType", "bearer"),
                    ("expiresIn", str(int(self.token_ttl.total_seconds()))),
                    ("expiresAt", expires_at.isoformat()),
                    ("refreshToken", refresh),
                    ("refreshEndpoint", self.base_url + TOKEN_PATH),
                )
            ],
        }

    def _tokens(self, grant: DataGrant) -> tuple[str, str, datetime]:
        expires_at = self.clock() + self.token_ttl
        access = tokens.issue(
            self.participant.keyring.current,
            self.me,
            tokens.AccessToken(
                grant.transfer_id, grant.agreement_id, grant.consumer, grant.generation, expires_at
            ),
            self.clock(),
        )
        refresh, digest = tokens.new_refresh_token()
        grant.refresh_hash = digest
        return access, refresh, expires_at

    def revoke(self, session: Session, record: TransferProcessRecord) -> None:
        """Provider: the transfer is no longer running; its tokens stop working now."""
        grant = session.get(DataGrant, record.id)
        if grant is not None:
            grant.generation += 1
            grant.refresh_hash = None
            grant.updated_at = self.clock()
            session.add(grant)

    def consumer_started(self, session: Session, record: TransferProcessRecord) -> None:
        """Consumer: the agreement's duties become tracked obligations."""
        self._ensure_duties(session, record.agreement_id, Role.CONSUMER)

    def _ensure_duties(self, session: Session, agreement_id: str, role: Role) -> None:
        negotiation = session.exec(
            select(ContractNegotiationRecord).where(
                ContractNegotiationRecord.agreement_id == agreement_id,
                ContractNegotiationRecord.role == role.value,
            )
        ).first()
        if negotiation is None or negotiation.agreement is None:
            return
        policy = read_policy(json.loads(negotiation.agreement))
        duties = policy.obligations + tuple(d for p in policy.permissions for d in p.duties)
        consumer = self.me if role is Role.CONSUMER else negotiation.counterparty
        for obligation in obligations_for(
            duties, agreement_id, consumer, agreement_time(negotiation, policy)
        ):
            if session.get(DutyRecord, (obligation.id, role.value)) is not None:
                continue
            session.add(
                DutyRecord(
                    id=obligation.id,
                    role=role.value,
                    agreement_id=agreement_id,
                    counterparty=negotiation.counterparty,
                    duty_path=obligation.duty_path,
                    action=obligation.action,
                    party=obligation.party,
                    deadline=obligation.deadline,
                    state=DutyState.PENDING.value,
                    receipt_endpoint=dataplane_base(negotiation.counterparty_address) + RECEIPT_PATH
                    if role is Role.CONSUMER
                    else None,
                    created_at=self.clock(),
                )
            )

    # --- admission ----------------------------------------------------------------------

    def read_token(self, authorization: str | None) -> str:
        if authorization is None or not authorization.startswith("Bearer "):
            raise DataPlaneError(401, "missing_token", "Authorization: Bearer <token> needed")
        return authorization.removeprefix("Bearer ").strip()

    def check_token(self, token: str, *, allow_expired: bool = False) -> tokens.AccessToken:
        try:
            return tokens.read(
                token, self.me, self.participant.keyring.document(), self.clock(),
                allow_expired=allow_expired,
            )  # fmt: skip
        except tokens.TokenError as error:
            raise DataPlaneError(401, error.code, error.message) from None

    async def facts(self, grant: DataGrant) -> CredentialFacts:
        """What the consumer's credentials say now: expired or revoked ones no longer count,
        and losing a required one refuses everything. A status list that cannot be read
        refuses too (fail closed)."""
        now = self.clock()
        valid: list[dict[str, Any]] = []
        lost: list[str] = []
        for credential in json.loads(grant.credentials):
            kind = credential["type"]
            if datetime.fromisoformat(credential["expiresAt"]) <= now:
                lost.append(f"{kind} {credential['id']} has expired")
                continue
            status = credential.get("status")
            if status is not None:
                entry = StatusEntry(status["url"], int(status["index"]))
                try:
                    revoked = await self.participant.status.is_revoked(entry, credential["issuer"])
                except IdentityError as error:
                    raise DataPlaneError(
                        503, "status_unavailable", f"cannot check {kind}: {error.message}"
                    ) from None
                if revoked:
                    lost.append(f"{kind} {credential['id']} is revoked")
                    continue
            valid.append(credential)
        kinds = {c["type"] for c in valid}
        missing = sorted(t.value for t in self.required if t.value not in kinds)
        if missing:
            raise DataPlaneError(
                403,
                "credential_revoked",
                f"{grant.consumer} no longer holds a valid {', '.join(missing)}",
                tuple(lost),
            )
        return facts_of(
            (CredentialType(c["type"]), Grade(c["dataGrade"]), c["region"]) for c in valid
        )

    def _load(self, session: Session, token: tokens.AccessToken) -> DataGrant:
        grant = session.get(DataGrant, token.transfer_id)
        if (
            grant is None
            or grant.consumer != token.consumer
            or grant.agreement_id != token.agreement_id
        ):
            raise DataPlaneError(401, "invalid_token", "the token names no transfer of this bearer")
        if grant.generation != token.generation:
            transfer = session.get(TransferProcessRecord, grant.transfer_id)
            if transfer is not None and transfer.state == State.TERMINATED.value:
                # Say why, as the termination message did: a request racing the policy monitor
                # learns the same reasons as one the policy refused itself.
                raise DataPlaneError(
                    403,
                    "transfer_terminated",
                    f"the transfer was terminated ({transfer.termination_code})",
                    tuple((transfer.termination_reason or "").splitlines()[:MAX_REASONS]),
                )
            raise DataPlaneError(401, "revoked_token", "the token was revoked or replaced")
        return grant

    def decide(
        self,
        session: Session,
        grant: DataGrant,
        facts: CredentialFacts,
        scope: Scope,
        *,
        counted: tuple[str, ...] = COUNTED,
    ) -> tuple[tuple[str, ...], Asset | None]:
        """The reasons the agreement's policy refuses now (empty when it admits), and the
        asset the agreement is about."""
        transfer = session.get(TransferProcessRecord, grant.transfer_id)
        if transfer is None or transfer.state != State.STARTED.value:
            state = transfer.state if transfer else "unknown"
            raise DataPlaneError(
                403, "transfer_not_started", f"transfer {grant.transfer_id} is {state}"
            )
        negotiation = session.exec(
            select(ContractNegotiationRecord).where(
                ContractNegotiationRecord.agreement_id == grant.agreement_id,
                ContractNegotiationRecord.role == Role.PROVIDER.value,
            )
        ).first()
        if negotiation is None or negotiation.agreement is None:
            raise DataPlaneError(403, "unknown_agreement", f"no agreement {grant.agreement_id}")
        policy = read_policy(json.loads(negotiation.agreement))
        used = uses(session, grant.agreement_id, counted)
        violated = session.exec(
            select(DutyRecord.id).where(
                DutyRecord.agreement_id == grant.agreement_id,
                DutyRecord.role == Role.PROVIDER.value,
                DutyRecord.state == DutyState.VIOLATED.value,
            )
        ).all()
        context = Context(
            now=self.clock(),
            recipient=grant.consumer,
            credentials=facts,
            target=negotiation.asset_id,
            purpose=negotiation.purpose,
            agreement_start=agreement_time(negotiation, policy),
            uses_so_far=used,
            violated_duties=tuple(violated),
        )
        decision = evaluate(policy, context, scope)
        reasons = () if decision.allowed else tuple(decision.reasons[:MAX_REASONS])
        return reasons, session.get(Asset, negotiation.asset_id)

    async def admit(self, authorization: str | None) -> Admitted:
        """Everything before touching the data: the token, the transfer, the consumer's
        credentials now, the policy in the access scope."""
        token = self.check_token(self.read_token(authorization))
        return await self._admit(await anyio.to_thread.run_sync(self._grant_for, token))

    async def _admit(self, grant: DataGrant) -> Admitted:
        """The consumer's credentials now and the policy in the access scope (pull and push)."""
        facts = await self.facts(grant)
        reasons, asset = await anyio.to_thread.run_sync(self._decide_access, grant, facts)
        if reasons:
            raise DataPlaneError(403, "policy_denied", "the agreement's policy refuses", reasons)
        if asset is None:
            raise DataPlaneError(410, "asset_gone", "the asset of this agreement was deleted")
        return Admitted(
            grant.transfer_id, grant.agreement_id, grant.consumer,
            json.loads(asset.data_address), facts,
        )  # fmt: skip

    def _grant_for(self, token: tokens.AccessToken) -> DataGrant:
        with Session(self.engine) as session:
            return self._load(session, token)

    def _decide_access(
        self, grant: DataGrant, facts: CredentialFacts
    ) -> tuple[tuple[str, ...], Asset | None]:
        with Session(self.engine) as session:
            return self.decide(session, grant, facts, Scope.ACCESS)

    def reserve(self, admitted: Admitted, byte_range: str | None) -> int:
        """Decide again under a lock and record the access as in progress, so that two
        concurrent requests cannot both take the last use. The lock is a write to the grant
        before counting: a row lock on PostgreSQL, the database's write lock on SQLite (which
        ignores SELECT ... FOR UPDATE)."""
        with Session(self.engine) as session:
            grant = session.get(DataGrant, admitted.transfer_id)
            if grant is None:
                raise DataPlaneError(401, "revoked_token", "the transfer's grant is gone")
            grant.updated_at = self.clock()
            session.add(grant)
            session.flush()
            reasons, _ = self.decide(session, grant, admitted.facts, Scope.ACCESS)
            if reasons:
                raise DataPlaneError(
                    403, "policy_denied", "the agreement's policy refuses", reasons
                )
            access = DataAccess(
                transfer_id=admitted.transfer_id,
                agreement_id=admitted.agreement_id,
                consumer=admitted.consumer,
                outcome="in_progress",
                byte_range=byte_range,
                started_at=self.clock(),
            )
            session.add(access)
            session.commit()
            assert access.id is not None  # noqa: S101 - set by the insert
            return access.id

    def progress(self, access_id: int, sent: int) -> None:
        """How far an access got, recorded as it streams (bounded steps)."""
        with Session(self.engine) as session:
            access = session.get(DataAccess, access_id)
            if access is None or access.outcome != "in_progress":
                return
            access.bytes_sent = sent
            session.add(access)
            session.commit()

    def finish(
        self, access_id: int, outcome: str, sent: int, rows: int | None, reason: str | None
    ) -> None:
        with Session(self.engine) as session:
            access = session.get(DataAccess, access_id)
            if access is None:
                return
            self._end(session, access, outcome, sent, rows, reason)
            session.commit()

    def _end(
        self,
        session: Session,
        access: DataAccess,
        outcome: str,
        sent: int,
        rows: int | None,
        reason: str | None,
    ) -> None:
        """Record how an access ended, with its audit event in the same transaction."""
        access.outcome, access.bytes_sent, access.rows_sent = outcome, sent, rows
        access.reason, access.ended_at = reason, self.clock()
        session.add(access)
        self.audit.add(
            session,
            AuditRecord(
                actor=self.me,
                action="data access",
                outcome=Outcome.ACCEPTED if outcome == "completed" else Outcome.REFUSED,
                occurred_at=self.clock(),
                counterparty=access.consumer,
                subject=access.transfer_id,
                reason=f"{outcome}: {reason}" if reason else outcome,
                bytes_sent=sent,
                rows_sent=rows,
            ),
        )

    def refused(self, error: DataPlaneError, consumer: str | None, subject: str | None) -> None:
        reasons = "; ".join(error.reasons)
        self.audit.record(
            AuditRecord(
                actor=self.me,
                action="data access",
                outcome=Outcome.REFUSED,
                occurred_at=self.clock(),
                counterparty=consumer,
                subject=subject,
                reason=f"{error.code}: {error.message}" + (f" ({reasons})" if reasons else ""),
            )
        )

    async def open(
        self, authorization: str | None, range_header: str | None, accept: str | None
    ) -> tuple[Admitted, Body, int]:
        """Admit, open the source, reserve the access: the caller streams the body and calls
        :meth:`finish`. Every refusal is audited and raised as a :class:`DataPlaneError`."""
        admitted: Admitted | None = None
        try:
            admitted = await self.admit(authorization)
            body = await open_source(
                admitted.address, range_header=range_header, accept=accept,
                sql_engines=self.sql_sources, client=self.client,
            )  # fmt: skip
        except (SourceError, DataPlaneError) as error:
            failure = (
                error
                if isinstance(error, DataPlaneError)
                else DataPlaneError(error.status, error.code, error.message)
            )
            consumer, subject = (
                (admitted.consumer, admitted.transfer_id) if admitted else (None, None)
            )
            await anyio.to_thread.run_sync(self.refused, failure, consumer, subject)
            raise failure from None
        try:
            byte_range = body.byte_range.header() if body.byte_range else None
            access_id = await anyio.to_thread.run_sync(self.reserve, admitted, byte_range)
        except DataPlaneError as error:
            await body.aclose()
            await anyio.to_thread.run_sync(
                self.refused, error, admitted.consumer, admitted.transfer_id
            )
            raise
        return admitted, body, access_id

    # --- token refresh --------------------------------------------------------------------

    def refresh(self, authorization: str | None, refresh_token: str) -> dict[str, Any]:
        """A new access token and refresh token for a running transfer, against the current
        (possibly expired) access token and its refresh token; both old ones stop working."""
        token = self.check_token(self.read_token(authorization), allow_expired=True)
        with Session(self.engine) as session:
            grant = self._load(session, token)
            expected = grant.refresh_hash or ""
            if not hmac.compare_digest(expected, tokens.refresh_hash(refresh_token)):
                raise DataPlaneError(
                    401, "invalid_refresh_token", "that refresh token is not valid"
                )
            transfer = session.get(TransferProcessRecord, grant.transfer_id)
            if transfer is None or transfer.state != State.STARTED.value:
                raise DataPlaneError(403, "transfer_not_started", "the transfer is not running")
            grant.generation += 1
            access, refresh, expires_at = self._tokens(grant)
            grant.updated_at = self.clock()
            session.add(grant)
            session.commit()
        return {
            "authorization": access,
            "authType": "bearer",
            "refreshToken": refresh,
            "expiresIn": int(self.token_ttl.total_seconds()),
            "expiresAt": expires_at.isoformat(),
        }

    # --- background: monitor, duty clock, pushes ---------------------------------------------

    def wake(self) -> None:
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def _recover(self) -> None:
        """Accesses cut off by a stop (or a crash) end as interrupted, with the bytes they had
        recorded as sent, and are audited; they are not counted as uses."""
        with Session(self.engine) as session:
            for access in session.exec(
                select(DataAccess).where(DataAccess.outcome == "in_progress")
            ).all():
                self._end(
                    session, access, "interrupted", access.bytes_sent, access.rows_sent,
                    "the connector stopped",
                )  # fmt: skip
            session.commit()

    async def run(self) -> None:
        """The worker: the policy monitor, pushes and the duty clock, every interval. A round
        that fails (the database locked, read-only, full or gone) is logged and tried again:
        the worker never ends but with the app."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        recovered = False
        while True:
            try:
                if not recovered:
                    await anyio.to_thread.run_sync(self._recover)
                    recovered = True
                await self.tick()
                self.failing = None
            except Exception as error:
                self.failing = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                log.warning("data plane round failed, retrying: %s", self.failing)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.monitor_interval_s)
            self._wake.clear()

    async def tick(self) -> None:
        await anyio.to_thread.run_sync(self.duty_clock)
        await self.monitor()
        await self.push_pending()

    def duty_clock(self) -> None:
        """Both sides: a pending duty past its deadline is violated."""
        now = self.clock()
        with Session(self.engine) as session:
            overdue = session.exec(
                select(DutyRecord).where(
                    DutyRecord.state == DutyState.PENDING.value,
                    col(DutyRecord.deadline).is_not(None),
                    col(DutyRecord.deadline) < now,
                )
            ).all()
            for duty in overdue:
                duty.state, duty.settled_at = DutyState.VIOLATED.value, now
                session.add(duty)
            session.commit()
        for duty in overdue:
            self.audit.record(
                AuditRecord(
                    actor=self.me, action="duty violated", outcome=Outcome.REFUSED,
                    occurred_at=now, counterparty=duty.counterparty, subject=duty.id,
                    reason=f"{duty.action} was due by {duty.deadline} and not done",
                )
            )  # fmt: skip

    async def monitor(self) -> None:
        """Provider: every STARTED transfer whose agreement no longer admits it (expired, count
        exhausted, credential revoked, duty violated) is terminated and its tokens revoked."""
        with Session(self.engine) as session:
            running = session.exec(
                select(DataGrant, TransferProcessRecord)
                .join(
                    TransferProcessRecord,
                    col(TransferProcessRecord.id) == col(DataGrant.transfer_id),
                )
                .where(
                    TransferProcessRecord.state == State.STARTED.value,
                    TransferProcessRecord.role == Role.PROVIDER.value,
                )
            ).all()
        for grant, _transfer in running:
            try:
                facts = await self.facts(grant)
                reasons, _ = await anyio.to_thread.run_sync(self._decide_monitor, grant, facts)
            except DataPlaneError as error:
                if error.code == "status_unavailable":
                    continue  # not known to be revoked: decide next round
                if error.code == "transfer_not_started":
                    continue  # suspended or ended since it was read: not the monitor's to end
                reasons = (error.message, *error.reasons)
            if reasons and self.transfers is not None:
                await anyio.to_thread.run_sync(
                    self.transfers.terminate_by_monitor, grant.transfer_id, list(reasons)
                )

    def _decide_monitor(
        self, grant: DataGrant, facts: CredentialFacts
    ) -> tuple[tuple[str, ...], Asset | None]:
        with Session(self.engine) as session:
            return self.decide(session, grant, facts, Scope.MONITOR, counted=("completed",))

    async def push_pending(self) -> None:
        with Session(self.engine, expire_on_commit=False) as session:
            pending = session.exec(select(DataGrant).where(DataGrant.push_state == "pending")).all()
            for grant in pending:
                grant.push_state = "running"
                session.add(grant)
            session.commit()
        for grant in pending:
            await self.push(grant)

    async def push(self, grant: DataGrant) -> None:
        """Provider: stream the data to the endpoint the consumer named, with its token; the
        transfer completes when the consumer's endpoint took it all, else it terminates."""
        if self.transfers is None:
            return
        with Session(self.engine) as session:
            transfer = session.get(TransferProcessRecord, grant.transfer_id)
        target = json.loads(transfer.data_address) if transfer and transfer.data_address else {}
        access_id: int | None = None
        try:
            admitted = await self._admit(grant)
            body = await open_source(
                admitted.address, range_header=None, accept=None,
                sql_engines=self.sql_sources, client=self.client,
            )  # fmt: skip
            access_id = await anyio.to_thread.run_sync(self.reserve, admitted, None)
            sent = await self._push_body(body, target)
        except (DataPlaneError, SourceError) as error:
            message = error.message
            if access_id is not None:
                await anyio.to_thread.run_sync(self.finish, access_id, "failed", 0, None, message)
            elif isinstance(error, DataPlaneError):
                self.refused(error, grant.consumer, grant.transfer_id)
            why = [message, *(error.reasons if isinstance(error, DataPlaneError) else ())]
            await anyio.to_thread.run_sync(self._end_push, grant.transfer_id, "failed", why)
            return
        await anyio.to_thread.run_sync(
            self.finish, access_id, "completed", sent, body.rows, "pushed"
        )
        await anyio.to_thread.run_sync(self._end_push, grant.transfer_id, "done", [])

    async def _push_body(self, body: Body, target: Mapping[str, Any]) -> int:
        endpoint = target.get("endpoint")
        if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
            await body.aclose()
            raise DataPlaneError(400, "bad_push_address", "the push address has no HTTP endpoint")
        properties = {p.get("name"): p.get("value") for p in target.get("endpointProperties", [])}
        headers = {"Content-Type": body.media_type}
        if properties.get("authorization"):
            value = str(properties["authorization"])
            bearer = properties.get("authType", "bearer") == "bearer"
            headers["Authorization"] = f"Bearer {value}" if bearer else value
        sent = 0

        async def content() -> Any:
            nonlocal sent
            async for chunk in body.chunks:
                sent += len(chunk)
                yield chunk

        try:
            response = await self.client.post(endpoint, content=content(), headers=headers)
        except httpx.HTTPError as error:
            raise SourceError(502, "push_failed", f"{endpoint}: {error!r}") from None
        finally:
            await body.aclose()
        if not response.is_success:
            raise SourceError(502, "push_failed", f"{endpoint} answered {response.status_code}")
        return sent

    def _end_push(self, transfer_id: str, state: str, reasons: list[str]) -> None:
        with Session(self.engine) as session:
            grant = session.get(DataGrant, transfer_id)
            if grant is not None:
                grant.push_state = state
                session.add(grant)
                session.commit()
        if self.transfers is None:
            return
        if state == "done":
            self.transfers.complete_by_data_plane(transfer_id)
        else:
            self.transfers.terminate_by_monitor(transfer_id, reasons, code="push_failed")
