from __future__ import annotations

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from identity.keys import PublicKey
from identity.statements import StatementError, sign_statement, verify_statement

ISSUER = "did:web:bank"
ED_KEY = Ed25519PrivateKey.generate()
EC_KEY = generate_private_key(SECP256R1())
KEYS: dict[str, PublicKey] = {
    f"{ISSUER}#ed": ED_KEY.public_key(),
    f"{ISSUER}#ec": EC_KEY.public_key(),
    "did:web:other#ed": Ed25519PrivateKey.generate().public_key(),
}


def test_ed25519_and_p256_statements_verify() -> None:
    for key, kid in ((ED_KEY, f"{ISSUER}#ed"), (EC_KEY, f"{ISSUER}#ec")):
        statement = verify_statement(sign_statement({"x": 1}, ISSUER, key, kid), KEYS.__getitem__)
        assert statement.issuer == ISSUER
        assert statement.claims["x"] == 1


def test_a_key_id_of_another_did_is_refused_when_signing_and_verifying() -> None:
    with pytest.raises(ValueError, match="fragment of the issuer"):
        sign_statement({}, ISSUER, ED_KEY, "did:web:other#ed")
    token = jwt.encode({"iss": ISSUER}, ED_KEY, algorithm="EdDSA", headers={"kid": "did:web:other#ed", "typ": "kexin-statement+jwt"})  # fmt: skip
    with pytest.raises(StatementError, match="does not belong"):
        verify_statement(token, KEYS.__getitem__)


def test_a_signature_by_another_key_of_the_issuer_is_refused() -> None:
    token = jwt.encode({"iss": ISSUER}, ED_KEY, algorithm="EdDSA", headers={"kid": f"{ISSUER}#ec", "typ": "kexin-statement+jwt"})  # fmt: skip
    with pytest.raises(StatementError, match="forged_signature"):
        verify_statement(token, KEYS.__getitem__)


def test_unknown_keys_and_tampering_are_refused() -> None:
    token = sign_statement({"x": 1}, ISSUER, ED_KEY, f"{ISSUER}#ed")
    no_keys: dict[str, PublicKey] = {}
    with pytest.raises(StatementError, match="unknown key"):
        verify_statement(token, no_keys.__getitem__)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["x"] = 2
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(StatementError, match="forged_signature"):
        verify_statement(f"{header}.{forged}.{signature}", KEYS.__getitem__)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        pytest.param("not-a-jwt", "malformed", id="garbage"),
        pytest.param(jwt.encode({"iss": ISSUER}, "secret-key-of-32-bytes-or-more!!", algorithm="HS256", headers={"kid": f"{ISSUER}#ed", "typ": "kexin-statement+jwt"}), "forged_signature", id="hmac"),
        pytest.param(jwt.encode({"iss": ISSUER}, ED_KEY, algorithm="EdDSA", headers={"kid": f"{ISSUER}#ed"}), "not a Kexin statement", id="wrong-typ"),
        pytest.param(jwt.encode({}, ED_KEY, algorithm="EdDSA", headers={"kid": f"{ISSUER}#ed", "typ": "kexin-statement+jwt"}), "needs iss and kid", id="no-iss"),
        pytest.param("a" * 20000, "oversized_token", id="oversized"),
    ],
)  # fmt: skip
def test_bad_statements(token: str, message: str) -> None:
    with pytest.raises(StatementError, match=message):
        verify_statement(token, KEYS.__getitem__)
