"""Credentials and presentations: each credential is verified on its own, inside a presentation
too (signature, trusted issuer, expiry, revocation, subject == holder)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest

from identity.credentials import (
    CredentialType,
    VerifiedCredential,
    check_credit_code,
    verify_credential,
)
from identity.errors import IdentityError, Reason
from identity.presentations import (
    VerifiedPresentation,
    issue_presentation,
    types_in_scopes,
    verify_presentation,
)
from tests.identity.world import AUTHORITY, BANK, BUREAU, NOW, ROGUE, World, run, trusted


@pytest.fixture
def world() -> World:
    world = World()
    for did in (AUTHORITY, BANK, BUREAU, ROGUE):
        world.add(did)
    return world


async def check(
    world: World, token: str, subject: str | None = BANK, *issuers: str
) -> VerifiedCredential:
    async with world.client() as client:
        resolver = world.resolver(client)
        return await verify_credential(
            token, resolver=resolver, trusted=trusted(*issuers), revocation=world.status(client, resolver),
            now=NOW, expected_subject=subject,
        )  # fmt: skip


def refused(world: World, token: str, reason: Reason, subject: str | None = BANK) -> None:
    with pytest.raises(IdentityError) as raised:
        run(check(world, token, subject))
    assert raised.value.reason is reason, raised.value


def tamper(token: str, change: Any) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    change(claims)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_a_valid_credential(world: World) -> None:
    token, entry = world.issue(BANK, CredentialType.FINANCIAL_INSTITUTION)
    verified = run(check(world, token))
    assert (verified.type, verified.issuer, verified.subject) == (
        CredentialType.FINANCIAL_INSTITUTION,
        AUTHORITY,
        BANK,
    )
    assert verified.organisation.credit_code == "91440101MA59XKQ72B"
    assert verified.status == entry


def test_credential_from_an_untrusted_issuer(world: World) -> None:
    token, _ = world.issue(BANK, issuer=ROGUE)
    refused(world, token, Reason.UNTRUSTED_ISSUER)


def test_trust_is_per_credential_type() -> None:
    from identity.credentials import TrustedIssuers

    issuers = TrustedIssuers({CredentialType.MEMBERSHIP: frozenset({AUTHORITY})})
    issuers.check(CredentialType.MEMBERSHIP, AUTHORITY)
    with pytest.raises(IdentityError, match="RegulatorCredential"):
        issuers.check(CredentialType.REGULATOR, AUTHORITY)


def test_expired_credential(world: World) -> None:
    token, _ = world.issue(BANK, expires_at=NOW - timedelta(minutes=5))
    refused(world, token, Reason.EXPIRED_CREDENTIAL)


def test_revoked_credential(world: World) -> None:
    token, entry = world.issue(BANK)
    world.revoke(entry)
    refused(world, token, Reason.REVOKED_CREDENTIAL)


def test_a_status_list_that_cannot_be_fetched_fails_closed(world: World) -> None:
    token, _ = world.issue(BANK)
    world.status_up = False
    refused(world, token, Reason.STATUS_UNAVAILABLE)


def test_tampered_credential(world: World) -> None:
    token, _ = world.issue(BANK)
    forged = tamper(token, lambda c: c["vc"]["credentialSubject"].update(dataGrade="core"))
    refused(world, forged, Reason.INVALID_CREDENTIAL)


def test_credential_about_someone_else(world: World) -> None:
    token, _ = world.issue(BUREAU)
    refused(world, token, Reason.SUBJECT_MISMATCH)


def test_credential_signed_with_a_key_the_issuer_does_not_list(world: World) -> None:
    token, _ = world.issue(BANK, issuer=ROGUE)
    forged = tamper(token, lambda c: c.update(iss=AUTHORITY))
    header = json.loads(base64.urlsafe_b64decode(forged.split(".")[0] + "=="))
    assert header["kid"].startswith(ROGUE)
    refused(world, forged, Reason.FOREIGN_KEY)


@pytest.mark.parametrize("code", ["91440300708461136T", "91110000802100433B", "91350100M000100Y43"])
def test_real_credit_codes_pass_the_gb_32100_check(code: str) -> None:
    assert check_credit_code(code) == code


@pytest.mark.parametrize(
    "code", ["91440300708461136U", "9144030070846113", "91440300708461136I", "914403007084611360"]
)
def test_bad_credit_codes(code: str) -> None:
    with pytest.raises(ValueError, match=r"credit code|check character"):
        check_credit_code(code)


# --- presentations -----------------------------------------------------------------------------


async def present(world: World, holder: str, credentials: list[str], audience: str = BUREAU) -> VerifiedPresentation:  # fmt: skip
    key = world.rings[holder].current
    token = issue_presentation(holder=holder, key=key.private_key, key_id=key.key_id, credentials=credentials, audience=audience, now=NOW)  # fmt: skip
    async with world.client() as client:
        resolver = world.resolver(client)
        return await verify_presentation(
            token, audience=BUREAU, expected_holder=holder, resolver=resolver, trusted=trusted(),
            revocation=world.status(client, resolver), now=NOW,
        )  # fmt: skip


def test_a_presentation_with_two_credentials(world: World) -> None:
    membership, _ = world.issue(BANK)
    licence, _ = world.issue(BANK, CredentialType.FINANCIAL_INSTITUTION)
    verified = run(present(world, BANK, [membership, licence]))
    assert verified.types() == {CredentialType.MEMBERSHIP, CredentialType.FINANCIAL_INSTITUTION}


def test_a_presentation_carrying_a_tampered_credential(world: World) -> None:
    membership, _ = world.issue(BANK)
    licence, _ = world.issue(BANK, CredentialType.MEMBERSHIP)
    forged = tamper(
        licence, lambda c: c["vc"].update(type=["VerifiableCredential", "RegulatorCredential"])
    )
    verified = run(present(world, BANK, [membership, forged]))
    assert verified.types() == {CredentialType.MEMBERSHIP}
    assert [c.id for c in verified.credentials] == ["urn:uuid:cred-0"]
    (refused,) = verified.refused
    assert (refused.id, refused.type, refused.issuer) == (
        "urn:uuid:cred-1",
        "RegulatorCredential",
        AUTHORITY,
    )
    assert refused.reason is Reason.INVALID_CREDENTIAL


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param("revoked", id="revoked"),
        pytest.param("expired", id="expired"),
        pytest.param("status-unreachable", id="status-unreachable"),
        pytest.param("untrusted", id="untrusted-issuer"),
    ],
)
def test_a_bad_credential_is_refused_on_its_own_and_the_others_count(
    world: World, spoil: str
) -> None:
    membership, _ = world.issue(BANK)
    if spoil == "expired":
        licence, _ = world.issue(
            BANK, CredentialType.FINANCIAL_INSTITUTION, expires_at=NOW - timedelta(hours=1)
        )
    elif spoil == "untrusted":
        licence, _ = world.issue(BANK, CredentialType.FINANCIAL_INSTITUTION, issuer=ROGUE)
    else:
        licence, entry = world.issue(BANK, CredentialType.FINANCIAL_INSTITUTION)
        world.revoke(entry)
    if spoil == "status-unreachable":
        # one list for both: the membership, unchecked, does not count either (fail closed)
        world.status_up = False
        verified = run(present(world, BANK, [membership, licence]))
        assert verified.credentials == ()
        assert {r.reason for r in verified.refused} == {Reason.STATUS_UNAVAILABLE}
        return
    verified = run(present(world, BANK, [membership, licence]))
    assert verified.types() == {CredentialType.MEMBERSHIP}
    (refused,) = verified.refused
    assert refused.type == "FinancialInstitutionCredential"
    assert (
        refused.reason
        is {
            "revoked": Reason.REVOKED_CREDENTIAL,
            "expired": Reason.EXPIRED_CREDENTIAL,
            "untrusted": Reason.UNTRUSTED_ISSUER,
        }[spoil]
    )


def test_a_presentation_whose_signer_is_not_the_credential_subject(world: World) -> None:
    bureau_membership, _ = world.issue(BUREAU)
    with pytest.raises(IdentityError) as raised:
        run(present(world, BANK, [bureau_membership]))
    assert raised.value.reason is Reason.SUBJECT_MISMATCH


@pytest.mark.parametrize(
    "expires_in",
    [pytest.param(timedelta(days=30), id="valid"), pytest.param(-timedelta(days=1), id="expired")],
)
def test_someone_elses_credential_fails_the_whole_presentation(
    world: World, expires_in: timedelta
) -> None:
    """Holder binding is the presentation's, not one credential's: its own valid membership
    does not save a presentation that also carries the bureau's credential, expired or not."""
    membership, _ = world.issue(BANK)
    stolen, _ = world.issue(BUREAU, CredentialType.PUBLIC_DATA_HOLDER, expires_at=NOW + expires_in)
    with pytest.raises(IdentityError) as raised:
        run(present(world, BANK, [membership, stolen]))
    assert raised.value.reason is Reason.SUBJECT_MISMATCH


