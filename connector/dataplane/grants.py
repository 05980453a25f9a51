"""What the transfer process asks of the data plane, inside its own transaction: remember the
consumer's credentials as verified with its request (the grant), give a started pull transfer
its data address with fresh tokens (or queue a push), revoke the tokens of a transfer that no
longer runs, and track the agreement's duties once a transfer starts.

It is the data plane's side of the transfer process's ``DataPlaneHooks`` port; it commits
nothing itself, and it never moves a transfer. Admission of requests is ``plane``; pushes, the
policy monitor and the duty clock are the ``worker``'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

from sqlmodel import Session, select

from connector.dataplane import tokens
from connector.dataplane.matchsets import PSI_PULL
from connector.dataplane.push import PushAddressError, push_target
from connector.dataplane.store import DataGrant, DutyRecord, agreement_time
from connector.negotiation.machine import Role
from connector.negotiation.store import ContractNegotiationRecord
from connector.transfer.store import TransferProcessRecord
from identity.participant import Participant
from identity.verifier import Peer
from policy.duties import DutyState, obligations_for
from policy.jsonld import read_policy
from service.destinations import DestinationError, Destinations

DATA_PATH: Final = "/dataplane/v1/data"
PSI_PATH: Final = "/dataplane/v1/psi"
TOKEN_PATH: Final = "/dataplane/v1/token"  # noqa: S105 - a path, not a secret
RECEIPT_PATH: Final = "/dataplane/v1/receipts"
HTTP_ENDPOINT: Final = "https://w3id.org/idsa/v4.1/HTTP"


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


def issue_tokens(
    participant: Participant, grant: DataGrant, clock: Callable[[], datetime], ttl: timedelta
) -> tuple[str, str, datetime]:
    """An access token of the grant's generation and a new refresh token (only its hash is
    kept on the grant, replacing the old one), and when the access token expires."""
    expires_at = clock() + ttl
    access = tokens.issue(
        participant.keyring.current,
        participant.did,
        tokens.AccessToken(
            grant.transfer_id, grant.agreement_id, grant.consumer, grant.generation, expires_at
        ),
        clock(),
    )
    refresh, digest = tokens.new_refresh_token()
    grant.refresh_hash = digest
    return access, refresh, expires_at


class Grants:
    def __init__(
        self,
        *,
        participant: Participant,
        base_url: str,
        clock: Callable[[], datetime],
        token_ttl_s: float,
        wake: Callable[[], None],
        destinations: Destinations,
    ) -> None:
        self.participant = participant
        self.me = participant.did
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.token_ttl = timedelta(seconds=token_ttl_s)
        self.wake = wake
        """Wakes the data plane's worker: a push was queued."""
        self.destinations = destinations

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
        access, refresh, expires_at = issue_tokens(
            self.participant, grant, self.clock, self.token_ttl
        )
        session.add(grant)
        return {
            "@type": "DataAddress",
            "endpointType": HTTP_ENDPOINT,
            "endpoint": self.base_url + (PSI_PATH if record.format == PSI_PULL else DATA_PATH),
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

    def revoke(self, session: Session, record: TransferProcessRecord) -> None:
        """Provider: the transfer is no longer running; its tokens stop working now."""
        grant = session.get(DataGrant, record.id)
        if grant is not None:
            grant.generation += 1
            grant.refresh_hash = None
            grant.updated_at = self.clock()
            session.add(grant)

    def push_problem(self, address: dict[str, Any], consumer: str) -> str | None:
        """Provider, on a push request: why the push address is refused, or None."""
        try:
            push_target(address, consumer, self.destinations)
        except (DestinationError, PushAddressError) as error:
            return str(error)
        return None

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
