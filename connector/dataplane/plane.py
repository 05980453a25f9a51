"""The data plane's request path: admits every request for the data (token, transfer state,
the consumer's credentials now, the agreement's policy in the access scope), opens its source,
records each access as it goes and how it ended (with its audit event), and refreshes tokens.

Counting: an access is reserved (``in_progress``) when admitted, under a lock on the grant, and
counts as a use while in progress and once completed; one that fails or is interrupted is not
counted. Policy is evaluated once per request, never per chunk.

What the transfer process asks of the data plane (grants, addresses, revocation, duties) is
``grants``; pushes, the policy monitor and the duty clock are the ``worker``'s.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import anyio
import httpx
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from connector.audit import AuditRecord, AuditSink, Outcome
from connector.catalog.store import Asset
from connector.dataplane import tokens
from connector.dataplane.grants import issue_tokens
from connector.dataplane.matchsets import PSI_PULL
from connector.dataplane.sources import Body, SourceError, SourceRules, open_source
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
from identity.verifier import facts_of
from policy.duties import DutyState
from policy.evaluate import evaluate
from policy.jsonld import read_policy
from policy.operands import Context, CredentialFacts, Grade, MatchFacts, Scope, Vocabulary
from service.http import error_body

MAX_REASONS: Final = 20
MATCH_COUNTED: Final = (*COUNTED, "aborted")
"""Matching runs that count as uses: in progress, completed, and aborted after answers had
gone out (the consumer may have learned part of the intersection)."""


@dataclass(frozen=True)
class RunRequest:
    """What a matching run asks for, decided by the policy with the agreement's runs so far."""

    set_size: int
    output: str


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
    asset_id: str


class DataPlane:
    def __init__(
        self,
        *,
        engine: Engine,
        participant: Participant,
        audit: AuditSink,
        clock: Callable[[], datetime],
        client: httpx.AsyncClient,
        sql_sources: Mapping[str, Engine],
        required: Collection[CredentialType],
        token_ttl_s: float,
        rules: SourceRules,
        vocabulary: Vocabulary | None = None,
    ) -> None:
        self.vocabulary = vocabulary or Vocabulary()
        self.engine = engine
        self.participant = participant
        self.me = participant.did
        self.audit = audit
        self.clock = clock
        self.client = client
        self.sql_sources = dict(sql_sources)
        self.required = frozenset(required)
        self.token_ttl = timedelta(seconds=token_ttl_s)
        self.rules = rules
        """Which data addresses may be served, checked again on every access."""

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
        grant = session.get(DataGrant, token.transfer_id, populate_existing=True)
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
        run: RunRequest | None = None,
    ) -> tuple[tuple[str, ...], Asset | None]:
        """The reasons the agreement's policy refuses now (empty when it admits), and the
        asset the agreement is about. For a matching ``run``, its runs are its uses (a
        matching set is never downloaded)."""
        transfer = session.get(TransferProcessRecord, grant.transfer_id)
        if transfer is None or transfer.state != State.STARTED.value:
            state = transfer.state if transfer else "unknown"
            raise DataPlaneError(
                403, "transfer_not_started", f"transfer {grant.transfer_id} is {state}"
            )
        if scope is Scope.ACCESS and (run is not None) != (transfer.format == PSI_PULL):
            raise DataPlaneError(
                403, "wrong_transfer_type",
                f"transfer {grant.transfer_id} is of type {transfer.format}: matching runs need "
                f"a {PSI_PULL} transfer, and a {PSI_PULL} transfer serves matching runs only",
            )  # fmt: skip
        negotiation = session.exec(
            select(ContractNegotiationRecord).where(
                ContractNegotiationRecord.agreement_id == grant.agreement_id,
                ContractNegotiationRecord.role == Role.PROVIDER.value,
            )
        ).first()
        if negotiation is None or negotiation.agreement is None:
            raise DataPlaneError(403, "unknown_agreement", f"no agreement {grant.agreement_id}")
        policy = read_policy(json.loads(negotiation.agreement))
        used = uses(session, grant.agreement_id, MATCH_COUNTED if run else counted)
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
            vocabulary=self.vocabulary,
            agreement_start=agreement_time(negotiation, policy),
            uses_so_far=used,
            matching=None if run is None else MatchFacts(run.set_size, used, run.output),
            violated_duties=tuple(violated),
        )
        decision = evaluate(policy, context, scope)
        reasons = () if decision.allowed else tuple(decision.reasons[:MAX_REASONS])
        return reasons, session.get(Asset, negotiation.asset_id)

    async def admit(self, authorization: str | None) -> Admitted:
        """Everything before touching the data: the token, the transfer, the consumer's
        credentials now, the policy in the access scope."""
        token = self.check_token(self.read_token(authorization))
        return await self.admit_grant(await anyio.to_thread.run_sync(self.grant_for, token))

    async def admit_grant(self, grant: DataGrant, run: RunRequest | None = None) -> Admitted:
        """The consumer's credentials now and the policy in the access scope (pull, push, and
        matching runs). A matching set is only matched, never downloaded or pushed."""
        facts = await self.facts(grant)
        reasons, asset = await anyio.to_thread.run_sync(self._decide_access, grant, facts, run)
        matching = asset is not None and "matching" in json.loads(asset.data_address)
        if matching and run is None:
            raise DataPlaneError(
                403, "matching_set", "a matching set is matched (PSI-PULL), never downloaded"
            )
        if reasons:
            raise DataPlaneError(403, "policy_denied", "the agreement's policy refuses", reasons)
        if asset is None:
            raise DataPlaneError(410, "asset_gone", "the asset of this agreement was deleted")
        if run is not None and not matching:
            raise DataPlaneError(403, "not_a_matching_set", "this asset is not a matching set")
        return Admitted(
            grant.transfer_id, grant.agreement_id, grant.consumer,
            json.loads(asset.data_address), facts, asset.id,
        )  # fmt: skip

    def grant_for(self, token: tokens.AccessToken) -> DataGrant:
        """The grant a checked token names, in the token's generation (blocking)."""
        with Session(self.engine) as session:
            return self._load(session, token)

    def _decide_access(
        self, grant: DataGrant, facts: CredentialFacts, run: RunRequest | None = None
    ) -> tuple[tuple[str, ...], Asset | None]:
        with Session(self.engine) as session:
            return self.decide(session, grant, facts, Scope.ACCESS, run=run)

    def reserve(
        self, admitted: Admitted, byte_range: str | None, run: RunRequest | None = None
    ) -> int:
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
            reasons, _ = self.decide(session, grant, admitted.facts, Scope.ACCESS, run=run)
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
            self.end(session, access, outcome, sent, rows, reason)
            session.commit()

    def end(
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
                access_outcome=outcome,
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
                sql_engines=self.sql_sources, client=self.client, rules=self.rules,
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
            # Lock the grant first (a write to its row: a row lock on PostgreSQL, the write
            # lock on SQLite), so that concurrent refreshes with one refresh token happen one
            # after the other: the first replaces the generation, the others are refused.
            session.execute(
                update(DataGrant)
                .where(col(DataGrant.transfer_id) == token.transfer_id)
                .values(updated_at=DataGrant.updated_at),
                execution_options={"synchronize_session": False},
            )
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
            access, refresh, expires_at = issue_tokens(
                self.participant, grant, self.clock, self.token_ttl
            )
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
