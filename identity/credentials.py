"""Verifiable credentials of the data space, VC Data Model 1.1 as JWT (DCP profile
``vc11-sl2021/jwt``): issue, and verify each credential on its own.

Verification checks, in order: size and shape; the ``kid`` belongs to ``iss``; the type is one
of ours and its issuer is trusted for it (as claimed, before anything is fetched); the key is an
``assertionMethod`` of the issuer's DID document; the signature; the JWT and ``vc`` claims agree;
the type and trust again, on the verified claims; not yet valid / expired; the subject is who we
expect; the organisation claims are well formed; not revoked (StatusList2021).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Protocol

from identity.errors import IdentityError, Reason
from identity.jwt_sign import key_id_of, sign, unverified, verify
from identity.keys import PrivateKey
from identity.resolver import DIDResolver
from identity.status import StatusEntry
from identity.validity import LEEWAY_S, numeric_date, required_date
from policy.operands import Grade, check_region_code

VC_CONTEXT: Final = "https://www.w3.org/2018/credentials/v1"
VC_TYP: Final = "vc+jwt"

_CREDIT_CHARS: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_CREDIT_VALUES: Final = {c: i for i, c in enumerate(_CREDIT_CHARS)}
_CREDIT_SET: Final = frozenset(_CREDIT_CHARS)


class CredentialType(StrEnum):
    MEMBERSHIP = "MembershipCredential"
    PUBLIC_DATA_HOLDER = "PublicDataHolderCredential"
    FINANCIAL_INSTITUTION = "FinancialInstitutionCredential"
    REGULATOR = "RegulatorCredential"

    @property
    def role(self) -> str | None:
        """The role this credential gives in policies (``kexin:role``); membership is no role."""
        return None if self is CredentialType.MEMBERSHIP else self.value.removesuffix("Credential")


def check_credit_code(code: str) -> str:
    """A unified social credit code (统一社会信用代码), checked by its GB 32100-2015 check
    character."""
    if len(code) != 18 or not _CREDIT_SET.issuperset(code):
        raise ValueError(f"{code!r} is not an 18-character unified social credit code")
    # a table and map() rather than str.index in a generator: matching checks 10^6 codes
    total = sum(map(operator.mul, map(_CREDIT_VALUES.__getitem__, code), _CREDIT_WEIGHTS))
    expected = _CREDIT_CHARS[(31 - total % 31) % 31]
    if code[17] != expected:
        raise ValueError(f"{code!r}: check character should be {expected}")
    return code


@dataclass(frozen=True)
class Organisation:
    name: str
    credit_code: str
    region: str
    data_grade: Grade

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 200:
            raise ValueError("an organisation name is 1 to 200 characters")
        check_credit_code(self.credit_code)
        check_region_code(self.region)

    def to_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "creditCode": self.credit_code,
            "region": self.region,
            "dataGrade": self.data_grade.value,
        }

    @classmethod
    def from_json(cls, node: Mapping[str, Any]) -> Organisation:
        try:
            return cls(
                name=str(node["name"]),
                credit_code=str(node["creditCode"]),
                region=str(node["region"]),
                data_grade=Grade(node["dataGrade"]),
            )
        except (KeyError, ValueError) as error:
            raise IdentityError(
                Reason.INVALID_CREDENTIAL, f"organisation claims: {error}"
            ) from None


@dataclass(frozen=True)
class VerifiedCredential:
    id: str
    type: CredentialType
    issuer: str
    subject: str
    organisation: Organisation
    expires_at: datetime
    status: StatusEntry | None
    token: str


class TrustedIssuers:
    """Which issuers are trusted for which credential type; anyone else is refused."""

    def __init__(self, trusted: Mapping[CredentialType, frozenset[str]]) -> None:
        self._trusted = dict(trusted)

    def check(self, credential_type: CredentialType, issuer: str) -> None:
        if issuer not in self._trusted.get(credential_type, frozenset()):
            raise IdentityError(
                Reason.UNTRUSTED_ISSUER, f"{issuer} is not trusted to issue {credential_type.value}"
            )

    def to_json(self) -> dict[str, list[str]]:
        return {t.value: sorted(issuers) for t, issuers in self._trusted.items()}


class RevocationCheck(Protocol):
    async def is_revoked(self, entry: StatusEntry, issuer: str) -> bool: ...


def issue_credential(
    *,
    issuer: str,
    key: PrivateKey,
    key_id: str,
    credential_id: str,
    credential_type: CredentialType,
    subject: str,
    organisation: Organisation,
    issued_at: datetime,
    expires_at: datetime,
    status: StatusEntry | None,
) -> str:
    vc: dict[str, Any] = {
        "@context": [VC_CONTEXT],
        "id": credential_id,
        "type": ["VerifiableCredential", credential_type.value],
        "issuer": issuer,
        "issuanceDate": issued_at.astimezone(UTC).isoformat(),
        "expirationDate": expires_at.astimezone(UTC).isoformat(),
        "credentialSubject": {"id": subject, **organisation.to_json()},
    }
    if status is not None:
        vc["credentialStatus"] = status.to_json()
    claims = {
        "iss": issuer,
        "sub": subject,
        "jti": credential_id,
        "iat": int(issued_at.timestamp()),
        "nbf": int(issued_at.timestamp()),
        "exp": int(expires_at.timestamp()),
        "vc": vc,
    }
    return sign(claims, key, key_id, VC_TYP)


def _type_of(types: object) -> CredentialType:
    if not isinstance(types, list) or "VerifiableCredential" not in types:
        raise IdentityError(Reason.INVALID_CREDENTIAL, "vc.type must list VerifiableCredential")
    ours = [t for t in types if t in CredentialType.__members__.values()]
    if len(ours) != 1 or len(types) != 2:
        raise IdentityError(
            Reason.INVALID_CREDENTIAL, f"not a credential type of this data space: {types}"
        )
    return CredentialType(ours[0])


async def verify_credential(
    token: str,
    *,
    resolver: DIDResolver,
    trusted: TrustedIssuers,
    revocation: RevocationCheck,
    now: datetime,
    expected_subject: str | None,
) -> VerifiedCredential:
    header, claims = unverified(token)
    issuer = claims.get("iss")
    if not isinstance(issuer, str):
        raise IdentityError(Reason.INVALID_CREDENTIAL, "credential without iss")
    key_id = key_id_of(header, issuer)
    if key_id is None:
        raise IdentityError(Reason.INVALID_CREDENTIAL, "credential without kid")
    claimed = claims.get("vc")
    # Before anything is fetched: the type as claimed is ours and its issuer trusted for it (the
    # same claims are checked again once the signature is), so that a presentation of many
    # credentials from untrusted issuers costs no DID resolution.
    trusted.check(_type_of(claimed.get("type") if isinstance(claimed, dict) else None), issuer)
    document = await resolver.resolve(issuer)
    try:
        verified = verify(token, document, key_id, "assertionMethod")
    except IdentityError as error:
        if error.reason is Reason.FORGED_SIGNATURE:
            raise IdentityError(
                Reason.INVALID_CREDENTIAL, f"credential signature: {error.message}"
            ) from None
        raise
    vc = verified.get("vc")
    if not isinstance(vc, dict) or not isinstance(vc.get("credentialSubject"), dict):
        raise IdentityError(Reason.INVALID_CREDENTIAL, "credential without vc.credentialSubject")
    subject = verified.get("sub")
    if vc.get("issuer") != issuer or vc["credentialSubject"].get("id") != subject:
        raise IdentityError(Reason.INVALID_CREDENTIAL, "vc and JWT claims disagree")
    credential_type = _type_of(vc.get("type"))
    trusted.check(credential_type, issuer)
    not_before = required_date(verified, "nbf", now, Reason.INVALID_CREDENTIAL)
    expires = required_date(verified, "exp", now, Reason.INVALID_CREDENTIAL)
    issued = numeric_date(verified, "iat", now, Reason.INVALID_CREDENTIAL)
    if now.timestamp() >= expires + LEEWAY_S:
        raise IdentityError(
            Reason.EXPIRED_CREDENTIAL, f"{credential_type.value} of {subject} expired"
        )
    if now.timestamp() + LEEWAY_S < not_before:
        raise IdentityError(Reason.INVALID_CREDENTIAL, "credential not yet valid")
    if issued is not None and now.timestamp() + LEEWAY_S < issued:
        raise IdentityError(Reason.INVALID_CREDENTIAL, "credential issued in the future")
    if expected_subject is not None and subject != expected_subject:
        raise IdentityError(
            Reason.SUBJECT_MISMATCH, f"credential is about {subject}, not {expected_subject}"
        )
    organisation = Organisation.from_json(vc["credentialSubject"])
    status = StatusEntry.from_json(vc["credentialStatus"]) if "credentialStatus" in vc else None
    if status is not None and await revocation.is_revoked(status, issuer):
        raise IdentityError(
            Reason.REVOKED_CREDENTIAL, f"{credential_type.value} of {subject} is revoked"
        )
    credential_id = verified.get("jti", vc.get("id"))
    return VerifiedCredential(
        id=str(credential_id),
        type=credential_type,
        issuer=issuer,
        subject=str(subject),
        organisation=organisation,
        expires_at=datetime.fromtimestamp(expires, UTC),  # within 100 years: representable
        status=status,
        token=token,
    )
