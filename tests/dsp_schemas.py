"""The official DSP 2025-1 JSON Schemas, loaded from ../shared/dsp (never from the network).

Quirk 1 of shared/dsp/SOURCE.md is handled here: three transfer schemas write
``#definitions/…`` where Python's referencing needs ``#/definitions/…``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft201909Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT201909

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "dsp" / "2025-1"
BASE = "https://w3id.org/dspace/2025/1/"


@cache
def registry() -> Registry[Any]:
    resources = []
    for path in sorted((SHARED / "schemas").rglob("*.json")):
        text = (
            path.read_text()
            .replace('"#definitions/', '"#/definitions/')
            .replace("json#definitions/", "json#/definitions/")
        )
        schema = json.loads(text)
        resources.append((schema["$id"], Resource.from_contents(schema, DRAFT201909)))
    if not resources:
        raise FileNotFoundError(f"no DSP schemas under {SHARED}")
    return Registry().with_resources(resources)


def validator(ref: str) -> Draft201909Validator:
    """A validator for ``ref``, e.g. ``negotiation/contract-schema.json#/definitions/Agreement``."""
    return Draft201909Validator({"$ref": BASE + ref}, registry=registry())


def errors(ref: str, document: object) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(ref).iter_errors(document)
    ]


def example(name: str) -> Any:
    return json.loads((SHARED / "examples" / name).read_text())
