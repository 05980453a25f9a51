"""Webhook signatures: what the connector sends verifies with the ``standardwebhooks`` library,
with either form of secret, and the library refuses an old, a future or a forged delivery."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from connector.outbox import OutboxMessage
from connector.settings import ConnectorSettings
from connector.webhooks import KIND, Webhook, secret_key

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
BODY = json.dumps({"type": "kexin.negotiation.state", "state": "FINALIZED", "name": "数据"})
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def message(id_: int = 7) -> OutboxMessage:
    return OutboxMessage(
        id=id_, process_id="p", kind=KIND, audience="", url="http://app/hook", body=BODY,
        next_attempt_at=NOW, created_at=NOW,
    )  # fmt: skip


@pytest.mark.parametrize("secret", ["webhook-secret-0123456789", WHSEC])
def test_a_delivery_verifies_with_the_library(secret: str) -> None:
    headers = Webhook("http://app/hook", secret, clock=lambda: datetime.now(UTC)).headers(message())
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "msg_7"
    assert StandardWebhook(secret_key(secret)).verify(BODY.encode(), headers) == json.loads(BODY)


def test_the_id_is_the_message_s_and_the_timestamp_the_attempt_s() -> None:
    times = iter([NOW, NOW + timedelta(seconds=90), NOW])
    hook = Webhook("http://app/hook", WHSEC, clock=lambda: next(times))
    first, retry = hook.headers(message()), hook.headers(message())
    assert first["webhook-id"] == retry["webhook-id"]  # a receiver drops the retry as seen
    assert int(retry["webhook-timestamp"]) - int(first["webhook-timestamp"]) == 90
    assert first["webhook-signature"] != retry["webhook-signature"]
    assert hook.headers(message(8))["webhook-id"] == "msg_8"


@pytest.mark.parametrize(
    ("shift", "why"), [(timedelta(minutes=-6), "too old"), (timedelta(minutes=6), "too new")]
)
def test_the_library_refuses_a_delivery_out_of_its_time(shift: timedelta, why: str) -> None:
    at = datetime.now(UTC) + shift
    headers = Webhook("http://app/hook", WHSEC, clock=lambda: at).headers(message())
    with pytest.raises(WebhookVerificationError, match=why):
        StandardWebhook(WHSEC).verify(BODY, headers)


def test_a_changed_body_or_another_secret_does_not_verify() -> None:
    headers = Webhook("http://app/hook", WHSEC, clock=lambda: datetime.now(UTC)).headers(message())
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        StandardWebhook(WHSEC).verify(BODY.replace("FINALIZED", "TERMINATED"), headers)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        StandardWebhook(secret_key("another-secret-0123456789")).verify(BODY, headers)


def test_a_whsec_secret_that_is_not_base64_is_refused_in_settings() -> None:
    with pytest.raises(ValidationError, match="whsec_ secret must be base64"):
        ConnectorSettings(
            participant_id="did:web:127.0.0.1%3A8181:bank",
            key_passphrase="a passphrase long enough",  # type: ignore[arg-type]
            webhook_url="http://app/hook",
            webhook_secret="whsec_!!!!!!!!!!!!!!!!",  # type: ignore[arg-type]
        )
