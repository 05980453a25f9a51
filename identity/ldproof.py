"""LD-proof credentials (Ed25519Signature2020) through didkit, for interoperability.

This is the one module that uses ``didkit`` (0.3.3), and it imports it only inside a short-lived
child process (``python -m identity.ldproof``) that reads one JSON request on stdin, writes one
JSON answer on stdout and leaves with ``os._exit(0)``: didkit's async runtime crashes the
interpreter at exit, and this way no process of ours (the service, pytest) ever finalises it.

didkit checks the proof only. It accepts an expired credential and, inside a presentation, a
tampered credential; so expiry, the trusted issuer, the subject, revocation and each credential
of a presentation are checked here, on our side. didkit resolves DIDs itself and this machine
has no network, so LD-proof issuers must use ``did:key`` (resolved offline); anything else is
refused rather than half-checked.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from identity.credentials import (
    CredentialType,
    Organisation,
    RevocationCheck,
    TrustedIssuers,
)
from identity.errors import IdentityError, Reason
from identity.keys import public_jwk
from identity.status import StatusEntry
from identity.validity import LEEWAY_S

ED25519_2020_CONTEXT: Final = "https://w3id.org/security/suites/ed25519-2020/v1"
STATUS_LIST_CONTEXT: Final = "https://w3id.org/vc/status-list/2021/v1"
CLAIMS_CONTEXT: Final[dict[str, object]] = {
    # Inline, so that nothing is fetched: JSON-LD signing needs every term defined.
    "@version": 1.1,
    "kexin": "urn:kexin:vocab#",
    **{kind.value: f"kexin:{kind.value}" for kind in CredentialType},
    "name": "kexin:name",
    "creditCode": "kexin:creditCode",
    "region": "kexin:region",
    "dataGrade": "kexin:dataGrade",
}
WORKER_TIMEOUT_S: Final = 60.0
MAX_DOCUMENT_BYTES: Final = 256 * 1024


class DidkitError(RuntimeError):
    """The didkit worker failed to answer (not a verdict about a credential)."""


def _call_worker(request: Mapping[str, Any]) -> dict[str, Any]:
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "identity.ldproof"],
            input=json.dumps(request).encode(),
            capture_output=True,
            timeout=WORKER_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DidkitError("the didkit worker timed out") from None
    try:
        answer: dict[str, Any] = json.loads(completed.stdout)
    except ValueError:
        raise DidkitError(
            f"the didkit worker gave no answer (exit {completed.returncode}): "
            f"{completed.stderr.decode(errors='replace')[-500:]}"
        ) from None
    if "error" in answer:
        raise DidkitError(str(answer["error"]))
    return answer


def _private_jwk(key: Ed25519PrivateKey) -> dict[str, str]:
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    import base64

    return {**public_jwk(key), "d": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}


def issue_ld_credential(
    credential: Mapping[str, Any], key: Ed25519PrivateKey, verification_method: str
) -> dict[str, Any]:
    """Sign ``credential`` with an Ed25519Signature2020 proof."""
    document = dict(credential)
    contexts = list(document.get("@context", []))
    needed: list[object] = [CLAIMS_CONTEXT, ED25519_2020_CONTEXT]
    if "credentialStatus" in document:
        needed.insert(0, STATUS_LIST_CONTEXT)
    document["@context"] = [*contexts, *(c for c in needed if c not in contexts)]
    answer = _call_worker(
        {
            "op": "issue",
            "credential": document,
            "jwk": _private_jwk(key),
            "verificationMethod": verification_method,
        }
    )
    signed: dict[str, Any] = answer["credential"]
    return signed


def issue_ld_presentation(
    presentation: Mapping[str, Any], key: Ed25519PrivateKey, verification_method: str
) -> dict[str, Any]:
    """Sign a presentation (proof purpose authentication) with the holder's key."""
    answer = _call_worker(
        {
            "op": "present",
            "presentation": dict(presentation),
            "jwk": _private_jwk(key),
            "verificationMethod": verification_method,
        }
    )
    signed: dict[str, Any] = answer["presentation"]
    return signed


def proof_errors(document: Mapping[str, Any], *, presentation: bool = False) -> list[str]:
    """didkit's verdict on the proof alone (an empty list: the signature holds)."""
    answer = _call_worker(
        {"op": "verify_presentation" if presentation else "verify", "document": document}
    )
    errors: list[str] = answer["errors"]
    return errors


@dataclass(frozen=True)
class VerifiedLdCredential:
    id: str | None
    type: CredentialType
    issuer: str
    subject: str
    organisation: Organisation
    expires_at: datetime


