"""Decisions that change a registered participant's standing, each in one transaction with
its audit event: onboarded (credentials issued), suspended and reinstated by the operator,
revoked (its last MembershipCredential revoked).

Suspension sets the status-list entry of each of its credentials that is not revoked, so that
every verifier (the connectors' membership checks, the broker's own) refuses them once its
status-list cache refreshes; reinstatement clears those entries again, never those of revoked
credentials. Our verifiers understand only the ``revocation`` purpose of StatusList2021, so a
suspension uses the same list: a verifier that cached the list sees a suspended credential as
revoked until it reads the list again. The broker itself refuses a suspended participant at
once, from this table.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from broker.authority.store import (
    Decider,
    Decision,
    IssuedCredential,
    StatusList,
    audit,
)
from broker.registry.machine import Event, StandingError, State, next_state
from broker.registry.store import RegisteredParticipant, held_credentials
from identity.credentials import CredentialType, Organisation
from identity.status import clear_bit, set_bit


class RegistryError(Exception):
    """An operator command on the registry that cannot be carried out (4xx for the caller)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def standing(session: Session, did: str) -> State | None:
    found = session.get(RegisteredParticipant, did)
    return None if found is None else State(found.state)


def record_onboarding(
    session: Session,
    did: str,
    organisation: Organisation,
    dsp_address: str | None,
    now: datetime,
) -> RegisteredParticipant:
    """Credentials were issued to ``did`` with these claims: it is active, with these facts
    (the newest credentials' claims win), in the caller's transaction."""
    found = session.get(RegisteredParticipant, did)
    state = next_state(None if found is None else State(found.state), Event.ONBOARD)
    if found is None:
        found = RegisteredParticipant(
            did=did, name=organisation.name, credit_code=organisation.credit_code,
            region=organisation.region, data_grade=organisation.data_grade.value,
            state=state.value, onboarded_at=now, updated_at=now,
        )  # fmt: skip
    found.name, found.credit_code = organisation.name, organisation.credit_code
    found.region, found.data_grade = organisation.region, organisation.data_grade.value
    found.dsp_address = dsp_address or found.dsp_address
    found.state, found.reason, found.updated_at = state.value, None, now
    session.add(found)
    return found


def record_revocation(session: Session, did: str, now: datetime) -> None:
    """One of ``did``'s credentials was revoked, in the caller's transaction: without any
    MembershipCredential left it is revoked."""
    found = session.get(RegisteredParticipant, did)
    if found is None:
        return
    held = held_credentials(session, did, now)
    if any(c.credential_type == CredentialType.MEMBERSHIP.value for c in held):
        return
    found.state = next_state(State(found.state), Event.REVOKE).value
    found.updated_at = now
    session.add(found)


def _unrevoked(session: Session, did: str) -> list[IssuedCredential]:
    return list(
        session.exec(
            select(IssuedCredential).where(
                IssuedCredential.holder == did, col(IssuedCredential.revoked_at).is_(None)
            )
        ).all()
    )


def _move(
    session: Session, did: str, event: Event, now: datetime
) -> tuple[RegisteredParticipant, State]:
    found = session.get(RegisteredParticipant, did)
    if found is None:
        raise RegistryError(404, "unknown_participant", f"no participant {did} is registered")
    try:
        return found, next_state(State(found.state), event)
    except StandingError as error:
        raise RegistryError(409, "not_possible", str(error)) from None


def suspend(
    session: Session, did: str, reason: str, decider: Decider, now: datetime
) -> RegisteredParticipant:
    found, state = _move(session, did, Event.SUSPEND, now)
    _set_status(session, _unrevoked(session, did), on=True)
    found.state, found.reason, found.updated_at = state.value, reason, now
    session.add(found)
    audit(
        session, Decision.PARTICIPANT_SUSPENDED, subject=did, decider=decider, now=now,
        detail=reason,
    )  # fmt: skip
    session.commit()
    session.refresh(found)
    return found


def reinstate(session: Session, did: str, decider: Decider, now: datetime) -> RegisteredParticipant:
    found, state = _move(session, did, Event.REINSTATE, now)
    _set_status(session, _unrevoked(session, did), on=False)
    found.state, found.reason, found.updated_at = state.value, None, now
    session.add(found)
    audit(session, Decision.PARTICIPANT_REINSTATED, subject=did, decider=decider, now=now)
    session.commit()
    session.refresh(found)
    return found


def _set_status(session: Session, credentials: list[IssuedCredential], *, on: bool) -> None:
    lists: dict[str, bytearray] = {}
    for credential in credentials:
        if credential.status_list not in lists:
            stored = session.get(StatusList, credential.status_list, with_for_update=True)
            if stored is None:  # foreign key by construction
                raise RegistryError(409, "no_status_list", "a credential without its list")
            lists[credential.status_list] = bytearray(stored.bits)
        (set_bit if on else clear_bit)(lists[credential.status_list], credential.status_index)
    for list_id, bits in lists.items():
        stored = session.get(StatusList, list_id)
        if stored is not None:
            stored.bits = bytes(bits)
            session.add(stored)
