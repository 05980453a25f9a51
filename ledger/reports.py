"""The regulator's report on one participant over a period, from the events it recorded: the
data it provided to others (for the annual disclosure), personal information handled against the
100,000 and 1,000,000 person thresholds, cross-border flows, and refusals by reason; as JSON or
CSV.

Data provided is read from the participant's own data-plane accesses (``dataplane.access``: what
its data plane served, to whom, for which asset and purpose). Persons are summed over those
accesses: a person whose data went out twice counts twice, so the figure is an upper bound of
the persons concerned (events carry counts, not identities). Pure: events in, report out.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from ledger.events import DataAccessed, LedgerEvent, Refused

PERSON_THRESHOLDS: Final = (100_000, 1_000_000)
CSV_COLUMNS: Final = (
    "section", "counterparty", "asset", "purpose", "reason",
    "events", "bytes", "rows", "persons",
)  # fmt: skip


@dataclass
class Provided:
    accesses: int = 0
    bytes: int = 0
    rows: int = 0
    persons: int = 0


@dataclass
class Report:
    participant: str
    since: datetime | None
    until: datetime | None
    events: int = 0
    provided: dict[tuple[str, str, str], Provided] = field(default_factory=dict)
    """(counterparty, asset, purpose) -> what went out."""
    persons: int = 0
    without_legal_basis: int = 0
    """Events about personal information that state no legal basis (PIPL article 13)."""
    cross_border: Counter[str] = field(default_factory=Counter)
    """counterparty -> cross-border events."""
    refusals: Counter[str] = field(default_factory=Counter)
    """reason -> refusals that gave it."""

    def thresholds(self) -> dict[str, bool]:
        return {f"atLeast{limit}": self.persons >= limit for limit in PERSON_THRESHOLDS}

    def to_json(self) -> dict[str, Any]:
        return {
            "participant": self.participant,
            "from": None if self.since is None else self.since.isoformat(),
            "to": None if self.until is None else self.until.isoformat(),
            "events": self.events,
            "provided": [
                {
                    "counterparty": c,
                    "asset": a,
                    "purpose": p,
                    "accesses": v.accesses,
                    "bytes": v.bytes,
                    "rows": v.rows,
                    "persons": v.persons,
                }
                for (c, a, p), v in sorted(self.provided.items())
            ],
            "personalInformation": {
                "persons": self.persons,
                **self.thresholds(),
                "withoutLegalBasis": self.without_legal_basis,
            },
            "crossBorder": [
                {"counterparty": c, "events": n} for c, n in sorted(self.cross_border.items())
            ],
            "refusals": [{"reason": r, "count": n} for r, n in sorted(self.refusals.items())],
        }

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for (counterparty, asset, purpose), value in sorted(self.provided.items()):
            writer.writerow(
                ["provided", _cell(counterparty), _cell(asset), _cell(purpose), "",
                 value.accesses, value.bytes, value.rows, value.persons]
            )  # fmt: skip
        writer.writerow(["personal_information", "", "", "", "", "", "", "", self.persons])
        if self.without_legal_basis:
            writer.writerow(
                ["personal_information", "", "", "", "no legal basis stated",
                 self.without_legal_basis, "", "", ""]
            )  # fmt: skip
        for counterparty, count in sorted(self.cross_border.items()):
            writer.writerow(["cross_border", _cell(counterparty), "", "", "", count, "", "", ""])
        for reason, count in sorted(self.refusals.items()):
            writer.writerow(["refusal", "", "", "", _cell(reason), count, "", "", ""])
        return out.getvalue()


def _cell(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def build_report(
    participant: str,
    events: Iterable[LedgerEvent],
    since: datetime | None = None,
    until: datetime | None = None,
) -> Report:
    report = Report(participant, since, until)
    for event in events:
        if event.participant != participant:
            continue
        report.events += 1
        if event.cross_border:
            report.cross_border[event.counterparty or "unknown"] += 1
        if event.personal_information and event.legal_basis is None:
            report.without_legal_basis += 1
        match event.detail:
            case DataAccessed(bytes_sent=sent, rows_sent=rows):
                key = (event.counterparty or "", event.asset_id or "", event.purpose or "")
                provided = report.provided.setdefault(key, Provided())
                provided.accesses += 1
                provided.bytes += sent
                provided.rows += rows or 0
                if event.personal_information:
                    provided.persons += event.person_count
                    report.persons += event.person_count
            case Refused(reasons=reasons):
                report.refusals.update(reasons)
            case _:
                pass
    return report
