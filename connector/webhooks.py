"""Webhooks to the data holder's application: one JSON event per state change of a negotiation
or transfer, with the termination code and reason, sent through the outbox (persisted with the
state change, retried with backoff). Each delivery is signed the Standard Webhooks way
(https://www.standardwebhooks.com, the ``standardwebhooks`` library): ``webhook-id`` (the outbox
message's id, the same on every retry: a receiver's key to drop duplicates and replays),
``webhook-timestamp`` (the attempt's time, in seconds: a receiver refuses old ones) and
``webhook-signature`` (``v1,<base64 HMAC-SHA256>`` of ``id.timestamp.body``).

The secret from settings is either a Standard Webhooks secret (``whsec_<base64>``, as its tools
generate) or any other string, whose UTF-8 bytes are the key; a receiver builds
``standardwebhooks.Webhook`` with the same value (``secret_key`` gives it as the library
takes it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from standardwebhooks.webhooks import Webhook as StandardWebhook

from connector.outbox import OutboxMessage

KIND: Final = "webhook"
ID_HEADER: Final = "webhook-id"
TIMESTAMP_HEADER: Final = "webhook-timestamp"
SIGNATURE_HEADER: Final = "webhook-signature"
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the format's prefix, not a secret


def secret_key(secret: str) -> str | bytes:
    """The secret as ``standardwebhooks.Webhook`` takes it: a ``whsec_`` secret as it is (the
    library decodes its base64), any other string as its bytes."""
    return secret if secret.startswith(SECRET_PREFIX) else secret.encode()


def message_id(message: OutboxMessage) -> str:
    return f"msg_{message.id}"


@dataclass(frozen=True)
class Webhook:
    url: str
    secret: str = field(repr=False)
    clock: Callable[[], datetime] = field(compare=False, repr=False, kw_only=True)

    def sign(self, msg_id: str, at: datetime, body: str) -> str:
        return StandardWebhook(secret_key(self.secret)).sign(msg_id, at, body)

    def headers(self, message: OutboxMessage) -> dict[str, str]:
        """The three headers of one delivery attempt, signed at the time of sending."""
        at = self.clock()
        msg_id = message_id(message)
        return {
            ID_HEADER: msg_id,
            TIMESTAMP_HEADER: str(int(at.timestamp())),
            SIGNATURE_HEADER: self.sign(msg_id, at, message.body),
        }


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
