"""Webhooks to the data holder's application: one JSON event per state change of a negotiation
or transfer, with the termination code and reason, sent through the outbox (persisted with the
state change, retried with backoff). Each body is signed: ``X-Kexin-Signature: sha256=<hex>``,
the HMAC-SHA256 of the exact body with the shared secret from settings."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from connector.outbox import OutboxMessage

KIND: Final = "webhook"
SIGNATURE_HEADER: Final = "X-Kexin-Signature"


@dataclass(frozen=True)
class Webhook:
    url: str
    secret: str

    def sign(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()

    def headers(self, message: OutboxMessage) -> dict[str, str]:
        return {SIGNATURE_HEADER: self.sign(message.body.encode())}


def event(process: str, record: Any, at: datetime) -> dict[str, Any]:
    """The event for a negotiation or transfer record that just changed."""
    return {
        "type": f"kexin.{process}.state",
        "id": record.id,
        "role": record.role,
        "state": record.state,
        "consumerPid": record.consumer_pid,
        "providerPid": record.provider_pid,
        "counterPartyId": record.counterparty,
        "agreementId": record.agreement_id,
        "terminationCode": record.termination_code,
        "terminationReason": record.termination_reason,
        "at": at.isoformat(),
    }
