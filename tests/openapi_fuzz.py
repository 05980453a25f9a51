"""The lasting fuzz guard of issue 13: schemathesis over a service's own OpenAPI, in process.

Each service's test module loads its app's OpenAPI with :func:`schema_of` (at collection, from
an app that is built but never started: the document does not depend on the database) and sends
every generated request with :func:`check` through a ``TestClient`` of an app built from the
same settings and started as in production (its lifespan runs). Schemathesis generates requests
for every operation (its coverage phase's boundary values, then a fixed number of derandomized
fuzzing examples), valid and invalid, with a valid API key. Every answer must be documented: no
5xx, no status code the operation does not declare, and a body that matches the declared schema.

The apps reach no network: every outbound request (DID documents, peers named in generated
bodies) fails as unreachable (:data:`NO_NETWORK`), so the routes that ask a peer answer with
their documented 502 or 504, the only 5xx the guard lets through.
"""

from __future__ import annotations

from typing import Any, Final

import httpx
import httpx2
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import APIOperation, BaseSchema

Case = schemathesis.Case[APIOperation[Any, Any, Any, Any]]
SEED: Final = 13
CHECKS: Final = [not_a_server_error, status_code_conformance, response_schema_conformance]
EDGE_INTEGERS: Final = [2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30]
"""Numbers past what a database column, a float or a C integer holds (issue 13: a huge offset
gave a 500)."""
EDGE_STRINGS: Final = [
    "P1000000000D", "PT315360000000S", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00",
    "1e300", "NaN", "-0", "9" * 5000, "bytes=0-" + "9" * 5000, "https://CV\u008eD",
    "http://[::1", "did:web:x%3A99999", "did:web:a\u0000b", "../../etc/passwd", "[" * 100,
]  # fmt: skip
"""Strings that broke parsers in issue 13: durations and date-times past the calendar, numbers
past the floats, a 5,000-digit range, URLs and DIDs that do not parse, a path out of the root."""
PEER_FAILURES: Final = [502, 504]
"""A peer that cannot be reached or answers late: documented answers about the peer."""


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("the fuzz guard reaches no network", request=request)


NO_NETWORK: Final = httpx.MockTransport(_unreachable)


def schema_of(app: FastAPI, *, headers: dict[str, str], max_examples: int) -> BaseSchema:
    """The app's OpenAPI as a schemathesis schema: fixed seed, derandomized, no example
    database, ``headers`` (the API key) sent with every request."""
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": headers,
            "dictionaries": {
                "edge-integers": {"values": EDGE_INTEGERS},
                "edge-strings": {"values": EDGE_STRINGS},
            },
            "generation": {
                "mode": "all",
                "max-examples": max_examples,
                "deterministic": True,
                "database": "none",
                "dictionaries": {
                    "integer": {"dictionary": "edge-integers", "probability": 0.2},
                    "string": {"dictionary": "edge-strings", "probability": 0.2},
                },
            },
            "phases": {"stateful": {"enabled": False}},
            "checks": {
                "not_a_server_error": {
                    "expected-statuses": ["1XX", "2XX", "3XX", "4XX", *PEER_FAILURES]
                }
            },
        }
    )
    return schemathesis.openapi.from_dict(app.openapi(), config=config)


def send(client: TestClient, case: Case) -> httpx2.Response:
    """The case sent through ``client`` (schemathesis serialises it for ``requests``)."""
    kwargs: dict[str, Any] = case.as_transport_kwargs(base_url=str(client.base_url))
    body: dict[str, Any] = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    elif isinstance(kwargs.get("data"), str | bytes):
        body["content"] = kwargs["data"]
    elif kwargs.get("data") is not None:
        body["data"] = kwargs["data"]
    return client.request(
        kwargs["method"], kwargs["url"], params=kwargs.get("params"),
        headers=kwargs.get("headers"), **body,
    )  # fmt: skip


def check(client: TestClient, case: Case) -> None:
    response = send(client, case)
    case.validate_response(response, checks=CHECKS)


LARGEST: Final = 2**63 - 1
"""What a database's integer column holds."""


def unbounded_numbers(schema: BaseSchema) -> list[str]:
    """Every number a request may carry (parameters and JSON bodies) with no bounds, or bounds
    past a database's integers: where each is. Generated values rarely reach 2**63, so the
    bounds are checked on the document itself."""
    spec: dict[str, Any] = schema.raw_schema
    components: dict[str, Any] = spec.get("components", {}).get("schemas", {})
    found: list[str] = []

    def walk(node: Any, where: str, seen: frozenset[str]) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, where, seen)
            return
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                walk(components[name], f"{where}:{name}", seen | {name})
            return
        if node.get("type") in ("integer", "number"):
            low, high = node.get("minimum"), node.get("maximum")
            if low is None or high is None or low < -LARGEST - 1 or high > LARGEST:
                found.append(where)
        for key, value in node.items():
            if key == "properties":
                for name, child in value.items():
                    walk(child, f"{where}.{name}", seen)
            elif key in ("items", "anyOf", "allOf", "oneOf", "prefixItems", "additionalProperties"):
                walk(value, where, seen)

    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            label = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                walk(parameter["schema"], f"{label} {parameter['name']}", frozenset())
            for media in operation.get("requestBody", {}).get("content", {}).values():
                walk(media.get("schema"), f"{label} body", frozenset())
    return found
