"""Fixtures of the multi-party tests (defined in tests/e2e/space.py)."""

from tests.e2e.space import (
    closed_space,
    held_space,
    hooked_space,
    manual_space,
    postgres_space,
    space,
)

__all__ = [
    "closed_space",
    "held_space",
    "hooked_space",
    "manual_space",
    "postgres_space",
    "space",
]
