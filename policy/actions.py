"""ODRL 2.2 actions and the inclusion hierarchy we enforce.

ODRL's common vocabulary puts most actions under ``use``. We follow it for the actions that
consume data (read, display, aggregate, …), but fail closed on actions that hand data on:
``transfer``, ``distribute``, ``sell``, ``give``, ``lend``, ``share`` are not implied by ``use``;
a policy must grant them by name. Duty actions (delete, inform, compensate, log) are never
requested as uses; they are what a party must do. A deprecated ODRL 2.2 name (``write``) is
the action it is equivalent to (``modify``), in a policy and in a request alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

USE: Final = "use"
TRANSFER: Final = "transfer"

# action -> the action it is included in (ODRL's odrl:includedIn), for the actions we know.
INCLUDED_IN: Final[dict[str, str | None]] = {
    USE: None,
    TRANSFER: None,
    # consuming the data: included in use
    "read": USE,
    "display": USE,
    "print": USE,
    "play": USE,
    "present": USE,
    "stream": USE,
    "aggregate": USE,
    "annotate": USE,
    "anonymize": USE,
    "archive": USE,
    "concurrentUse": USE,
    "derive": USE,
    "digitize": USE,
    "execute": USE,
    "extract": USE,
    "index": USE,
    "install": USE,
    "modify": USE,
    "reproduce": USE,
    "synchronize": USE,
    "textToSpeech": USE,
    "transform": USE,
    "translate": USE,
    "watermark": USE,
    # handing the data on: only when granted by name (not implied by use, see above)
    "distribute": None,
    "share": None,
    "sell": TRANSFER,
    "give": TRANSFER,
    "lend": None,
}

# What a party must do: allowed as duties and obligations only.
DUTY_ACTIONS: Final[frozenset[str]] = frozenset(
    {"delete", "inform", "compensate", "attribute", "kexin:log"}
)

KNOWN_ACTIONS: Final[frozenset[str]] = frozenset(INCLUDED_IN) | DUTY_ACTIONS


# ODRL 2.2 vocabulary (ODRL22.ttl), deprecated actions that have an equivalent, e.g.
#   :write  rdfs:label "Write"; skos:definition "The act of writing to the asset.";
#           owl:deprecated true; owl:equivalentProperty :modify .
# Each deprecated name means exactly its equivalent, in a policy and in a request alike.
DEPRECATED: Final[Mapping[str, str]] = MappingProxyType(
    {
        "write": "modify",
        "writeTo": "modify",
        "append": "modify",
        "appendTo": "modify",
        "copy": "reproduce",
        "export": "transform",
    }
)


def action_name(name: str) -> str:
    """The action a name stands for: a deprecated ODRL 2.2 name is its equivalent."""
    return DEPRECATED.get(name, name)


def includes(granted: str, requested: str) -> bool:
    """Whether a rule about ``granted`` covers a request for ``requested`` (reflexive)."""
    granted = action_name(granted)
    current: str | None = action_name(requested)
    while current is not None:
        if current == granted:
            return True
        current = INCLUDED_IN.get(current)
    return False


def overlap(first: str, second: str) -> bool:
    """Whether some request is covered by rules about both actions."""
    return includes(first, second) or includes(second, first)
