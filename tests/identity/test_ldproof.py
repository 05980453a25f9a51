"""LD-proof credentials through didkit: the proof is didkit's, every other check is ours, and
didkit never runs in this process (its worker exits cleanly, every time)."""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from identity.credentials import CredentialType, TrustedIssuers
from identity.documents import did_key_of
from identity.errors import IdentityError, Reason
from identity.ldproof import (
    issue_ld_credential,
    issue_ld_presentation,
    proof_errors,
    verify_ld_credential,
    verify_ld_presentation,
)
from identity.status import StatusEntry
from tests.identity.world import NOW

ISSUER_KEY = Ed25519PrivateKey.generate()
ISSUER = did_key_of(ISSUER_KEY.public_key())
HOLDER_KEY = Ed25519PrivateKey.generate()
HOLDER = did_key_of(HOLDER_KEY.public_key())


class Revocations:
    def __init__(self, revoked: set[int] | None = None) -> None:
        self.revoked = revoked or set()

    async def is_revoked(self, entry: StatusEntry, issuer: str) -> bool:
        return entry.index in self.revoked


def vm(did: str) -> str:
    return f"{did}#{did.removeprefix('did:key:')}"


def credential(expires: str = "2027-11-24T00:00:00Z", subject: str = HOLDER) -> dict[str, Any]:
    return {
        "@context": ["https://www.w3.org/2018/credentials/v1"],
        "id": "urn:uuid:ld-1",
        "type": ["VerifiableCredential", "MembershipCredential"],
        "issuer": ISSUER,
        "issuanceDate": "2026-01-01T00:00:00Z",
        "expirationDate": expires,
        "credentialSubject": {
            "id": subject,
            "name": "广州示例银行股份有限公司",
            "creditCode": "91440101MA59XKQ72B",
            "region": "440106",
            "dataGrade": "general",
        },
        "credentialStatus": StatusEntry("http://authority.test/status/1", 7).to_json(),
    }


@pytest.fixture(scope="module")
def signed() -> dict[str, Any]:
    return issue_ld_credential(credential(), ISSUER_KEY, vm(ISSUER))


def verify(
    document: dict[str, Any], revoked: set[int] | None = None, issuers: tuple[str, ...] = (ISSUER,)
) -> Any:
    trusted = TrustedIssuers({kind: frozenset(issuers) for kind in CredentialType})
    return asyncio.run(
        verify_ld_credential(
            document,
            trusted=trusted,
            revocation=Revocations(revoked),
            now=NOW,
            expected_subject=HOLDER,
        )
    )


def reason_of(document: dict[str, Any], **options: Any) -> Reason:
    with pytest.raises(IdentityError) as raised:
        verify(document, **options)
    return raised.value.reason


def test_an_ed25519_signature_2020_credential_verifies(signed: dict[str, Any]) -> None:
    assert signed["proof"]["type"] == "Ed25519Signature2020"
    verified = verify(signed)
    assert (verified.type, verified.issuer, verified.subject) == (
        CredentialType.MEMBERSHIP,
        ISSUER,
        HOLDER,
    )


def test_didkit_accepts_an_expired_credential_and_we_do_not() -> None:
    expired = issue_ld_credential(
        credential(expires="2026-01-02T00:00:00Z"), ISSUER_KEY, vm(ISSUER)
    )
    assert proof_errors(expired) == []  # didkit: fine
    assert reason_of(expired) is Reason.EXPIRED_CREDENTIAL


def test_a_tampered_credential_fails_its_proof(signed: dict[str, Any]) -> None:
    tampered = copy.deepcopy(signed)
    tampered["credentialSubject"]["dataGrade"] = "core"
    assert reason_of(tampered) is Reason.INVALID_CREDENTIAL


def test_revoked_untrusted_and_foreign_subjects_are_ours_to_refuse(signed: dict[str, Any]) -> None:
    assert reason_of(signed, revoked={7}) is Reason.REVOKED_CREDENTIAL
    assert reason_of(signed, issuers=("did:key:z6MkSomeoneElse",)) is Reason.UNTRUSTED_ISSUER
    other = issue_ld_credential(credential(subject="did:web:bureau.test"), ISSUER_KEY, vm(ISSUER))
    assert reason_of(other) is Reason.SUBJECT_MISMATCH


def test_did_web_issuers_are_refused_rather_than_half_checked(signed: dict[str, Any]) -> None:
    web = {**signed, "issuer": "did:web:authority.test"}
    assert reason_of(web, issuers=("did:web:authority.test",)) is Reason.UNTRUSTED_ISSUER


def test_didkit_accepts_a_presentation_with_a_tampered_credential_and_we_do_not(
    signed: dict[str, Any],
) -> None:
    tampered = copy.deepcopy(signed)
    tampered["credentialSubject"]["dataGrade"] = "core"
    presentation = issue_ld_presentation(
        {
            "@context": ["https://www.w3.org/2018/credentials/v1"],
            "type": ["VerifiablePresentation"],
            "holder": HOLDER,
            "verifiableCredential": [tampered],
        },
        HOLDER_KEY,
        vm(HOLDER),
    )
    assert proof_errors(presentation, presentation=True) == []  # didkit: fine
    trusted = TrustedIssuers({kind: frozenset({ISSUER}) for kind in CredentialType})
    with pytest.raises(IdentityError) as raised:
        asyncio.run(
            verify_ld_presentation(presentation, trusted=trusted, revocation=Revocations(), now=NOW)
        )
    assert raised.value.reason is Reason.INVALID_CREDENTIAL


def test_an_honest_presentation_verifies(signed: dict[str, Any]) -> None:
    presentation = issue_ld_presentation(
        {
            "@context": ["https://www.w3.org/2018/credentials/v1"],
            "type": ["VerifiablePresentation"],
            "holder": HOLDER,
            "verifiableCredential": [signed],
        },
        HOLDER_KEY,
        vm(HOLDER),
    )
    trusted = TrustedIssuers({kind: frozenset({ISSUER}) for kind in CredentialType})
    (verified,) = asyncio.run(
        verify_ld_presentation(presentation, trusted=trusted, revocation=Revocations(), now=NOW)
    )
    assert verified.subject == HOLDER


def test_the_worker_exits_cleanly_every_time(signed: dict[str, Any]) -> None:
    for _ in range(3):
        completed = subprocess.run(
            [sys.executable, "-m", "identity.ldproof"],
            input=json.dumps({"op": "verify", "document": signed}).encode(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        assert json.loads(completed.stdout) == {"errors": []}


def test_didkit_is_never_loaded_in_this_process() -> None:
    assert "didkit" not in sys.modules


def test_expiry_uses_our_clock(signed: dict[str, Any]) -> None:
    trusted = TrustedIssuers({kind: frozenset({ISSUER}) for kind in CredentialType})
    later = NOW + timedelta(days=3650)
    with pytest.raises(IdentityError):
        asyncio.run(
            verify_ld_credential(
                signed,
                trusted=trusted,
                revocation=Revocations(),
                now=later,
                expected_subject=HOLDER,
                proof_checked=True,
            )
        )
