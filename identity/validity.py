"""The time claims of every JWT we read (``nbf``, ``iat``, ``exp``), as RFC 7519 NumericDates.

RFC 7519, section 2: a NumericDate is "A JSON numeric value representing the number of seconds
from 1970-01-01T00:00:00Z UTC until the specified UTC date/time, ignoring leap seconds." DCP 1.0
("Base Concepts") says the same of ``exp`` and ``iat``: "Its value is a JSON [rfc8259] number".

So a time claim here is an ``int`` or a finite ``float`` (never a bool, a string, NaN or an
infinity), and it must lie within :data:`MAX_DISTANCE_S` (100 years) of our clock: nothing we
issue or accept lives that long, and the bound keeps every value far inside what ``datetime``
can represent, so that no arithmetic on a claim can raise. Anything else is refused with the
caller's reason, never with an exception from ``datetime``. This module does not decide whether
a claim is required or what it must be compared with: its callers do, with :data:`LEEWAY_S`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from identity.errors import IdentityError, Reason

LEEWAY_S: Final = 30
"""Clock skew allowed in every comparison with ``nbf``, ``iat`` and ``exp`` (RFC 7519 4.1.4:
"Implementers MAY provide for some small leeway, usually no more than a few minutes")."""
MAX_DISTANCE_S: Final = 100 * 365 * 24 * 3600
"""A time claim further than this (about 100 years) from our clock is malformed."""


def numeric_date(
    claims: Mapping[str, Any], name: str, now: datetime, reason: Reason
) -> float | None:
    """The time claim ``name`` in seconds since the epoch, or None when it is absent."""
    value = claims.get(name)
    if value is None:
        return None
    now_s = now.timestamp()
    # Comparisons of int with float are exact in Python (no overflow for huge ints), and every
    # comparison with NaN is false: the range test also refuses NaN and both infinities.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not now_s - MAX_DISTANCE_S <= value <= now_s + MAX_DISTANCE_S
    ):
        raise IdentityError(
            reason, f"{name} must be a NumericDate (seconds) within 100 years of now"
        )
    return float(value)


def required_date(claims: Mapping[str, Any], name: str, now: datetime, reason: Reason) -> float:
    value = numeric_date(claims, name, now, reason)
    if value is None:
        raise IdentityError(reason, f"the {name} claim is required")
    return value


def instant(seconds: float, now: datetime) -> datetime:
    """A checked time claim as a datetime in ``now``'s time zone."""
    return datetime.fromtimestamp(seconds, now.tzinfo)
