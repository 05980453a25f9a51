"""The settings every participant service shares: the key-wrapping cost defaults to OWASP's."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from broker.settings import BrokerSettings
from connector.settings import ConnectorSettings
from identity.keys import OWASP_SCRYPT, ScryptCost
from tests.participants import ADMIN_KEY, PASSPHRASE


def test_keys_are_wrapped_at_owasp_cost_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONNECTOR_KEY_SCRYPT_LOG2_N", raising=False)
    monkeypatch.delenv("BROKER_KEY_SCRYPT_LOG2_N", raising=False)
    connector = ConnectorSettings(
        participant_id="did:web:bank.test",
        key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
    )
    broker = BrokerSettings(
        authority_id="did:web:authority.test",
        key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
        admin_api_key=ADMIN_KEY,  # type: ignore[arg-type]
    )
    # OWASP Password Storage Cheat Sheet: scrypt "N=2^17 (128 MiB), r=8 (1024 bytes), p=1"
    assert connector.key_cost == broker.key_cost == OWASP_SCRYPT == ScryptCost(17, 8, 1)


@pytest.mark.parametrize("log2_n", [14, 21])
def test_a_key_wrapping_cost_out_of_bounds_is_refused(log2_n: int) -> None:
    with pytest.raises(ValidationError, match="key_scrypt_log2_n"):
        ConnectorSettings(
            participant_id="did:web:bank.test",
            key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
            key_scrypt_log2_n=log2_n,
        )
