"""Verifiable presentations (DCP "Verifiable Presentation Protocol", VP as JWT).

The holder answers a ``PresentationQueryMessage`` whose scopes name credential types
(``org.eclipse.dspace.dcp.vc.type:MembershipCredential``) with a VP JWT signed by one of its
``authentication`` keys, addressed (``aud``) to the verifier. The verifier checks the VP's
signature, audience and validity claims (``exp``, ``nbf``, ``iat``, with a 30 s leeway for clock
skew), **and then each credential on its own** (signature, trusted issuer, validity period,
revocation, and that its subject is the holder who signed the VP).

A credential that fails its own checks (forged, untrusted, expired, revoked, or one whose status
cannot be read) is left out of the result and reported with its reason: it counts as not held,
and only what needed it fails. What binds the presentation to its holder fails it whole: its
signature, audience, validity claims, its ``holder``, its shape, and any credential whose
subject is not the holder who signed it (someone else's credential, presented as one's own).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from identity.credentials import (
    VC_CONTEXT,
    CredentialType,
    RevocationCheck,
    TrustedIssuers,
    VerifiedCredential,
    verify_credential,
)
from identity.errors import IdentityError, Reason
from identity.jwt_sign import check_typ, key_id_of, self_issued_claims, sign, unverified, verify
from identity.keys import PrivateKey
from identity.resolver import DIDResolver
from identity.validity import LEEWAY_S, instant, numeric_date, required_date

TYPE_SCOPE: Final = "org.eclipse.dspace.dcp.vc.type:"
VP_TYP: Final = "JWT"
VP_TYPS: Final = frozenset({"jwt", "vp+jwt"})
"""VC Data Model 1.1, 6.3.1 (the JWT proof format of DCP's ``vc11-sl2021/jwt`` profile): "typ,
if present, MUST be set to JWT". ``vp+jwt`` is what Kexin holders issued before, still accepted
from them; any other ``typ`` (an access token, a data-plane token) is refused."""
MAX_VP_BYTES: Final = 256 * 1024
MAX_CREDENTIALS: Final = 32
DCP_CONTEXT: Final = "https://w3id.org/dspace-dcp/v1.0/dcp.jsonld"


def scope_for(credential_type: CredentialType) -> str:
    return TYPE_SCOPE + credential_type.value


EVERY_SCOPE: Final = tuple(scope_for(kind) for kind in CredentialType)
"""Every credential type we understand: what a verifier asks for, and lets the peer read."""


def types_in_scopes(scopes: Iterable[str]) -> frozenset[CredentialType]:
    """The credential types that DCP scopes ask for; an unknown scope is an error."""
    found = set()
    for scope in scopes:
        name = scope.removeprefix(TYPE_SCOPE)
        if not scope.startswith(TYPE_SCOPE) or name not in CredentialType.__members__.values():
            raise IdentityError(Reason.ACCESS_DENIED, f"unsupported scope {scope!r}")
        found.add(CredentialType(name))
    return frozenset(found)


def issue_presentation(
    *,
    holder: str,
    key: PrivateKey,
    key_id: str,
    credentials: Sequence[str],
    audience: str,
    now: datetime,
    lifetime: timedelta = timedelta(minutes=5),
) -> str:
    claims = self_issued_claims(holder, audience, now, lifetime)
    claims["vp"] = {
        "@context": [VC_CONTEXT],
        "type": ["VerifiablePresentation"],
        "holder": holder,
        "verifiableCredential": list(credentials),
    }
    return sign(claims, key, key_id, VP_TYP)


@dataclass(frozen=True)
class RefusedCredential:
    """A presented credential that did not verify, as it claims to be (its claims unverified:
    for reports and logs only), and why it was refused."""

    id: str | None
    type: str | None
    issuer: str | None
    reason: Reason
    message: str

    @classmethod
    def of(cls, raw: str, error: IdentityError) -> RefusedCredential:
        try:
            _, claims = unverified(raw)
        except IdentityError:
            claims = {}
        vc = claims.get("vc")
        types = vc.get("type") if isinstance(vc, dict) else None
        ours = (
            [t for t in types if t in CredentialType.__members__.values()]
            if isinstance(types, list)
            else []
        )
        return cls(
            id=_text(claims.get("jti")),
            type=ours[0] if len(ours) == 1 else None,
            issuer=_text(claims.get("iss")),
            reason=error.reason,
            message=error.message,
        )


def _text(value: object) -> str | None:
    return value[:500] if isinstance(value, str) else None


@dataclass(frozen=True)
class VerifiedPresentation:
    holder: str
    credentials: tuple[VerifiedCredential, ...]
    """Only the credentials that verified, each on its own."""
    expires_at: datetime
    refused: tuple[RefusedCredential, ...] = ()
    """The presented credentials that did not verify, with their reasons."""

    def types(self) -> frozenset[CredentialType]:
        return frozenset(c.type for c in self.credentials)


def _check_validity(claims: dict[str, Any], now: datetime) -> None:
    """The presentation's own validity claims, like every JWT's (RFC 7519, 4.1.4: "The 'exp'
    (expiration time) claim identifies the expiration time on or after which the JWT MUST NOT be
    accepted for processing"; 4.1.5: "The 'nbf' (not before) claim identifies the time before
    which the JWT MUST NOT be accepted for processing"), with LEEWAY_S for clock skew (RFC 7519:
    "Implementers MAY provide for some small leeway"). An ``iat`` after now is refused as well:
    nothing is issued in the future. Each credential's are checked by verify_credential."""
    timestamp = now.timestamp()
    expires = required_date(claims, "exp", now, Reason.MALFORMED_TOKEN)
    not_before = numeric_date(claims, "nbf", now, Reason.MALFORMED_TOKEN)
    issued = numeric_date(claims, "iat", now, Reason.MALFORMED_TOKEN)
    if timestamp >= expires + LEEWAY_S:
        raise IdentityError(Reason.EXPIRED_TOKEN, "the presentation has expired")
    if not_before is not None and timestamp + LEEWAY_S < not_before:
        raise IdentityError(Reason.EXPIRED_TOKEN, "the presentation is not valid yet")
    if issued is not None and timestamp + LEEWAY_S < issued:
        raise IdentityError(Reason.EXPIRED_TOKEN, "the presentation is issued in the future")


async def verify_presentation(
    token: str,
    *,
    audience: str,
    expected_holder: str,
    resolver: DIDResolver,
    trusted: TrustedIssuers,
    revocation: RevocationCheck,
    now: datetime,
) -> VerifiedPresentation:
    header, claims = unverified(token, MAX_VP_BYTES)
    check_typ(header, VP_TYPS, "a verifiable presentation")
    holder = claims.get("iss")
    if holder != expected_holder:
        raise IdentityError(
            Reason.SUBJECT_MISMATCH,
            f"the presentation is signed by {holder!r}, not {expected_holder}",
        )
    key_id = key_id_of(header, expected_holder)
    if key_id is None:
        raise IdentityError(Reason.MALFORMED_TOKEN, "presentation without kid")
    document = await resolver.resolve(expected_holder)
    verified = verify(token, document, key_id, "authentication", audience=audience)
    _check_validity(verified, now)
    expires = required_date(verified, "exp", now, Reason.MALFORMED_TOKEN)
    vp: Any = verified.get("vp")
    if not isinstance(vp, dict) or vp.get("holder", expected_holder) != expected_holder:
        raise IdentityError(Reason.MALFORMED_TOKEN, "vp claim missing or about another holder")
    raw_credentials = vp.get("verifiableCredential", [])
    if not isinstance(raw_credentials, list) or len(raw_credentials) > MAX_CREDENTIALS:
        raise IdentityError(Reason.MALFORMED_TOKEN, f"at most {MAX_CREDENTIALS} credentials")
    if not all(isinstance(raw, str) for raw in raw_credentials):
        raise IdentityError(Reason.INVALID_CREDENTIAL, "only JWT credentials are accepted here")
    for raw in raw_credentials:  # holder binding first, before any credential costs a fetch
        _check_bound(raw, expected_holder)
    credentials, refused = [], []
    for raw in raw_credentials:
        try:
            credentials.append(
                await verify_credential(
                    raw,
                    resolver=resolver,
                    trusted=trusted,
                    revocation=revocation,
                    now=now,
                    expected_subject=expected_holder,
                )
            )
        except IdentityError as error:
            if error.reason is Reason.SUBJECT_MISMATCH:
                raise
            refused.append(RefusedCredential.of(raw, error))
    earliest = min([expires, *(c.expires_at.timestamp() for c in credentials)])
    return VerifiedPresentation(
        expected_holder, tuple(credentials), instant(earliest, now), tuple(refused)
    )


def _check_bound(raw: str, holder: str) -> None:
    """Every credential of this data space is issued to the participant that holds it: one
    whose subject is someone other than the presentation's signer is someone else's credential,
    and the whole presentation fails. Read before any signature is checked (the claim fails the
    presentation whether it is forged or not) and before any credential costs a fetch. A
    credential too malformed to read is judged, and refused, on its own."""
    try:
        _, claims = unverified(raw)
    except IdentityError:
        return
    vc = claims.get("vc")
    subject = vc.get("credentialSubject") if isinstance(vc, dict) else None
    for claimed in (claims.get("sub"), subject.get("id") if isinstance(subject, dict) else None):
        if claimed is not None and claimed != holder:
            raise IdentityError(
                Reason.SUBJECT_MISMATCH,
                f"a presented credential is about {claimed!r}, not {holder}",
            )