def _parse_time(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise IdentityError(Reason.INVALID_CREDENTIAL, f"{what} is required")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise IdentityError(Reason.INVALID_CREDENTIAL, f"{what} is not a date-time") from None
    if parsed.tzinfo is None:
        raise IdentityError(Reason.INVALID_CREDENTIAL, f"{what} has no time zone")
    return parsed


async def verify_ld_credential(
    credential: Mapping[str, Any],
    *,
    trusted: TrustedIssuers,
    revocation: RevocationCheck,
    now: datetime,
    expected_subject: str | None,
    proof_checked: bool = False,
) -> VerifiedLdCredential:
    """Verify an LD-proof credential on its own: proof (didkit), then our checks."""
    if len(json.dumps(credential)) > MAX_DOCUMENT_BYTES:
        raise IdentityError(Reason.OVERSIZED_TOKEN, "credential too large")
    issuer = credential.get("issuer")
    issuer = issuer.get("id") if isinstance(issuer, dict) else issuer
    if not isinstance(issuer, str) or not issuer.startswith("did:key:"):
        raise IdentityError(
            Reason.UNTRUSTED_ISSUER, "LD-proof credentials are accepted from did:key issuers only"
        )
    proof = credential.get("proof")
    if not isinstance(proof, dict) or proof.get("type") != "Ed25519Signature2020":
        raise IdentityError(Reason.INVALID_CREDENTIAL, "an Ed25519Signature2020 proof is required")
    if proof.get("proofPurpose") != "assertionMethod" or not str(
        proof.get("verificationMethod", "")
    ).startswith(issuer + "#"):
        raise IdentityError(Reason.FOREIGN_KEY, "the proof is not the issuer's assertion")
    if not proof_checked:
        errors = await asyncio.to_thread(proof_errors, credential)
        if errors:
            raise IdentityError(Reason.INVALID_CREDENTIAL, f"proof: {'; '.join(errors)}")
    types = credential.get("type")
    ours = (
        [t for t in types if t in CredentialType.__members__.values()]
        if isinstance(types, list)
        else []
    )
    if len(ours) != 1:
        raise IdentityError(
            Reason.INVALID_CREDENTIAL, f"not a credential type of this data space: {types}"
        )
    kind = CredentialType(ours[0])
    trusted.check(kind, issuer)
    expires_at = _parse_time(credential.get("expirationDate"), "expirationDate")
    if now.timestamp() >= expires_at.timestamp() + LEEWAY_S:
        raise IdentityError(Reason.EXPIRED_CREDENTIAL, f"{kind.value} expired")
    subject = credential.get("credentialSubject")
    if not isinstance(subject, dict) or not isinstance(subject.get("id"), str):
        raise IdentityError(Reason.INVALID_CREDENTIAL, "credentialSubject.id is required")
    if expected_subject is not None and subject["id"] != expected_subject:
        raise IdentityError(
            Reason.SUBJECT_MISMATCH, f"credential is about {subject['id']}, not {expected_subject}"
        )
    organisation = Organisation.from_json(subject)
    if "credentialStatus" in credential:
        entry = StatusEntry.from_json(credential["credentialStatus"])
        if await revocation.is_revoked(entry, issuer):
            raise IdentityError(Reason.REVOKED_CREDENTIAL, f"{kind.value} is revoked")
    identifier = credential.get("id")
    return VerifiedLdCredential(
        identifier if isinstance(identifier, str) else None,
        kind,
        issuer,
        subject["id"],
        organisation,
        expires_at,
    )


async def verify_ld_presentation(
    presentation: Mapping[str, Any],
    *,
    trusted: TrustedIssuers,
    revocation: RevocationCheck,
    now: datetime,
) -> tuple[VerifiedLdCredential, ...]:
    """The presentation's proof (didkit), then each credential on its own (didkit alone would
    accept a presentation whose inner credential was tampered with)."""
    holder = presentation.get("holder")
    if not isinstance(holder, str):
        raise IdentityError(Reason.MALFORMED_TOKEN, "presentation without holder")
    proof = presentation.get("proof")
    if not isinstance(proof, dict) or not str(proof.get("verificationMethod", "")).startswith(
        holder + "#"
    ):
        raise IdentityError(Reason.FOREIGN_KEY, "the presentation is not signed by its holder")
    errors = await asyncio.to_thread(proof_errors, presentation, presentation=True)
    if errors:
        raise IdentityError(Reason.FORGED_SIGNATURE, f"presentation proof: {'; '.join(errors)}")
    credentials = presentation.get("verifiableCredential", [])
    if isinstance(credentials, dict):
        credentials = [credentials]
    if not isinstance(credentials, list):
        raise IdentityError(Reason.MALFORMED_TOKEN, "verifiableCredential must be a list")
    return tuple(
        [
            await verify_ld_credential(
                c, trusted=trusted, revocation=revocation, now=now, expected_subject=holder
            )
            for c in credentials
            if isinstance(c, dict)
        ]
    )


# --- the child process ---------------------------------------------------------------------------


async def _serve(request: dict[str, Any]) -> dict[str, Any]:
    import didkit

    op = request.get("op")
    if op == "issue":
        options = {
            "proofPurpose": "assertionMethod",
            "verificationMethod": request["verificationMethod"],
            "type": "Ed25519Signature2020",
        }
        signed = await didkit.issue_credential(
            json.dumps(request["credential"]), json.dumps(options), json.dumps(request["jwk"])
        )
        return {"credential": json.loads(signed)}
    if op == "present":
        options = {
            "proofPurpose": "authentication",
            "verificationMethod": request["verificationMethod"],
        }
        signed = await didkit.issue_presentation(
            json.dumps(request["presentation"]), json.dumps(options), json.dumps(request["jwk"])
        )
        return {"presentation": json.loads(signed)}
    if op in ("verify", "verify_presentation"):
        document = json.dumps(request["document"])
        if op == "verify":
            verdict = await didkit.verify_credential(
                document, json.dumps({"proofPurpose": "assertionMethod"})
            )
        else:
            verdict = await didkit.verify_presentation(
                document, json.dumps({"proofPurpose": "authentication"})
            )
        return {"errors": json.loads(verdict).get("errors", [])}
    return {"error": f"unknown operation {op!r}"}


def _worker() -> None:
    try:
        answer = asyncio.run(_serve(json.loads(sys.stdin.buffer.read())))
    except Exception as error:  # report, whatever didkit raised
        answer = {"error": f"{type(error).__name__}: {error}"}
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter finalisation, where didkit's runtime crashes


if __name__ == "__main__":
    _worker()
