"""The identity layer's one error type. ``code`` is stable and machine-readable; services turn
it into a typed HTTP 4xx body. Everything that fails here fails closed."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    MALFORMED_DID = "malformed_did"
    UNRESOLVABLE_DID = "unresolvable_did"
    MALFORMED_DOCUMENT = "malformed_document"
    MALFORMED_TOKEN = "malformed_token"
    OVERSIZED_TOKEN = "oversized_token"
    FORGED_SIGNATURE = "forged_signature"
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_SUBJECT = "wrong_subject"
    REPLAYED_TOKEN = "replayed_token"
    EXPIRED_TOKEN = "expired_token"
    FOREIGN_KEY = "foreign_key"
    KEY_NOT_AUTHORIZED = "key_not_authorized"
    UNTRUSTED_ISSUER = "untrusted_issuer"
    EXPIRED_CREDENTIAL = "expired_credential"
    REVOKED_CREDENTIAL = "revoked_credential"
    INVALID_CREDENTIAL = "invalid_credential"
    SUBJECT_MISMATCH = "subject_mismatch"
    MISSING_CREDENTIAL = "missing_credential"
    STATUS_UNAVAILABLE = "status_unavailable"
    ACCESS_DENIED = "access_denied"


class IdentityError(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.message}"


_FORBIDDEN = frozenset(
    {
        Reason.ACCESS_DENIED,
        Reason.UNTRUSTED_ISSUER,
        Reason.EXPIRED_CREDENTIAL,
        Reason.REVOKED_CREDENTIAL,
        Reason.INVALID_CREDENTIAL,
        Reason.SUBJECT_MISMATCH,
        Reason.MISSING_CREDENTIAL,
    }
)


def http_status(reason: Reason) -> int:
    """401 when the caller's identity is not established, 403 when it is but does not qualify."""
    return 403 if reason in _FORBIDDEN else 401
