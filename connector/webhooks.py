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
takes it).

Besides the connector's webhook (settings), a negotiation or transfer started through the
management API may name its own callback addresses (up to five, each for every state change or
for some states). Each address has its own order of delivery
(outbox key ``<process>#<n>``): a receiver that is down delays its own events, never the
process's protocol messages nor another receiver's. Each callback address is signed with a
secret of its own, derived from the connector's (HKDF-SHA256 over the outbox key and the
address) and given once, in the answer to the request that named it: a receiver can verify
what it receives and forge nothing for the connector's webhook or another address."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from standardwebhooks.webhooks import Webhook as StandardWebhook

from connector.outbox import OutboxMessage

KIND: Final = "webhook"
ID_HEADER: Final = "webhook-id"
TIMESTAMP_HEADER: Final = "webhook-timestamp"
SIGNATURE_HEADER: Final = "webhook-signature"
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the format's prefix, not a secret
MAX_CALLBACKS: Final = 5
"""Callback addresses one process may name."""


def secret_key(secret: str) -> str | bytes:
    """The secret as ``standardwebhooks.Webhook`` takes it: a ``whsec_`` secret as it is (the
    library decodes its base64), any other string as its bytes."""
    return secret if secret.startswith(SECRET_PREFIX) else secret.encode()


def _key_bytes(secret: str) -> bytes:
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    return secret.encode()


def callback_secret(secret: str, key: str, uri: str) -> str:
    """The Standard Webhooks secret of one callback address (outbox key ``<process>#n``)."""
    derived = HKDF(
        algorithm=SHA256(), length=32, salt=None, info=f"kexin callback\n{key}\n{uri}".encode()
    ).derive(_key_bytes(secret))
    return SECRET_PREFIX + base64.b64encode(derived).decode()


def callback_key(process_id: str, number: int) -> str:
    """The outbox key of a process's receiver: 0 the connector's webhook, 1… its callbacks."""
    return f"{process_id}#{number}"


def message_id(message: OutboxMessage) -> str:
    return f"msg_{message.id}"


@dataclass(frozen=True)
class Callback:
    """One callback address of a process: its URL, and the states it wants (None: all)."""

    uri: str
    states: frozenset[str] | None = None


def callbacks_json(callbacks: Iterable[Callback]) -> str | None:
    """How a process keeps its callback addresses (None for none)."""
    kept = [
        {"uri": c.uri, **({"states": sorted(c.states)} if c.states is not None else {})}
        for c in callbacks
    ]
    return json.dumps(kept) if kept else None


def read_callbacks(kept: str | None) -> list[Callback]:
    if not kept:
        return []
    return [
        Callback(c["uri"], None if c.get("states") is None else frozenset(c["states"]))
        for c in json.loads(kept)
    ]


@dataclass(frozen=True)
class Webhook:
    url: str | None
    """The connector's own receiver (settings), told of every change; None: only the callback
    addresses processes name."""
    secret: str = field(repr=False)
    clock: Callable[[], datetime] = field(compare=False, repr=False, kw_only=True)

    def sign(self, msg_id: str, at: datetime, body: str, secret: str | None = None) -> str:
        return StandardWebhook(secret_key(secret or self.secret)).sign(msg_id, at, body)

    def secret_for(self, key: str, uri: str) -> str:
        """What signs the events sent under outbox key ``key``: the connector's secret for its
        webhook (and for events enqueued before keys existed), a derived one for a callback."""
        _process, _sep, number = key.rpartition("#")
        if not number.isdigit() or number == "0":
            return self.secret
        return callback_secret(self.secret, key, uri)

    def headers(self, message: OutboxMessage) -> dict[str, str]:
        """The three headers of one delivery attempt, signed at the time of sending."""
        at = self.clock()
        msg_id = message_id(message)
        secret = self.secret_for(message.process_id, message.url)
        return {
            ID_HEADER: msg_id,
            TIMESTAMP_HEADER: str(int(at.timestamp())),
            SIGNATURE_HEADER: self.sign(msg_id, at, message.body, secret),
        }


def destinations(webhook: Webhook | None, record: Any) -> list[tuple[str, str]]:
    """Where the event of a process's new state goes, each with its outbox key: the connector's
    webhook, then the process's own callback addresses that want this state (none without a
    secret to sign them: the management API refuses such addresses)."""
    if webhook is None:
        return []
    found = [] if webhook.url is None else [(callback_key(record.id, 0), webhook.url)]
    for number, callback in enumerate(read_callbacks(record.callbacks), start=1):
        if callback.states is None or record.state in callback.states:
            found.append((callback_key(record.id, number), callback.uri))
    return found


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
