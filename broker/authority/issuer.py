"""The data-space authority: receives DCP credential requests, decides by the onboarding rule
(allow-list from settings, or the operator), issues VC JWTs with a revocation status entry,
delivers them to the holder's Credential Service, and revokes on the operator's word.

Issued credentials are recorded only after the holder's Credential Service accepted them: a
failed delivery leaves the request RECEIVED with the error, for the operator to retry. Every
decision (a request received, approved, rejected; credentials issued, a delivery failed, a
credential revoked) is audited in the transaction that carries it out, with who decided (the
operator by the id of its API key, or the allow-list). The holder's write token is kept only
until the request is decided.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from broker.authority.store import (
    ALLOW_LIST,
    HOLDER,
    SELF,
    CredentialRequest,
    Decider,
    Decision,
    IssuedCredential,
    RequestStatus,
    StatusList,
    audit,
)
from broker.registry.machine import State
from broker.registry.standing import record_onboarding, record_revocation, standing
from broker.registry.store import utc
from identity.claims import OrganisationClaims
from identity.credentials import (
    CredentialType,
    Organisation,
    VerifiedCredential,
    issue_credential,
)
from identity.documents import DIDDocument
from identity.errors import IdentityError, Reason
from identity.participant import Participant
from identity.presentations import DCP_CONTEXT
from identity.status import LIST_BITS, StatusEntry, issue_status_list, set_bit
from service.destinations import DestinationError
from service.http import check_http_url

LIST_ID: Final = "1"
MAX_ADDRESS_CHARS: Final = 2048
MAX_TYPES: Final = 4


class AuthorityError(Exception):
    """An operator command or request that cannot be carried out (4xx for the caller)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


@dataclass(frozen=True)
class CredentialRequestMessage:
    holder_pid: str
    types: tuple[CredentialType, ...]
    organisation: OrganisationClaims | None

    @classmethod
    def parse(cls, body: Any) -> CredentialRequestMessage:
        if not isinstance(body, dict) or body.get("type") != "CredentialRequestMessage":
            raise AuthorityError(400, "malformed_message", "expected a CredentialRequestMessage")
        holder_pid, items = body.get("holderPid"), body.get("credentials")
        if not isinstance(holder_pid, str) or not 0 < len(holder_pid) <= 200:
            raise AuthorityError(400, "malformed_message", "holderPid is required")
        if not isinstance(items, list) or not 0 < len(items) <= MAX_TYPES:
            raise AuthorityError(400, "malformed_message", f"credentials lists 1 to {MAX_TYPES}")
        types = []
        for item in items:
            name = item.get("id") if isinstance(item, dict) else None
            if name not in CredentialType.__members__.values():
                raise AuthorityError(400, "unknown_credential", f"no credential {name!r} here")
            types.append(CredentialType(str(name)))
        organisation = None
        if "organisation" in body:
            try:
                organisation = OrganisationClaims.model_validate(body["organisation"])
            except ValueError as error:
                raise AuthorityError(400, "malformed_message", f"organisation: {error}") from None
        return cls(holder_pid, tuple(dict.fromkeys(types)), organisation)


