"""DID documents (W3C DID Core 1.0): verification methods, verification relationships, services.

Read from JSON with every reference resolved to an absolute id; keys as JsonWebKey2020
(``publicKeyJwk``) or Multikey / Ed25519VerificationKey2020 (``publicKeyMultibase``). Also the
documents of ``did:key`` and ``did:jwk``, which are derived from the DID itself.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from identity.errors import IdentityError, Reason
from identity.keys import KeyMaterialError, PublicKey, public_jwk, public_key_from_jwk

DID_CONTEXT: Final = "https://www.w3.org/ns/did/v1"
JWK_CONTEXT: Final = "https://w3id.org/security/suites/jws-2020/v1"
RELATIONSHIPS: Final = ("authentication", "assertionMethod", "capabilityInvocation")
MAX_METHODS: Final = 100

# multicodec prefixes (unsigned varint) of public keys in did:key / publicKeyMultibase
_ED25519_PREFIX: Final = b"\xed\x01"
_P256_PREFIX: Final = b"\x80\x24"
_B58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        index = _B58.find(char)
        if index < 0:
            raise ValueError("not base58btc")
        number = number * 58 + index
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\x00" * (len(text) - len(text.lstrip("1"))) + body


def b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    text = ""
    while number:
        number, rest = divmod(number, 58)
        text = _B58[rest] + text
    return "1" * (len(data) - len(data.lstrip(b"\x00"))) + text


def multibase_key(key: PublicKey) -> str:
    """``z…``: base58btc of the multicodec-prefixed public key (as in did:key)."""
    from cryptography.hazmat.primitives import serialization

    if isinstance(key, Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "z" + b58encode(_ED25519_PREFIX + raw)
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    return "z" + b58encode(_P256_PREFIX + point)


def key_from_multibase(value: str) -> PublicKey:
    if not value.startswith("z") or len(value) > 200:
        raise KeyMaterialError("publicKeyMultibase must be base58btc (z…)")
    try:
        data = b58decode(value[1:])
    except ValueError:
        raise KeyMaterialError("publicKeyMultibase is not base58btc") from None
    if data.startswith(_ED25519_PREFIX) and len(data) == 34:
        return Ed25519PublicKey.from_public_bytes(data[2:])
    if data.startswith(_P256_PREFIX) and len(data) == 35:
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), data[2:])
        except ValueError:
            raise KeyMaterialError("not a P-256 point") from None
    raise KeyMaterialError("publicKeyMultibase is neither an Ed25519 nor a P-256 key")


@dataclass(frozen=True)
class VerificationMethod:
    id: str
    controller: str
    public_key: PublicKey = field(compare=False)
    type: str = "JsonWebKey2020"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "JsonWebKey2020",
            "controller": self.controller,
            "publicKeyJwk": public_jwk(self.public_key),
        }


@dataclass(frozen=True)
class Service:
    id: str
    type: str
    endpoint: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "type": self.type, "serviceEndpoint": self.endpoint}


@dataclass(frozen=True)
class DIDDocument:
    id: str
    verification_methods: tuple[VerificationMethod, ...]
    authentication: tuple[str, ...] = ()
    assertion_method: tuple[str, ...] = ()
    capability_invocation: tuple[str, ...] = ()
    services: tuple[Service, ...] = ()

    def method(self, method_id: str, relationship: str) -> VerificationMethod:
        """The method ``method_id`` if it is listed under ``relationship``; raises otherwise."""
        found = next((m for m in self.verification_methods if m.id == method_id), None)
        if found is None:
            raise IdentityError(Reason.FOREIGN_KEY, f"{method_id} is not a key of {self.id}")
        if method_id not in self.relationship(relationship):
            raise IdentityError(
                Reason.KEY_NOT_AUTHORIZED, f"{method_id} is not listed under {relationship}"
            )
        return found

    def relationship(self, name: str) -> tuple[str, ...]:
        match name:
            case "authentication":
                return self.authentication
            case "assertionMethod":
                return self.assertion_method
            case "capabilityInvocation":
                return self.capability_invocation
        raise ValueError(name)

    def service(self, service_type: str) -> Service | None:
        return next((s for s in self.services if s.type == service_type), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "@context": [DID_CONTEXT, JWK_CONTEXT],
            "id": self.id,
            "verificationMethod": [m.to_json() for m in self.verification_methods],
            "authentication": list(self.authentication),
            "assertionMethod": list(self.assertion_method),
            "capabilityInvocation": list(self.capability_invocation),
            "service": [s.to_json() for s in self.services],
        }


def _fail(message: str) -> IdentityError:
    return IdentityError(Reason.MALFORMED_DOCUMENT, message)


def _absolute(did: str, reference: object) -> str:
    if not isinstance(reference, str) or not reference:
        raise _fail("a verification method reference must be a string")
    return did + reference if reference.startswith("#") else reference


def _method(did: str, node: object) -> VerificationMethod:
    if not isinstance(node, dict):
        raise _fail("a verification method must be an object")
    method_id = _absolute(did, node.get("id"))
    controller = node.get("controller", did)
    try:
        if "publicKeyJwk" in node:
            key = public_key_from_jwk(node["publicKeyJwk"])
        elif isinstance(node.get("publicKeyMultibase"), str):
            key = key_from_multibase(node["publicKeyMultibase"])
        else:
            raise _fail(f"{method_id} has neither publicKeyJwk nor publicKeyMultibase")
    except KeyMaterialError as error:
        raise _fail(f"{method_id}: {error}") from None
    return VerificationMethod(method_id, str(controller), key, str(node.get("type", "")))


def parse_document(document: object, expected_id: str) -> DIDDocument:
    """Read a DID document; its ``id`` must be the DID that was resolved."""
    if not isinstance(document, dict):
        raise _fail("a DID document must be a JSON object")
    if document.get("id") != expected_id:
        raise _fail(f"document id {document.get('id')!r} is not {expected_id}")
    raw_methods = document.get("verificationMethod", [])
    if not isinstance(raw_methods, list) or len(raw_methods) > MAX_METHODS:
        raise _fail(f"verificationMethod must be a list of at most {MAX_METHODS}")
    methods = {m.id: m for m in (_method(expected_id, node) for node in raw_methods)}
    relationships: dict[str, tuple[str, ...]] = {}
    for name in RELATIONSHIPS:
        entries = document.get(name, [])
        if not isinstance(entries, list) or len(entries) > MAX_METHODS:
            raise _fail(f"{name} must be a list")
        ids = []
        for entry in entries:
            if isinstance(entry, dict):  # an embedded method belongs to this relationship
                embedded = _method(expected_id, entry)
                methods.setdefault(embedded.id, embedded)
                ids.append(embedded.id)
            else:
                ids.append(_absolute(expected_id, entry))
        relationships[name] = tuple(ids)
    services = []
    raw_services = document.get("service", [])
    if not isinstance(raw_services, list):
        raise _fail("service must be a list")
    for node in raw_services:
        if not isinstance(node, dict) or not isinstance(node.get("serviceEndpoint"), str):
            continue  # a service we cannot read is one we will not use
        services.append(
            Service(
                _absolute(expected_id, node.get("id")),
                str(node.get("type")),
                node["serviceEndpoint"],
            )
        )
    return DIDDocument(
        id=expected_id,
        verification_methods=tuple(methods.values()),
        authentication=relationships["authentication"],
        assertion_method=relationships["assertionMethod"],
        capability_invocation=relationships["capabilityInvocation"],
        services=tuple(services),
    )


def single_key_document(did: str, method_id: str, key: PublicKey) -> DIDDocument:
    ids = (method_id,)
    return DIDDocument(did, (VerificationMethod(method_id, did, key),), ids, ids, ids)


def did_key_document(did: str) -> DIDDocument:
    fragment = did.removeprefix("did:key:")
    try:
        key = key_from_multibase(fragment)
    except KeyMaterialError as error:
        raise IdentityError(Reason.MALFORMED_DID, f"{did}: {error}") from None
    return single_key_document(did, f"{did}#{fragment}", key)


def did_key_of(key: PublicKey) -> str:
    return "did:key:" + multibase_key(key)


def did_jwk_document(did: str) -> DIDDocument:
    encoded = did.removeprefix("did:jwk:")
    try:
        jwk = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        key = public_key_from_jwk(jwk)
    except (ValueError, KeyMaterialError) as error:
        raise IdentityError(Reason.MALFORMED_DID, f"{did}: {error}") from None
    return single_key_document(did, f"{did}#0", key)


def did_jwk_of(key: PublicKey) -> str:
    text = json.dumps(public_jwk(key), separators=(",", ":"), sort_keys=True)
    return "did:jwk:" + base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def method_ids(methods: Iterable[VerificationMethod]) -> tuple[str, ...]:
    return tuple(m.id for m in methods)
