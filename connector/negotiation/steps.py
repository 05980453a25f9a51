"""What both roles of a contract negotiation share (DSP 2025-1 Contract Negotiation Protocol):
the ACK message, terminating with a code and reasons (and telling the other side once both
pids are known), and reading a policy from a message (400 ``malformed_policy`` otherwise).

The provider's handling is ``provider``, the consumer's ``consumer``; ``process`` puts them
together with the operator's moves.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlmodel import Session

from connector.negotiation.machine import TERMINAL, Event, Role, State
from connector.negotiation.messages import (
    ContractNegotiation,
    ContractNegotiationTerminationMessage,
)
from connector.negotiation.store import ContractNegotiationRecord
from connector.processes import ProcessSteps
from connector.protocol import DspError
from policy.errors import PolicyError
from policy.jsonld import read_policy
from policy.model import Policy

ERROR_TYPE = "ContractNegotiationError"
MAX_REASON_CHARS = 2000


def parse_policy(document: Any, what: str) -> Policy:
    try:
        return read_policy(document)
    except PolicyError as error:
        raise DspError(400, ERROR_TYPE, "malformed_policy", f"{what}: {error}") from None


class NegotiationSteps(ProcessSteps[ContractNegotiationRecord]):
    ack_type = ContractNegotiation
    record_type = ContractNegotiationRecord
    error_type = ERROR_TYPE
    noun = "contract negotiation"
    terminal = frozenset(state.value for state in TERMINAL)
    path = "negotiations"
    terminate_event = Event.TERMINATE
    taken_over: ClassVar[dict[tuple[str, str], Any]] = {
        (State.FINALIZED.value, State.VERIFIED.value): Event.FINALIZE,
    }
    manual_approval: bool
    """Provider: a person agrees to admitted requests and finalizes verified agreements."""
    manual_verification: bool
    """Consumer: a person verifies agreements."""

    def ack(self, record: ContractNegotiationRecord) -> dict[str, Any]:
        return ContractNegotiation.build(
            providerPid=self.known_pid(record, "provider_pid"),
            consumerPid=self.known_pid(record, "consumer_pid"),
            state=record.state,
        ).dump()

    def _terminate(
        self,
        session: Session,
        record: ContractNegotiationRecord,
        sender: Role,
        code: str,
        reasons: list[str],
    ) -> None:
        self.move(record, Event.TERMINATE, sender)
        record.termination_code = code
        record.termination_reason = "\n".join(reasons)[:MAX_REASON_CHARS]
        if record.provider_pid and record.consumer_pid:
            message = ContractNegotiationTerminationMessage.build(
                providerPid=record.provider_pid,
                consumerPid=record.consumer_pid,
                code=code,
                reason=reasons[:20],
            ).dump()
            path = (
                f"/negotiations/{record.consumer_pid}/termination"
                if sender is Role.PROVIDER
                else f"/negotiations/{record.provider_pid}/termination"
            )
            self.send(session, record, "negotiation.termination", path, message)