def test_a_presentation_for_another_verifier(world: World) -> None:
    membership, _ = world.issue(BANK)
    with pytest.raises(IdentityError) as raised:
        run(present(world, BANK, [membership], audience="did:web:elsewhere.test"))
    assert raised.value.reason is Reason.WRONG_AUDIENCE


def test_a_presentation_with_only_a_revoked_credential_proves_nothing(world: World) -> None:
    membership, entry = world.issue(BANK)
    world.revoke(entry)
    verified = run(present(world, BANK, [membership]))
    assert verified.credentials == ()
    assert [(r.id, r.reason) for r in verified.refused] == [
        ("urn:uuid:cred-0", Reason.REVOKED_CREDENTIAL)
    ]


def test_old_keys_still_verify_what_they_signed_after_rotation(world: World) -> None:
    membership, _ = world.issue(BANK)  # signed with the authority's key-1
    world.rotate(AUTHORITY)
    assert run(check(world, membership)).issuer == AUTHORITY
    newer, _ = world.issue(BANK)
    assert world.rings[AUTHORITY].current.key_id.endswith("#key-2")
    assert run(check(world, newer)).issuer == AUTHORITY


def test_scopes() -> None:
    assert types_in_scopes(["org.eclipse.dspace.dcp.vc.type:MembershipCredential"]) == {
        CredentialType.MEMBERSHIP
    }
    with pytest.raises(IdentityError, match="unsupported scope"):
        types_in_scopes(["org.eclipse.dspace.dcp.vc.id:1234"])
