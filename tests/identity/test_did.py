from __future__ import annotations

import pytest

from identity.did import MAX_DID_LENGTH, DIDSyntaxError, check_did


@pytest.mark.parametrize(
    "did",
    [
        "did:web:example.com",
        "did:web:127.0.0.1%3A8101:bank",
        "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
        "did:jwk:eyJrdHkiOiJPS1AifQ",
    ],
)
def test_valid_dids(did: str) -> None:
    assert check_did(did) == did


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("web:example.com", id="no-scheme"),
        pytest.param("did:Web:example.com", id="uppercase-method"),
        pytest.param("did:web:", id="empty-id"),
        pytest.param("did:web:exa mple", id="space"),
        pytest.param("did:web:a%zz", id="bad-percent"),
        pytest.param("did:web:" + "a" * MAX_DID_LENGTH, id="too-long"),
    ],
)
def test_invalid_dids_are_refused(value: str) -> None:
    with pytest.raises(DIDSyntaxError):
        check_did(value)
