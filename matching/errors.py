"""The matching library's one error type. ``reason`` is stable and machine-readable; the data
plane turns it into a typed HTTP 4xx body. Everything that fails here fails closed: a run that
raised is over, and nothing it computed so far is handed out."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    MALFORMED_MESSAGE = "malformed_message"
    """Not a matching message at all, or one whose fields are missing or of the wrong type."""
    TAMPERED_MESSAGE = "tampered_message"
    """The payload does not match the digest its header carries, or is not valid PSI data."""
    OVERSIZED_MESSAGE = "oversized_message"
    OUT_OF_ORDER = "out_of_order"
    """A chunk other than the next one, a message not allowed in the run's state."""
    WRONG_RUN = "wrong_run"
    STALE_SETUP = "stale_setup"
    """Built against a setup of another data version (or other parameters) than the current."""
    WRONG_MODE = "wrong_mode"
    SIZE_MISMATCH = "size_mismatch"
    """Counts that do not add up: chunk sizes, declared and sent totals, request and response."""
    TOO_MANY_ITEMS = "too_many_items"
    """More client items than the setup was computed for (its false-positive rate would not
    hold)."""
    UNSAFE_SETUP = "unsafe_setup"
    """A setup in a container other than GCS (Bloom filters are unsound here, see issue 15)."""
    INVALID_PARAMETER = "invalid_parameter"
    RUN_FAILED = "run_failed"
    """An earlier message of this run was refused: the run is over."""


class MatchingError(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.message}"

    def __reduce__(self) -> tuple[type[MatchingError], tuple[Reason, str]]:
        # raised in a worker process, it crosses back whole
        return (type(self), (self.reason, self.message))