class Authority:
    def __init__(
        self,
        *,
        engine: Engine,
        participant: Participant,
        client: httpx.AsyncClient,
        allow: dict[str, tuple[tuple[CredentialType, ...], Organisation]],
        validity: timedelta,
        status_url: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._me = participant
        self._client = client
        self._allow = allow
        self._validity = validity
        self._status_url = status_url
        self._clock = clock
        with Session(engine) as session:
            if session.get(StatusList, LIST_ID) is None:
                session.add(StatusList(id=LIST_ID, bits=bytes(LIST_BITS // 8)))
                session.commit()

    @property
    def did(self) -> str:
        return self._me.did

    def metadata(self) -> dict[str, Any]:
        """DCP IssuerMetadata."""
        return {
            "@context": [DCP_CONTEXT],
            "type": "IssuerMetadata",
            "issuer": self.did,
            "credentialsSupported": [
                {
                    "type": "CredentialObject",
                    "id": kind.value,
                    "credentialType": kind.value,
                    "format": "jwt",
                    "profile": "vc11-sl2021/jwt",
                    "bindingMethods": ["did:web"],
                }
                for kind in CredentialType
            ],
        }

    def trusted_issuers(self) -> dict[str, list[str]]:
        return {kind.value: [self.did] for kind in CredentialType}

    async def receive(
        self, holder: str, write_token: str | None, message: CredentialRequestMessage
    ) -> CredentialRequest:
        if write_token is None:
            raise IdentityError(
                Reason.ACCESS_DENIED, "the ID token needs a token claim for delivery"
            )
        request = CredentialRequest(
            id=str(uuid.uuid4()),
            holder=holder,
            holder_pid=message.holder_pid,
            credential_types=" ".join(t.value for t in message.types),
            status=RequestStatus.RECEIVED,
            write_token=write_token,
            organisation=message.organisation.model_dump_json(by_alias=True)
            if message.organisation
            else None,
            created_at=self._clock(),
        )
        with Session(self._engine) as session:
            session.add(request)
            audit(
                session, Decision.REQUEST_RECEIVED, subject=holder, decider=HOLDER,
                now=request.created_at, request_id=request.id, detail=request.credential_types,
            )  # fmt: skip
            session.commit()
            session.refresh(request)
        grant = self._allow.get(holder)
        if grant is not None and set(message.types) <= set(grant[0]):
            return await self.approve(request.id, grant[1], ALLOW_LIST)
        return request

    def request(self, request_id: str, holder: str | None = None) -> CredentialRequest:
        with Session(self._engine) as session:
            found = session.get(CredentialRequest, request_id)
        if found is None or (holder is not None and found.holder != holder):
            raise AuthorityError(404, "unknown_request", f"no request {request_id}")
        return found

    def requests(self, status: RequestStatus | None) -> list[CredentialRequest]:
        with Session(self._engine) as session:
            query = select(CredentialRequest).order_by(col(CredentialRequest.created_at))
            if status is not None:
                query = query.where(CredentialRequest.status == status.value)
            return list(session.exec(query).all())

    def credentials(self, holder: str | None) -> list[IssuedCredential]:
        with Session(self._engine) as session:
            query = select(IssuedCredential).order_by(col(IssuedCredential.issued_at))
            if holder is not None:
                query = query.where(IssuedCredential.holder == holder)
            return list(session.exec(query).all())

    def reject(self, request_id: str, reason: str, decider: Decider) -> CredentialRequest:
        with Session(self._engine) as session:
            request = session.get(CredentialRequest, request_id)
            if request is None:
                raise AuthorityError(404, "unknown_request", f"no request {request_id}")
            if request.status != RequestStatus.RECEIVED:
                raise AuthorityError(409, "already_decided", f"request is {request.status}")
            now = self._clock()
            request.status, request.reason, request.decided_at = (
                RequestStatus.REJECTED,
                reason,
                now,
            )
            request.write_token = ""  # not needed any more: not kept
            session.add(request)
            audit(
                session, Decision.REQUEST_REJECTED, subject=request.holder, decider=decider,
                now=now, request_id=request.id, detail=reason,
            )  # fmt: skip
            session.commit()
            session.refresh(request)
            return request

    async def approve(
        self, request_id: str, organisation: Organisation, decider: Decider
    ) -> CredentialRequest:
        """Issue and deliver. Three short steps, no transaction held across the network:
        reserve status-list entries, deliver, then record the outcome."""
        now = self._clock()
        request, indexes = self._reserve(request_id)
        key = self._me.keyring.current
        expires_at = now + self._validity
        issued, payloads = [], []
        for name, index in zip(request.credential_types.split(), indexes, strict=True):
            credential_id = f"urn:uuid:{uuid.uuid4()}"
            payloads.append({
                "credentialType": name,
                "format": "jwt",
                "payload": issue_credential(
                    issuer=self.did, key=key.private_key, key_id=key.key_id,
                    credential_id=credential_id, credential_type=CredentialType(name),
                    subject=request.holder, organisation=organisation, issued_at=now,
                    expires_at=expires_at, status=StatusEntry(self._status_url, index),
                ),
            })  # fmt: skip
            issued.append(
                IssuedCredential(
                    id=credential_id, request_id=request.id, holder=request.holder,
                    credential_type=name, status_list=LIST_ID, status_index=index,
                    issued_at=now, expires_at=expires_at,
                )
            )  # fmt: skip
        error, dsp_address = await self._deliver(request, payloads)
        with Session(self._engine) as session:
            stored = session.get(CredentialRequest, request_id)
            assert stored is not None  # noqa: S101 - read in _reserve, never deleted
            if error is None:
                stored.status, stored.decided_at, stored.reason = RequestStatus.ISSUED, now, None
                stored.write_token = ""  # delivered: not kept
                session.add_all(issued)
                record_onboarding(session, stored.holder, organisation, dsp_address, now)
                audit(
                    session, Decision.REQUEST_APPROVED, subject=stored.holder, decider=decider,
                    now=now, request_id=stored.id, detail=stored.credential_types,
                )  # fmt: skip
                for credential in issued:
                    audit(
                        session, Decision.CREDENTIAL_ISSUED, subject=stored.holder,
                        decider=decider, now=now, request_id=stored.id,
                        credential_id=credential.id, detail=credential.credential_type,
                    )  # fmt: skip
            else:  # the reserved entries stay unused; the operator may approve again
                stored.reason = f"delivery failed: {error}"[:1000]
                audit(
                    session, Decision.DELIVERY_FAILED, subject=stored.holder, decider=decider,
                    now=now, request_id=stored.id, detail=stored.reason,
                )  # fmt: skip
            session.add(stored)
            session.commit()
            session.refresh(stored)
            return stored

    def _reserve(self, request_id: str) -> tuple[CredentialRequest, list[int]]:
        with Session(self._engine) as session:
            request = session.get(CredentialRequest, request_id)
            if request is None:
                raise AuthorityError(404, "unknown_request", f"no request {request_id}")
            if request.status != RequestStatus.RECEIVED:
                raise AuthorityError(409, "already_decided", f"request is {request.status}")
            if standing(session, request.holder) is State.SUSPENDED:
                raise AuthorityError(
                    409, "participant_suspended", f"{request.holder} is suspended: reinstate first"
                )
            status_list = session.get(StatusList, LIST_ID)
            assert status_list is not None  # noqa: S101 - created in __init__
            count = len(request.credential_types.split())
            if status_list.next_index + count > LIST_BITS:
                raise AuthorityError(507, "status_list_full", "the status list is full")
            indexes = list(range(status_list.next_index, status_list.next_index + count))
            status_list.next_index += count
            session.add(status_list)
            session.commit()
            session.refresh(request)
            return request, indexes

    async def _deliver(
        self, request: CredentialRequest, credentials: list[dict[str, str]]
    ) -> tuple[str | None, str | None]:
        """Deliver; return what went wrong (None: delivered) and the holder's DSP address,
        read from the same DID document."""
        try:
            document = await self._me.resolver.resolve(request.holder)
        except IdentityError as error:
            return str(error), None
        return await self._deliver_to(document, request, credentials), dsp_address(document)

    async def _deliver_to(
        self, document: DIDDocument, request: CredentialRequest, credentials: list[dict[str, str]]
    ) -> str | None:
        service = document.service("CredentialService")
        if service is None:
            return f"{request.holder} publishes no CredentialService"
        message = {
            "@context": [DCP_CONTEXT],
            "type": "CredentialMessage",
            "issuerPid": request.id,
            "holderPid": request.holder_pid,
            "status": "ISSUED",
            "credentials": credentials,
        }
        try:
            endpoint = self._me.resolver.destinations.credential_service(
                service.endpoint, request.holder
            )
        except DestinationError as error:
            return str(error)
        bearer = self._me.sts.id_token(request.holder, token=request.write_token)
        try:
            response = await self._client.post(
                str(endpoint).rstrip("/") + "/credentials",
                json=message,
                headers={"Authorization": f"Bearer {bearer}"},
            )
        except httpx.HTTPError:
            return "the Credential Service is unreachable"
        if response.status_code != httpx.codes.OK:
            return f"the Credential Service answered {response.status_code}"
        return None

    def revoke(self, credential_id: str, decider: Decider) -> IssuedCredential:
        with Session(self._engine) as session:
            credential = session.get(IssuedCredential, credential_id)
            if credential is None:
                raise AuthorityError(404, "unknown_credential", f"no credential {credential_id}")
            if credential.revoked_at is None:
                status_list = session.get(StatusList, credential.status_list)
                assert status_list is not None  # noqa: S101 - foreign key by construction
                bits = bytearray(status_list.bits)
                set_bit(bits, credential.status_index)
                status_list.bits = bytes(bits)
                now = self._clock()
                credential.revoked_at = now
                session.add_all([status_list, credential])
                session.flush()
                record_revocation(session, credential.holder, now)
                audit(
                    session, Decision.CREDENTIAL_REVOKED, subject=credential.holder,
                    decider=decider, now=now, request_id=credential.request_id,
                    credential_id=credential.id, detail=credential.credential_type,
                )  # fmt: skip
                session.commit()
                session.refresh(credential)
            return credential

    def issue_own_membership(self, organisation: Organisation) -> str | None:
        """The broker is a participant too (its crawler asks providers for their catalogues):
        unless it holds a current MembershipCredential of its own, issue one about itself,
        with a status entry like any other, record and audit it, and hold it in its own
        Credential Service. Returns the new credential's id, or None when one is held."""
        now = self._clock()
        held = {h.id for h in self._me.credentials.held([CredentialType.MEMBERSHIP])}
        with Session(self._engine) as session:
            issued = session.exec(
                select(IssuedCredential).where(
                    IssuedCredential.holder == self.did,
                    IssuedCredential.credential_type == CredentialType.MEMBERSHIP.value,
                    col(IssuedCredential.revoked_at).is_(None),
                )
            ).all()
        if any(c.id in held and utc(c.expires_at) > now for c in issued):
            return None
        kind = CredentialType.MEMBERSHIP
        request_id = str(uuid.uuid4())
        request = CredentialRequest(
            id=request_id, holder=self.did, holder_pid=f"urn:uuid:{uuid.uuid4()}",
            credential_types=kind.value, status=RequestStatus.RECEIVED, write_token="",
            organisation=json.dumps(organisation.to_json(), ensure_ascii=False), created_at=now,
        )  # fmt: skip
        with Session(self._engine) as session:
            session.add(request)
            session.commit()
        _, (index,) = self._reserve(request_id)
        credential_id, expires_at = f"urn:uuid:{uuid.uuid4()}", now + self._validity
        key = self._me.keyring.current
        status = StatusEntry(self._status_url, index)
        token = issue_credential(
            issuer=self.did, key=key.private_key, key_id=key.key_id,
            credential_id=credential_id, credential_type=kind, subject=self.did,
            organisation=organisation, issued_at=now, expires_at=expires_at, status=status,
        )  # fmt: skip
        with Session(self._engine) as session:
            stored = session.get(CredentialRequest, request_id)
            assert stored is not None  # noqa: S101 - written above
            stored.status, stored.decided_at = RequestStatus.ISSUED, now
            session.add(stored)
            session.add(
                IssuedCredential(
                    id=credential_id, request_id=request_id, holder=self.did,
                    credential_type=kind.value, status_list=LIST_ID, status_index=index,
                    issued_at=now, expires_at=expires_at,
                )
            )  # fmt: skip
            audit(
                session, Decision.CREDENTIAL_ISSUED, subject=self.did, decider=SELF, now=now,
                request_id=request_id, credential_id=credential_id, detail=kind.value,
            )  # fmt: skip
            session.commit()
        self._me.credentials.save(
            VerifiedCredential(
                id=credential_id, type=kind, issuer=self.did, subject=self.did,
                organisation=organisation, expires_at=expires_at, status=status, token=token,
            ),
            now,
        )  # fmt: skip
        return credential_id

    def status_list(self, list_id: str) -> str:
        with Session(self._engine) as session:
            found = session.get(StatusList, list_id)
        if found is None:
            raise AuthorityError(404, "unknown_status_list", f"no status list {list_id}")
        key = self._me.keyring.current
        return issue_status_list(
            self.did, key.private_key, key.key_id, self._status_url, found.bits, self._clock()
        )


def dsp_address(document: DIDDocument) -> str | None:
    """The connector's DSP base URL from the ``DataService`` (or ``CatalogService``) entry of
    its DID document, whose endpoint ends in ``/catalog`` (DSP 2025-1 did-service schema); None
    when it publishes none or one that is not an http(s) URL."""
    service = document.service("DataService") or document.service("CatalogService")
    if service is None or not service.endpoint.rstrip("/").endswith("/catalog"):
        return None
    try:
        check_http_url(service.endpoint)
    except ValueError:
        return None
    address = service.endpoint.rstrip("/").removesuffix("/catalog")
    return address if len(address) <= MAX_ADDRESS_CHARS else None


def organisation_json(request: CredentialRequest) -> dict[str, Any] | None:
    return json.loads(request.organisation) if request.organisation else None
