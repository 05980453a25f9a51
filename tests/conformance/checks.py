"""How the kit judges a body the connector under test sends it (the Eclipse DSP TCK's
``MessageSerializer`` and ``AbstractVerificationTest``): the body needs an ``@type``; when the
kit holds a schema for that type (its copies in ``shared/dsp/2025-1/tck-schemas/``) it must
validate; and, since the kit expands with its two bundled contexts only and compares states as
``https://w3id.org/dspace/2025/1/<STATE>``, it must be written in the compact 2025-1 form:
``@context`` exactly the DSP context and states as the bare term.

Not a JSON-LD processor: the compact form is checked directly instead of expanding it, which is
stricter than the kit where the kit would accept another equivalent JSON-LD writing.

Quirks of the schema copies, handled here (the copies stay untouched): ``#definitions/``
without the slash (``shared/dsp/SOURCE.md``), and ``"items": "string"`` in the policy schemas'
``profile``, which the Java validator ignores and Python's refuses as a schema.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Final

from jsonschema import Draft201909Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT201909

TCK_SCHEMAS: Final = (
    Path(__file__).resolve().parents[3] / "shared" / "dsp" / "2025-1" / "tck-schemas"
)
BASE: Final = "https://w3id.org/dspace/2025/1/"
CONTEXT: Final = [f"{BASE}context.jsonld"]

SCHEMA_OF: Final[dict[str, str]] = {
    "ContractRequestMessage": "negotiation/contract-request-message-schema.json",
    "ContractOfferMessage": "negotiation/contract-offer-message-schema.json",
    "ContractAgreementMessage": "negotiation/contract-agreement-message-schema.json",
    "ContractAgreementVerificationMessage": (
        "negotiation/contract-agreement-verification-message-schema.json"
    ),
    "ContractNegotiationEventMessage": "negotiation/contract-negotiation-event-message-schema.json",
    "ContractNegotiationTerminationMessage": (
        "negotiation/contract-negotiation-termination-message-schema.json"
    ),
    "ContractNegotiation": "negotiation/contract-negotiation-schema.json",
    "ContractNegotiationError": "negotiation/contract-negotiation-error-schema.json",
    "CatalogRequestMessage": "catalog/catalog-request-message-schema.json",
    "DatasetRequestMessage": "catalog/dataset-request-message-schema.json",
    "Catalog": "catalog/catalog-schema.json",
    "Dataset": "catalog/dataset-schema.json",
    "TransferProcess": "transfer/transfer-process-schema.json",
    "TransferRequestMessage": "transfer/transfer-request-message-schema.json",
    "TransferStartMessage": "transfer/transfer-start-message-schema.json",
}
"""The types the kit registers a validator for; any other type is checked for ``@type`` only."""

STATE_KEYS: Final = ("state", "eventType")


class ScenarioError(AssertionError):
    """A scenario failed the way the kit would fail it."""


def show(body: object) -> str:
    return json.dumps(body, ensure_ascii=False, sort_keys=True)


def _fixed(text: str) -> str:
    return (
        text.replace('"#definitions/', '"#/definitions/')
        .replace("json#definitions/", "json#/definitions/")
        .replace('"items": "string"', '"items": {"type": "string"}')
    )


@cache
def registry() -> Registry[Any]:
    """Every schema copy of the kit's three modules, by ``$id`` (the copies that share an
    ``$id`` are byte-identical)."""
    resources: dict[str, Resource[Any]] = {}
    for path in sorted(TCK_SCHEMAS.rglob("*.json")):
        schema = json.loads(_fixed(path.read_text()))
        resources[schema["$id"]] = Resource.from_contents(schema, DRAFT201909)
    if not resources:
        raise FileNotFoundError(f"no TCK schemas under {TCK_SCHEMAS}")
    return Registry().with_resources(resources.items())


@cache
def validator(kind: str) -> Draft201909Validator | None:
    ref = SCHEMA_OF.get(kind)
    if ref is None:
        return None
    return Draft201909Validator({"$ref": BASE + ref}, registry=registry())


def schema_errors(body: dict[str, Any]) -> list[str]:
    check = validator(str(body.get("@type")))
    if check is None:
        return []
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in check.iter_errors(body)
    ]


def problems(body: object) -> list[str]:
    """What the kit (and the compact-form rule) finds wrong with ``body``; empty when fine."""
    if not isinstance(body, dict):
        return ["not a JSON object"]
    if "@type" not in body:
        return ["Invalid JsonLd Document, expecting a @type attribute"]
    found = [f"Invalid message ({body['@type']}): {error}" for error in schema_errors(body)]
    if body.get("@context") != CONTEXT:
        found.append(f"@context must be exactly {show(CONTEXT)} (compact 2025-1 form)")
    for key in STATE_KEYS:
        value = body.get(key)
        if isinstance(value, str) and (":" in value or "/" in value):
            found.append(f"{key} must be the compact term (e.g. REQUESTED), not {value!r}")
    prefixed = sorted(key for key in body if key.startswith(("dspace:", "odrl:", BASE)))
    if prefixed:
        found.append(f"prefixed or expanded terms in a compact 2025-1 body: {prefixed}")
    return found


def checked(body: object, what: str) -> dict[str, Any]:
    """``body`` when it passes the kit's checks, else a ScenarioError naming it."""
    found = problems(body)
    if found or not isinstance(body, dict):
        raise ScenarioError(f"{what}: " + "; ".join(found) + f"\nbody: {show(body)}")
    return body


def parsed(raw: bytes, what: str) -> dict[str, Any]:
    """A JSON body the connector sent, checked."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise ScenarioError(f"{what}: not JSON: {raw[:500]!r}") from None
    return checked(body, what)


def required(message: dict[str, Any], key: str) -> Any:
    """A property the kit reads (``JsonLdFunctions``: "Property '…' was not found")."""
    value = message.get(key)
    if value is None or value == []:
        raise ScenarioError(f"Property '{key}' was not found\nbody: {show(message)}")
    return value
