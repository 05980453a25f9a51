"""Mutating valid documents for the property tests."""

from __future__ import annotations

from typing import Any


def mutate(document: Any, path: list[int], value: Any) -> Any:
    """Replace the node reached by following ``path`` (indices into keys or items) with value."""
    if not path or not isinstance(document, dict | list) or not document:
        return value
    keys = list(document) if isinstance(document, dict) else list(range(len(document)))
    key = keys[path[0] % len(keys)]
    document[key] = mutate(document[key], path[1:], value)
    return document
