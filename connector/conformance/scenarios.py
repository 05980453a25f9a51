"""The Eclipse DSP TCK's scenarios as the connector under test must play them (DSP TCK
``e8b7af9c``, the 65 active scenarios; see ``docs/conformance.md``): for each dataset id
(negotiations) or agreement id (transfers) of the kit's configuration, the moves this connector
makes, each once the process is in the state named, in order. An empty script means "stay
passive": the kit drives, and this connector makes no automatic move. An id not in these tables
is no scenario: the connector behaves as it always does.

Pure data: no I/O. The ids are the kit's sample configuration's (``CN_01_01_DATASETID=ACN0101``,
``TP_01_01_AGREEMENTID=ATP0101``, ...), as EDC's test extension uses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Move(StrEnum):
    OFFER = "offer"
    """Provider: a (counter-)offer with the terms under negotiation."""
    AGREE = "agree"
    FINALIZE = "finalize"
    ACCEPT = "accept"
    VERIFY = "verify"
    COUNTER = "counter"
    """Consumer: a counter-request with the terms offered."""
    TERMINATE = "terminate"
    START = "start"
    SUSPEND = "suspend"
    COMPLETE = "complete"


@dataclass(frozen=True)
class Step:
    when: str
    """The process's state (the spec's name) in which the move is made."""
    move: Move


def _script(*steps: tuple[str, Move]) -> tuple[Step, ...]:
    return tuple(Step(state, move) for state, move in steps)


M = Move
PASSIVE: Final[tuple[Step, ...]] = ()

NEGOTIATIONS: Final[dict[str, tuple[Step, ...]]] = {
    # CN: this connector is the provider; the kit requests ACN…
    "ACN0101": _script(("REQUESTED", M.OFFER)),
    "ACN0102": _script(("REQUESTED", M.OFFER), ("REQUESTED", M.TERMINATE)),
    "ACN0103": _script(("REQUESTED", M.OFFER), ("ACCEPTED", M.AGREE), ("VERIFIED", M.FINALIZE)),
    "ACN0104": _script(("REQUESTED", M.AGREE), ("VERIFIED", M.FINALIZE)),
    "ACN0201": _script(("REQUESTED", M.TERMINATE)),
    "ACN0202": PASSIVE,
    "ACN0203": _script(("REQUESTED", M.AGREE)),
    "ACN0204": _script(("REQUESTED", M.OFFER)),
    "ACN0205": _script(("REQUESTED", M.OFFER), ("OFFERED", M.TERMINATE)),
    "ACN0206": _script(("REQUESTED", M.OFFER), ("ACCEPTED", M.TERMINATE)),
    "ACN0207": _script(("REQUESTED", M.AGREE), ("VERIFIED", M.TERMINATE)),
    "ACN0301": _script(("REQUESTED", M.AGREE), ("VERIFIED", M.FINALIZE)),
    "ACN0302": _script(("REQUESTED", M.OFFER)),
    "ACN0303": _script(("REQUESTED", M.OFFER)),
    "ACN0304": _script(("REQUESTED", M.OFFER)),
    # CN_C: this connector is the consumer; the kit offers ACNC…
    "ACNC0101": _script(("OFFERED", M.ACCEPT), ("AGREED", M.VERIFY)),
    "ACNC0102": _script(("OFFERED", M.COUNTER)),
    "ACNC0103": _script(("OFFERED", M.TERMINATE)),
    "ACNC0104": _script(("AGREED", M.VERIFY)),
    "ACNC0201": PASSIVE,
    "ACNC0202": _script(("REQUESTED", M.TERMINATE)),
    "ACNC0203": _script(("AGREED", M.TERMINATE)),
    "ACNC0204": PASSIVE,
    "ACNC0205": _script(("OFFERED", M.ACCEPT)),
    "ACNC0206": _script(("AGREED", M.VERIFY)),
    "ACNC0301": PASSIVE,
    "ACNC0302": PASSIVE,
    "ACNC0303": PASSIVE,
    "ACNC0304": _script(("OFFERED", M.ACCEPT)),
    "ACNC0305": _script(("OFFERED", M.ACCEPT)),
    "ACNC0306": _script(("OFFERED", M.ACCEPT)),
}

_STARTED: Final = _script(("REQUESTED", M.START))

TRANSFERS: Final[dict[str, tuple[Step, ...]]] = {
    # TP: this connector is the provider; agreements ATP… are held with the kit as consumer
    "ATP0101": _script(("REQUESTED", M.START), ("STARTED", M.TERMINATE)),
    "ATP0102": _script(("REQUESTED", M.START), ("STARTED", M.COMPLETE)),
    "ATP0103": _script(("REQUESTED", M.START), ("STARTED", M.SUSPEND), ("SUSPENDED", M.TERMINATE)),
    "ATP0104": _script(
        ("REQUESTED", M.START),
        ("STARTED", M.SUSPEND),
        ("SUSPENDED", M.START),
        ("STARTED", M.COMPLETE),
    ),
    "ATP0105": _script(("REQUESTED", M.TERMINATE)),
    "ATP0201": _STARTED,
    "ATP0202": _STARTED,
    "ATP0203": _STARTED,
    "ATP0204": _STARTED,  # disabled in the kit: the consumer resumes
    "ATP0205": PASSIVE,
    "ATP0301": PASSIVE,
    "ATP0302": PASSIVE,
    "ATP0303": _STARTED,
    "ATP0304": _STARTED,
    "ATP0305": _STARTED,
    "ATP0306": _STARTED,
    # TP_C: this connector is the consumer; agreements ATPC… are held with the kit as provider
    "ATPC0101": PASSIVE,
    "ATPC0102": PASSIVE,
    "ATPC0103": PASSIVE,
    "ATPC0104": PASSIVE,
    "ATPC0105": PASSIVE,
    "ATPC0201": _script(("STARTED", M.TERMINATE)),
    "ATPC0202": _script(("STARTED", M.COMPLETE)),
    "ATPC0203": _script(("STARTED", M.SUSPEND), ("SUSPENDED", M.TERMINATE)),
    "ATPC0204": _script(("STARTED", M.SUSPEND), ("SUSPENDED", M.START), ("STARTED", M.COMPLETE)),
    "ATPC0205": _script(("REQUESTED", M.TERMINATE)),
    "ATPC0301": PASSIVE,
    "ATPC0302": PASSIVE,
    "ATPC0303": PASSIVE,
    "ATPC0304": PASSIVE,
    "ATPC0305": PASSIVE,
    "ATPC0306": PASSIVE,
}

CATALOG_DATASETS: Final = ("CAT0101", "CAT0102")
ABSENT_DATASET: Final = "CAT0103"
"""CAT:01-03 asks for it and must be told it does not exist."""
PROVIDED_DATASETS: Final = (*CATALOG_DATASETS, *(d for d in NEGOTIATIONS if d.startswith("ACN0")))
PROVIDER_AGREEMENTS: Final = tuple(a for a in TRANSFERS if a.startswith("ATP0"))
CONSUMER_AGREEMENTS: Final = tuple(a for a in TRANSFERS if a.startswith("ATPC"))
