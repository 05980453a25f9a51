"""Where, and how, a provider may push data to a consumer (DSP 2025-1 Transfer Process,
TransferRequestMessage: "The dataAddress contains a transport-specific endpoint address for
pushing the data. It may include a temporary authorization via the endpointProperties").

The endpoint goes through the destination policy and must lie on the host of the consumer's
own did:web (``Destinations.push_endpoint``). Of the endpoint properties only the two the
specification names are used: ``authorization`` ("an opaque authorization token that clients
must present when accessing the transport-specific endpoint address") and ``authType`` ("the
auth token type. For example, the value may be bearer"). Over HTTP the token is presented as
``Authorization: Bearer <token>`` (RFC 6750, 2.1), and so it must be a ``b64token``; any other
``authType`` is refused: the consumer never chooses a raw header.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from service.destinations import Destinations

_B64TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
"""RFC 6750, 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="."""


class PushAddressError(ValueError):
    """The consumer's push address cannot be used."""


@dataclass(frozen=True)
class PushTarget:
    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)


def push_target(
    address: Mapping[str, Any], consumer: str, destinations: Destinations
) -> PushTarget:
    """The endpoint and headers of a push to ``consumer``, from the dataAddress it sent."""
    endpoint = address.get("endpoint")
    if not isinstance(endpoint, str):
        raise PushAddressError("the push address has no endpoint")
    url = destinations.push_endpoint(endpoint, consumer)
    raw = address.get("endpointProperties") or []
    properties = {
        p.get("name"): p.get("value") for p in raw if isinstance(p, Mapping)
    } if isinstance(raw, list) else {}  # fmt: skip
    token, kind = properties.get("authorization"), properties.get("authType", "bearer")
    if token is None:
        return PushTarget(str(url))
    if not isinstance(kind, str) or kind.lower() != "bearer":
        raise PushAddressError("only the authType bearer is supported for a push")
    if not isinstance(token, str) or not _B64TOKEN.fullmatch(token):
        raise PushAddressError("the push authorization is not a bearer token (RFC 6750 b64token)")
    return PushTarget(str(url), {"Authorization": f"Bearer {token}"})
